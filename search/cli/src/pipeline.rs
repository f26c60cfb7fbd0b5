//! `hsconas run`: the whole pipeline for one device and target — profile, calibrate, train the supernet
//! (when the search's estimator is the supernet), shrink and search, re-measure, retrain the winner, keep
//! its INT8 layers' accuracy loss within a budget (a winner with INT8 layers), export it. Each step is the command of the same name,
//! given its own options type built from the run's flags and the preset (`pipeline/steps.rs`); a step
//! whose output exists is skipped and an interrupted one resumes, so rerunning the same command line
//! continues where it stopped.

use hsconas_foundation::outln;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use hsconas_devices::LatencyTable;
use hsconas_models::Layout;
use hsconas_nas::{Estimator, SearchReport};
use hsconas_train::checkpoint::read_state;
use hsconas_train::{SingleProcess, TrainState};
use serde_json::json;

use super::data_args::DataArgs;
use super::measure_args::AgentArgs;
use super::profile::TablePrecision;

mod steps;

use steps::{preset_settings, Steps, CRATE, FINAL, INT8, ONNX, SEARCH, SUPERNET, TABLE};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Preset {
    /// Seconds of training and a handful of candidates: checks that every step runs, results meaningless.
    Tiny,
    /// Minutes on a 2-core CPU with the committed sample: few epochs, small samples and population.
    Quick,
    /// The paper's settings (N = 100, population 50, 20 generations) and long training: hours to days.
    Paper,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Device profile (shipped name or .toml file) the latency model is measured on.
    #[arg(long, default_value = "local-cpu", value_name = "NAME|FILE")]
    device: String,
    #[command(flatten)]
    agent: AgentArgs,
    /// Start from this latency table (copied to DIR/table.json) instead of profiling the device.
    #[arg(long, value_name = "FILE")]
    table: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Latency target T, ms.
    #[arg(long, value_name = "T")]
    target_ms: f64,
    /// Stage widths.
    #[arg(long, default_value_t = Layout::A, value_name = "A|B|W1,W2,W3,W4")]
    layout: Layout,
    /// How much work each step does.
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    preset: Preset,
    /// Output directory. Default: runs/<device>-<T>ms.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Seed of every step.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How the search estimates each candidate's accuracy (`hsconas search --estimator`; how each ranks
    /// trained networks: docs/accuracy-estimators.md). With any estimator but `supernet` (the paper's) no
    /// supernet is trained: step 3 is skipped.
    #[arg(long, value_enum, default_value_t = Estimator::Predictor)]
    estimator: Estimator,
    /// Re-rank the search's K best candidates with a short training from scratch before re-measuring
    /// them (`hsconas search --rerank`; one to two minutes per candidate on a 2-core CPU). 0: off.
    #[arg(long, default_value_t = 0, value_name = "K")]
    rerank: usize,
    /// CPU threads for libtorch (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// The latency table's precision when the run profiles one: `fp32`, or `mixed` (every block with
    /// weights in INT8 too). With a mixed table (profiled, or given with --table) the search chooses
    /// each layer's precision (`hsconas search`'s default for the --mode), and a winner with INT8
    /// layers is retrained, kept within --max-int8-loss (`hsconas export int8-budget`) and exported in
    /// INT8.
    #[arg(long, value_enum, default_value_t = TablePrecision::Fp32, value_name = "fp32|mixed")]
    precision: TablePrecision,
    /// The search's objective (`hsconas search --mode`): `penalty` (the paper's: best at T) or
    /// `constraint` (a budget: at or under T, the most accurate wins; with a mixed table each layer
    /// then takes the precision the table predicts faster, `hsconas search --precision fastest`).
    #[arg(long, value_enum, default_value_t = super::search::SearchOptions::default().mode)]
    mode: super::search::ModeArg,
    /// A winner with INT8 layers: the most validation top-1, in points, they may cost after
    /// retraining; the most sensitive return to FP32 until the loss fits.
    #[arg(long, default_value_t = 1.0, value_name = "POINTS")]
    max_int8_loss: f64,
}

/// `hsconet-<device>-<T>ms` as a crate name (`.` becomes `_`, other odd characters `-`).
fn crate_name(device: &str, target_ms: f64) -> String {
    format!("hsconet-{device}-{target_ms}ms")
        .chars()
        .map(|c| match c {
            '.' => '_',
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => c,
            _ => '-',
        })
        .collect()
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    // The run measures calibration, validation and the search's re-measurements on one device; a fleet
    // profiles with `hsconas profile` and hands the table over with --table.
    args.agent.single().context(
        "`hsconas run` measures on one device: profile on a fleet with `hsconas profile --agent A \
         --agent B ...`, then pass the table with --table and one --agent",
    )?;
    let p = preset_settings(args.preset);
    let device_name = Path::new(&args.device)
        .file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or("device")
        .to_string();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/{device_name}-{}ms", args.target_ms)));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let table = out.join(TABLE);
    if let (Some(given), false) = (&args.table, table.exists()) {
        std::fs::copy(given, &table)
            .with_context(|| format!("copying {} to {}", given.display(), table.display()))?;
    }
    // Image size and classes: from the table once there is one (a rerun decodes no images here; the
    // training and search steps check the data against the table), else from the data.
    let (input_size, classes) = match LatencyTable::load(&table) {
        Ok(t) => (t.provenance.input_size, t.provenance.classes),
        Err(_) => {
            let data = args.data.prepare()?;
            (data.train.height, data.train.classes.len())
        }
    };
    let steps = Steps {
        args: &args,
        preset: &p,
        out: &out,
    };
    let started = std::time::Instant::now();
    let announce = |n: usize, what: &str| eprintln!("\n== step {n}/8: {what} ==");

    // 1. Latency table (profile resumes an unfinished one and measures nothing for a complete one).
    announce(1, "latency table");
    let complete = LatencyTable::load(&table).is_ok_and(|t| t.missing_entries().is_empty());
    if complete {
        eprintln!("{} is complete: skipped", table.display());
    } else {
        super::profile::run(steps.profile(input_size, classes))?;
    }

    if args.precision == TablePrecision::Mixed && !LatencyTable::load(&table)?.is_mixed() {
        eprintln!(
            "warning: --precision mixed is not applied: {} measured FP32 pieces only (profile into \
             another --out, or pass a mixed --table)",
            table.display()
        );
    }

    // 2. Calibration.
    announce(2, "calibration");
    let calibrated = LatencyTable::load(&table)?
        .calibration
        .is_some_and(|c| c.samples.len() >= c.requested);
    if calibrated {
        eprintln!("{} is calibrated: skipped", table.display());
    } else {
        super::calibrate::run(steps.calibrate())?;
    }

    // 3. Supernet.
    announce(3, "supernet training");
    let supernet_ckpt = out.join(SUPERNET).join("checkpoint.safetensors");
    let done = read_state::<TrainState>(&supernet_ckpt).map_or(0, |st| st.epochs_done);
    if args.estimator != Estimator::Supernet {
        eprintln!(
            "the search estimates accuracy with {}: no supernet needed, skipped",
            args.estimator
        );
    } else if done >= p.supernet_epochs {
        eprintln!("{} has {done} epochs: skipped", supernet_ckpt.display());
    } else {
        let train = steps.supernet(supernet_ckpt.exists());
        super::supernet::run(
            super::supernet::SupernetCommand::Train(train),
            &SingleProcess,
        )?;
    }

    // 4. Shrinking, evolutionary search, re-measurement.
    announce(
        4,
        "space shrinking, evolutionary search, re-measurement on the device",
    );
    let search_dir = out.join(SEARCH);
    let report = search_dir.join("search.json");
    if report.exists() {
        eprintln!("{} exists: skipped", report.display());
    } else {
        let resume = hsconas_nas::driver::state_path(&search_dir).exists();
        super::search::run(steps.search(resume), &SingleProcess)?;
    }
    let report = SearchReport::load(&report)?;
    let searched_for = report.settings.objective.target_ms;
    anyhow::ensure!(
        searched_for == args.target_ms,
        "{} holds a search for T = {searched_for} ms, not {} ms: use another --out for another target",
        out.display(),
        args.target_ms
    );
    let found = report
        .winner
        .as_ref()
        .context("the search report names no winner")?;
    let winner = found.arch.to_string();

    // 5. Retrain the winner from scratch.
    announce(5, "retraining the winner from scratch");
    let final_dir = out.join(FINAL);
    let weights = final_dir.join("weights.safetensors");
    if weights.exists() {
        eprintln!("{} exists: skipped", weights.display());
    } else {
        let resume = final_dir.join("checkpoint.safetensors").exists();
        super::train::run(steps.retrain(&winner, resume), &SingleProcess)?;
    }

    // 6. The INT8 layers' accuracy budget.
    announce(6, "INT8 accuracy budget");
    let int8_dir = out.join(INT8);
    let budget_report = int8_dir.join(super::int8_budget::REPORT_FILE);
    let shipped = if found.arch.is_fp32() {
        eprintln!("the winner has no INT8 layers: skipped");
        final_dir.clone()
    } else {
        if budget_report.exists() {
            eprintln!("{} exists: skipped", budget_report.display());
        } else {
            super::int8_budget::run(steps.int8_budget())?;
        }
        int8_dir
    };
    // The network shipped: the retrained winner, or the one the budget kept (its INT8 layers exported
    // in INT8 as the table's pieces were; FP32 when the budget returned every one).
    let shipped_model =
        hsconas_export::ModelInfo::load(&shipped.join(hsconas_export::MODEL_INFO_FILE))
            .context("the shipped network's model.json")?;
    let shipped_arch: hsconas_models::Arch = shipped_model
        .architecture
        .parse()
        .context("the shipped network's architecture")?;
    let int8 = (!shipped_arch.is_fp32()).then(|| steps.int8_export(&LatencyTable::load(&table)?));
    let int8 = int8.transpose()?;

    // 7. Export.
    announce(7, "ONNX export with the trained weights");
    let onnx = out.join(ONNX);
    if onnx.exists() {
        eprintln!("{} exists: skipped", onnx.display());
    } else {
        let args = steps.onnx(&shipped, int8.clone());
        super::export::run(super::export::ExportCommand::Onnx(Box::new(args)))?;
    }

    // 8. The inference crate.
    announce(8, "Rust inference crate");
    let krate = out.join(CRATE);
    if krate.join("Cargo.toml").exists() {
        eprintln!("{} exists: skipped", krate.display());
    } else {
        let name = crate_name(&device_name, args.target_ms);
        let args = steps.krate(&name, &shipped, int8);
        super::export::run(super::export::ExportCommand::Crate(args))?;
    }

    let model = hsconas_export::ModelInfo::load(&final_dir.join(hsconas_export::MODEL_INFO_FILE))
        .context("the retrained network's model.json")?;
    let budget: Option<serde_json::Value> = if found.arch.is_fp32() {
        None
    } else {
        let bytes = std::fs::read(&budget_report)
            .with_context(|| format!("reading {}", budget_report.display()))?;
        Some(serde_json::from_slice(&bytes).context("the INT8 budget's report")?)
    };
    let summary = json!({
        "device": args.device,
        "target_ms": args.target_ms,
        "preset": format!("{:?}", args.preset).to_lowercase(),
        "arch": winner,
        "estimator": args.estimator,
        "estimated_accuracy": found.accuracy,
        "predicted_ms": found.predicted_ms,
        "measured_ms": found.measured_ms,
        "relative_to_target": found.relative_to_target,
        "winner_reason": found.reason,
        "retrained": model,
        "int8_budget": budget,
        "shipped_arch": shipped_model.architecture,
        "files": {
            "table": table,
            "supernet": (args.estimator == Estimator::Supernet).then_some(&supernet_ckpt),
            "search_report": search_dir.join("search.json"),
            "weights": weights,
            "int8_budget": budget.is_some().then_some(&budget_report),
            "shipped": shipped,
            "onnx": onnx, "crate": krate,
        },
        "seconds_this_invocation": started.elapsed().as_secs_f64(),
    });
    hsconas_foundation::write_atomic(
        &out.join("summary.json"),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    outln!("\nfound     {winner}")?;
    outln!("latency   {}", found.latency_line())?;
    outln!("chosen as {}", found.explanation)?;
    let percent = found.accuracy * 100.0;
    let estimated = match (report.reranked.is_empty(), report.settings.estimator) {
        (false, _) => format!("{percent:.2}% validation top-1 after a short training (re-ranked)"),
        (true, Estimator::Supernet) => {
            format!("{percent:.2}% validation top-1 with supernet weights")
        }
        (true, Estimator::Predictor) => {
            format!("{percent:.2}% test top-1 predicted by the predictor")
        }
        (true, cheap) => format!("percentile {percent:.0} of the space by {cheap}"),
    };
    outln!(
        "accuracy  {estimated}; retrained {}",
        retrained_line(&model)
    )?;
    if let Some(b) = &budget {
        outln!("int8      {}", int8_line(b))?;
    }
    outln!(
        "crate     {} (try: cargo run --release --example classify -- IMAGE)",
        krate.display()
    )?;
    outln!("files     {} (summary.json lists them)", out.display())?;
    Ok(())
}

/// `kept 5 of 5 INT8 layers within 1 point: test top-1 63.51% (FP32 63.56%)` from an INT8 budget report.
fn int8_line(report: &serde_json::Value) -> String {
    let count = |key: &str| {
        report[key]
            .as_str()
            .and_then(|a| a.parse::<hsconas_models::Arch>().ok())
            .map_or(0, |a| a.int8_layers().len())
    };
    // Test top-1 where the data has a test split, else validation top-1.
    let split = if report["fp32"]["test_top1"].is_number() {
        "test"
    } else {
        "val"
    };
    let top1 = |key: &str| {
        report[key][format!("{split}_top1")]
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    format!(
        "kept {} of {} INT8 layers within {} point(s): {split} top-1 {:.2}% (FP32 {:.2}%)",
        count("kept_arch"),
        count("marked_arch"),
        report["max_int8_loss"],
        top1("kept"),
        top1("fp32")
    )
}

/// `2 epochs: test top-1 35.20% on 500 images (chance 10.0%)` (validation when the data has no test
/// split).
fn retrained_line(model: &hsconas_export::ModelInfo) -> String {
    let epochs = model
        .epochs
        .map_or(String::new(), |e| format!("{e} epochs: "));
    let chance = 100.0 / model.classes.len().max(1) as f64;
    let (split, acc) = match (&model.test, &model.val) {
        (Some(test), _) => ("test", test),
        (None, Some(val)) => ("validation", val),
        (None, None) => return format!("{epochs}no accuracy recorded"),
    };
    format!(
        "{epochs}{split} top-1 {:.2}% on {} images (chance {chance:.1}%)",
        acc.top1, acc.images
    )
}
