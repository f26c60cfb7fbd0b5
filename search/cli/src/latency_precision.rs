//! `hsconas latency precision`: where INT8 pays on the device of a mixed-precision table.

use std::path::PathBuf;

use clap::Args;
use hsconas_devices::{int8_gains, GainGroup, LatencyTable};
use hsconas_foundation::outln;

#[derive(Debug, Args)]
pub struct PrecisionArgs {
    /// A mixed-precision latency table (`hsconas profile --precision mixed`).
    #[arg(long, value_name = "FILE")]
    table: PathBuf,
    /// Print every block's FP32 and INT8 entries and speed-up, and the groups, as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: PrecisionArgs) -> anyhow::Result<()> {
    let table = LatencyTable::load(&args.table)?;
    let gains = int8_gains(&table)?;
    if args.json {
        let mut value = serde_json::to_value(&gains)?;
        value["table"] = serde_json::json!(args.table);
        value["int8"] = serde_json::to_value(table.provenance.int8)?;
        value["device"] = serde_json::json!(table.provenance.device);
        value["cpu_model"] = serde_json::json!(table.provenance.fingerprint.cpu_model);
        value["input_size"] = serde_json::json!(table.provenance.input_size);
        outln!("{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let p = &table.provenance;
    outln!(
        "INT8 speed-up (FP32 entry / INT8 entry; above 1: INT8 faster) on {} ({}), input {}, {}",
        p.device,
        p.fingerprint.cpu_model,
        p.input_size,
        p.int8.map_or(String::new(), |i| format!(
            "{} flavour, {} weight range",
            i.flavour, i.weight_range
        ))
    )?;
    let header = || {
        outln!(
            "  {:<10} {:>6} {:>8} {:>8} {:>8} {:>12}",
            "",
            "blocks",
            "median",
            "min",
            "max",
            "INT8 faster"
        )
    };
    for (title, groups) in [
        ("per layer", &gains.by_layer),
        ("per operator", &gains.by_op),
        ("per channel scale", &gains.by_scale),
    ] {
        outln!("{title}:")?;
        header()?;
        for g in groups {
            row(g)?;
        }
    }
    outln!("every block:")?;
    row(&gains.all)?;
    Ok(())
}

fn row(g: &GainGroup) -> std::io::Result<()> {
    outln!(
        "  {:<10} {:>6} {:>7.2}x {:>7.2}x {:>7.2}x {:>6} of {:<3}",
        g.name,
        g.blocks,
        g.median,
        g.min,
        g.max,
        g.int8_faster,
        g.blocks
    )
}
