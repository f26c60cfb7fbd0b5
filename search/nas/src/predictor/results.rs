//! The training results a predictor is fitted on: trained networks and their test top-1, read from a
//! ground-truth file (the JSON of `docs/evidence/ground-truth/ground-truth.json`) or from a plain TSV that
//! a user's own training scripts wrote: a header naming the columns, `arch` and `top1` (test top-1 in
//! percent) among them, one training per line; rows of one architecture (several seeds) are averaged.
//! Optional `data` and `recipe` columns say what the networks were trained on and how.

use std::path::Path;

use hsconas_models::Arch;

use crate::ground_truth::GroundTruth;
use crate::NasError;

/// One trained architecture and the test top-1 (percent) of each of its trainings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedResult {
    /// The architecture.
    pub arch: Arch,
    /// Test top-1 of each training, percent.
    pub top1: Vec<f64>,
}

impl TrainedResult {
    /// The mean over its trainings.
    pub fn mean_top1(&self) -> f64 {
        self.top1.iter().sum::<f64>() / self.top1.len().max(1) as f64
    }
}

/// The trained networks of a results file, in the order they first appear.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingResults {
    /// The networks, each with at least one training.
    pub networks: Vec<TrainedResult>,
    /// The images, when the file says (a TSV's `data` column, the same on every line).
    pub data: Option<String>,
    /// The recipe, when the file says (a ground truth's `recipe`, a TSV's `recipe` column).
    pub recipe: Option<String>,
}

impl TrainingResults {
    /// The value of `key` in the recipe's `key=value` words (as `hsconas predictor collect` writes
    /// them: `resize=16`, `layout=A`, ...), when the recipe has it.
    pub fn recipe_setting(&self, key: &str) -> Option<&str> {
        self.recipe
            .as_deref()?
            .split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
    }

    /// Reads a ground-truth JSON file or a TSV (see the module's documentation); refuses a file with a
    /// malformed line, naming it, or without a trained network.
    pub fn load(path: &Path) -> Result<TrainingResults, NasError> {
        let refuse = |message: String| NasError::State {
            path: path.to_path_buf(),
            message,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| refuse(format!("cannot be read ({e})")))?;
        let results = if text.trim_start().starts_with('{') {
            let truth = GroundTruth::load(path)?;
            TrainingResults {
                networks: truth
                    .trained()
                    .map(|n| TrainedResult {
                        arch: n.arch.clone(),
                        top1: n.runs.iter().map(|r| r.test_top1).collect(),
                    })
                    .collect(),
                data: None,
                recipe: Some(truth.recipe),
            }
        } else {
            Self::from_tsv(&text).map_err(refuse)?
        };
        if results.networks.is_empty() {
            return Err(refuse("holds no trained network".into()));
        }
        Ok(results)
    }

    /// Parses the TSV form.
    pub fn from_tsv(text: &str) -> Result<TrainingResults, String> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let (_, header) = lines
            .next()
            .ok_or("is empty: expected a header line such as `arch<TAB>top1`")?;
        let columns: Vec<&str> = header.split('\t').map(str::trim).collect();
        let column = |name: &str| columns.iter().position(|c| *c == name);
        let (Some(arch_col), Some(top1_col)) = (column("arch"), column("top1")) else {
            return Err(format!(
                "its header names the columns {columns:?}; it needs `arch` and `top1` (test top-1 in \
                 percent), separated by tabs"
            ));
        };
        let (data_col, recipe_col) = (column("data"), column("recipe"));
        let mut networks: Vec<TrainedResult> = Vec::new();
        let (mut data, mut recipe): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        for (number, line) in lines {
            let cells: Vec<&str> = line.split('\t').map(str::trim).collect();
            let cell = |i: usize| {
                cells.get(i).copied().ok_or(format!(
                    "line {number} has {} columns, the header {}",
                    cells.len(),
                    columns.len()
                ))
            };
            let arch: Arch = cell(arch_col)?
                .parse()
                .map_err(|e| format!("line {number}: {e}"))?;
            let top1: f64 = cell(top1_col)?
                .parse()
                .ok()
                .filter(|v: &f64| (0.0..=100.0).contains(v))
                .ok_or(format!(
                    "line {number}: top1 '{}' is not a test top-1 in percent (0 to 100)",
                    cell(top1_col)?
                ))?;
            for (col, seen) in [(data_col, &mut data), (recipe_col, &mut recipe)] {
                if let Some(col) = col {
                    let value = cell(col)?.to_string();
                    if !seen.contains(&value) {
                        seen.push(value);
                    }
                }
            }
            match networks.iter_mut().find(|n| n.arch == arch) {
                Some(n) => n.top1.push(top1),
                None => networks.push(TrainedResult {
                    arch,
                    top1: vec![top1],
                }),
            }
        }
        let single = |values: Vec<String>, what: &str| match values.len() {
            0 => Ok(None),
            1 => Ok(values.into_iter().next()),
            _ => Err(format!(
                "mixes {} {what}s ({}): a predictor is fitted on one task; split the file",
                values.len(),
                values.join(", ")
            )),
        };
        Ok(TrainingResults {
            networks,
            data: single(data, "data")?,
            recipe: single(recipe, "recipe")?,
        })
    }

    /// Trainings in all (a network trained with two seeds counts twice).
    pub fn trainings(&self) -> usize {
        self.networks.iter().map(|n| n.top1.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(scale: &str) -> String {
        vec![format!("shuffle3:{scale}"); 20].join(",")
    }

    #[test]
    fn a_tsv_groups_seeds_and_keeps_its_task() {
        let text = format!(
            "# my runs\narch\ttop1\tseed\tdata\r\n{a}\t50.0\t0\tcifar\n{b}\t60\t0\tcifar\n\n{a}\t52.0\t1\tcifar\n",
            a = uniform("0.2"),
            b = uniform("0.8")
        );
        let r = TrainingResults::from_tsv(&text).expect("valid");
        assert_eq!(r.networks.len(), 2);
        assert_eq!(r.networks[0].top1, vec![50.0, 52.0]);
        assert_eq!(r.networks[0].mean_top1(), 51.0);
        assert_eq!(r.trainings(), 3);
        assert_eq!(r.data.as_deref(), Some("cifar"));
        assert_eq!(r.recipe, None);
    }

    #[test]
    fn a_malformed_tsv_names_its_line() {
        let err = |text: &str| TrainingResults::from_tsv(text).expect_err("refused");
        assert!(err("").contains("empty"));
        assert!(err("arch,top1\n").contains("needs `arch` and `top1`"));
        let a = uniform("0.5");
        assert!(err(&format!("arch\ttop1\n{a}\t0.55x\n")).starts_with("line 2: top1 '0.55x'"));
        assert!(err(&format!("arch\ttop1\n{a}\t155\n")).contains("0 to 100"));
        assert!(err("arch\ttop1\nshuffle3:0.5\t50\n").starts_with("line 2:"));
        assert!(err(&format!("arch\ttop1\n{a}\n")).contains("line 2 has 1 columns"));
        assert!(err(&format!(
            "arch\ttop1\trecipe\n{a}\t50\tfast\n{b}\t51\tslow\n",
            b = uniform("0.6")
        ))
        .contains("mixes 2 recipes"));
    }

    #[test]
    fn a_recipes_settings_are_read_by_key() {
        let mut r = TrainingResults {
            networks: Vec::new(),
            data: None,
            recipe: Some("epochs=3 resize=16 layout=A top1=test".into()),
        };
        assert_eq!(r.recipe_setting("resize"), Some("16"));
        assert_eq!(r.recipe_setting("layout"), Some("A"));
        assert_eq!(r.recipe_setting("lr"), None);
        assert_eq!(r.recipe_setting("re"), None, "a whole key, not a prefix");
        r.recipe = Some("hsconas train --epochs 15".into());
        assert_eq!(r.recipe_setting("epochs"), None);
    }
}
