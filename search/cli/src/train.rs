//! `hsconas train`: one architecture from scratch.

use anyhow::Context;
use clap::Args;
use hsconas_export::{ModelInfo, Normalisation, ReferenceInfo, MODEL_INFO_FILE, WEIGHTS_FILE};
use hsconas_foundation::outln;
use hsconas_models::graph::Graph;
use hsconas_models::reference::Reference;
use hsconas_models::{build, Arch, Layout, NetConfig};
use hsconas_train::eval::{accuracy, Accuracy};
use hsconas_train::nn::{InitScheme, Mode};
use hsconas_train::standalone_run::StandaloneTraining;
use hsconas_train::trainer::{self, checkpoint_path};
use hsconas_train::Collective;
use serde::{Deserialize, Serialize};

use super::data_args::{DataArgs, Prepared};
use super::recipe_args::RecipeArgs;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("network").required(true).args(["arch", "reference"]))]
pub struct TrainArgs {
    /// Architecture string (20 comma-separated `op:scale` entries). Training is FP32; `@int8` marks are
    /// kept in model.json for `hsconas export onnx --precision int8`.
    #[arg(long, value_name = "STR")]
    pub arch: Option<String>,
    /// A hand-designed baseline instead, built for the data's input size: mobilenet_v2,
    /// shufflenet_v2_x0_5, shufflenet_v2_x1_0, shufflenet_v2_x1_5, shufflenet_v2_x2_0,
    /// mobilenet_v3_large, mnasnet1_0.
    #[arg(long, value_name = "NAME")]
    pub reference: Option<String>,
    /// With --reference at small inputs: stem stride 1 and no max pooling (the CIFAR adaptation).
    #[arg(long)]
    pub small_input_stem: bool,
    #[command(flatten)]
    pub data: DataArgs,
    /// Stage widths: A, B or four comma-separated widths (not used by --reference).
    #[arg(long, default_value_t = Layout::A, value_name = "A|B|W1,W2,W3,W4")]
    pub layout: Layout,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

impl TrainArgs {
    /// Training `arch` on `data` with every other flag at its default.
    pub fn new(arch: String, data: DataArgs) -> TrainArgs {
        TrainArgs {
            arch: Some(arch),
            reference: None,
            small_input_stem: false,
            data,
            layout: Layout::A,
            recipe: RecipeArgs::default(),
        }
    }
}

/// How the network of a run is built (stored in its checkpoint; a resume must match it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StandaloneModel {
    kind: String,
    /// The architecture string, or the reference network's name.
    arch: String,
    config: NetConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reference: Option<ReferenceInfo>,
    /// Initialisation of a fresh run. Kaiming is not written, so descriptions of checkpoints from before
    /// this field existed (all Kaiming) still match.
    #[serde(default, skip_serializing_if = "InitScheme::is_kaiming")]
    init: InitScheme,
}

/// What `--arch` or `--reference` asks for, parsed before the data is read.
enum Network {
    Arch(Arch),
    Reference(Reference, ReferenceInfo),
}

impl Network {
    fn from_args(args: &TrainArgs) -> anyhow::Result<Network> {
        match (&args.arch, &args.reference) {
            (Some(_), _) if args.small_input_stem => {
                anyhow::bail!("--small-input-stem applies to --reference networks only")
            }
            (Some(text), _) => Ok(Network::Arch(text.parse().context("invalid --arch")?)),
            (None, Some(name)) => Ok(Network::Reference(
                name.parse().context("invalid --reference")?,
                ReferenceInfo {
                    small_input_stem: args.small_input_stem,
                },
            )),
            (None, None) => anyhow::bail!("say what to train: --arch or --reference"),
        }
    }

    /// The graph for `config`'s geometry and the description stored in the checkpoint.
    fn build(
        &self,
        config: NetConfig,
        init: InitScheme,
    ) -> anyhow::Result<(Graph, StandaloneModel)> {
        let (graph, arch, reference) = match self {
            Network::Arch(arch) => (build::network(arch, &config)?, arch.to_string(), None),
            Network::Reference(net, adaptation) => (
                net.build(
                    config.input_size,
                    config.classes,
                    adaptation.small_input_stem,
                )?,
                net.name().to_string(),
                Some(*adaptation),
            ),
        };
        let model = StandaloneModel {
            kind: "standalone".into(),
            arch,
            config,
            reference,
            init,
        };
        Ok((graph, model))
    }
}

/// `hsconas train`, by every rank of `collective` (rank 0 alone prints and writes files).
pub fn run(args: TrainArgs, collective: &dyn Collective) -> anyhow::Result<()> {
    Network::from_args(&args)?;
    let data = args.data.prepare()?;
    if let Some(info) = train_prepared(&args, &data, collective)? {
        let out = args.recipe.out("runs/train");
        outln!(
            "validation top-1 {:.2}%{}; weights in {}",
            info.val.as_ref().map_or(f64::NAN, |v| v.top1),
            info.test
                .as_ref()
                .map(|t| format!(", test top-1 {:.2}%", t.top1))
                .unwrap_or_default(),
            out.join(WEIGHTS_FILE).display()
        )?;
    }
    Ok(())
}

/// Trains what `args` says on `data` (already prepared from `args.data`) into `args.recipe`'s output
/// folder, writing nothing to stdout (its callers own it); returns what rank 0 wrote beside the weights once every epoch is done (`None` on the other
/// ranks and for a run stopped early by `--max-steps`, which leaves a checkpoint to resume).
pub fn train_prepared(
    args: &TrainArgs,
    data: &Prepared,
    collective: &dyn Collective,
) -> anyhow::Result<Option<ModelInfo>> {
    let network = Network::from_args(args)?;
    let device = args.recipe.device()?;
    let config = data.net_config(args.layout)?;
    let (graph, model) = network.build(config, args.recipe.init)?;
    let arch = model.arch.clone();
    let mut training = StandaloneTraining::new(graph, args.recipe.seed, args.recipe.init, device);
    training.eval = Some((data.val.clone(), data.transform.clone()));
    let out = args.recipe.out("runs/train");
    let root = collective.is_root();
    if root {
        eprintln!(
        "training {arch} from scratch: {}, input {}, {} classes, {:?} initialisation; {} training and {} validation images, {device:?}",
        match model.reference {
            Some(r) if r.small_input_stem => "small-input stem".to_string(),
            Some(_) => "torchvision geometry".to_string(),
            None => format!("layout {}", config.layout),
        },
        config.input_size,
        config.classes,
        args.recipe.init,
        data.train.len(),
        data.val.len()
    );
    }
    let state = trainer::train(
        &mut training,
        serde_json::to_value(&model)?,
        data.train.clone(),
        data.transform.clone(),
        &args.recipe.settings(5),
        &args.recipe.run_options(&out, collective),
    )?;
    if !root {
        return Ok(None);
    }
    hsconas_foundation::write_atomic(
        &out.join("history.json"),
        &serde_json::to_vec_pretty(&state.history)?,
    )?;
    if state.epochs_done < args.recipe.epochs {
        eprintln!(
            "stopped after {} steps; checkpoint {}",
            state.step,
            checkpoint_path(&out).display()
        );
        return Ok(None);
    }
    let weights = training.weights()?;
    weights.save_safetensors(&out.join(WEIGHTS_FILE))?;
    let eval_on = |set: &hsconas_data::ImageSet| {
        accuracy(set, &data.transform, 200, device, |x| {
            training.net.forward(x, Mode::Eval)
        })
    };
    let val = eval_on(&data.val);
    let test = data.test.as_ref().map(|t| eval_on(t));
    let exported = |a: Accuracy| hsconas_export::Accuracy {
        top1: a.top1,
        top5: a.top5,
        images: a.images,
    };
    let info = ModelInfo {
        architecture: arch,
        layout: config.layout.to_string(),
        reference: model.reference,
        input_size: config.input_size,
        classes: data.train.classes.clone(),
        normalisation: Normalisation {
            mean: data.transform.mean.clone(),
            std: data.transform.std.clone(),
        },
        epochs: Some(state.epochs_done),
        val: Some(exported(val)),
        test: test.map(exported),
    };
    info.save(&out.join(MODEL_INFO_FILE))?;
    Ok(Some(info))
}
