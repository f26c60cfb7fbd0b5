//! Flags shared by the commands that measure on a device: where (`--agent`, `--token`), how long
//! (`--warmup`, `--runs`, `--min-time-ms`, `--max-runs`) and in which groups (`--group`).

use std::path::Path;

use anyhow::Context;
use clap::Args;
use hsconas_devices::{DeviceProfile, LatencyTable};
use hsconas_latency::{DriftPolicy, Measurer};
use hsconas_vocabulary::Protocol;

/// `--agent`, `--token`, `--agent-ca`.
#[derive(Debug, Clone, Default, Args)]
pub struct AgentArgs {
    /// Measure on a remote device through its agent (`hsconas-runtime serve` there), e.g.
    /// `http://jetson.local:7878`. Default: the profile's `agent`, else this machine, in process.
    /// `hsconas profile` takes it more than once: the devices, all of the profile, measure one table
    /// together after a check that they agree (docs/scale-out.md).
    #[arg(long = "agent", value_name = "URL")]
    pub agents: Vec<String>,
    /// The agent's token.
    #[arg(
        long,
        env = "HSCONAS_AGENT_TOKEN",
        value_name = "T",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// The certificate authority (PEM) that signed an `https://` agent's certificate, e.g. the agent's
    /// self-signed certificate itself. Default: the public authorities.
    #[arg(long, value_name = "PEM")]
    pub agent_ca: Option<std::path::PathBuf>,
}

impl AgentArgs {
    /// The one agent a command measures on (`None`: the profile's, else this machine); more than one is
    /// refused, since only `hsconas profile` measures on a fleet.
    pub fn single(&self) -> anyhow::Result<Option<&str>> {
        match self.agents.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => anyhow::bail!(
                "--agent was given {} times; only `hsconas profile` measures on several devices",
                many.len()
            ),
        }
    }
}

/// Protocol flags of `hsconas profile` (calibration and validation reuse the table's protocol).
#[derive(Debug, Clone, Args)]
pub struct ProfilingProtocolArgs {
    /// Untimed runs per model before timing.
    #[arg(long, default_value_t = ProfilingProtocolArgs::default().warmup, value_name = "N")]
    pub warmup: usize,
    /// Timed runs per model, at least.
    #[arg(long, default_value_t = ProfilingProtocolArgs::default().runs, value_name = "N")]
    pub runs: usize,
    /// Timed milliseconds per model, at least.
    #[arg(long, default_value_t = ProfilingProtocolArgs::default().min_time_ms, value_name = "T")]
    pub min_time_ms: f64,
    /// Timed runs per model, at most.
    #[arg(long, default_value_t = ProfilingProtocolArgs::default().max_runs, value_name = "N")]
    pub max_runs: usize,
    /// Runs of each piece back to back in every interleaved round, only the last timed (recorded in the
    /// table). 1, the default, times every run, each piece cold after the group's others.
    #[arg(long, default_value_t = ProfilingProtocolArgs::default().burst, value_name = "K")]
    pub burst: usize,
}

/// The command line's defaults: [`Protocol::for_profiling`], the one definition.
impl Default for ProfilingProtocolArgs {
    fn default() -> ProfilingProtocolArgs {
        let profiling = Protocol::for_profiling();
        ProfilingProtocolArgs {
            warmup: profiling.warmup,
            runs: profiling.min_runs,
            min_time_ms: profiling.min_time_ms,
            max_runs: profiling.max_runs,
            burst: profiling.burst,
        }
    }
}

impl ProfilingProtocolArgs {
    /// The protocol (input seed 0; pinning from the device profile).
    pub fn protocol(&self) -> Protocol {
        Protocol {
            warmup: self.warmup,
            min_runs: self.runs,
            min_time_ms: self.min_time_ms,
            max_runs: self.max_runs.max(self.runs),
            seed: 0,
            pin: Vec::new(),
            burst: self.burst,
            last_burst: None,
            last_alone: false,
        }
    }
}

/// `--device`, `--burst` and the agent flags for commands that measure networks against a table.
#[derive(Debug, Clone, Args)]
pub struct TableDeviceArgs {
    /// The device profile (shipped name or .toml file). Default: the one named in the table.
    #[arg(long, value_name = "NAME|FILE")]
    pub device: Option<String>,
    /// Networks measured together in one interleaved group.
    #[arg(long, default_value_t = TableDeviceArgs::default().group, value_name = "N")]
    pub group: usize,
    /// Runs of each network back to back in every interleaved round, only the last timed: warm caches as
    /// when the network runs alone, drift still spread by interleaving (docs/latency-local-cpu.md). 1 times
    /// every run.
    #[arg(long, default_value_t = TableDeviceArgs::default().burst, value_name = "K")]
    pub burst: usize,
    /// Warn when the device's speed (the table's reference network, timed in every group) changes by
    /// more than this fraction during the measurement, or differs by more from the table's state.
    #[arg(long, default_value_t = TableDeviceArgs::default().drift_threshold, value_name = "F")]
    pub drift_threshold: f64,
    /// Refuse (exit with an error, keep nothing) instead of warning when the drift exceeds
    /// --drift-threshold.
    #[arg(long)]
    pub refuse_drift: bool,
    #[command(flatten)]
    pub agent: AgentArgs,
}

/// The command line's defaults.
impl Default for TableDeviceArgs {
    fn default() -> TableDeviceArgs {
        TableDeviceArgs {
            device: None,
            group: 10,
            burst: 3,
            drift_threshold: 0.05,
            refuse_drift: false,
            agent: AgentArgs::default(),
        }
    }
}

impl TableDeviceArgs {
    /// Loads the table, checks it against the device profile (at the table's layout and input size) and
    /// builds a measurer with the table's protocol.
    pub fn open(&self, path: &Path) -> anyhow::Result<(LatencyTable, Measurer)> {
        let table = LatencyTable::load(path)?;
        let name = self.device.as_deref().unwrap_or(&table.provenance.device);
        let mut profile = DeviceProfile::find(name).with_context(|| {
            format!("the table names device profile '{name}'; pass --device with its .toml file")
        })?;
        profile.layout = table.provenance.layout;
        profile.input_size = table.provenance.input_size;
        let table = LatencyTable::load_for(path, &profile)?;
        let missing = table.missing_entries();
        if let Some(first) = missing.first() {
            anyhow::bail!(
                "{} is incomplete ({} entries missing, first '{first}'); finish it with `hsconas profile --out {}`",
                path.display(),
                missing.len(),
                path.display()
            );
        }
        let protocol = Protocol {
            burst: self.burst,
            ..table.provenance.protocol.clone()
        };
        let measurer = Measurer::new(
            &profile,
            protocol,
            self.agent.single()?,
            self.agent.token.clone(),
            self.agent.agent_ca.as_deref(),
        )?;
        super::machine_check::check(&table, path, &measurer.fingerprint()?)?;
        if table.reference.is_none() {
            eprintln!(
                "note: {} records no reference network, so measurements against it cannot be \
                 normalised for the device's drift (a table profiled by this version records one)",
                path.display()
            );
        }
        Ok((table, measurer))
    }

    /// What to do when the device drifts during a measurement.
    pub fn drift_policy(&self) -> anyhow::Result<DriftPolicy> {
        anyhow::ensure!(
            self.drift_threshold.is_finite() && self.drift_threshold > 0.0,
            "--drift-threshold must be a positive fraction, e.g. 0.05"
        );
        Ok(DriftPolicy {
            threshold: self.drift_threshold,
            refuse: self.refuse_drift,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `hsconas profile` without protocol flags measures with the library's profiling protocol, the one
    /// definition of those defaults.
    #[test]
    fn the_default_flags_are_the_profiling_protocol() {
        assert_eq!(
            ProfilingProtocolArgs::default().protocol(),
            Protocol::for_profiling()
        );
        assert!(Protocol::for_profiling().min_time_ms < Protocol::default().min_time_ms);
    }
}
