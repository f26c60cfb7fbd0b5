//! The check that a latency table was measured on the machine it predicts or measures: a table from
//! another machine is a warning naming what differs, or an error under `--strict-machine`.

use std::path::Path;
use std::sync::OnceLock;

use hsconas_devices::{machine_differences, LatencyTable};
use hsconas_runtime::fingerprint::Fingerprint;
use serde_json::Value;

static STRICT: OnceLock<bool> = OnceLock::new();

/// Makes a table from another machine an error (`--strict-machine`) for the rest of the process.
pub fn set_strict(strict: bool) {
    let _ = STRICT.set(strict);
}

/// This machine's fingerprint, as the runtime reports it.
pub fn this_machine() -> Value {
    serde_json::to_value(Fingerprint::detect()).unwrap_or(Value::Null)
}

/// Compares the table's machine with `here` (the fingerprint of the machine it is used on).
pub fn check(table: &LatencyTable, path: &Path, here: &Value) -> anyhow::Result<()> {
    let differences = machine_differences(&table.provenance.fingerprint, here);
    if differences.is_empty() {
        return Ok(());
    }
    let text = format!(
        "{} was measured on another machine ({}): its latencies describe that machine, not this one. \
         Measure a table here with `hsconas profile`",
        path.display(),
        differences.join("; ")
    );
    if STRICT.get().copied().unwrap_or(false) {
        anyhow::bail!("{text}");
    }
    eprintln!("warning: {text}, or pass --strict-machine to refuse such tables.");
    Ok(())
}
