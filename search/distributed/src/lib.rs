//! How an `hsconas` process was launched and the job it belongs to.
//!
//! Clusters start data-parallel jobs with an MPI launcher (`mpirun`/`mpiexec` of Open MPI or MPICH) or with
//! Slurm's `srun`, which start N copies of the same command and tell each its rank through the environment.
//! [`Launch::detect`] reads that environment; [`Job::init`] turns it into the
//! [`Collective`](hsconas_train::Collective) the training loop and the search use:
//!
//! - one process (no launcher, or a launcher with one rank): [`SingleProcess`], no MPI involved;
//! - N > 1 ranks, built with the `mpi` feature: MPI's world communicator ([`mpi_job`], through the `mpi`
//!   crate, which binds the MPI library the build found: Open MPI or MPICH);
//! - N > 1 ranks without the feature: an error, since N copies would otherwise train N independent
//!   networks into the same folder.

#[cfg(feature = "mpi")]
pub mod mpi_job;

use hsconas_train::{Collective, SingleProcess};

/// Why a job could not start.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// Started by a launcher with several ranks, but this build has no MPI.
    #[error(
        "started by {launcher} as one of {ranks} ranks, but this hsconas was built without MPI: rebuild \
         with `cargo build --release --features hsconas/mpi` (after `scripts/setup.sh --mpi`), or run one \
         process"
    )]
    NotBuiltWithMpi {
        /// The launcher the environment names.
        launcher: &'static str,
        /// Its number of ranks.
        ranks: usize,
    },
    /// MPI could not be initialised (already initialised, or the library refused).
    #[error("MPI could not be initialised: {0}")]
    Init(String),
    /// The launcher's environment and MPI disagree on the job.
    #[error(
        "{launcher} says this is rank {rank} of {ranks}, MPI says rank {mpi_rank} of {mpi_ranks}: was \
         this build linked against another MPI than the launcher's (Open MPI and MPICH do not mix)?"
    )]
    Disagree {
        /// The launcher.
        launcher: &'static str,
        /// Rank from the environment.
        rank: usize,
        /// Size from the environment.
        ranks: usize,
        /// Rank from MPI.
        mpi_rank: usize,
        /// Size from MPI.
        mpi_ranks: usize,
    },
}

/// What the environment says about how this process was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    /// The launcher (`"Open MPI"`, `"MPICH (Hydra)"`, `"Slurm (srun)"`), `None` without one.
    pub launcher: Option<&'static str>,
    /// This process's rank.
    pub rank: usize,
    /// How many processes the launcher started.
    pub ranks: usize,
}

impl Launch {
    /// Reads the launcher's variables from the environment of this process.
    pub fn detect() -> Launch {
        Launch::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Launch::detect`] with the variables given by `var` (for tests). Checked in this order: Open MPI's
    /// `OMPI_COMM_WORLD_{RANK,SIZE}`, MPICH/Hydra's `PMI_{RANK,SIZE}`, Slurm's `SLURM_{PROCID,NTASKS}`
    /// (only inside a job step, i.e. with `SLURM_STEP_ID`, so that a batch script itself is one process).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Launch {
        let number = |name: &str| var(name).and_then(|v| v.trim().parse::<usize>().ok());
        let candidates: [(&'static str, &str, &str, Option<&str>); 3] = [
            (
                "Open MPI",
                "OMPI_COMM_WORLD_RANK",
                "OMPI_COMM_WORLD_SIZE",
                None,
            ),
            ("MPICH (Hydra)", "PMI_RANK", "PMI_SIZE", None),
            (
                "Slurm (srun)",
                "SLURM_PROCID",
                "SLURM_NTASKS",
                Some("SLURM_STEP_ID"),
            ),
        ];
        for (launcher, rank, size, needs) in candidates {
            if needs.is_some_and(|n| var(n).is_none()) {
                continue;
            }
            if let (Some(rank), Some(ranks)) = (number(rank), number(size)) {
                if ranks >= 1 && rank < ranks {
                    return Launch {
                        launcher: Some(launcher),
                        rank,
                        ranks,
                    };
                }
            }
        }
        Launch {
            launcher: None,
            rank: 0,
            ranks: 1,
        }
    }
}

/// This process's place in its job, for as long as the job runs (with MPI, dropping it finalises MPI).
pub struct Job {
    inner: Inner,
}

enum Inner {
    Single(SingleProcess),
    #[cfg(feature = "mpi")]
    Mpi(mpi_job::MpiCollective),
}

impl Job {
    /// The job this process belongs to, from [`Launch::detect`]; see the crate documentation.
    pub fn init() -> Result<Job, DistributedError> {
        Job::for_launch(Launch::detect())
    }

    /// A single process, whatever the environment says.
    pub fn single() -> Job {
        Job {
            inner: Inner::Single(SingleProcess),
        }
    }

    /// The job for `launch`.
    pub fn for_launch(launch: Launch) -> Result<Job, DistributedError> {
        if launch.ranks <= 1 {
            return Ok(Job::single());
        }
        let launcher = launch.launcher.unwrap_or("a launcher");
        #[cfg(feature = "mpi")]
        {
            let mpi = mpi_job::MpiCollective::init()?;
            if (mpi.rank(), mpi.size()) != (launch.rank, launch.ranks) {
                return Err(DistributedError::Disagree {
                    launcher,
                    rank: launch.rank,
                    ranks: launch.ranks,
                    mpi_rank: mpi.rank(),
                    mpi_ranks: mpi.size(),
                });
            }
            Ok(Job {
                inner: Inner::Mpi(mpi),
            })
        }
        #[cfg(not(feature = "mpi"))]
        Err(DistributedError::NotBuiltWithMpi {
            launcher,
            ranks: launch.ranks,
        })
    }

    /// The collective operations of this job.
    pub fn collective(&self) -> &dyn Collective {
        match &self.inner {
            Inner::Single(s) => s,
            #[cfg(feature = "mpi")]
            Inner::Mpi(m) => m,
        }
    }

    /// Ends the whole job after a failure on this rank: with MPI every rank is stopped (`MPI_Abort`), so
    /// that the others do not wait forever for this one; alone, the process exits with `code`.
    pub fn abort(&self, code: i32) -> ! {
        match &self.inner {
            Inner::Single(_) => std::process::exit(code),
            #[cfg(feature = "mpi")]
            Inner::Mpi(m) => m.abort(code),
        }
    }

    /// One line for logs: `1 process` or `rank 0 of 2 (MPI: Open MPI v4.1.4, ...)`.
    pub fn describe(&self) -> String {
        match &self.inner {
            Inner::Single(_) => "1 process".into(),
            #[cfg(feature = "mpi")]
            Inner::Mpi(m) => format!("rank {} of {} ({})", m.rank(), m.size(), m.library()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn launch(vars: &[(&str, &str)]) -> Launch {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Launch::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn launchers_are_read_from_their_variables() {
        assert_eq!(launch(&[]).ranks, 1);
        assert_eq!(launch(&[]).launcher, None);
        let ompi = launch(&[("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "2")]);
        assert_eq!(
            (ompi.launcher, ompi.rank, ompi.ranks),
            (Some("Open MPI"), 1, 2)
        );
        let hydra = launch(&[("PMI_RANK", "3"), ("PMI_SIZE", "4")]);
        assert_eq!((hydra.rank, hydra.ranks), (3, 4));
        let batch_script = launch(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "8")]);
        assert_eq!(
            batch_script.ranks, 1,
            "a batch script outside srun is one process"
        );
        let srun = launch(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_STEP_ID", "0"),
        ]);
        assert_eq!(
            (srun.launcher, srun.rank, srun.ranks),
            (Some("Slurm (srun)"), 5, 8)
        );
        let broken = launch(&[("PMI_RANK", "4"), ("PMI_SIZE", "4")]);
        assert_eq!(broken.ranks, 1, "a rank outside the job is ignored");
    }

    #[test]
    fn one_rank_is_a_single_process() {
        let job =
            Job::for_launch(launch(&[("PMI_RANK", "0"), ("PMI_SIZE", "1")])).expect("one rank");
        assert_eq!(job.collective().size(), 1);
        assert_eq!(job.describe(), "1 process");
    }

    #[cfg(not(feature = "mpi"))]
    #[test]
    fn several_ranks_without_mpi_are_refused() {
        let err = Job::for_launch(launch(&[
            ("OMPI_COMM_WORLD_RANK", "0"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
        ]))
        .err()
        .expect("refused");
        let text = err.to_string();
        assert!(
            text.contains("Open MPI") && text.contains("2 ranks"),
            "{text}"
        );
    }
}
