//! `hsconas run`: the whole pipeline for one device and target — profile, calibrate, train the supernet,
//! shrink and search, re-measure, retrain the winner, export it. Each step is the command of the same name
//! with the preset's flags; a step whose output exists is skipped and an interrupted one resumes, so
//! rerunning the same command line continues where it stopped.

use hsconas_foundation::outln;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, ValueEnum};
use hsconas_devices::LatencyTable;
use hsconas_nas::SearchReport;
use hsconas_train::checkpoint::read_state;
use hsconas_train::TrainState;
use serde_json::json;

use super::data_args::DataArgs;

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
    /// The device's agent (measure remotely); default: in this process.
    #[arg(long, value_name = "URL")]
    agent: Option<String>,
    /// Bearer token for the agent.
    #[arg(long, value_name = "T")]
    token: Option<String>,
    /// Start from this latency table (copied to DIR/table.json) instead of profiling the device.
    #[arg(long, value_name = "FILE")]
    table: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Latency target T, ms.
    #[arg(long, value_name = "T")]
    target_ms: f64,
    /// Stage widths.
    #[arg(long, default_value = "A", value_name = "A|B|W1,W2,W3,W4")]
    layout: String,
    /// How much work each step does.
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    preset: Preset,
    /// Output directory. Default: runs/<device>-<T>ms.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Seed of every step.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// CPU threads for libtorch (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
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

/// Parses one step's flags exactly as its own command would.
#[derive(Debug, Parser)]
struct Step<T: Args> {
    #[command(flatten)]
    args: T,
}

fn step_args<T: Args + clap::FromArgMatches>(argv: &[String]) -> anyhow::Result<T> {
    let line = std::iter::once("hsconas".to_string()).chain(argv.iter().cloned());
    Ok(Step::<T>::try_parse_from(line)
        .with_context(|| format!("pipeline step flags {argv:?}"))?
        .args)
}

struct PresetFlags {
    calibrate_samples: usize,
    supernet_epochs: usize,
    search: &'static [&'static str],
    final_epochs: usize,
    final_warmup: usize,
    /// Peak learning rate of the retraining.
    final_lr: f64,
}

fn preset_flags(p: Preset) -> PresetFlags {
    match p {
        Preset::Tiny => PresetFlags {
            calibrate_samples: 5,
            supernet_epochs: 1,
            search: &[
                "--shrink-stages",
                "20",
                "--shrink-samples",
                "2",
                "--population",
                "4",
                "--generations",
                "2",
                "--parents",
                "2",
                "--eval-images",
                "50",
                "--bn-batches",
                "1",
                "--remeasure",
                "1",
            ],
            final_epochs: 1,
            final_warmup: 0,
            final_lr: 0.05,
        },
        Preset::Quick => PresetFlags {
            calibrate_samples: 20,
            supernet_epochs: 2,
            search: &[
                "--shrink-stages",
                "20,19/18,17",
                "--shrink-samples",
                "4",
                "--population",
                "12",
                "--generations",
                "4",
                "--parents",
                "4",
                "--eval-images",
                "200",
                "--bn-batches",
                "2",
                "--remeasure",
                "3",
            ],
            // 15 epochs at 0.02 from the SPOS initialisation: the shortest schedule that leaves chance
            // level early and ends well above it on the sample's 1,800 training images (2 epochs at 0.05
            // ended at chance; docs/evidence/quick-retraining/).
            final_epochs: 15,
            final_warmup: 0,
            final_lr: 0.02,
        },
        Preset::Paper => PresetFlags {
            calibrate_samples: 50,
            supernet_epochs: 120,
            search: &[
                "--eval-images",
                "0",
                "--bn-batches",
                "20",
                "--remeasure",
                "5",
            ],
            final_epochs: 120,
            final_warmup: 5,
            final_lr: 0.05,
        },
    }
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let p = preset_flags(args.preset);
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
    let table = out.join("table.json");
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
    let mut data_flags = vec![
        s("--data"),
        path(&args.data.data),
        s("--val-fraction"),
        s(args.data.val_fraction),
        s("--split-seed"),
        s(args.data.split_seed),
    ];
    if let Some(size) = args.data.resize {
        data_flags.extend([s("--resize"), s(size)]);
    }
    let threads: Vec<String> = args
        .threads
        .map(|n| vec![s("--threads"), s(n)])
        .unwrap_or_default();
    let agent: Vec<String> = args
        .agent
        .iter()
        .flat_map(|a| [s("--agent"), a.clone()])
        .chain(args.token.iter().flat_map(|t| [s("--token"), t.clone()]))
        .collect();
    let started = std::time::Instant::now();
    let announce = |n: usize, what: &str| eprintln!("\n== step {n}/7: {what} ==");

    // 1. Latency table (profile resumes an unfinished one and measures nothing for a complete one).
    announce(1, "latency table");
    let complete = LatencyTable::load(&table).is_ok_and(|t| t.missing_entries().is_empty());
    if complete {
        eprintln!("{} is complete: skipped", table.display());
    } else {
        let mut argv = vec![
            s("--device"),
            args.device.clone(),
            s("--layout"),
            args.layout.clone(),
            s("--input-size"),
            s(input_size),
            s("--classes"),
            s(classes),
            s("--out"),
            path(&table),
        ];
        argv.extend(agent.iter().cloned());
        super::profile::run(step_args(&argv)?)?;
    }

    // 2. Calibration.
    announce(2, "calibration");
    let calibrated = LatencyTable::load(&table)?
        .calibration
        .is_some_and(|c| c.samples.len() >= c.requested);
    if calibrated {
        eprintln!("{} is calibrated: skipped", table.display());
    } else {
        let mut argv = vec![
            s("--table"),
            path(&table),
            s("--samples"),
            s(p.calibrate_samples),
            s("--seed"),
            s(args.seed + 1),
            s("--device"),
            args.device.clone(),
        ];
        argv.extend(agent.iter().cloned());
        super::calibrate::run(step_args(&argv)?)?;
    }

    // 3. Supernet.
    announce(3, "supernet training");
    let supernet_dir = out.join("supernet");
    let supernet_ckpt = supernet_dir.join("checkpoint.safetensors");
    let done = read_state::<TrainState>(&supernet_ckpt).map_or(0, |st| st.epochs_done);
    if done >= p.supernet_epochs {
        eprintln!("{} has {done} epochs: skipped", supernet_ckpt.display());
    } else {
        let mut argv = data_flags.clone();
        argv.extend([
            s("--layout"),
            args.layout.clone(),
            s("--epochs"),
            s(p.supernet_epochs),
            s("--seed"),
            s(args.seed),
            s("--eval-subnets"),
            s(1),
            s("--eval-images"),
            s(200),
            s("--out"),
            path(&supernet_dir),
        ]);
        if supernet_ckpt.exists() {
            argv.push(s("--resume"));
        }
        argv.extend(threads.iter().cloned());
        super::supernet::run(super::supernet::SupernetCommand::Train(step_args(&argv)?))?;
    }

    // 4. Shrinking, evolutionary search, re-measurement.
    announce(
        4,
        "space shrinking, evolutionary search, re-measurement on the device",
    );
    let search_dir = out.join("search");
    let report = search_dir.join("search.json");
    if report.exists() {
        eprintln!("{} exists: skipped", report.display());
    } else {
        let mut argv = data_flags.clone();
        argv.extend([
            s("--supernet"),
            path(&supernet_ckpt),
            s("--table"),
            path(&table),
            s("--target-ms"),
            s(args.target_ms),
            s("--shrink"),
            s("--seed"),
            s(args.seed),
            s("--device"),
            args.device.clone(),
            s("--out"),
            path(&search_dir),
        ]);
        argv.extend(p.search.iter().map(s));
        argv.extend(agent.iter().cloned());
        argv.extend(threads.iter().cloned());
        if search_dir.join("search.partial.json").exists() {
            argv.push(s("--resume"));
        }
        super::search::run(step_args(&argv)?)?;
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
    let final_dir = out.join("final");
    let weights = final_dir.join("weights.safetensors");
    if weights.exists() {
        eprintln!("{} exists: skipped", weights.display());
    } else {
        let mut argv = data_flags.clone();
        argv.extend([
            s("--arch"),
            winner.clone(),
            s("--layout"),
            args.layout.clone(),
            s("--epochs"),
            s(p.final_epochs),
            s("--warmup-epochs"),
            s(p.final_warmup),
            s("--lr"),
            s(p.final_lr),
            s("--seed"),
            s(args.seed),
            s("--out"),
            path(&final_dir),
        ]);
        if final_dir.join("checkpoint.safetensors").exists() {
            argv.push(s("--resume"));
        }
        argv.extend(threads.iter().cloned());
        super::train::run(step_args(&argv)?)?;
    }

    // 6. Export.
    announce(6, "ONNX export with the trained weights");
    let onnx = out.join("model.onnx");
    if onnx.exists() {
        eprintln!("{} exists: skipped", onnx.display());
    } else {
        let argv = vec![
            s("--weights"),
            path(&final_dir),
            s("--batch"),
            s("dynamic"),
            s("--out"),
            path(&onnx),
        ];
        super::export::run(super::export::ExportCommand::Onnx(step_args(&argv)?))?;
    }

    // 7. The inference crate.
    announce(7, "Rust inference crate");
    let krate = out.join("crate");
    if krate.join("Cargo.toml").exists() {
        eprintln!("{} exists: skipped", krate.display());
    } else {
        let name = crate_name(&device_name, args.target_ms);
        let argv = vec![
            s("--weights"),
            path(&final_dir),
            s("--name"),
            name,
            s("--out"),
            path(&krate),
            s("--overwrite"),
        ];
        super::export::run(super::export::ExportCommand::Crate(step_args(&argv)?))?;
    }

    let model = hsconas_export::ModelInfo::load(&final_dir.join(hsconas_export::MODEL_INFO_FILE))
        .context("the retrained network's model.json")?;
    let summary = json!({
        "device": args.device,
        "target_ms": args.target_ms,
        "preset": format!("{:?}", args.preset).to_lowercase(),
        "arch": winner,
        "supernet_val_accuracy": found.accuracy,
        "predicted_ms": found.predicted_ms,
        "measured_ms": found.measured_ms,
        "relative_to_target": found.relative_to_target,
        "winner_reason": found.reason,
        "retrained": model,
        "files": {
            "table": table, "supernet": supernet_ckpt, "search_report": out.join("search/search.json"),
            "weights": weights, "onnx": onnx, "crate": krate,
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
    outln!(
        "accuracy  {:.2}% validation with supernet weights; retrained {}",
        found.accuracy * 100.0,
        retrained_line(&model)
    )?;
    outln!(
        "crate     {} (try: cargo run --release --example classify -- IMAGE)",
        krate.display()
    )?;
    outln!("files     {} (summary.json lists them)", out.display())?;
    Ok(())
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
