//! The options of each pipeline step, typed as the step's own command takes them, and what each preset
//! sets.

use std::path::{Path, PathBuf};

use hsconas_devices::LatencyTable;
use hsconas_nas::Estimator;
use hsconas_vocabulary::{Precision, WeightRange};

use super::super::calibrate::CalibrateArgs;
use super::super::export::{CrateArgs, OnnxArgs};
use super::super::export_int8::{CalibrationArgs, PrecisionArgs};
use super::super::int8_budget::BudgetArgs;
use super::super::measure_args::{ProfilingProtocolArgs, TableDeviceArgs};
use super::super::profile::ProfileArgs;
use super::super::recipe_args::RecipeArgs;
use super::super::search::{SearchArgs, SearchOptions};
use super::super::supernet::TrainArgs as SupernetTrainArgs;
use super::super::train::TrainArgs;
use super::{Preset, RunArgs};

/// What a preset changes from the commands' defaults.
pub(super) struct PresetSettings {
    /// Timed runs per piece, at most, when the table is profiled (`hsconas profile --max-runs`).
    pub(super) profile_max_runs: usize,
    pub(super) calibrate_samples: usize,
    pub(super) supernet_epochs: usize,
    /// The search's options (`--seed` is the run's).
    pub(super) search: SearchOptions,
    pub(super) final_epochs: usize,
    pub(super) final_warmup: usize,
    /// Peak learning rate of the retraining.
    pub(super) final_lr: f64,
}

pub(super) fn preset_settings(p: Preset) -> PresetSettings {
    let shrinking = SearchOptions {
        shrink: true,
        ..SearchOptions::default()
    };
    match p {
        Preset::Tiny => PresetSettings {
            profile_max_runs: 1000,
            calibrate_samples: 5,
            supernet_epochs: 1,
            search: SearchOptions {
                shrink_stages: "20".to_string(),
                shrink_samples: 2,
                population: 4,
                generations: 2,
                parents: 2,
                eval_images: 50,
                bn_batches: 1,
                remeasure: 1,
                ..shrinking
            },
            final_epochs: 1,
            final_warmup: 0,
            final_lr: 0.05,
        },
        Preset::Quick => PresetSettings {
            // Half of `hsconas profile`'s default: a piece at input 32 takes ~0.05 ms, so every piece
            // (and the reference network beside it) stops at max_runs, after half the runs; networks,
            // ~1 ms, still stop at the minimum time.
            profile_max_runs: 1000,
            calibrate_samples: 20,
            supernet_epochs: 2,
            search: SearchOptions {
                shrink_stages: "20,19/18,17".to_string(),
                shrink_samples: 4,
                population: 12,
                generations: 4,
                parents: 4,
                eval_images: 200,
                bn_batches: 2,
                remeasure: 3,
                ..shrinking
            },
            // 15 epochs at 0.02 from the SPOS initialisation: the shortest schedule that leaves chance
            // level early and ends well above it on the sample's 1,800 training images (2 epochs at 0.05
            // ended at chance; docs/evidence/quick-retraining/).
            final_epochs: 15,
            final_warmup: 0,
            final_lr: 0.02,
        },
        Preset::Paper => PresetSettings {
            profile_max_runs: ProfilingProtocolArgs::default().max_runs,
            calibrate_samples: 50,
            supernet_epochs: 120,
            search: SearchOptions {
                eval_images: 0,
                bn_batches: 20,
                remeasure: 5,
                ..shrinking
            },
            final_epochs: 120,
            final_warmup: 5,
            final_lr: 0.05,
        },
    }
}

/// Where each step writes, inside the run's output directory.
pub(super) const TABLE: &str = "table.json";
pub(super) const SUPERNET: &str = "supernet";
pub(super) const SEARCH: &str = "search";
pub(super) const FINAL: &str = "final";
pub(super) const INT8: &str = "int8";
pub(super) const ONNX: &str = "model.onnx";
pub(super) const CRATE: &str = "crate";

/// The options of each step, built from the run's: each is the options type of the step's own command
/// (the command's defaults where the run and the preset say nothing).
pub(super) struct Steps<'a> {
    pub(super) args: &'a RunArgs,
    pub(super) preset: &'a PresetSettings,
    pub(super) out: &'a Path,
}

impl Steps<'_> {
    fn at(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    /// The run's device and agent, for the commands that measure against the table.
    fn table_device(&self) -> TableDeviceArgs {
        TableDeviceArgs {
            device: Some(self.args.device.clone()),
            agent: self.args.agent.clone(),
            ..TableDeviceArgs::default()
        }
    }

    /// The recipe of a training step: the run's seed and threads, `dir` as its output.
    fn recipe(&self, epochs: usize, dir: &str, resume: bool) -> RecipeArgs {
        RecipeArgs {
            epochs,
            seed: self.args.seed,
            threads: self.args.threads,
            out: Some(self.at(dir)),
            resume,
            ..RecipeArgs::default()
        }
    }

    pub(super) fn profile(&self, input_size: usize, classes: usize) -> ProfileArgs {
        ProfileArgs {
            agent: self.args.agent.clone(),
            layout: Some(self.args.layout),
            input_size: Some(input_size),
            classes: Some(classes),
            out: Some(self.at(TABLE)),
            precision: self.args.precision,
            protocol: ProfilingProtocolArgs {
                max_runs: self.preset.profile_max_runs,
                ..ProfilingProtocolArgs::default()
            },
            ..ProfileArgs::new(self.args.device.clone())
        }
    }

    pub(super) fn calibrate(&self) -> CalibrateArgs {
        CalibrateArgs {
            samples: self.preset.calibrate_samples,
            seed: self.args.seed + 1,
            device: self.table_device(),
            ..CalibrateArgs::new(self.at(TABLE))
        }
    }

    pub(super) fn supernet(&self, resume: bool) -> SupernetTrainArgs {
        SupernetTrainArgs {
            layout: self.args.layout,
            recipe: self.recipe(self.preset.supernet_epochs, SUPERNET, resume),
            eval_subnets: 1,
            eval_images: 200,
            ..SupernetTrainArgs::new(self.args.data.clone())
        }
    }

    pub(super) fn search(&self, resume: bool) -> SearchArgs {
        SearchArgs {
            options: SearchOptions {
                seed: self.args.seed,
                mode: self.args.mode,
                rerank: self.args.rerank,
                estimator: Some(self.args.estimator),
                ..self.preset.search.clone()
            },
            supernet: (self.args.estimator == Estimator::Supernet)
                .then(|| self.at(SUPERNET).join("checkpoint.safetensors")),
            device: self.table_device(),
            out: self.at(SEARCH),
            resume,
            threads: self.args.threads,
            ..SearchArgs::new(
                self.at(SUPERNET).join("checkpoint.safetensors"),
                self.at(TABLE),
                self.args.target_ms,
                self.args.data.clone(),
            )
        }
    }

    pub(super) fn retrain(&self, winner: &str, resume: bool) -> TrainArgs {
        let p = self.preset;
        TrainArgs {
            layout: self.args.layout,
            recipe: RecipeArgs {
                warmup_epochs: Some(p.final_warmup),
                lr: p.final_lr,
                ..self.recipe(p.final_epochs, FINAL, resume)
            },
            ..TrainArgs::new(winner.to_string(), self.args.data.clone())
        }
    }

    /// The retrained winner's INT8 layers kept within the run's budget, measured against the table.
    pub(super) fn int8_budget(&self) -> BudgetArgs {
        BudgetArgs {
            weights: self.at(FINAL),
            data: self.args.data.clone(),
            max_int8_loss: self.args.max_int8_loss,
            out: self.at(INT8),
            threads: self.args.threads.unwrap_or(1),
            json: false,
            sample: CalibrationArgs::default(),
            int8_weight_range: "auto".into(),
            table: Some(self.at(TABLE)),
            measure: true,
            device: self.table_device(),
        }
    }

    /// An INT8 export as the table's INT8 pieces were made (flavour, weight range), calibrated on the
    /// run's training images.
    pub(super) fn int8_export(&self, table: &LatencyTable) -> anyhow::Result<PrecisionArgs> {
        let pieces = table.provenance.int8.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "the network has INT8 layers but {} measured no INT8 pieces",
                self.at(TABLE).display()
            )
        })?;
        Ok(PrecisionArgs {
            precision: Precision::Int8,
            calibration: Some(self.args.data.data.clone()),
            int8_flavour: pieces.flavour,
            reduce_range: pieces.weight_range == WeightRange::Reduced,
            ..PrecisionArgs::default()
        })
    }

    /// The network in `weights` as ONNX (INT8 with `int8`).
    pub(super) fn onnx(&self, weights: &Path, int8: Option<PrecisionArgs>) -> OnnxArgs {
        OnnxArgs {
            batch: "dynamic".to_string(),
            precision: int8.unwrap_or_default(),
            ..OnnxArgs::trained(weights.to_path_buf(), self.at(ONNX))
        }
    }

    /// The inference crate of the network in `weights` (INT8 with `int8`).
    pub(super) fn krate(
        &self,
        name: &str,
        weights: &Path,
        int8: Option<PrecisionArgs>,
    ) -> CrateArgs {
        CrateArgs {
            overwrite: true,
            precision: int8.unwrap_or_default(),
            ..CrateArgs::new(weights.to_path_buf(), name.to_string(), self.at(CRATE))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use hsconas_models::Layout;

    use super::super::Preset;
    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapped {
        #[command(flatten)]
        args: RunArgs,
    }

    /// Every preset's steps are usable as their commands check them, and carry the run's settings.
    #[test]
    fn every_step_of_every_preset_carries_the_run() {
        let args = Wrapped::try_parse_from([
            "run",
            "--target-ms",
            "0.7",
            "--data",
            "data/cifar10-sample.tar.gz",
            "--agent",
            "http://127.0.0.1:7878",
            "--token",
            "secret",
            "--threads",
            "2",
            "--resize",
            "32",
            "--train-per-class",
            "100",
            "--layout",
            "B",
            "--seed",
            "7",
        ])
        .expect("run flags")
        .args;
        let out = PathBuf::from("runs/x");
        for preset in [Preset::Tiny, Preset::Quick, Preset::Paper] {
            let p = preset_settings(preset);
            let steps = Steps {
                args: &args,
                preset: &p,
                out: &out,
            };
            let profile = steps.profile(32, 10);
            assert_eq!(profile.layout, Some(Layout::B));
            assert_eq!(profile.out.as_deref(), Some(out.join(TABLE).as_path()));
            assert_eq!(profile.agent.token.as_deref(), Some("secret"));
            assert_eq!(profile.protocol.max_runs, p.profile_max_runs);
            let calibrate = steps.calibrate();
            assert_eq!(
                (calibrate.samples, calibrate.seed),
                (p.calibrate_samples, 8)
            );
            assert_eq!(calibrate.device.agent.agents, args.agent.agents);
            let supernet = steps.supernet(true);
            assert_eq!(supernet.recipe.epochs, p.supernet_epochs);
            assert!(supernet.recipe.resume);
            assert_eq!(supernet.data.train_per_class, Some(100));
            assert_eq!(supernet.data.resize, Some(32));
            let search = steps.search(false);
            let settings = search.settings().expect("the preset's search is valid");
            assert_eq!(settings.evolution.seed, 7);
            assert_eq!(settings.objective.target_ms, 0.7);
            assert!(!settings.stages.is_empty(), "every preset shrinks");
            assert_eq!(search.threads, Some(2));
            assert_eq!(search.device.device.as_deref(), Some("local-cpu"));
            let retrain = steps.retrain(&"shuffle3:1.0,".repeat(20), false);
            assert_eq!(retrain.layout, Layout::B);
            assert_eq!(
                (retrain.recipe.epochs, retrain.recipe.lr),
                (p.final_epochs, p.final_lr)
            );
            assert_eq!(retrain.recipe.warmup_epochs, Some(p.final_warmup));
            assert_eq!(retrain.recipe.out, Some(out.join(FINAL)));
            let onnx = steps.onnx(&out.join(FINAL), None);
            assert_eq!(onnx.batch, "dynamic");
            assert_eq!(onnx.precision.precision, Precision::Fp32);
            assert!(steps.krate("net", &out.join(FINAL), None).overwrite);
            let budget = steps.int8_budget();
            assert_eq!(
                (budget.weights, budget.out, budget.table),
                (out.join(FINAL), out.join(INT8), Some(out.join(TABLE)))
            );
            assert_eq!(budget.max_int8_loss, 1.0);
            // INT8 exports as the table's pieces were made; an FP32 table has none to follow.
            let committed =
                hsconas_foundation::package_dir!().join("../../devices/tables/local-cpu-A-32.json");
            let mut table = LatencyTable::load(&committed).expect("committed table");
            assert!(steps.int8_export(&table).is_err());
            table.provenance.int8 = Some(hsconas_devices::Int8Pieces {
                flavour: hsconas_vocabulary::Int8Flavour::TensorRt,
                weight_range: WeightRange::Reduced,
                calibration_inputs: 8,
            });
            let int8 = steps.int8_export(&table).expect("a mixed table's");
            assert_eq!(int8.precision, Precision::Int8);
            assert_eq!(int8.int8_flavour, hsconas_vocabulary::Int8Flavour::TensorRt);
            assert!(int8.reduce_range);
            assert_eq!(int8.calibration.as_deref(), Some(args.data.data.as_path()));
        }
    }
}
