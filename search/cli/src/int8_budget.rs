//! `hsconas export int8-budget`: a trained mixed-precision network whose INT8 layers cost at most a
//! budget of accuracy.
//!
//! The network's architecture marks the layers to run in INT8 (`@int8`, as a mixed-precision search
//! chose them). Each marked layer's sensitivity is the validation top-1 lost with only that layer
//! quantised. While the network with every remaining marked layer quantised loses more than
//! `--max-int8-loss` points of validation top-1 against FP32, the most sensitive remaining layer returns
//! to FP32. Choices are made on the validation split only; the test split is measured for the report
//! (FP32, the network as marked, the network kept), never to choose.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use hsconas_data::{ImageSet, Transform};
use hsconas_devices::{LatencyModel, LatencyTable};
use hsconas_export::quant::{int8_onnx, Int8Flavour, Int8Options};
use hsconas_export::{
    fold_batch_norms, onnx, GraphWeights, ModelInfo, OnnxOptions, Weights, MODEL_INFO_FILE,
    WEIGHTS_FILE,
};
use hsconas_foundation::outln;
use hsconas_latency::NetworkRun;
use hsconas_models::graph::Graph;
use hsconas_models::Arch;
use hsconas_runtime::backend::{self, Backend, BackendConfig};
use hsconas_vocabulary::Precision;

use super::data_args::DataArgs;
use super::export_evaluate::count_correct;
use super::export_int8::{
    calibration_images, layer_selection, resolve_weight_range, CalibrationArgs,
};
use super::measure_args::TableDeviceArgs;

mod report;

pub use report::{BudgetReport, LatencyChange, Returned, Scores, Sensitivity};

/// The model file and the report `--out` receives.
pub const MODEL_FILE: &str = "model.onnx";
/// The report's file name in `--out`.
pub const REPORT_FILE: &str = "int8-budget.json";

#[derive(Debug, Args)]
pub struct BudgetArgs {
    /// The trained network: the directory `hsconas train` wrote. Its architecture marks the layers to
    /// run in INT8 (`op:scale@int8`).
    #[arg(long, value_name = "DIR")]
    pub weights: PathBuf,
    /// The dataset the network was trained on, split as it was (--val-fraction, --split-seed): the
    /// losses are measured on its validation split, the calibration images drawn from its training
    /// images, the report's test top-1 measured on its test split.
    #[command(flatten)]
    pub data: DataArgs,
    /// Most validation top-1, in points, the INT8 layers may cost against the FP32 network.
    #[arg(
        long,
        default_value_t = 1.0,
        value_name = "POINTS",
        allow_negative_numbers = true
    )]
    pub max_int8_loss: f64,
    /// Output directory (not the trained network's): `model.onnx` (the network kept, its remaining
    /// marked layers in INT8), `int8-budget.json` (the report), and `model.json` with
    /// `weights.safetensors`: the network kept as `hsconas train` writes one (the same weights, the
    /// kept marks), for `hsconas export onnx|crate --weights`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// ONNX Runtime intra-op threads for the evaluations.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// How many training images calibrate each INT8 export and how a range is read from them.
    #[command(flatten)]
    pub sample: CalibrationArgs,
    /// The INT8 weights' range. `auto`: the table's (with --table), else `reduced` (7 bits) on an x86
    /// CPU without VNNI and `full` elsewhere.
    #[arg(
        long,
        default_value = "auto",
        value_name = "auto|full|reduced",
        help_heading = "INT8"
    )]
    pub int8_weight_range: String,
    /// A mixed-precision latency table of the device (`hsconas profile --precision mixed`): the report
    /// gives the latency predicted for the network as marked and as kept.
    #[arg(long, value_name = "FILE", help_heading = "Latency")]
    pub table: Option<PathBuf>,
    /// With --table: also measure both networks on the table's device (interleaved, normalised by the
    /// table's reference network).
    #[arg(long, requires = "table", help_heading = "Latency")]
    pub measure: bool,
    #[command(flatten, next_help_heading = "Latency")]
    pub device: TableDeviceArgs,
}

/// The layers to return to FP32, most sensitive first, until the loss fits the budget.
///
/// `sensitivity` pairs each marked layer with its drop (points); ties go to the earlier layer.
/// `loss_of(kept)` is the loss with the layers in `kept` in INT8; the first loss, with every marked
/// layer, is `marked_loss`. Returns each returned layer with the loss after its return; stops as soon
/// as a loss is at most `budget` (so nothing is returned when `marked_loss` fits).
pub fn fit_budget(
    sensitivity: &[(usize, f64)],
    marked_loss: f64,
    budget: f64,
    mut loss_of: impl FnMut(&[usize]) -> anyhow::Result<f64>,
) -> anyhow::Result<Vec<(usize, f64)>> {
    let mut order: Vec<(usize, f64)> = sensitivity.to_vec();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept: Vec<usize> = order.iter().map(|&(l, _)| l).collect();
    kept.sort_unstable();
    let mut returned = Vec::new();
    let mut loss = marked_loss;
    for (layer, _) in order {
        if loss <= budget {
            break;
        }
        kept.retain(|&l| l != layer);
        loss = if kept.is_empty() {
            0.0
        } else {
            loss_of(&kept)?
        };
        returned.push((layer, loss));
    }
    Ok(returned)
}

/// The trained network and what evaluates its versions.
struct Evaluation {
    arch: Arch,
    graph: Graph,
    weights: Weights,
    options: OnnxOptions,
    int8: Int8Options,
    calibration: Vec<Vec<f32>>,
    val: Arc<ImageSet>,
    test: Option<Arc<ImageSet>>,
    transform: Transform,
    size: usize,
    engine: Box<dyn Backend>,
}

impl Evaluation {
    /// The network with the 0-based `int8` layers quantised (none: FP32); its metadata names the
    /// architecture with exactly those layers marked.
    fn export(&self, int8: &[usize]) -> anyhow::Result<Vec<u8>> {
        let fp32 = self.arch.int8_layers();
        let arch = with_int8_layers(&self.arch, &fp32, int8)?;
        let mut options = self.options.clone();
        options.metadata.retain(|(k, _)| k != "architecture");
        options
            .metadata
            .push(("architecture".into(), arch.to_string()));
        if int8.is_empty() {
            return Ok(onnx::to_bytes(&self.graph, &self.weights, &options)?);
        }
        let int8 = Int8Options {
            selection: layer_selection(int8),
            ..self.int8.clone()
        };
        Ok(int8_onnx(
            &self.graph,
            &self.weights,
            &self.calibration,
            &options,
            &int8,
        )?
        .bytes)
    }

    /// Top-1 (percent) of `model` on `set`.
    fn top1(&self, model: &[u8], set: &ImageSet, label: Option<&str>) -> anyhow::Result<f64> {
        let mut loaded = self.engine.load(model)?;
        let indices: Vec<usize> = (0..set.len()).collect();
        let correct = count_correct(
            loaded.as_mut(),
            set,
            &indices,
            self.size,
            &self.transform,
            label,
        )?;
        Ok(100.0 * correct as f64 / set.len() as f64)
    }

    /// Validation top-1 with the `int8` layers quantised.
    fn val_top1(&self, int8: &[usize], label: Option<&str>) -> anyhow::Result<f64> {
        self.top1(&self.export(int8)?, &self.val, label)
    }

    /// Validation and test top-1 of `model`.
    fn scores(&self, model: &[u8], label: &str, progress: bool) -> anyhow::Result<Scores> {
        let bar = |split: &str| progress.then(|| format!("{label}, {split}"));
        let val_top1 = self.top1(model, &self.val, bar("validation").as_deref())?;
        let test_top1 = match &self.test {
            Some(test) => Some(self.top1(model, test, bar("test").as_deref())?),
            None => None,
        };
        Ok(Scores {
            val_top1,
            test_top1,
        })
    }
}

/// `arch`'s blocks with the 0-based `fp32` layers in FP32 and then the `int8` layers in INT8.
fn with_int8_layers(arch: &Arch, fp32: &[usize], int8: &[usize]) -> anyhow::Result<Arch> {
    let mut precisions = *arch.precisions();
    for &l in fp32 {
        precisions[l] = Precision::Fp32;
    }
    for &l in int8 {
        precisions[l] = Precision::Int8;
    }
    Ok(Arch::with_precisions(*arch.choices(), precisions)?)
}

/// The trained network: its weights file, its description and its architecture.
struct Trained {
    file: PathBuf,
    info: ModelInfo,
    arch: Arch,
}

/// Loads the network, the splits and the INT8 settings.
fn prepare(
    args: &BudgetArgs,
    table: Option<&LatencyTable>,
) -> anyhow::Result<(Evaluation, Trained)> {
    let (file, info) = ModelInfo::locate(&args.weights)?;
    anyhow::ensure!(
        info.reference.is_none(),
        "{} holds the reference network {}: only architectures of the space mark layers @int8",
        args.weights.display(),
        info.architecture
    );
    let arch = info.arch().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        !arch.int8_layers().is_empty(),
        "{} marks no layer @int8 ({}): nothing to keep within a budget; train the architecture a \
         mixed-precision search chose, or export FP32 with `hsconas export onnx`",
        args.weights.display(),
        info.architecture
    );
    let weights = Weights::load_safetensors(&file)?;
    let graph = hsconas_export::trained_graph(&info)?;
    weights
        .check(&graph)
        .with_context(|| format!("the weights in {} do not fit", args.weights.display()))?;
    let (graph, weights) = fold_batch_norms(&graph, &weights)?;
    let data = args.data.prepare()?;
    anyhow::ensure!(
        data.val.classes == info.classes,
        "the network was trained on the classes {:?}, the data has {:?}",
        info.classes,
        data.val.classes
    );
    let size = info.input_size;
    let (mean, std) = (
        info.normalisation.mean.clone(),
        info.normalisation.std.clone(),
    );
    // The images `hsconas export onnx --precision int8` calibrates on, so that the model it exports
    // for the network kept is the one measured here.
    let calibration = calibration_images(
        &args.data.data,
        size,
        graph.input.c,
        Some(&info),
        &args.sample,
    )?;
    let weight_range = match (args.int8_weight_range.as_str(), table) {
        ("auto", Some(t)) => match &t.provenance.int8 {
            Some(pieces) => pieces.weight_range,
            None => resolve_weight_range("auto", true)?,
        },
        (text, _) => resolve_weight_range(text, true)?,
    };
    let int8 = Int8Options {
        // The table's pieces' flavour (what `hsconas run` ships), else ONNX Runtime's CPU one.
        flavour: table
            .and_then(|t| t.provenance.int8.as_ref())
            .map_or(Int8Flavour::Cpu, |p| p.flavour),
        method: args.sample.calibration_method,
        weight_range,
        ..Int8Options::default()
    };
    let engine = backend::build(&BackendConfig {
        threads: args.threads,
        ..BackendConfig::default()
    })?;
    let evaluation = Evaluation {
        arch: arch.clone(),
        graph,
        weights,
        options: OnnxOptions {
            metadata: info.onnx_metadata(),
            ..OnnxOptions::default()
        },
        int8,
        calibration,
        val: data.val.clone(),
        test: data.test.clone(),
        transform: Transform {
            crop: hsconas_data::Crop::None,
            flip: false,
            mean,
            std,
        },
        size,
        engine,
    };
    Ok((evaluation, Trained { file, info, arch }))
}

/// The latency of both architectures by the table, and measured with `--measure`.
fn latency(
    args: &BudgetArgs,
    path: &Path,
    marked: &Arch,
    kept: &Arch,
) -> anyhow::Result<LatencyChange> {
    let (table, measurer) = if args.measure {
        let (table, measurer) = args.device.open(path)?;
        (table, Some(measurer))
    } else {
        (LatencyTable::load(path)?, None)
    };
    let model = LatencyModel::from_table(&table)?;
    for arch in [marked, kept] {
        model.supports(arch).with_context(|| {
            format!(
                "{} cannot predict {arch}: profile with --precision mixed",
                path.display()
            )
        })?;
    }
    let measured_ms = match &measurer {
        Some(measurer) => {
            let run = NetworkRun {
                table: &table,
                measurer,
                purpose: "int8-budget",
                seed: 0,
                group: args.device.group,
                checkpoint: args.out.join("measure.partial.json"),
                progress: !args.json,
                drift: args.device.drift_policy()?,
                new_reference: None,
            };
            let samples = run.measure(&[marked.clone(), kept.clone()])?.samples;
            run.finish()?;
            Some([samples[0].measured_ms, samples[1].measured_ms])
        }
        None => None,
    };
    Ok(LatencyChange {
        table: path.to_path_buf(),
        marked_predicted_ms: model.predict_ms(marked),
        kept_predicted_ms: model.predict_ms(kept),
        measured_ms,
    })
}

pub fn run(args: BudgetArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.max_int8_loss.is_finite() && args.max_int8_loss >= 0.0,
        "--max-int8-loss must be a number of points, 0 or more, got {}",
        args.max_int8_loss
    );
    let table = match &args.table {
        Some(path) => Some(LatencyTable::load(path)?),
        None => None,
    };
    let (eval, trained) = prepare(&args, table.as_ref())?;
    let arch = trained.arch.clone();
    let same = |a: &Path, b: &Path| {
        a.canonicalize()
            .ok()
            .is_some_and(|a| b.canonicalize().ok() == Some(a))
    };
    anyhow::ensure!(
        !same(&args.out, trained.file.parent().unwrap_or(Path::new("."))),
        "--out {} holds the trained network: write the network kept to another directory",
        args.out.display()
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let progress = !args.json;
    let marked_layers = arch.int8_layers();
    let fp32_model = eval.export(&[])?;
    let fp32 = eval.scores(&fp32_model, "FP32", progress)?;
    let marked_model = eval.export(&marked_layers)?;
    let marked = eval.scores(&marked_model, "as marked", progress)?;
    let mut sensitivity = Vec::new();
    for &layer in &marked_layers {
        let label = format!("layer {} alone in INT8", layer + 1);
        let top1 = eval.val_top1(&[layer], progress.then_some(label.as_str()))?;
        sensitivity.push(Sensitivity {
            layer: layer + 1,
            block: arch.choices()[layer].to_string(),
            val_top1: top1,
            drop: fp32.val_top1 - top1,
        });
    }
    sensitivity.sort_by(|a, b| b.drop.total_cmp(&a.drop).then(a.layer.cmp(&b.layer)));
    let drops: Vec<(usize, f64)> = sensitivity.iter().map(|s| (s.layer - 1, s.drop)).collect();
    let returned = fit_budget(
        &drops,
        fp32.val_top1 - marked.val_top1,
        args.max_int8_loss,
        |kept| {
            let label = format!("{} layers in INT8", kept.len());
            Ok(fp32.val_top1 - eval.val_top1(kept, progress.then_some(label.as_str()))?)
        },
    )?;
    let returned_layers: Vec<usize> = returned.iter().map(|&(l, _)| l).collect();
    let kept_arch = with_int8_layers(&arch, &returned_layers, &[])?;
    let (kept_model, kept) = if returned.is_empty() {
        (marked_model, marked)
    } else {
        let model = eval.export(&kept_arch.int8_layers())?;
        let scores = eval.scores(&model, "kept", progress)?;
        (model, scores)
    };
    hsconas_foundation::write_atomic(&args.out.join(MODEL_FILE), &kept_model)?;
    // The network kept as a trained-network directory: the same weights, the kept marks.
    let weights = std::fs::read(&trained.file)
        .with_context(|| format!("reading {}", trained.file.display()))?;
    hsconas_foundation::write_atomic(&args.out.join(WEIGHTS_FILE), &weights)?;
    let mut info = trained.info.clone();
    info.architecture = kept_arch.to_string();
    info.save(&args.out.join(MODEL_INFO_FILE))?;
    let latency = match &args.table {
        Some(path) => Some(latency(&args, path, &arch, &kept_arch)?),
        None => None,
    };
    let report = BudgetReport {
        weights: args.weights.clone(),
        marked_arch: arch.to_string(),
        kept_arch: kept_arch.to_string(),
        max_int8_loss: args.max_int8_loss,
        within_budget: fp32.val_top1 - kept.val_top1 <= args.max_int8_loss,
        fp32,
        marked,
        kept,
        sensitivity,
        returned: returned
            .iter()
            .map(|&(layer, loss)| Returned {
                layer: layer + 1,
                val_top1: fp32.val_top1 - loss,
                loss,
            })
            .collect(),
        latency,
        images: [
            eval.val.len(),
            eval.test.as_ref().map_or(0, |t| t.len()),
            eval.calibration.len(),
        ],
        int8: [
            eval.int8.flavour.name().to_string(),
            eval.int8.weight_range.name().to_string(),
            eval.int8.method.name(),
        ],
        engine: eval.engine.version(),
    };
    hsconas_foundation::write_atomic(
        &args.out.join(REPORT_FILE),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        report::print(&report, &args.out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network whose loss is the sum of its INT8 layers' drops, and the sets it was asked about.
    fn additive(drops: &[(usize, f64)]) -> (f64, impl FnMut(&[usize]) -> anyhow::Result<f64> + '_) {
        let total = drops.iter().map(|d| d.1).sum();
        (total, move |kept: &[usize]| {
            Ok(drops
                .iter()
                .filter(|d| kept.contains(&d.0))
                .map(|d| d.1)
                .sum())
        })
    }

    #[test]
    fn a_loss_within_the_budget_returns_nothing() {
        let drops = [(3, 0.2), (10, 0.3)];
        let (total, loss) = additive(&drops);
        assert_eq!(fit_budget(&drops, total, 1.0, loss).expect("fits"), vec![]);
    }

    #[test]
    fn the_most_sensitive_layers_return_first_until_the_loss_fits() {
        // Layers 2 and 7 tie: the earlier returns first.
        let drops = [(2, 0.9), (5, 0.1), (7, 0.9), (12, 2.0), (15, 0.4)];
        let (total, mut loss) = additive(&drops);
        let mut asked = Vec::new();
        let returned = fit_budget(&drops, total, 1.0, |kept| {
            asked.push(kept.to_vec());
            loss(kept)
        })
        .expect("fits");
        let layers: Vec<usize> = returned.iter().map(|r| r.0).collect();
        assert_eq!(layers, vec![12, 2, 7]);
        let losses: Vec<f64> = returned
            .iter()
            .map(|r| (r.1 * 100.0).round() / 100.0)
            .collect();
        assert_eq!(losses, vec![2.3, 1.4, 0.5]);
        assert_eq!(asked[0], vec![2, 5, 7, 15], "kept layers in order");
        assert_eq!(asked.len(), 3, "stops once the loss fits");
    }

    #[test]
    fn a_budget_of_zero_can_return_every_layer() {
        let drops = [(0, 0.5), (19, 0.25)];
        let (total, mut loss) = additive(&drops);
        let returned = fit_budget(&drops, total, 0.0, |kept| {
            assert!(
                !kept.is_empty(),
                "the FP32 network's loss is 0 without evaluating it"
            );
            loss(kept)
        })
        .expect("fits");
        assert_eq!(returned, vec![(0, 0.25), (19, 0.0)]);
    }
}
