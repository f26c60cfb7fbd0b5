//! Overhead of the evolutionary search apart from accuracy evaluation: paper settings (population 50,
//! 20 generations, 20 parents, crossover and mutation 0.25) on a real latency table, with an accuracy
//! oracle that costs nothing (a fixed function of the architecture), so the time left is breeding,
//! latency prediction, the cache and bookkeeping. Prints one JSON line per seed.
//!
//! `cargo run --release -p hsconas-nas --example bench_search -- --table devices/tables/local-cpu-A-32.json`

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use hsconas_devices::{LatencyModel, LatencyTable};
use hsconas_models::{Arch, SearchSpace};
use hsconas_nas::{Evaluator, Evolution, EvolutionSettings, Objective, ObjectiveMode};

#[derive(Parser)]
struct Args {
    /// Latency table.
    #[arg(long)]
    table: PathBuf,
    /// Seeds (one run each).
    #[arg(long, default_value_t = 5)]
    seeds: u64,
}

fn free_accuracy(arch: &Arch) -> Result<f64, hsconas_nas::OracleError> {
    let sum: f64 = arch.choices().iter().map(|c| c.index() as f64).sum();
    Ok((sum % 97.0) / 97.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model = LatencyModel::from_table(&LatencyTable::load(&args.table)?)?;
    let target = model.predict_ms(&SearchSpace::full().sample(&mut rand::rng()));
    for seed in 0..args.seeds {
        let objective = Objective::new(target, -0.5, ObjectiveMode::Penalty)?;
        let mut evaluator = Evaluator::new(free_accuracy, model.clone(), objective);
        let settings = EvolutionSettings {
            seed,
            ..EvolutionSettings::default()
        };
        let generations = settings.generations;
        let start = Instant::now();
        let mut evo = Evolution::new(settings, SearchSpace::full())?;
        while !evo.is_done() {
            evo.step(&mut evaluator)?;
        }
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({
                "bench": "evolution_overhead",
                "seed": seed,
                "generations": generations,
                "evaluations": evaluator.evaluated().len(),
                "ms_per_generation": seconds * 1e3 / generations as f64,
            })
        );
    }
    Ok(())
}
