//! `hsconas arch info|sample`.

use anyhow::Context;
use clap::{Args, Subcommand};
use hsconas_foundation::outln;
use hsconas_models::build::{self, PartCount};
use hsconas_models::{Arch, SearchSpace};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::net_args::NetArgs;

#[derive(Debug, Subcommand)]
pub enum ArchCommand {
    /// Canonical form, parameters and MACs of an architecture, per layer.
    Info(InfoArgs),
    /// Print random valid architectures, one per line (reproducible for a seed).
    Sample(SampleArgs),
    /// Print the layer graph of an architecture as JSON (nodes with operations, inputs and shapes; value 0
    /// is the input, value i + 1 the output of node i), for tools and cross-checks.
    Graph(GraphArgs),
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Architecture string.
    #[arg(long, value_name = "STR")]
    arch: String,
    #[command(flatten)]
    net: NetArgs,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// 20 comma-separated `op:scale` entries (ops: shuffle3, shuffle5, shuffle7, xception, skip).
    #[arg(long, value_name = "STR")]
    arch: String,
    #[command(flatten)]
    net: NetArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Seed of the random generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How many architectures to print.
    #[arg(long, default_value_t = 1, value_name = "K")]
    count: usize,
}

#[derive(Serialize)]
struct Info<'a> {
    arch: String,
    layout: String,
    widths: [usize; 4],
    input_size: usize,
    classes: usize,
    params: usize,
    macs: usize,
    layers: &'a [PartCount],
}

pub fn run(cmd: ArchCommand) -> anyhow::Result<()> {
    match cmd {
        ArchCommand::Info(args) => info(args),
        ArchCommand::Sample(args) => {
            let space = SearchSpace::full();
            let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
            for _ in 0..args.count {
                outln!("{}", space.sample(&mut rng))?;
            }
            Ok(())
        }
        ArchCommand::Graph(args) => {
            let arch: Arch = args.arch.parse().context("invalid --arch")?;
            let graph = build::network(&arch, &args.net.config()?)?;
            outln!("{}", serde_json::to_string(&graph)?)?;
            Ok(())
        }
    }
}

fn info(args: InfoArgs) -> anyhow::Result<()> {
    let arch: Arch = args.arch.parse().context("invalid --arch")?;
    let config = args.net.config()?;
    let parts = build::part_counts(&arch, &config)?;
    let info = Info {
        arch: arch.to_string(),
        layout: config.layout.to_string(),
        widths: config.layout.widths(),
        input_size: config.input_size,
        classes: config.classes,
        params: parts.iter().map(|p| p.params).sum(),
        macs: parts.iter().map(|p| p.macs).sum(),
        layers: &parts,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&info)?)?;
        return Ok(());
    }
    let w = info.widths;
    outln!("architecture  {}", info.arch)?;
    outln!(
        "layout        {} ({},{},{},{}), input {s}x{s}, {} classes",
        info.layout,
        w[0],
        w[1],
        w[2],
        w[3],
        info.classes,
        s = info.input_size
    )?;
    outln!("params        {}", thousands(info.params))?;
    outln!(
        "MACs          {} ({:.1} M)",
        thousands(info.macs),
        info.macs as f64 / 1e6
    )?;
    outln!()?;
    outln!(
        "{:<5} {:<14} {:<13} {:>6} {:>11} {:>14}",
        "part",
        "choice",
        "input",
        "stride",
        "params",
        "MACs"
    )?;
    for p in info.layers {
        let input = format!("{}x{}x{}", p.input[0], p.input[1], p.input[2]);
        let choice = p.choice.as_deref().unwrap_or("-");
        outln!(
            "{:<5} {:<14} {:<13} {:>6} {:>11} {:>14}",
            p.part,
            choice,
            input,
            p.stride,
            thousands(p.params),
            thousands(p.macs)
        )?;
    }
    Ok(())
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
