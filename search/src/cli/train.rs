//! `hsconas train`: one architecture from scratch.

use anyhow::Context;
use clap::Args;
use hsconas_export::{ModelInfo, Normalisation, MODEL_INFO_FILE, WEIGHTS_FILE};
use hsconas_models::{hsconas, Arch, Layout, NetConfig};
use hsconas_search::nn::Mode;
use hsconas_search::train::eval::{accuracy, Accuracy};
use hsconas_search::train::standalone_run::StandaloneTraining;
use hsconas_search::train::trainer::{self, checkpoint_path};
use serde::{Deserialize, Serialize};

use super::data_args::DataArgs;
use super::recipe_args::RecipeArgs;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Architecture string (20 comma-separated `op:scale` entries).
    #[arg(long, value_name = "STR")]
    arch: String,
    #[command(flatten)]
    data: DataArgs,
    /// Stage widths: A, B or four comma-separated widths.
    #[arg(long, default_value = "A", value_name = "A|B|W1,W2,W3,W4")]
    layout: Layout,
    #[command(flatten)]
    recipe: RecipeArgs,
}

/// How the network of a run is built (stored in its checkpoint; a resume must match it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StandaloneModel {
    kind: String,
    arch: String,
    config: NetConfig,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let arch: Arch = args.arch.parse().context("invalid --arch")?;
    let device = args.recipe.device()?;
    let data = args.data.prepare()?;
    let config = data.net_config(args.layout)?;
    let graph = hsconas::network(&arch, &config)?;
    let model = StandaloneModel {
        kind: "standalone".into(),
        arch: arch.to_string(),
        config,
    };
    let mut training = StandaloneTraining::new(graph, args.recipe.seed, device);
    training.eval = Some((data.val.clone(), data.transform.clone()));
    let out = args.recipe.out("runs/train");
    eprintln!(
        "training {arch} from scratch: layout {}, input {}, {} classes; {} training and {} validation images, {device:?}",
        config.layout,
        config.input_size,
        config.classes,
        data.train.len(),
        data.val.len()
    );
    let state = trainer::train(
        &mut training,
        serde_json::to_value(&model)?,
        data.train.clone(),
        data.transform.clone(),
        &args.recipe.settings(5),
        &out,
        args.recipe.resume,
        args.recipe.max_steps,
        true,
    )?;
    hsconas_models::fsutil::write_atomic(
        &out.join("history.json"),
        &serde_json::to_vec_pretty(&state.history)?,
    )?;
    if state.epochs_done < args.recipe.epochs {
        eprintln!(
            "stopped after {} steps; checkpoint {}",
            state.step,
            checkpoint_path(&out).display()
        );
        return Ok(());
    }
    let weights = training.weights()?;
    weights.save_safetensors(&out.join(WEIGHTS_FILE))?;
    let eval_on = |set: &hsconas_search::data::ImageSet| {
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
        architecture: arch.to_string(),
        layout: config.layout.to_string(),
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
    println!(
        "validation top-1 {:.2}%{}; weights in {}",
        val.top1,
        test.map(|t| format!(", test top-1 {:.2}%", t.top1))
            .unwrap_or_default(),
        out.join(WEIGHTS_FILE).display()
    );
    Ok(())
}
