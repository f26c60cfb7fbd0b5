//! The flags of each pipeline step, as the step's own command takes them, and what each preset sets.

use std::path::Path;

use super::{Preset, RunArgs};

pub(super) struct PresetFlags {
    pub(super) calibrate_samples: usize,
    pub(super) supernet_epochs: usize,
    pub(super) search: &'static [&'static str],
    pub(super) final_epochs: usize,
    pub(super) final_warmup: usize,
    /// Peak learning rate of the retraining.
    pub(super) final_lr: f64,
}

pub(super) fn preset_flags(p: Preset) -> PresetFlags {
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

/// Where each step writes, inside the run's output directory.
pub(super) const TABLE: &str = "table.json";
pub(super) const SUPERNET: &str = "supernet";
pub(super) const SEARCH: &str = "search";
pub(super) const FINAL: &str = "final";
pub(super) const ONNX: &str = "model.onnx";
pub(super) const CRATE: &str = "crate";

/// The flags of each step, as its own command takes them; `run` parses them with that command's clap
/// definition, and the unit tests parse them for every preset, so a renamed flag fails the tests.
pub(super) struct Flags<'a> {
    pub(super) args: &'a RunArgs,
    pub(super) preset: &'a PresetFlags,
    pub(super) out: &'a Path,
}

impl Flags<'_> {
    fn at(&self, name: &str) -> String {
        path(&self.out.join(name))
    }

    fn data(&self) -> Vec<String> {
        let d = &self.args.data;
        let mut flags = vec![
            s("--data"),
            path(&d.data),
            s("--val-fraction"),
            s(d.val_fraction),
            s("--split-seed"),
            s(d.split_seed),
        ];
        if let Some(n) = d.train_per_class {
            flags.extend([s("--train-per-class"), s(n)]);
        }
        if let Some(size) = d.resize {
            flags.extend([s("--resize"), s(size)]);
        }
        flags
    }

    fn threads(&self) -> Vec<String> {
        self.args
            .threads
            .map(|n| vec![s("--threads"), s(n)])
            .unwrap_or_default()
    }

    fn agent(&self) -> Vec<String> {
        let a = self.args;
        a.agent
            .iter()
            .flat_map(|url| [s("--agent"), url.clone()])
            .chain(a.token.iter().flat_map(|t| [s("--token"), t.clone()]))
            .collect()
    }

    fn resume(resume: bool) -> Option<String> {
        resume.then(|| s("--resume"))
    }

    pub(super) fn profile(&self, input_size: usize, classes: usize) -> Vec<String> {
        let a = self.args;
        let mut argv = vec![
            s("--device"),
            a.device.clone(),
            s("--layout"),
            a.layout.clone(),
            s("--input-size"),
            s(input_size),
            s("--classes"),
            s(classes),
            s("--out"),
            self.at(TABLE),
        ];
        argv.extend(self.agent());
        argv
    }

    pub(super) fn calibrate(&self) -> Vec<String> {
        let mut argv = vec![
            s("--table"),
            self.at(TABLE),
            s("--samples"),
            s(self.preset.calibrate_samples),
            s("--seed"),
            s(self.args.seed + 1),
            s("--device"),
            self.args.device.clone(),
        ];
        argv.extend(self.agent());
        argv
    }

    pub(super) fn supernet(&self, resume: bool) -> Vec<String> {
        let mut argv = self.data();
        argv.extend([
            s("--layout"),
            self.args.layout.clone(),
            s("--epochs"),
            s(self.preset.supernet_epochs),
            s("--seed"),
            s(self.args.seed),
            s("--eval-subnets"),
            s(1),
            s("--eval-images"),
            s(200),
            s("--out"),
            self.at(SUPERNET),
        ]);
        argv.extend(Self::resume(resume));
        argv.extend(self.threads());
        argv
    }

    pub(super) fn search(&self, resume: bool) -> Vec<String> {
        let mut argv = self.data();
        argv.extend([
            s("--supernet"),
            path(&self.out.join(SUPERNET).join("checkpoint.safetensors")),
            s("--table"),
            self.at(TABLE),
            s("--target-ms"),
            s(self.args.target_ms),
            s("--shrink"),
            s("--seed"),
            s(self.args.seed),
            s("--device"),
            self.args.device.clone(),
            s("--out"),
            self.at(SEARCH),
        ]);
        argv.extend(self.preset.search.iter().map(s));
        argv.extend(self.agent());
        argv.extend(self.threads());
        argv.extend(Self::resume(resume));
        argv
    }

    pub(super) fn retrain(&self, winner: &str, resume: bool) -> Vec<String> {
        let p = self.preset;
        let mut argv = self.data();
        argv.extend([
            s("--arch"),
            s(winner),
            s("--layout"),
            self.args.layout.clone(),
            s("--epochs"),
            s(p.final_epochs),
            s("--warmup-epochs"),
            s(p.final_warmup),
            s("--lr"),
            s(p.final_lr),
            s("--seed"),
            s(self.args.seed),
            s("--out"),
            self.at(FINAL),
        ]);
        argv.extend(Self::resume(resume));
        argv.extend(self.threads());
        argv
    }

    pub(super) fn onnx(&self) -> Vec<String> {
        vec![
            s("--weights"),
            self.at(FINAL),
            s("--batch"),
            s("dynamic"),
            s("--out"),
            self.at(ONNX),
        ]
    }

    pub(super) fn krate(&self, name: &str) -> Vec<String> {
        vec![
            s("--weights"),
            self.at(FINAL),
            s("--name"),
            s(name),
            s("--out"),
            self.at(CRATE),
            s("--overwrite"),
        ]
    }
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::Parser;

    use super::super::Preset;
    use super::*;

    /// Every step's flags, for every preset, parse with the step command's own definition.
    #[test]
    fn every_step_of_every_preset_parses() {
        for preset in [Preset::Tiny, Preset::Quick, Preset::Paper] {
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
            ])
            .map(|w| w.args)
            .expect("run flags");
            let p = preset_flags(preset);
            let out = PathBuf::from("runs/x");
            let f = Flags {
                args: &args,
                preset: &p,
                out: &out,
            };
            let winner = "shuffle3:1.0,".repeat(19) + "shuffle3:1.0";
            super::super::step_args::<super::super::super::profile::ProfileArgs>(
                &f.profile(32, 10),
            )
            .expect("profile");
            super::super::step_args::<super::super::super::calibrate::CalibrateArgs>(
                &f.calibrate(),
            )
            .expect("calibrate");
            for resume in [false, true] {
                super::super::step_args::<super::super::super::supernet::TrainArgs>(
                    &f.supernet(resume),
                )
                .expect("supernet train");
                super::super::step_args::<super::super::super::search::SearchArgs>(
                    &f.search(resume),
                )
                .expect("search");
                super::super::step_args::<super::super::super::train::TrainArgs>(
                    &f.retrain(&winner, resume),
                )
                .expect("train");
            }
            super::super::step_args::<super::super::super::export::OnnxArgs>(&f.onnx())
                .expect("export onnx");
            super::super::step_args::<super::super::super::export::CrateArgs>(&f.krate("net"))
                .expect("export crate");
        }
    }

    #[derive(Debug, Parser)]
    struct Wrapped {
        #[command(flatten)]
        args: RunArgs,
    }
}
