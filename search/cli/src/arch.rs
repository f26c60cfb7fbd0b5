//! `hsconas arch info|sample`.

use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;

use hsconas_devices::{LatencyModel, LatencyTable};
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
    /// 20 comma-separated `op:scale` entries (ops: shuffle3, shuffle5, shuffle7, xception, skip); a suffix
    /// `@int8` marks a layer that runs in INT8.
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
    /// Latency table that --near-ms refers to.
    #[arg(long, value_name = "FILE", requires = "near_ms")]
    table: Option<PathBuf>,
    /// Print only architectures whose latency predicted by --table lies within --tolerance of MS: uniform
    /// draws from the space, the others rejected (so the printed ones are uniform among those of that
    /// latency).
    #[arg(long, value_name = "MS", requires = "table")]
    near_ms: Option<f64>,
    /// Relative tolerance of --near-ms (0.02 = within 2%).
    #[arg(long, default_value_t = 0.02, value_name = "F")]
    tolerance: f64,
    /// With --near-ms: give up (with an error) after this many draws without enough matches.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    max_draws: usize,
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
        ArchCommand::Sample(args) => sample(args),
        ArchCommand::Graph(args) => {
            let arch: Arch = args.arch.parse().context("invalid --arch")?;
            let graph = build::network(&arch, &args.net.config()?)?;
            outln!("{}", serde_json::to_string(&graph)?)?;
            Ok(())
        }
    }
}

fn sample(args: SampleArgs) -> anyhow::Result<()> {
    let space = SearchSpace::full();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let (Some(table), Some(near_ms)) = (&args.table, args.near_ms) else {
        for _ in 0..args.count {
            outln!("{}", space.sample(&mut rng))?;
        }
        return Ok(());
    };
    anyhow::ensure!(
        near_ms > 0.0 && args.tolerance > 0.0 && args.tolerance < 1.0,
        "--near-ms must be positive and --tolerance in (0, 1), got {near_ms} and {}",
        args.tolerance
    );
    let table_path = table;
    let table = LatencyTable::load(table_path)?;
    super::machine_check::check(&table, table_path, &super::machine_check::this_machine())?;
    let model = LatencyModel::from_table(&table)?;
    let (mut printed, mut draws) = (0, 0);
    let (mut fastest, mut slowest) = (f64::INFINITY, 0.0_f64);
    while printed < args.count {
        anyhow::ensure!(
            draws < args.max_draws,
            "{printed} of {} architectures within {:.1}% of {near_ms} ms after {draws} draws: the \
             space's random networks predict between {fastest:.3} and {slowest:.3} ms on this table \
             (raise --tolerance or --max-draws, or choose another --near-ms)",
            args.count,
            args.tolerance * 100.0
        );
        draws += 1;
        let arch = space.sample(&mut rng);
        let ms = model.predict_ms(&arch);
        fastest = fastest.min(ms);
        slowest = slowest.max(ms);
        if (ms / near_ms - 1.0).abs() <= args.tolerance {
            outln!("{arch}")?;
            printed += 1;
        }
    }
    Ok(())
}

/// Architectures from a file: one per line, or tab-separated lines whose last field is one (a header
/// whose last field is `arch`, blank lines and lines starting with `#` are skipped).
pub fn read_arch_file(path: &std::path::Path) -> anyhow::Result<Vec<Arch>> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    content
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let last = line.rsplit('\t').next().unwrap_or("").trim();
            let skip = last.is_empty() || line.trim_start().starts_with('#') || last == "arch";
            (!skip).then(|| {
                last.parse().with_context(|| {
                    format!(
                        "{} line {}: invalid architecture '{last}'",
                        path.display(),
                        i + 1
                    )
                })
            })
        })
        .collect()
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
