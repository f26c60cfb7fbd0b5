//! The processes of a data-parallel job, as training and the search see them: a rank among `size`
//! identical processes and the few collective operations they need (sum, broadcast, gather).
//!
//! This crate does not depend on any message-passing library: a job started by `mpirun`/`srun` gets an
//! implementation from `hsconas-distributed` (MPI), and everything else runs with [`SingleProcess`], for
//! which every operation is the identity. Contract of every implementation: the operations are collective
//! (every rank calls them in the same order with buffers of the same length, except where said), they
//! block until the result is there, and every rank receives bit-identical results, so that replicas that
//! apply the same update stay identical. A rank that fails ends the whole job (the launcher's business).

use tch::{Device, Kind, Tensor};

/// The ranks of one job and their collective operations.
pub trait Collective {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// How many processes the job has (1 for a plain process).
    fn size(&self) -> usize;
    /// Element-wise sum of `values` over all ranks, written back into `values` on every rank.
    fn all_reduce_sum(&self, values: &mut [f32]);
    /// [`Collective::all_reduce_sum`] in double precision (counters and loss sums).
    fn all_reduce_sum_f64(&self, values: &mut [f64]);
    /// Rank 0's `bytes` on every rank (the other ranks' input is replaced; its length need not match).
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>);
    /// Every rank's `bytes`, in rank order, on rank 0 (`None` on the others); lengths may differ.
    fn gather_bytes(&self, bytes: &[u8]) -> Option<Vec<Vec<u8>>>;
    /// Whether this rank writes files and prints progress (rank 0).
    fn is_root(&self) -> bool {
        self.rank() == 0
    }
    /// Mean of `values` over all ranks, in place.
    fn all_reduce_mean(&self, values: &mut [f32]) {
        if self.size() > 1 {
            self.all_reduce_sum(values);
            let n = self.size() as f32;
            values.iter_mut().for_each(|v| *v /= n);
        }
    }
}

/// The element-wise mean of `tensors` over the ranks, as new tensors of the same shapes, kinds and devices:
/// they are flattened into one `f32` buffer on the CPU (in the given order, which must be the same on every
/// rank), all-reduced once, and split again. Returns them with the buffer's length.
pub fn mean_over_ranks(tensors: &[&Tensor], collective: &dyn Collective) -> (Vec<Tensor>, usize) {
    if tensors.is_empty() {
        return (Vec::new(), 0);
    }
    let flat = tch::no_grad(|| {
        let parts: Vec<Tensor> = tensors
            .iter()
            .map(|t| t.detach().to_kind(Kind::Float).reshape([-1]))
            .collect();
        Tensor::cat(&parts, 0).to_device(Device::Cpu)
    });
    let mut values = Vec::<f32>::try_from(&flat).unwrap_or_default();
    collective.all_reduce_mean(&mut values);
    let mut offset = 0usize;
    let means = tensors
        .iter()
        .map(|t| {
            let n = t.numel();
            let mean = Tensor::from_slice(&values[offset..offset + n])
                .view(t.size().as_slice())
                .to_kind(t.kind())
                .to_device(t.device());
            offset += n;
            mean
        })
        .collect();
    (means, values.len())
}

/// One process on its own: rank 0 of 1.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _values: &mut [f32]) {}
    fn all_reduce_sum_f64(&self, _values: &mut [f64]) {}
    fn broadcast_bytes(&self, _bytes: &mut Vec<u8>) {}
    fn gather_bytes(&self, bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
        Some(vec![bytes.to_vec()])
    }
}

/// How the peak learning rate follows the number of ranks (each rank trains on `--batch-size` images, so
/// the global batch is `size` times larger).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum LrScaling {
    /// The linear scaling rule (Goyal et al., 2017): peak rate times the number of ranks, reached after the
    /// warm-up.
    #[default]
    Linear,
    /// The same peak rate whatever the number of ranks.
    None,
}

impl LrScaling {
    /// The peak learning rate of a job of `ranks` processes whose single-process rate is `lr`.
    pub fn peak(self, lr: f64, ranks: usize) -> f64 {
        match self {
            LrScaling::Linear => lr * ranks.max(1) as f64,
            LrScaling::None => lr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_process_is_the_identity() {
        let one = SingleProcess;
        let mut v = vec![1.0f32, -2.5];
        one.all_reduce_mean(&mut v);
        one.all_reduce_sum(&mut v);
        assert_eq!(v, [1.0, -2.5]);
        let mut b = vec![7u8];
        one.broadcast_bytes(&mut b);
        assert_eq!(b, [7]);
        assert_eq!(one.gather_bytes(&[1, 2]), Some(vec![vec![1, 2]]));
        assert!(one.is_root());
    }

    #[test]
    fn linear_scaling_multiplies_the_peak_rate_by_the_ranks() {
        assert_eq!(LrScaling::Linear.peak(0.05, 4), 0.2);
        assert_eq!(LrScaling::Linear.peak(0.05, 1), 0.05);
        assert_eq!(LrScaling::None.peak(0.05, 4), 0.05);
    }
}
