//! `hsconas search` spread over the ranks of an MPI job (`mpirun -np N hsconas search ...`).
//!
//! Rank 0 runs the search as one process would: the evolution, the state file, the device measurements,
//! the reports. Every batch of candidates it evaluates (a generation, one layer's shrinking samples, the
//! random baseline) is split over all ranks, candidate `i` to rank `i mod N`; each rank scores its share
//! with its own copy of the supernet (read from the same `--supernet` file, so a path every rank can read)
//! and rank 0 gathers the accuracies. A subnet's accuracy does not depend on the rank that computes it, so
//! the same seed gives the same search as one process. Fine-tuning after a shrinking stage runs
//! data-parallel on all ranks. The other ranks only follow rank 0's commands ([`follow`]) until it says
//! [`Work::Done`]; while they wait they sleep rather than spin, so they leave the CPU to measurements.

use hsconas_models::Arch;
use hsconas_models::SearchSpace;
use hsconas_nas::OracleError;
use hsconas_train::Collective;
use serde::{Deserialize, Serialize};

/// What rank 0 asks the other ranks to do next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Work {
    /// Score these architectures (their canonical strings); each rank its share.
    Evaluate(Vec<String>),
    /// Fine-tune the supernet in `space` after shrinking stage `stage`, data-parallel.
    Finetune {
        /// The shrunk space.
        space: SearchSpace,
        /// The stage (1-based).
        stage: usize,
    },
    /// The search is over.
    Done,
}

/// What a follower does for rank 0.
pub trait Follower {
    /// The accuracy of `arch` computed by this rank alone.
    fn local_accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError>;
    /// Fine-tuning, with every rank taking part.
    fn finetune_together(&mut self, space: &SearchSpace, stage: usize) -> Result<(), OracleError>;
}

/// Rank 0: sends `work` to the other ranks.
pub fn send(collective: &dyn Collective, work: &Work) -> Result<(), OracleError> {
    let mut bytes = serde_json::to_vec(work)?;
    collective.broadcast_bytes(&mut bytes);
    Ok(())
}

/// Rank 0: the accuracies of `archs`, in order, computed by all ranks together.
pub fn accuracies(
    collective: &dyn Collective,
    archs: &[Arch],
    follower: &mut dyn Follower,
) -> Result<Vec<f64>, OracleError> {
    send(
        collective,
        &Work::Evaluate(archs.iter().map(ToString::to_string).collect()),
    )?;
    let mine = share(collective, archs, follower)?;
    let gathered = collective
        .gather_bytes(&serde_json::to_vec(&mine)?)
        .ok_or("only rank 0 gathers")?;
    let mut out: Vec<Option<f64>> = vec![None; archs.len()];
    for bytes in gathered {
        let part: Vec<(usize, f64)> = serde_json::from_slice(&bytes)?;
        for (i, accuracy) in part {
            *out.get_mut(i)
                .ok_or("a rank answered for a candidate it was not sent")? = Some(accuracy);
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.ok_or_else(|| format!("no rank scored candidate {i} ({})", archs[i]).into())
        })
        .collect()
}

/// This rank's share of `archs`: `(index, accuracy)` for every index `i` with `i mod N = rank`.
fn share(
    collective: &dyn Collective,
    archs: &[Arch],
    follower: &mut dyn Follower,
) -> Result<Vec<(usize, f64)>, OracleError> {
    let (rank, ranks) = (collective.rank(), collective.size());
    archs
        .iter()
        .enumerate()
        .skip(rank)
        .step_by(ranks)
        .map(|(i, arch)| Ok((i, follower.local_accuracy(arch)?)))
        .collect()
}

/// Ranks other than 0: does what rank 0 sends until [`Work::Done`].
pub fn follow(collective: &dyn Collective, follower: &mut dyn Follower) -> anyhow::Result<()> {
    loop {
        let mut bytes = Vec::new();
        collective.broadcast_bytes(&mut bytes);
        match serde_json::from_slice::<Work>(&bytes)? {
            Work::Evaluate(strings) => {
                let archs = strings
                    .iter()
                    .map(|s| s.parse::<Arch>())
                    .collect::<Result<Vec<_>, _>>()?;
                let mine =
                    share(collective, &archs, follower).map_err(anyhow::Error::from_boxed)?;
                collective.gather_bytes(&serde_json::to_vec(&mine)?);
            }
            Work::Finetune { space, stage } => follower
                .finetune_together(&space, stage)
                .map_err(anyhow::Error::from_boxed)?,
            Work::Done => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsconas_train::SingleProcess;

    struct Scorer(Vec<String>);

    impl Follower for Scorer {
        fn local_accuracy(&mut self, arch: &Arch) -> Result<f64, OracleError> {
            self.0.push(arch.to_string());
            Ok(arch
                .choices()
                .iter()
                .map(|c| c.scale().value())
                .sum::<f64>()
                / 20.0)
        }
        fn finetune_together(&mut self, _: &SearchSpace, _: usize) -> Result<(), OracleError> {
            Ok(())
        }
    }

    #[test]
    fn one_rank_scores_everything_in_order() {
        let space = SearchSpace::full();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let archs: Vec<Arch> = (0..5).map(|_| space.sample(&mut rng)).collect();
        let mut scorer = Scorer(Vec::new());
        let got = accuracies(&SingleProcess, &archs, &mut scorer).expect("scores");
        let want: Vec<f64> = archs
            .iter()
            .map(|a| a.choices().iter().map(|c| c.scale().value()).sum::<f64>() / 20.0)
            .collect();
        assert_eq!(got, want);
        assert_eq!(scorer.0.len(), 5);
        let work = Work::Evaluate(archs.iter().map(ToString::to_string).collect());
        let back: Work =
            serde_json::from_slice(&serde_json::to_vec(&work).expect("json")).expect("json");
        assert_eq!(back, work);
    }
}
