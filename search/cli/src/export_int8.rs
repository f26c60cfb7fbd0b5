//! `hsconas export onnx --precision int8`: calibration images from a dataset's training split, the QDQ
//! export, and what ONNX Runtime makes of it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hsconas_export::quant::{
    int8_onnx, kernel_report, seeded_inputs, Int8Flavour, Int8Options, NodeSelection, RangeMethod,
    WeightRange, SEEDED_CALIBRATION_INPUTS,
};
use hsconas_export::{BatchDim, CrateModel, GraphWeights, ModelInfo, OnnxOptions, Weights};
use hsconas_models::graph::Graph;
use hsconas_runtime::backend::{Backend, BackendConfig, HostTensor, OrtBackend};
use hsconas_vocabulary::Precision;

/// `--calibration-images` and `--calibration-method`: how many training images calibrate an INT8 export
/// and how each activation's range is read from them.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct CalibrationArgs {
    /// How many training images calibrate (a seeded sample; resized to the input size when needed).
    #[arg(long, default_value_t = 256, value_name = "N", help_heading = "INT8",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub calibration_images: u64,
    /// How an activation's range is read from the calibration: minmax, percentile (99.99% of absolute
    /// values) or percentile:<p>.
    #[arg(
        long,
        default_value = "minmax",
        value_name = "METHOD",
        help_heading = "INT8"
    )]
    pub calibration_method: RangeMethod,
}

impl Default for CalibrationArgs {
    /// 256 images, min/max ranges.
    fn default() -> Self {
        CalibrationArgs {
            calibration_images: 256,
            calibration_method: RangeMethod::MinMax,
        }
    }
}

/// `--precision` and the INT8 settings of `hsconas export onnx`.
#[derive(Debug, Clone, Args)]
pub struct PrecisionArgs {
    /// Precision of the exported model: fp32, or int8 (QDQ: int8 weights per output channel, int32
    /// biases, activations quantised with ranges measured on --calibration images; batch norms folded).
    #[arg(long, default_value = "fp32", value_name = "fp32|int8")]
    pub precision: Precision,
    /// INT8 calibration images: a dataset as `hsconas train --data` reads it (ImageFolder directory or
    /// .tar.gz, CIFAR-10 batches). Only its training split is used, never its test split. Required for
    /// a network; a --piece is calibrated on seeded random inputs instead.
    #[arg(long, value_name = "PATH", help_heading = "INT8")]
    pub calibration: Option<PathBuf>,
    /// How many images calibrate and how a range is read from them.
    #[command(flatten)]
    pub sample: CalibrationArgs,
    /// The runtime the INT8 model is for: cpu (uint8 asymmetric activations, ONNX Runtime's CPU
    /// kernels) or tensorrt (int8 symmetric, every zero point 0, as TensorRT requires).
    #[arg(
        long,
        default_value = "cpu",
        value_name = "cpu|tensorrt",
        help_heading = "INT8"
    )]
    pub int8_flavour: Int8Flavour,
    /// Quantise weights to 7 bits ([-64, 64], ONNX Runtime's reduce_range): for x86 CPUs without VNNI
    /// (AVX2), whose fast U8S8 kernels saturate with full-range weights. The other remedy keeps full
    /// weights and runs the slower U8U8 kernels (--x64-quant-precision where models run).
    #[arg(long, help_heading = "INT8")]
    pub reduce_range: bool,
    /// Also write the normalised calibration images to FILE (raw little-endian f32, N x 3 x S x S),
    /// to calibrate another quantiser on exactly the same images.
    #[arg(long, value_name = "FILE", help_heading = "INT8")]
    pub save_calibration: Option<PathBuf>,
}

impl Default for PrecisionArgs {
    /// FP32.
    fn default() -> Self {
        PrecisionArgs {
            precision: Precision::Fp32,
            calibration: None,
            sample: CalibrationArgs::default(),
            int8_flavour: Int8Flavour::Cpu,
            reduce_range: false,
            save_calibration: None,
        }
    }
}

impl PrecisionArgs {
    /// Whether the export is INT8; refuses FP16 (a TensorRT setting of a device profile, not a model
    /// format) and calibration flags without `--precision int8`.
    pub fn int8(&self, keep_bn: bool) -> anyhow::Result<bool> {
        match self.precision {
            Precision::Fp32 => {
                let defaults = PrecisionArgs::default();
                anyhow::ensure!(
                    self.calibration.is_none()
                        && self.save_calibration.is_none()
                        && self.sample == defaults.sample
                        && self.int8_flavour == defaults.int8_flavour
                        && !self.reduce_range,
                    "--calibration, --calibration-images, --calibration-method, --int8-flavour, \
                     --reduce-range and --save-calibration apply to --precision int8 only"
                );
                Ok(false)
            }
            Precision::Fp16 => anyhow::bail!(
                "--precision fp16 is not an export format: TensorRT chooses FP16 kernels for an FP32 \
                 model (`precision = \"fp16\"` in a device profile)"
            ),
            Precision::Int8 => {
                anyhow::ensure!(
                    !keep_bn,
                    "--keep-bn does not apply to --precision int8: batch norms are folded before quantising"
                );
                Ok(true)
            }
        }
    }
}

/// What the INT8 export is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exported<'a> {
    /// A network; `marked` are the 0-based layers its architecture marks `@int8`: only those are
    /// quantised (their input quantised at the layer's entry, their output dequantised at its exit);
    /// none marked: the whole network (stem, layers, head).
    Network {
        /// The marked layers.
        marked: &'a [usize],
    },
    /// One profiling piece: quantised whole, its output too (the next layer reads it quantised),
    /// calibrated on seeded random inputs (its input is an activation inside the network; its timing does
    /// not depend on the values, but the kernels do depend on the range's sign: a block reads ReLU outputs,
    /// so `nonnegative` inputs let ONNX Runtime fold the ReLUs as it does in the network).
    Piece {
        /// Inputs in `[0, 2)` (blocks and head) rather than `[-2, 2)` (the stem reads pixels).
        nonnegative: bool,
        /// Quantise the output (every piece but the head, whose logits stay FP32 as in a network).
        quantized_output: bool,
    },
}

/// Exports `graph` with `weights` as INT8 and returns the model and one line per finding to print.
pub fn export(
    args: &PrecisionArgs,
    graph: &Graph,
    weights: &Weights,
    info: Option<&ModelInfo>,
    options: &OnnxOptions,
    what: Exported<'_>,
) -> anyhow::Result<(Vec<u8>, Vec<String>)> {
    let marked = match what {
        Exported::Network { marked } => marked,
        Exported::Piece { .. } => &[],
    };
    let (images, source) = match what {
        Exported::Piece { nonnegative, .. } => {
            anyhow::ensure!(
                args.calibration.is_none(),
                "--calibration does not apply to --piece: a piece's input is an activation inside the \
                 network; it is calibrated on {SEEDED_CALIBRATION_INPUTS} seeded random inputs"
            );
            let shape = [graph.input.c, graph.input.h, graph.input.w];
            let inputs = seeded_inputs(shape, SEEDED_CALIBRATION_INPUTS, nonnegative);
            (inputs, "seeded random inputs".to_string())
        }
        Exported::Network { .. } => {
            let path = args.calibration.as_ref().with_context(|| {
                "--precision int8 needs --calibration DATA: images from the training split to measure \
                 each activation's range"
            })?;
            let images =
                calibration_images(path, graph.input.h, graph.input.c, info, &args.sample)?;
            (images, format!("training images of {}", path.display()))
        }
    };
    if let Some(file) = &args.save_calibration {
        let raw: Vec<u8> = images
            .iter()
            .flatten()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        hsconas_foundation::write_atomic(file, &raw)?;
    }
    let int8 = Int8Options {
        weight_range: if args.reduce_range {
            WeightRange::Reduced
        } else {
            WeightRange::Full
        },
        flavour: args.int8_flavour,
        method: args.sample.calibration_method,
        quantize_output: matches!(
            what,
            Exported::Piece {
                quantized_output: true,
                ..
            }
        ),
        selection: if marked.is_empty() {
            NodeSelection::All
        } else {
            layer_selection(marked)
        },
    };
    let out = int8_onnx(graph, weights, &images, options, &int8)?;
    let s = out.summary;
    let scope = if matches!(what, Exported::Piece { .. }) {
        "the piece".to_string()
    } else if marked.is_empty() {
        "the whole network".to_string()
    } else {
        let layers: Vec<String> = marked.iter().map(|l| (l + 1).to_string()).collect();
        format!(
            "layer(s) {} (marked @int8), the rest FP32",
            layers.join(", ")
        )
    };
    let mut lines = vec![format!(
        "INT8 ({} flavour) for {scope}: {} nodes quantised, {} weight tensors int8, {} activations in {} scale groups; \
         calibrated on {} {} ({})",
        args.int8_flavour.name(),
        s.quantized_nodes,
        s.int8_weights,
        s.quantized_tensors,
        s.scale_groups,
        out.ranges.images,
        source,
        args.sample.calibration_method.name()
    )];
    if args.reduce_range {
        lines.push("weights quantised to 7 bits ([-64, 64], --reduce-range)".into());
    } else if args.int8_flavour == Int8Flavour::Cpu
        && hsconas_runtime::fingerprint::x86_without_vnni()
    {
        lines.push(
            "note: this CPU is x86 without VNNI, where ONNX Runtime's U8S8 kernels can saturate with \
             full-range weights: for this CPU export with --reduce-range, or run the model with \
             --x64-quant-precision (docs/usage.md, \"INT8 on CPUs without VNNI\")"
                .into(),
        );
    }
    lines.extend(onnx_runtime_kernels(&out.bytes, args.int8_flavour));
    Ok((out.bytes, lines))
}

/// The INT8 model of a trained network for `hsconas export crate --precision int8` (the layers its
/// architecture marks `@int8`, or the whole network without marks; symbolic batch) and its logits for
/// the golden input, run by ONNX Runtime on the CPU; the export's findings are printed.
pub fn crate_model(
    args: &PrecisionArgs,
    info: &ModelInfo,
    weights: &Weights,
) -> anyhow::Result<CrateModel> {
    let graph = hsconas_export::trained_graph(info)?;
    weights
        .check(&graph)
        .context("the weights do not fit the network")?;
    let marked = match &info.reference {
        Some(_) => Vec::new(),
        None => info.arch().map_err(anyhow::Error::msg)?.int8_layers(),
    };
    let options = OnnxOptions {
        batch: BatchDim::Symbolic,
        metadata: info.onnx_metadata(),
        ..OnnxOptions::default()
    };
    let what = Exported::Network { marked: &marked };
    let (onnx, lines) = export(args, &graph, weights, Some(info), &options, what)?;
    for line in lines {
        eprintln!("  {line}");
    }
    let size = info.input_size;
    let engine = OrtBackend::new(BackendConfig::default())?;
    let mut model = engine.load(&onnx)?;
    let input = HostTensor {
        shape: vec![1, graph.input.c, size, size],
        data: hsconas_foundation::golden::golden_input(size),
    };
    let golden = model.run(&[input])?.swap_remove(0).data;
    Ok(CrateModel {
        onnx,
        golden,
        int8: true,
    })
}

/// The nodes of the 0-based `layers` (and nothing else) as an INT8 export's selection.
pub fn layer_selection(layers: &[usize]) -> NodeSelection {
    NodeSelection::Prefixes(
        layers
            .iter()
            .map(|&l| format!("{}.", hsconas_models::build::layer_module(l)))
            .collect(),
    )
}

/// `--int8-weight-range`: `full`, `reduced`, or `auto` — `reduced` (7 bits) when the models run on
/// this machine (`local`) and it is an x86 CPU without VNNI, `full` otherwise.
pub fn resolve_weight_range(text: &str, local: bool) -> anyhow::Result<WeightRange> {
    Ok(match text {
        "auto" if local && hsconas_runtime::fingerprint::x86_without_vnni() => WeightRange::Reduced,
        "auto" => WeightRange::Full,
        other => other
            .parse()
            .map_err(|e| anyhow::anyhow!("--int8-weight-range: {e} (or auto)"))?,
    })
}

/// A seeded sample of the training split of the dataset at `path` (all its training images: the
/// validation share a training held out is not set apart), resized to `size` and normalised as the
/// network was trained (model.json's statistics, else the images' own). `hsconas export onnx|crate
/// --precision int8` and `hsconas export int8-budget` calibrate on the same images.
pub fn calibration_images(
    path: &std::path::Path,
    size: usize,
    channels: usize,
    info: Option<&ModelInfo>,
    sample: &CalibrationArgs,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let splits = hsconas_data::open(path, hsconas_data::ReadOptions::default())
        .with_context(|| format!("reading the calibration images from {}", path.display()))?;
    let train = &splits.train;
    anyhow::ensure!(
        train.channels == channels,
        "the calibration images have {} channels, the network takes {}",
        train.channels,
        channels
    );
    let (mean, std) = match info {
        Some(info) => (
            info.normalisation.mean.clone(),
            info.normalisation.std.clone(),
        ),
        None => train.channel_stats(),
    };
    Ok(hsconas_data::calibration_tensors(
        train,
        sample.calibration_images as usize,
        0,
        size,
        &mean,
        &std,
    ))
}

/// What ONNX Runtime (CPU, fully optimised) runs for the model, or why it could not say.
fn onnx_runtime_kernels(model: &[u8], flavour: Int8Flavour) -> Vec<String> {
    let optimised = OrtBackend::new(BackendConfig::default())
        .and_then(|backend| backend.optimised_model(model));
    let report = match optimised {
        Ok(bytes) => kernel_report(&bytes),
        Err(e) => {
            return vec![format!(
                "warning: ONNX Runtime could not load the model: {e}"
            )]
        }
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => return vec![format!("warning: {e}")],
    };
    let kernels: Vec<String> = report
        .operators
        .iter()
        .map(|(op, n)| format!("{n} {}", op.rsplit(':').next().unwrap_or(op)))
        .collect();
    let mut lines = vec![format!(
        "ONNX Runtime {} (CPU, optimised) runs: {}",
        OrtBackend::runtime_version(),
        kernels.join(", ")
    )];
    if report.unfused.is_empty() {
        lines.push("every quantised convolution runs as an integer kernel".into());
    } else {
        let why = match flavour {
            Int8Flavour::TensorRt => {
                " (expected for the tensorrt flavour on a CPU: symmetric ReLU outputs keep the ReLU; \
                 TensorRT builds its own INT8 engine)"
            }
            Int8Flavour::Cpu => "",
        };
        lines.push(format!(
            "warning: {} convolutions run in FP32 behind a DequantizeLinear{why}: {}",
            report.unfused.len(),
            report.unfused.join(", ")
        ));
    }
    lines
}
