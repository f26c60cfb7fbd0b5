//! `hsconas profile`: measure a latency table on a device.

use hsconas_foundation::outln;
use std::path::PathBuf;

use clap::Args;
use hsconas_devices::{DeviceProfile, DriftModel, FleetRule, Int8Pieces};
use hsconas_export::quant::SEEDED_CALIBRATION_INPUTS;
use hsconas_latency::{profile_table, profile_table_on_fleet, FleetMember, Measurer, ProfileJob};
use hsconas_models::build::Piece;
use hsconas_models::Layout;
use hsconas_vocabulary::{ExecutionProvider, Int8Flavour, Precision};
use serde_json::json;

use super::measure_args::{AgentArgs, ProfilingProtocolArgs};

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Device profile: a shipped name (local-cpu, xeon-gold-6136, gv100, jetson-xavier) or a .toml file.
    #[arg(long, value_name = "NAME|FILE")]
    pub device: String,
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Stage widths (A, B or four widths). Default: the profile's.
    #[arg(long, value_name = "A|B|W1,W2,W3,W4")]
    pub layout: Option<Layout>,
    /// Input height and width. Default: the profile's.
    #[arg(long, value_name = "S")]
    pub input_size: Option<usize>,
    /// Classes of the head's classifier. Default: 1000, or 10 for inputs under 64 pixels (CIFAR-sized).
    #[arg(long, value_name = "N")]
    pub classes: Option<usize>,
    /// The table file. An existing one measured with the same settings is resumed.
    /// Default: tables/<device>-<layout>-<input size>.json.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Instead of measuring every piece: transfer this table, measured on another device (or with
    /// another engine, input size or thread count), to this device from --samples networks measured here
    /// end to end; the source's entries are rescaled by the correction that predicts networks it did not
    /// see best (docs/latency-local-cpu.md, "Transfer from another table"). Refusing a table of another
    /// device is bypassed on purpose; the new table records the source and how it differs.
    #[arg(long, value_name = "TABLE")]
    pub transfer_from: Option<PathBuf>,
    /// With --transfer-from: networks measured here to fit the transfer (and in each further round
    /// with --tolerance).
    #[arg(long, default_value_t = ProfileArgs::DEFAULT_SAMPLES, requires = "transfer_from", value_name = "N")]
    pub samples: usize,
    /// With --transfer-from: measure --samples more networks while the transfer's error (RMSPE) is above
    /// PCT percent, up to --max-samples. The error is judged on networks the fit has not seen: each
    /// round after the first is predicted by the fit before it (so at least two rounds are measured),
    /// then joins the fit. With --max-samples equal to --samples it falls back to the leave-one-out
    /// estimate over the networks fitted on, which was optimistic in the measured runs.
    #[arg(long, requires = "transfer_from", value_name = "PCT")]
    pub tolerance: Option<f64>,
    /// With --tolerance: the most networks measured in all.
    #[arg(long, default_value_t = ProfileArgs::DEFAULT_MAX_SAMPLES, requires = "tolerance", value_name = "N")]
    pub max_samples: usize,
    /// With --transfer-from: after the networks, profile up to N pieces of the space, one per shape
    /// (the layers of a stage after its first are twins), the shapes that matter most first (expected
    /// contribution to a network times how uncertain its value still is), in rounds of 48, refitting the
    /// transfer after each round; with --tolerance, only once --max-samples networks could not meet it,
    /// and only while the error on the last round's networks (held out of the refits) is above it.
    /// Every shape profiled: 326 pieces of the 818 a full profile measures.
    #[arg(
        long,
        default_value_t = 0,
        requires = "transfer_from",
        value_name = "N"
    )]
    pub profile_pieces: usize,
    /// With --transfer-from: seed the networks are drawn with (calibration draws with 1, validation with
    /// 2, so that neither measures them again).
    #[arg(long, default_value_t = ProfileArgs::DEFAULT_SEED, requires = "transfer_from")]
    pub seed: u64,
    /// Pieces measured together in one interleaved group (with --transfer-from, the networks are
    /// measured as `hsconas calibrate` measures them: groups of 10, bursts of 3).
    #[arg(long, default_value_t = ProfileArgs::DEFAULT_GROUP, value_name = "N")]
    pub group: usize,
    /// Measure one piece of each shape and copy its entry to its twins: the layers of a stage after
    /// its first take the same input, so their pieces with one choice are the same computation. 326
    /// of the 818 FP32 pieces (646 of 1618 with --precision mixed; a TensorRT device builds that many
    /// engines instead of all); recorded in the table (docs/latency-local-cpu.md compares it with a
    /// full profile).
    #[arg(long, conflicts_with = "transfer_from")]
    pub once_per_shape: bool,
    /// Do not time the reference network in every group (the table then cannot normalise for drift:
    /// measurements of a device whose speed changes while it profiles go into it as they are).
    #[arg(long)]
    pub no_reference: bool,
    /// Time the reference network alone, half of its runs right before each group and half right
    /// after, instead of among the group's pieces (recorded in the table; every later job against it
    /// times the reference the same way). Alone, its company is the same in every job, but it no longer
    /// shares the group's rounds (docs/latency-local-cpu.md, "Drift and the reference network").
    #[arg(long, conflicts_with = "no_reference")]
    pub reference_alone: bool,
    /// How the entries are normalised with the reference network's trace: `ratio-N` (ratio to a running
    /// median of N groups), `linear` (a drift term linear in time) or `raw` (none; the trace is still
    /// recorded). Stored in the table; `hsconas latency validate` compares the models. The default,
    /// `ratio-1` (each group by its own reference timing), normalised best at input 224 in every run with
    /// the reference interleaved on the 2-core VM (docs/latency-local-cpu.md).
    #[arg(long, default_value = "ratio-1", value_name = "MODEL")]
    pub drift_model: DriftModel,
    /// What the table measures: `fp32` (every piece in FP32), or `mixed` (every block with weights in
    /// INT8 too, quantised whole as `hsconas export onnx --piece KEY --precision int8` does: the table
    /// then predicts networks whose layers are marked `@int8`, and about doubles the profiling time).
    #[arg(long, default_value = "fp32", value_name = "fp32|mixed")]
    pub precision: TablePrecision,
    /// With --precision mixed: the INT8 pieces' weight range. `auto`: `reduced` (7 bits) when this
    /// machine measures and is x86 without VNNI (whose fast kernels saturate with full-range weights),
    /// else `full`. Recorded in the table.
    #[arg(long, default_value = "auto", value_name = "auto|full|reduced")]
    pub int8_weight_range: String,
    #[command(flatten)]
    pub protocol: ProfilingProtocolArgs,
    /// With several --agent: how many times the devices' measured noise their speeds may spread apart on
    /// the fleet's calibration networks before the fleet is refused.
    #[arg(long, default_value_t = FleetRule::default().factor, value_name = "K")]
    pub fleet_noise_factor: f64,
    /// With several --agent: the spread (percent) always accepted, however steady the devices are.
    #[arg(long, default_value_t = 100.0 * FleetRule::default().floor, value_name = "PCT")]
    pub fleet_min_tolerance: f64,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
}

/// What a latency table measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TablePrecision {
    /// Every piece in FP32.
    Fp32,
    /// Every piece in FP32 and every block with weights in INT8 too.
    Mixed,
}

impl ProfileArgs {
    /// `--group` when absent.
    pub const DEFAULT_GROUP: usize = 16;
    /// `--samples` when absent.
    pub const DEFAULT_SAMPLES: usize = 30;
    /// `--max-samples` when absent.
    pub const DEFAULT_MAX_SAMPLES: usize = 120;
    /// `--seed` when absent.
    pub const DEFAULT_SEED: u64 = 3;

    /// Profiling `device` with every other flag at its default.
    #[cfg(feature = "train")] // only `hsconas run` builds it
    pub fn new(device: String) -> ProfileArgs {
        ProfileArgs {
            device,
            agent: AgentArgs::default(),
            layout: None,
            input_size: None,
            classes: None,
            out: None,
            transfer_from: None,
            samples: ProfileArgs::DEFAULT_SAMPLES,
            tolerance: None,
            max_samples: ProfileArgs::DEFAULT_MAX_SAMPLES,
            profile_pieces: 0,
            seed: ProfileArgs::DEFAULT_SEED,
            group: ProfileArgs::DEFAULT_GROUP,
            once_per_shape: false,
            no_reference: false,
            reference_alone: false,
            drift_model: DriftModel::DEFAULT,
            precision: TablePrecision::Fp32,
            int8_weight_range: "auto".into(),
            protocol: ProfilingProtocolArgs::default(),
            fleet_noise_factor: FleetRule::default().factor,
            fleet_min_tolerance: 100.0 * FleetRule::default().floor,
            json: false,
        }
    }
}

/// How a mixed table's INT8 pieces are exported (`None` for `--precision fp32`): the TensorRT flavour
/// where the profile runs TensorRT, the CPU flavour elsewhere; the weight range as `--int8-weight-range`
/// says.
fn int8_pieces(args: &ProfileArgs, profile: &DeviceProfile) -> anyhow::Result<Option<Int8Pieces>> {
    let local = args.agent.agents.is_empty();
    let weight_range = super::export_int8::resolve_weight_range(&args.int8_weight_range, local)?;
    if args.precision == TablePrecision::Fp32 {
        return Ok(None);
    }
    anyhow::ensure!(
        profile.precision == Precision::Fp32,
        "--precision mixed needs an FP32 device profile ('{}' sets {}): the INT8 pieces are QDQ models",
        profile.name,
        profile.precision
    );
    let flavour = match profile.provider {
        ExecutionProvider::Tensorrt => Int8Flavour::TensorRt,
        _ => Int8Flavour::Cpu,
    };
    Ok(Some(Int8Pieces {
        flavour,
        weight_range,
        calibration_inputs: SEEDED_CALIBRATION_INPUTS,
    }))
}

pub fn run(args: ProfileArgs) -> anyhow::Result<()> {
    let mut profile = DeviceProfile::find(&args.device)?;
    if let Some(layout) = args.layout {
        profile.layout = layout;
    }
    if let Some(size) = args.input_size {
        profile.input_size = size;
    }
    profile.validate()?;
    let classes = args
        .classes
        .unwrap_or(if profile.input_size < 64 { 10 } else { 1000 });
    let out = args.out.clone().unwrap_or_else(|| {
        let layout = profile.layout.to_string().replace(',', "-");
        PathBuf::from("tables").join(format!(
            "{}-{layout}-{}.json",
            profile.name, profile.input_size
        ))
    });
    let int8 = int8_pieces(&args, &profile)?;
    let job = ProfileJob {
        int8,
        profile: profile.clone(),
        classes,
        group: args.group,
        reference: !args.no_reference,
        reference_alone: args.reference_alone,
        drift_model: args.drift_model,
        once_per_shape: args.once_per_shape,
        progress: !args.json,
    };
    if let Some(source) = &args.transfer_from {
        anyhow::ensure!(
            int8.is_none(),
            "--precision mixed does not apply to --transfer-from: transfer moves FP32 tables only"
        );
        return super::profile_transfer::run(&args, source, job, &out);
    }
    let start = std::time::Instant::now();
    let table = if args.agent.agents.len() > 1 {
        let rule = FleetRule {
            factor: args.fleet_noise_factor,
            floor: args.fleet_min_tolerance / 100.0,
        };
        anyhow::ensure!(
            rule.factor >= 0.0 && rule.floor >= 0.0,
            "--fleet-noise-factor and --fleet-min-tolerance must not be negative"
        );
        let fleet = args
            .agent
            .agents
            .iter()
            .map(|url| {
                Ok(FleetMember {
                    agent: url.clone(),
                    measurer: Measurer::new(
                        &profile,
                        args.protocol.protocol(),
                        Some(url),
                        args.agent.token.clone(),
                        args.agent.agent_ca.as_deref(),
                    )?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        eprintln!(
            "profiling {profile} on a fleet of {} devices; checking first that they agree",
            fleet.len()
        );
        profile_table_on_fleet(&job, &fleet, rule, &out)?
    } else {
        let measurer = Measurer::new(
            &profile,
            args.protocol.protocol(),
            args.agent.single()?,
            args.agent.token.clone(),
            args.agent.agent_ca.as_deref(),
        )?;
        eprintln!("profiling {profile} on {}", measurer.place());
        if let Some(int8) = &job.int8 {
            eprintln!(
                "mixed precision: every block in INT8 too ({} flavour, {} weight range)",
                int8.flavour, int8.weight_range
            );
        }
        profile_table(&job, &measurer, &out)?
    };
    let seconds = start.elapsed().as_secs_f64();
    let total: f64 = table.entries.values().map(|e| e.get(table.statistic)).sum();
    let drift = table.reference.as_ref().and_then(|r| {
        r.trace
            .summary(r.model, r.latency_ms)
            .map(|s| (r.latency_ms, s))
    });
    let drift_line = match &drift {
        Some((ms, s)) => format!(
            "reference network {ms:.3} ms; the device's speed moved {:.1}% while profiling (normalised with {})",
            100.0 * s.spread,
            table.reference.as_ref().map_or(String::new(), |r| r.model.name())
        ),
        None => "no reference network: the table cannot normalise for drift".into(),
    };
    let drift = drift.map(|(ms, s)| json!({ "reference_ms": ms, "summary": s }));
    // Pieces measured: one per shape when the twins took copies.
    let measured = match table.provenance.once_per_shape {
        true => table
            .entries
            .keys()
            .filter_map(|k| k.parse::<Piece>().ok())
            .map(|p| p.shape())
            .collect::<std::collections::HashSet<_>>()
            .len(),
        false => table.entries.len(),
    };
    if args.json {
        let summary = json!({
            "table": out,
            "entries": table.entries.len(),
            "measured": measured,
            "once_per_shape": table.provenance.once_per_shape,
            "int8": table.provenance.int8,
            "seconds": seconds,
            "backend": table.provenance.backend_version,
            "provider": table.provenance.provider,
            "drift": drift,
            "fleet": table.provenance.fleet,
        });
        outln!("{}", serde_json::to_string_pretty(&summary)?)?;
    } else {
        let copied = match table.provenance.once_per_shape {
            true => format!(", {measured} measured and copied to their twins"),
            false => String::new(),
        };
        outln!(
            "{} entries ({}, {:?}{copied}) in {seconds:.0} s; sum of all entries {total:.2} ms; table in {}",
            table.entries.len(),
            table.provenance.backend_version,
            table.provenance.provider,
            out.display()
        )?;
        outln!("{drift_line}")?;
        if let Some(fleet) = &table.provenance.fleet {
            outln!(
                "fleet of {}: speeds within {:.1}% of each other (accepted up to {:.1}%); {}",
                fleet.devices.len(),
                100.0 * fleet.spread,
                100.0 * fleet.tolerance,
                fleet
                    .devices
                    .iter()
                    .map(|d| format!("{} measured {} groups", d.agent, d.groups))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            if !fleet.earlier.is_empty() {
                outln!(
                    "resumed: {} earlier sittings (provenance.fleet.earlier); {} groups in all",
                    fleet.earlier.len(),
                    fleet.total_groups()
                )?;
            }
        }
        outln!("next: hsconas calibrate --table {}", out.display())?;
    }
    Ok(())
}
