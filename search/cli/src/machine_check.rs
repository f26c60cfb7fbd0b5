//! The check that a latency table was measured on the machine it predicts or measures: a table from
//! another machine is a warning naming what differs, or an error under `--strict-machine`; a table whose
//! device was in another power state (Jetson power mode, locked clocks, governor, turbo) is refused, or a
//! warning under `--allow-power-change`.

use std::path::Path;
use std::sync::OnceLock;

use hsconas_devices::LatencyTable;
use hsconas_vocabulary::Fingerprint;

static POLICY: OnceLock<(bool, bool)> = OnceLock::new();

/// For the rest of the process: a table from another machine is an error (`strict_machine`); a table
/// from another power state is only a warning (`allow_power_change`).
pub fn set_strict(strict_machine: bool, allow_power_change: bool) {
    let _ = POLICY.set((strict_machine, allow_power_change));
}

/// This machine's fingerprint, as the runtime reads it.
pub fn this_machine() -> Fingerprint {
    hsconas_runtime::fingerprint::detect()
}

/// Compares the table's machine with `here` (the fingerprint of the machine it is used on).
pub fn check(table: &LatencyTable, path: &Path, here: &Fingerprint) -> anyhow::Result<()> {
    let (strict_machine, allow_power_change) = POLICY.get().copied().unwrap_or((false, false));
    let power_differences = table.provenance.fingerprint.power.differences(&here.power);
    if !power_differences.is_empty() {
        let text = format!(
            "{} was measured with the device in another power state ({}): latencies change with it. \
             Put the device back in the table's state (`nvpmodel -m`, `jetson_clocks`, the governor) or \
             measure a table in this one",
            path.display(),
            power_differences.join("; ")
        );
        if !allow_power_change {
            anyhow::bail!("{text}; --allow-power-change uses it anyway.");
        }
        eprintln!("warning: {text}.");
    }
    let differences = table.provenance.fingerprint.machine_differences(here);
    if differences.is_empty() {
        return Ok(());
    }
    let text = format!(
        "{} was measured on another machine ({}): its latencies describe that machine, not this one. \
         Measure a table here with `hsconas profile`",
        path.display(),
        differences.join("; ")
    );
    if strict_machine {
        anyhow::bail!("{text}");
    }
    eprintln!("warning: {text}, or pass --strict-machine to refuse such tables.");
    Ok(())
}
