//! A designed sample of the search space to train for a predictor of one's own task (`hsconas predictor
//! collect`): what the networks are, the plan file that fixes them, and the results file their trainings
//! make.
//!
//! The sample has three groups, because a predictor for a latency-targeted search must do two things:
//! rank networks of very different cost, and rank networks of *one* cost, where the search makes its
//! choice. So it holds
//! - **uniform** channel scalings of `shuffle3` (the baseline every search is compared with), evenly
//!   spaced over the ten scales;
//! - **spread** draws: uniform draws from the space, one at each of evenly spaced quantiles of the cost
//!   (predicted latency with a table, MACs without) among a pool of random draws;
//! - **equal** draws: uniform draws whose cost lies within [`EQUAL_TOLERANCE`] of the pool's median.
//!
//! The plan is a TSV, `id<TAB>group<TAB>cost<TAB>arch` with a header (the cost column is named after
//! its unit), readable by every command that takes an architecture list.

use std::fmt::Write as _;

use hsconas_models::{Arch, Op, Scale, SearchSpace};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Relative width of the equal-cost group: its draws lie within 2% of the pool's median cost.
pub const EQUAL_TOLERANCE: f64 = 0.02;
/// Random draws the spread and equal groups are picked from.
pub const POOL: usize = 2_000;
/// The smallest sample that leaves a held-out score meaning something.
pub const MIN_SAMPLE: usize = 6;
/// Draws tried for the equal-cost group before giving up.
const MAX_DRAWS: usize = 200_000;

/// Which part of the designed sample a network belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleGroup {
    /// All layers `shuffle3` at one scale.
    Uniform,
    /// A uniform draw at one quantile of the cost.
    Spread,
    /// A uniform draw of (nearly) the median cost.
    Equal,
}

impl SampleGroup {
    /// The word in the plan file.
    pub fn name(self) -> &'static str {
        match self {
            SampleGroup::Uniform => "uniform",
            SampleGroup::Spread => "spread",
            SampleGroup::Equal => "equal",
        }
    }

    fn parse(word: &str) -> Option<SampleGroup> {
        [
            SampleGroup::Uniform,
            SampleGroup::Spread,
            SampleGroup::Equal,
        ]
        .into_iter()
        .find(|g| g.name() == word)
    }

    fn prefix(self) -> char {
        match self {
            SampleGroup::Uniform => 'u',
            SampleGroup::Spread => 's',
            SampleGroup::Equal => 'e',
        }
    }
}

/// One network of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedNetwork {
    /// Its id: the group's letter and a number (`u00`, `s03`, `e01`).
    pub id: String,
    /// Its group.
    pub group: SampleGroup,
    /// Its cost when planned (in the plan's unit).
    pub cost: f64,
    /// The architecture.
    pub arch: Arch,
}

/// The networks to train and the unit of their cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// What the cost column holds: `predicted_ms` or `mmacs`.
    pub cost_unit: String,
    /// The networks, in training order.
    pub networks: Vec<PlannedNetwork>,
}

/// How many networks of `total` each group gets: about a fifth uniform (2 to 10), three tenths equal,
/// the rest spread.
pub fn group_sizes(total: usize) -> (usize, usize, usize) {
    let uniform = (total as f64 * 0.2).round().clamp(2.0, 10.0) as usize;
    let equal = ((total as f64 * 0.3).round() as usize).max(2);
    (uniform, total - uniform - equal, equal)
}

impl Plan {
    /// Designs a sample of `total` networks (at least [`MIN_SAMPLE`]) with `seed`, `cost` giving each
    /// architecture's cost in `cost_unit`. Fails (with the reason) when the space's draws do not give
    /// enough networks of the median cost.
    pub fn design(
        total: usize,
        seed: u64,
        cost_unit: &str,
        cost: impl Fn(&Arch) -> f64,
    ) -> Result<Plan, String> {
        if total < MIN_SAMPLE {
            return Err(format!(
                "a designed sample needs at least {MIN_SAMPLE} networks, {total} asked"
            ));
        }
        let (n_uniform, n_spread, n_equal) = group_sizes(total);
        let mut networks = Vec::with_capacity(total);
        let add = |group: SampleGroup, arch: Arch, cost: f64, networks: &mut Vec<_>| {
            let number = networks
                .iter()
                .filter(|n: &&PlannedNetwork| n.group == group)
                .count();
            networks.push(PlannedNetwork {
                id: format!("{}{number:02}", group.prefix()),
                group,
                cost,
                arch,
            });
        };
        for k in 0..n_uniform {
            let tenths = 1.0 + 9.0 * k as f64 / (n_uniform - 1) as f64;
            let scale = Scale::from_tenths(tenths.round() as u8).expect("tenths in 1..=10");
            let arch = Arch::uniform(Op::Shuffle3, scale).expect("shuffle3 is allowed everywhere");
            let c = cost(&arch);
            add(SampleGroup::Uniform, arch, c, &mut networks);
        }
        let space = SearchSpace::full();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut pool: Vec<(f64, Arch)> = (0..POOL)
            .map(|_| {
                let arch = space.sample(&mut rng);
                (cost(&arch), arch)
            })
            .collect();
        // The equal group first, in draw order (uniform among the draws of that cost).
        let mut by_cost: Vec<f64> = pool.iter().map(|(c, _)| *c).collect();
        by_cost.sort_by(f64::total_cmp);
        let centre = by_cost[by_cost.len() / 2];
        let near = |c: f64| (c / centre - 1.0).abs() <= EQUAL_TOLERANCE;
        let mut equal: Vec<(f64, Arch)> = Vec::new();
        let mut draws = 0;
        let taken = |arch: &Arch, equal: &[(f64, Arch)]| equal.iter().any(|(_, a)| a == arch);
        for (c, arch) in &pool {
            if equal.len() < n_equal && near(*c) && !taken(arch, &equal) {
                equal.push((*c, arch.clone()));
            }
        }
        while equal.len() < n_equal {
            if draws >= MAX_DRAWS {
                return Err(format!(
                    "{} of {n_equal} networks within {:.0}% of the median cost {centre:.3} {cost_unit} \
                     after {draws} more draws",
                    equal.len(),
                    EQUAL_TOLERANCE * 100.0
                ));
            }
            draws += 1;
            let arch = space.sample(&mut rng);
            let c = cost(&arch);
            if near(c) && !taken(&arch, &equal) {
                equal.push((c, arch));
            }
        }
        // The spread group: one draw at each of evenly spaced quantiles of the pool's cost.
        pool.retain(|(_, a)| !equal.iter().any(|(_, e)| e == a));
        pool.sort_by(|a, b| a.0.total_cmp(&b.0));
        for k in 0..n_spread {
            let at = ((k as f64 + 0.5) / n_spread as f64 * pool.len() as f64) as usize;
            let (c, arch) = pool[at.min(pool.len() - 1)].clone();
            add(SampleGroup::Spread, arch, c, &mut networks);
        }
        for (c, arch) in equal {
            add(SampleGroup::Equal, arch, c, &mut networks);
        }
        Ok(Plan {
            cost_unit: cost_unit.to_string(),
            networks,
        })
    }

    /// The plan file's text.
    pub fn to_tsv(&self) -> String {
        let mut text = format!("id\tgroup\t{}\tarch\n", self.cost_unit);
        for n in &self.networks {
            let _ = writeln!(
                text,
                "{}\t{}\t{:.4}\t{}",
                n.id,
                n.group.name(),
                n.cost,
                n.arch
            );
        }
        text
    }

    /// Reads a plan file's text; names the first malformed line.
    pub fn from_tsv(text: &str) -> Result<Plan, String> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let (_, header) = lines.next().ok_or("is empty")?;
        let columns: Vec<&str> = header.split('\t').collect();
        let [id, group, unit, arch] = columns[..] else {
            return Err(format!(
                "its header is {columns:?}, expected `id`, `group`, a cost unit and `arch`"
            ));
        };
        if (id, group, arch) != ("id", "group", "arch") {
            return Err(format!(
                "its header is {columns:?}, expected `id`, `group`, a cost unit and `arch`"
            ));
        }
        let mut networks: Vec<PlannedNetwork> = Vec::new();
        for (number, line) in lines {
            let cells: Vec<&str> = line.split('\t').collect();
            let [id, group, cost, arch] = cells[..] else {
                return Err(format!("line {number} has {} columns, not 4", cells.len()));
            };
            let bad = |what: &str| format!("line {number}: {what}");
            if id.is_empty() || networks.iter().any(|n| n.id == id) {
                return Err(bad(&format!("the id '{id}' is empty or repeated")));
            }
            networks.push(PlannedNetwork {
                id: id.to_string(),
                group: SampleGroup::parse(group)
                    .ok_or_else(|| bad(&format!("unknown group '{group}'")))?,
                cost: cost
                    .parse()
                    .map_err(|_| bad(&format!("cost '{cost}' is not a number")))?,
                arch: arch.parse().map_err(|e| bad(&format!("{e}")))?,
            });
        }
        if networks.is_empty() {
            return Err("holds no network".into());
        }
        Ok(Plan {
            cost_unit: unit.to_string(),
            networks,
        })
    }
}

/// One finished training of a planned network.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectedRun {
    /// The network's id in the plan.
    pub id: String,
    /// The seed it was trained with.
    pub seed: u64,
    /// The architecture.
    pub arch: Arch,
    /// Its top-1 in percent.
    pub top1: f64,
}

/// The results file of finished runs, in the form `hsconas predictor fit --results` reads: a header
/// `arch top1 data recipe id seed`, one line per run (tabs; `data` and `recipe` may not hold tabs or
/// line breaks, which are replaced by spaces).
pub fn results_tsv(runs: &[CollectedRun], data: &str, recipe: &str) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let (data, recipe) = (clean(data), clean(recipe));
    let mut text = String::from("arch\ttop1\tdata\trecipe\tid\tseed\n");
    for r in runs {
        let _ = writeln!(
            text,
            "{}\t{:.2}\t{data}\t{recipe}\t{}\t{}",
            r.arch, r.top1, r.id, r.seed
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictor::TrainingResults;

    /// A cost that grows with width: the sum of the layers' scales (skip counts 0).
    fn width(arch: &Arch) -> f64 {
        arch.choices()
            .iter()
            .map(|c| if c.is_skip() { 0.0 } else { c.scale().value() })
            .sum()
    }

    #[test]
    fn the_groups_share_a_sample_as_documented() {
        assert_eq!(group_sizes(24), (5, 12, 7));
        assert_eq!(group_sizes(6), (2, 2, 2));
        assert_eq!(group_sizes(40), (8, 20, 12));
        for total in MIN_SAMPLE..60 {
            let (u, s, e) = group_sizes(total);
            assert_eq!(u + s + e, total);
            assert!(s >= 2, "{total}: {s} spread");
        }
    }

    #[test]
    fn a_designed_sample_spans_the_cost_and_holds_an_equal_cost_group() {
        let plan = Plan::design(24, 7, "width", width).expect("valid");
        assert_eq!(plan.networks.len(), 24);
        let of = |g: SampleGroup| -> Vec<&PlannedNetwork> {
            plan.networks.iter().filter(|n| n.group == g).collect()
        };
        let uniform = of(SampleGroup::Uniform);
        assert_eq!(
            uniform[0].arch.to_string().matches("shuffle3:0.1").count(),
            20
        );
        assert_eq!(
            uniform[4].arch.to_string().matches("shuffle3:1.0").count(),
            20
        );
        // Evenly spaced over the ten scales.
        let tenths: Vec<u8> = uniform
            .iter()
            .map(|n| n.arch.choices()[0].scale().tenths())
            .collect();
        assert_eq!(tenths, [1, 3, 6, 8, 10]);
        let equal = of(SampleGroup::Equal);
        let centre = equal[0].cost;
        // Of one cost: the median of the space's draws, so about half the spread group lies below it.
        let below = of(SampleGroup::Spread)
            .iter()
            .filter(|n| n.cost < centre)
            .count();
        assert!(
            (5..=7).contains(&below),
            "{below} of 12 spread draws below the equal group"
        );
        assert!(equal
            .iter()
            .all(|n| (n.cost / centre - 1.0).abs() <= 2.0 * EQUAL_TOLERANCE + 1e-9));
        let spread: Vec<f64> = of(SampleGroup::Spread).iter().map(|n| n.cost).collect();
        assert!(spread.windows(2).all(|w| w[0] <= w[1]), "{spread:?}");
        // The spread group reaches well below and above the equal group's cost.
        assert!(
            spread[0] < centre * 0.9 && spread[11] > centre * 1.1,
            "{spread:?}"
        );
        let mut archs: Vec<String> = plan.networks.iter().map(|n| n.arch.to_string()).collect();
        archs.sort();
        archs.dedup();
        assert_eq!(archs.len(), 24, "no network twice");
        // The same seed gives the same plan; another seed another one.
        assert_eq!(Plan::design(24, 7, "width", width).expect("valid"), plan);
        assert_ne!(Plan::design(24, 8, "width", width).expect("valid"), plan);
    }

    #[test]
    fn a_plan_survives_its_file_and_bad_files_are_refused() {
        let plan = Plan::design(8, 1, "mmacs", width).expect("valid");
        let read = Plan::from_tsv(&plan.to_tsv()).expect("valid");
        assert_eq!(read.cost_unit, "mmacs");
        assert_eq!(read.networks.len(), 8);
        for (a, b) in read.networks.iter().zip(&plan.networks) {
            assert_eq!((&a.id, a.group, &a.arch), (&b.id, b.group, &b.arch));
            assert!((a.cost - b.cost).abs() < 1e-4);
        }
        let text = plan.to_tsv();
        let first_row = text.lines().nth(1).expect("valid");
        let twice = format!("{text}{first_row}\n");
        assert!(Plan::from_tsv(&twice)
            .expect_err("refused")
            .contains("repeated"));
        let broken = text.replace("shuffle3:0.1,", "shuffle3:0.1;");
        assert!(Plan::from_tsv(&broken)
            .expect_err("refused")
            .starts_with("line 2"));
        assert!(Plan::from_tsv("arch\ttop1\n")
            .expect_err("refused")
            .contains("header"));
        assert!(Plan::design(5, 1, "mmacs", width)
            .expect_err("refused")
            .contains("at least"));
    }

    #[test]
    fn the_results_file_is_what_fit_reads() {
        let arch: Arch = vec!["shuffle5:0.3"; 20].join(",").parse().expect("valid");
        let runs = vec![
            CollectedRun {
                id: "s00".into(),
                seed: 0,
                arch: arch.clone(),
                top1: 51.25,
            },
            CollectedRun {
                id: "s00".into(),
                seed: 1,
                arch,
                top1: 52.75,
            },
        ];
        let text = results_tsv(&runs, "cifar10\twith a tab", "3 epochs");
        let read = TrainingResults::from_tsv(&text).expect("valid");
        assert_eq!(read.networks.len(), 1);
        assert_eq!(read.networks[0].top1, vec![51.25, 52.75]);
        assert_eq!(read.data.as_deref(), Some("cifar10 with a tab"));
        assert_eq!(read.recipe.as_deref(), Some("3 epochs"));
    }
}
