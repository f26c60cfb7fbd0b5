//! MPI's world communicator as a [`Collective`]: every operation is one or two MPI collectives on
//! `MPI_COMM_WORLD`, called from the main thread only (MPI is initialised with `MPI_THREAD_FUNNELED`; the
//! data loader's threads never call MPI).
//!
//! A rank waiting for a broadcast (the next command of a distributed search) sleeps between checks rather
//! than spinning, so that it leaves the CPU to latency measurements; the other operations block in MPI.
//!
//! MPI counts are C `int`s: a single all-reduce or gather holds at most 2^31 - 1 elements (8 GiB of
//! gradients); broadcasts of larger byte strings are sent in pieces.

use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;

use hsconas_train::Collective;

use crate::DistributedError;

/// Largest piece of a broadcast, bytes.
const PIECE: usize = 1 << 30;

/// How long a rank waiting for a broadcast sleeps between checks.
const IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// The world communicator of an MPI job; dropping it finalises MPI.
pub struct MpiCollective {
    // Field order matters: the communicator is dropped before the universe finalises MPI.
    world: SimpleCommunicator,
    _universe: Universe,
}

impl MpiCollective {
    /// Initialises MPI (once per process).
    pub fn init() -> Result<MpiCollective, DistributedError> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or_else(|| DistributedError::Init("MPI was already initialised".into()))?;
        Ok(MpiCollective {
            world: universe.world(),
            _universe: universe,
        })
    }

    /// The MPI library's own version line (first line of `MPI_Get_library_version`).
    pub fn library(&self) -> String {
        mpi::environment::library_version()
            .ok()
            .and_then(|v| {
                v.lines()
                    .next()
                    .map(|l| l.trim().trim_end_matches(',').to_string())
            })
            .unwrap_or_else(|| "MPI".into())
    }

    /// `MPI_Abort` on the world: every rank of the job ends with `code`.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_reduce_sum(&self, values: &mut [f32]) {
        let send = values.to_vec();
        self.world
            .all_reduce_into(&send[..], values, SystemOperation::sum());
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) {
        let send = values.to_vec();
        self.world
            .all_reduce_into(&send[..], values, SystemOperation::sum());
    }

    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        let root = self.world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        // The ranks that wait poll with short sleeps instead of spinning in MPI's progress loop: a search's
        // workers wait here while rank 0 measures latencies, possibly on this very machine.
        mpi::request::scope(|scope| {
            let mut request = root.immediate_broadcast_into(scope, &mut len);
            loop {
                match request.test() {
                    Ok(_) => break,
                    Err(pending) => {
                        request = pending;
                        std::thread::sleep(IDLE_POLL);
                    }
                }
            }
        });
        bytes.resize(len as usize, 0);
        for piece in bytes.chunks_mut(PIECE) {
            root.broadcast_into(piece);
        }
    }

    fn gather_bytes(&self, bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
        let root = self.world.process_at_rank(0);
        let len = bytes.len() as Count;
        if self.rank() != 0 {
            root.gather_into(&len);
            root.gather_varcount_into(bytes);
            return None;
        }
        let mut counts: Vec<Count> = vec![0; self.size()];
        root.gather_into_root(&len, &mut counts[..]);
        let displs: Vec<Count> = counts
            .iter()
            .scan(0, |offset, &c| {
                let start = *offset;
                *offset += c;
                Some(start)
            })
            .collect();
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let mut all = vec![0u8; total];
        {
            let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            root.gather_varcount_into_root(bytes, &mut partition);
        }
        Some(
            counts
                .iter()
                .zip(&displs)
                .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
                .collect(),
        )
    }
}
