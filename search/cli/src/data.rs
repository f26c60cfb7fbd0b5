//! `hsconas data inspect`.

use clap::{Args, Subcommand};
use hsconas_foundation::outln;
use serde_json::json;

use super::data_args::DataArgs;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Read a dataset and report its splits, classes, image size and channel statistics.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    let DataCommand::Inspect(args) = cmd;
    let start = std::time::Instant::now();
    let p = args.data.prepare()?;
    let seconds = start.elapsed().as_secs_f64();
    let splits = [
        ("train", Some(&p.train)),
        ("val", Some(&p.val)),
        ("test", p.test.as_ref()),
    ];
    if args.json {
        let mut out = json!({
            "data": args.data.data,
            "format": p.format,
            "decode_seconds": seconds,
            "transform": p.transform,
        });
        for (name, set) in splits {
            out[name] = set.map_or(serde_json::Value::Null, |s| json!(s.summary()));
        }
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(());
    }
    outln!(
        "{} ({}), decoded in {seconds:.1} s",
        args.data.data.display(),
        p.format
    )?;
    for (name, set) in splits {
        let Some(set) = set else {
            outln!("{name:<5}  (none)")?;
            continue;
        };
        let s = set.summary();
        outln!(
            "{name:<5}  {:>7} images of {}x{}x{}, {} classes",
            s.images,
            s.shape[0],
            s.shape[1],
            s.shape[2],
            s.per_class.len()
        )?;
    }
    let t = p.train.summary();
    let per_class: Vec<String> = t
        .per_class
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    outln!("train per class: {}", per_class.join(", "))?;
    outln!(
        "normalisation (train): mean {:?}, std {:?}",
        t.mean.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>(),
        t.std.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>()
    )?;
    Ok(())
}
