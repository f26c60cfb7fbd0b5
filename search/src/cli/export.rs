//! `hsconas export onnx`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use hsconas_export::{onnx, Batch, OnnxOptions, Weights};
use hsconas_models::graph::Graph;
use hsconas_models::hsconas::{self, Piece};
use hsconas_models::reference::Reference;
use hsconas_models::Arch;

use super::arch::thousands;
use super::net_args::NetArgs;

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write an architecture, a reference network or one profiling piece as an ONNX model.
    Onnx(OnnxArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["arch", "reference", "piece"]))]
pub struct OnnxArgs {
    /// Architecture string (20 comma-separated `op:scale` entries).
    #[arg(long, value_name = "STR")]
    arch: Option<String>,
    /// A reference network: mobilenet_v2, shufflenet_v2_x0_5, shufflenet_v2_x1_0, shufflenet_v2_x1_5,
    /// shufflenet_v2_x2_0, mobilenet_v3_large, mnasnet1_0.
    #[arg(long, value_name = "NAME")]
    reference: Option<String>,
    /// One profiling piece, by its latency-table key: `stem`, `head` or `L<layer>:<op>:<scale>`
    /// (e.g. `L3:shuffle5:0.5`, `L2:skip`), at the input shape it sees inside the network.
    #[arg(long, value_name = "KEY")]
    piece: Option<String>,
    #[command(flatten)]
    net: NetArgs,
    /// Batch size, or `dynamic` for a symbolic batch dimension.
    #[arg(long, default_value = "1", value_name = "B|dynamic")]
    batch: String,
    /// Weights (safetensors, PyTorch-style names). Without it, a seeded random initialisation.
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Seed of the random initialisation (ignored with --weights).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// For reference networks at small inputs: stem stride 1 and no max pooling (CIFAR-style).
    #[arg(long)]
    small_input_stem: bool,
    /// ONNX opset (17 or newer).
    #[arg(long, default_value_t = 17)]
    opset: i64,
    /// Output file.
    #[arg(long, value_name = "FILE.onnx")]
    out: PathBuf,
}

pub fn run(cmd: ExportCommand) -> anyhow::Result<()> {
    match cmd {
        ExportCommand::Onnx(args) => export_onnx(args),
    }
}

fn export_onnx(args: OnnxArgs) -> anyhow::Result<()> {
    let config = args.net.config()?;
    let mut metadata = vec![
        ("layout".to_string(), config.layout.to_string()),
        ("input_size".to_string(), config.input_size.to_string()),
        ("classes".to_string(), config.classes.to_string()),
    ];
    let graph: Graph = if let Some(text) = &args.arch {
        let arch: Arch = text.parse().context("invalid --arch")?;
        metadata.push(("architecture".into(), arch.to_string()));
        hsconas::network(&arch, &config)?
    } else if let Some(name) = &args.reference {
        let net: Reference = name.parse()?;
        metadata.push(("reference".into(), net.name().into()));
        net.build(config.input_size, config.classes, args.small_input_stem)?
    } else if let Some(key) = &args.piece {
        let piece: Piece = key.parse()?;
        metadata.push(("piece".into(), piece.key()));
        hsconas::piece(piece, &config)?
    } else {
        unreachable!("clap requires one of --arch, --reference, --piece")
    };
    let batch = match args.batch.as_str() {
        "dynamic" => Batch::Symbolic,
        n => match n.parse::<usize>() {
            Ok(b) if b > 0 => Batch::Fixed(b),
            _ => anyhow::bail!("--batch must be a positive whole number or 'dynamic', got '{n}'"),
        },
    };
    let weights = match &args.weights {
        Some(path) => Weights::load_safetensors(path)?,
        None => Weights::random(&graph, args.seed),
    };
    let options = OnnxOptions {
        batch,
        opset: args.opset,
        metadata,
    };
    onnx::write(&args.out, &graph, &weights, &options)?;
    eprintln!(
        "wrote {} ({} params, {:.1} M MACs per sample, {} nodes)",
        args.out.display(),
        thousands(graph.param_count()),
        graph.macs() as f64 / 1e6,
        graph.nodes.len()
    );
    Ok(())
}
