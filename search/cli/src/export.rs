//! `hsconas export onnx`, `hsconas export crate` and `hsconas export evaluate`.

use hsconas_foundation::outln;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use hsconas_export::{
    fold_batch_norms, generate_crate, onnx, validate_crate_name, write_crate, BatchDim,
    CrateOptions, GraphWeights, ModelInfo, OnnxOptions, Weights, MODEL_INFO_FILE,
};
use hsconas_models::build::{self, Piece};
use hsconas_models::graph::Graph;
use hsconas_models::reference::Reference;
use hsconas_models::Arch;
use serde_json::json;

use super::arch::thousands;
use super::export_int8::{self, PrecisionArgs};
use super::net_args::NetArgs;

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write a trained network, an architecture, a reference network or one profiling piece as ONNX.
    ///
    /// With the output of `hsconas train` (`--weights DIR`, or its weights file with `model.json`
    /// beside it), architecture, geometry, class names and normalisation come from `model.json` and are
    /// stored in the model's `metadata_props`. Batch norms are folded into the convolutions unless
    /// `--keep-bn`.
    Onnx(Box<OnnxArgs>),
    /// Generate a Rust inference crate for a trained network: `Model::load`, `predict`, `classify`,
    /// the model embedded, a README, examples and a golden test; backends `tract` (default) and `ort`.
    Crate(CrateArgs),
    /// Measure an exported model's top-1 on a dataset's test split, run by ONNX Runtime or tract:
    /// what an FP32 or INT8 export really scores.
    Evaluate(super::export_evaluate::EvaluateArgs),
    /// Keep a trained mixed-precision network's INT8 loss within a budget: measure each `@int8` layer's
    /// sensitivity on the validation split and return layers to FP32, most sensitive first, until the
    /// loss fits (--max-int8-loss, default 1 point); writes the INT8 model kept and a report.
    Int8Budget(Box<super::int8_budget::BudgetArgs>),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").args(["arch", "reference", "piece"]))]
pub struct OnnxArgs {
    /// Architecture string (20 comma-separated `op:scale` entries; `op:scale@int8` marks a layer for
    /// `--precision int8`). Optional with trained weights.
    #[arg(long, value_name = "STR")]
    pub arch: Option<String>,
    /// A reference network: mobilenet_v2, shufflenet_v2_x0_5, shufflenet_v2_x1_0, shufflenet_v2_x1_5,
    /// shufflenet_v2_x2_0, mobilenet_v3_large, mnasnet1_0.
    #[arg(long, value_name = "NAME")]
    pub reference: Option<String>,
    /// One profiling piece, by its latency-table key: `stem`, `head` or `L<layer>:<op>:<scale>`
    /// (e.g. `L3:shuffle5:0.5`, `L2:skip`), at the input shape it sees inside the network.
    #[arg(long, value_name = "KEY")]
    pub piece: Option<String>,
    /// Layout, input size and classes (when `model.json` describes the network, it fixes them: a flag
    /// that differs is refused).
    #[command(flatten)]
    pub net: NetArgs,
    /// Batch size, or `dynamic` for a symbolic batch dimension.
    #[arg(long, default_value = OnnxArgs::DEFAULT_BATCH, value_name = "B|dynamic")]
    pub batch: String,
    /// Weights: the directory `hsconas train` wrote, or a safetensors file (PyTorch-style names; with
    /// `model.json` beside it, that describes the network). Without it, a seeded random initialisation.
    #[arg(long, value_name = "DIR|FILE")]
    pub weights: Option<PathBuf>,
    /// Keep batch norms as separate operators (default: folded into the convolutions).
    #[arg(long)]
    pub keep_bn: bool,
    /// Seed of the random initialisation [default: 0] (refused with --weights, which has no random part).
    #[arg(long)]
    pub seed: Option<u64>,
    /// For reference networks at small inputs: stem stride 1 and no max pooling (CIFAR-style).
    #[arg(long)]
    pub small_input_stem: bool,
    /// ONNX opset (17 or newer).
    #[arg(long, default_value_t = OnnxArgs::DEFAULT_OPSET)]
    pub opset: i64,
    /// Precision and INT8 calibration.
    #[command(flatten)]
    pub precision: PrecisionArgs,
    /// Output file.
    #[arg(long, value_name = "FILE.onnx")]
    pub out: PathBuf,
}

impl OnnxArgs {
    /// `--batch` when absent.
    pub const DEFAULT_BATCH: &str = "1";
    /// `--seed` when absent.
    pub const DEFAULT_SEED: u64 = 0;
    /// `--opset` when absent.
    pub const DEFAULT_OPSET: i64 = 17;

    /// Exporting the trained network in `weights` to `out` with every other flag at its default.
    #[cfg(feature = "train")] // only `hsconas run` builds it
    pub fn trained(weights: PathBuf, out: PathBuf) -> OnnxArgs {
        OnnxArgs {
            arch: None,
            reference: None,
            piece: None,
            net: NetArgs::default(),
            batch: OnnxArgs::DEFAULT_BATCH.to_string(),
            weights: Some(weights),
            keep_bn: false,
            seed: None,
            small_input_stem: false,
            opset: OnnxArgs::DEFAULT_OPSET,
            precision: PrecisionArgs::default(),
            out,
        }
    }
}

#[derive(Debug, Args)]
pub struct CrateArgs {
    /// The trained network: the directory `hsconas train` wrote, or its `weights.safetensors` (with
    /// `model.json` beside it).
    #[arg(long, value_name = "DIR|FILE")]
    pub weights: PathBuf,
    /// Crate name (letters, digits, `-`, `_`; starts with a letter).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Output directory (new or empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Read `model.onnx` from the crate directory at run time instead of embedding it.
    #[arg(long)]
    pub model_path: bool,
    /// Keep batch norms as separate operators (default: folded into the convolutions).
    #[arg(long)]
    pub keep_bn: bool,
    /// Replace the generated files in an existing, non-empty output directory.
    #[arg(long)]
    pub overwrite: bool,
    /// The model's precision: fp32, or int8 (the marked layers, or every layer without marks, as
    /// `hsconas export onnx --precision int8` writes it; the crate then runs it with ONNX Runtime, and
    /// its golden logits come from ONNX Runtime).
    #[command(flatten)]
    pub precision: PrecisionArgs,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

impl CrateArgs {
    /// The crate `name` in `out` for the trained network in `weights`, every other flag at its default.
    #[cfg(feature = "train")] // only `hsconas run` builds it
    pub fn new(weights: PathBuf, name: String, out: PathBuf) -> CrateArgs {
        CrateArgs {
            weights,
            name,
            out,
            model_path: false,
            keep_bn: false,
            overwrite: false,
            precision: PrecisionArgs::default(),
            json: false,
        }
    }
}

pub fn run(cmd: ExportCommand) -> anyhow::Result<()> {
    match cmd {
        ExportCommand::Onnx(args) => export_onnx(*args),
        ExportCommand::Crate(args) => export_crate(args),
        ExportCommand::Evaluate(args) => super::export_evaluate::run(args),
        ExportCommand::Int8Budget(args) => super::int8_budget::run(*args),
    }
}

/// Weights and, when `model.json` is found beside them, the network's metadata.
fn load_weights(path: &Path) -> anyhow::Result<(Weights, Option<ModelInfo>)> {
    let trained = if path.is_dir() {
        true
    } else {
        path.parent()
            .unwrap_or(Path::new("."))
            .join(MODEL_INFO_FILE)
            .is_file()
    };
    if trained {
        let (file, info) = ModelInfo::locate(path)?;
        Ok((Weights::load_safetensors(&file)?, Some(info)))
    } else {
        Ok((Weights::load_safetensors(path)?, None))
    }
}

fn export_onnx(args: OnnxArgs) -> anyhow::Result<()> {
    let int8 = args.precision.int8(args.keep_bn)?;
    let (weights, info) = match &args.weights {
        Some(path) => {
            let (w, info) = load_weights(path)?;
            (Some(w), info)
        }
        None => (None, None),
    };
    let marked = marked_layers(&args, &info)?;
    anyhow::ensure!(
        int8 || marked.is_empty(),
        "the architecture marks layer(s) {} as int8: export with --precision int8 --calibration DATA \
         (or drop the '@int8' marks for an FP32 model)",
        marked
            .iter()
            .map(|l| (l + 1).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (graph, metadata) = match &info {
        Some(info) => {
            let described = format!(
                "the model.json beside {}",
                args.weights.as_deref().unwrap_or(Path::new("")).display()
            );
            args.net.refuse_conflicts(
                &described,
                &info.layout,
                info.input_size,
                info.classes.len(),
            )?;
            anyhow::ensure!(
                args.seed.is_none(),
                "--seed cannot apply: --weights holds trained weights, nothing is initialised at random"
            );
            let stem = info.reference.as_ref().is_some_and(|r| r.small_input_stem);
            anyhow::ensure!(
                !args.small_input_stem || stem,
                "--small-input-stem cannot apply: {described} describes a network built without it"
            );
            if args.reference.is_some() || args.piece.is_some() {
                anyhow::bail!(
                    "--weights holds a trained network ({}); --reference and --piece do not apply",
                    info.architecture
                );
            }
            if let Some(text) = &args.arch {
                anyhow::ensure!(
                    info.reference.is_none(),
                    "--weights holds the reference network {}; --arch does not apply",
                    info.architecture
                );
                let arch: Arch = text.parse().context("invalid --arch")?;
                let trained = info.arch().map_err(anyhow::Error::msg)?;
                anyhow::ensure!(
                    arch == trained,
                    "--arch differs from the architecture the weights were trained for ({trained})"
                );
            }
            (hsconas_export::trained_graph(info)?, info.onnx_metadata())
        }
        None => untrained_graph(&args)?,
    };
    let batch = match args.batch.as_str() {
        "dynamic" => BatchDim::Symbolic,
        n => match n.parse::<usize>() {
            Ok(b) if b > 0 => BatchDim::Fixed(b),
            _ => anyhow::bail!("--batch must be a positive whole number or 'dynamic', got '{n}'"),
        },
    };
    let weights = weights
        .unwrap_or_else(|| Weights::random(&graph, args.seed.unwrap_or(OnnxArgs::DEFAULT_SEED)));
    weights.check(&graph).with_context(|| {
        format!(
            "the weights do not fit the network{}",
            args.weights
                .as_ref()
                .map(|p| format!(" ({})", p.display()))
                .unwrap_or_default()
        )
    })?;
    let options = OnnxOptions {
        batch,
        opset: args.opset,
        metadata,
    };
    // Counted on the graph as exported: batch norms folded unless --keep-bn (INT8 folds them itself).
    let (graph, weights) = if args.keep_bn {
        (graph, weights)
    } else {
        fold_batch_norms(&graph, &weights)?
    };
    let (macs, params, nodes) = (graph.macs(), graph.param_count(), graph.nodes.len());
    let notes = if int8 {
        let what = if let Some(key) = &args.piece {
            let piece: Piece = key.parse()?;
            export_int8::Exported::Piece {
                nonnegative: piece != Piece::Stem,
                quantized_output: piece != Piece::Head,
            }
        } else {
            export_int8::Exported::Network { marked: &marked }
        };
        let (bytes, lines) = export_int8::export(
            &args.precision,
            &graph,
            &weights,
            info.as_ref(),
            &options,
            what,
        )?;
        hsconas_foundation::write_atomic(&args.out, &bytes)?;
        lines
    } else {
        onnx::write(&args.out, &graph, &weights, &options)?;
        Vec::new()
    };
    eprintln!(
        "wrote {} ({} params, {:.1} M MACs per sample, {} nodes{}{})",
        args.out.display(),
        thousands(params),
        macs as f64 / 1e6,
        nodes,
        if args.keep_bn {
            ""
        } else {
            ", batch norms folded"
        },
        if int8 { ", INT8" } else { "" }
    );
    for line in notes {
        eprintln!("  {line}");
    }
    Ok(())
}

/// The 0-based layers the architecture (of `--arch` or of the trained network) marks `@int8`.
fn marked_layers(args: &OnnxArgs, info: &Option<ModelInfo>) -> anyhow::Result<Vec<usize>> {
    let arch = match info {
        Some(info) if info.reference.is_none() => Some(info.arch().map_err(anyhow::Error::msg)?),
        Some(_) => None,
        None => match &args.arch {
            Some(text) => Some(text.parse::<Arch>().context("invalid --arch")?),
            None => None,
        },
    };
    Ok(arch.map(|a| a.int8_layers()).unwrap_or_default())
}

/// The graph and metadata of `--arch`, `--reference` or `--piece` with the geometry of the flags.
fn untrained_graph(args: &OnnxArgs) -> anyhow::Result<(Graph, Vec<(String, String)>)> {
    let config = args.net.config()?;
    let mut metadata = vec![
        ("layout".to_string(), config.layout.to_string()),
        ("input_size".to_string(), config.input_size.to_string()),
        ("num_classes".to_string(), config.classes.to_string()),
        ("producer".to_string(), hsconas_export::producer()),
    ];
    let graph = if let Some(text) = &args.arch {
        let arch: Arch = text.parse().context("invalid --arch")?;
        metadata.push(("architecture".into(), arch.to_string()));
        build::network(&arch, &config)?
    } else if let Some(name) = &args.reference {
        let net: Reference = name.parse()?;
        metadata.push(("reference".into(), net.name().into()));
        net.build(config.input_size, config.classes, args.small_input_stem)?
    } else if let Some(key) = &args.piece {
        let piece: Piece = key.parse()?;
        metadata.push(("piece".into(), piece.key()));
        build::piece(piece, &config)?
    } else {
        anyhow::bail!(
            "say what to export: --arch, --reference or --piece, or --weights with the output of \
             `hsconas train`"
        )
    };
    Ok((graph, metadata))
}

fn export_crate(args: CrateArgs) -> anyhow::Result<()> {
    validate_crate_name(&args.name)?;
    let int8 = args.precision.int8(args.keep_bn)?;
    let (file, info) = ModelInfo::locate(&args.weights)?;
    let weights = Weights::load_safetensors(&file)?;
    let options = CrateOptions {
        name: args.name.clone(),
        embed: !args.model_path,
        keep_bn: args.keep_bn,
        overwrite: args.overwrite,
    };
    let generated = if int8 {
        let model = export_int8::crate_model(&args.precision, &info, &weights)?;
        write_crate(&info, &model, &options, &args.out)
    } else {
        generate_crate(&info, &weights, &options, &args.out)
    }
    .with_context(|| format!("generating crate '{}'", args.name))?;
    if !generated.formatted {
        eprintln!("note: rustfmt was not found or failed; the generated sources are unformatted");
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "dir": generated.dir,
                "name": args.name,
                "architecture": info.architecture,
                "files": generated.files,
                "formatted": generated.formatted,
                "golden": generated.golden,
                "precision": if int8 { "int8" } else { "fp32" },
            }))?
        )?;
    } else {
        eprintln!(
            "wrote crate '{}' to {} ({} files)\n  try: cd {} && cargo run --release --example classify -- IMAGE",
            args.name,
            generated.dir.display(),
            generated.files.len(),
            generated.dir.display()
        );
    }
    Ok(())
}
