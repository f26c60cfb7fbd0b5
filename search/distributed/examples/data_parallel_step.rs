//! Checks one data-parallel SGD step against single-process arithmetic; run it under a launcher:
//!
//! ```sh
//! mpirun -np 2 target/debug/examples/data_parallel_step
//! ```
//!
//! Every rank builds the same small network (same seed) and makes batch `r` (seeded by its rank). Then:
//!
//! 1. identical data: all ranks step on batch 0 with gradients averaged over the ranks; each also steps a
//!    single-process copy on batch 0. The weights must agree within 1e-6 (they are equal with 2 or 4 ranks,
//!    where `(g + g) / 2 = g` exactly; with 3 the mean of equal floats can differ from them by a rounding);
//! 2. different shards: each rank steps on its own batch with averaged gradients; each also computes, in
//!    one process, the gradient of every rank's batch, their mean, and the SGD update with it. The weights
//!    must agree within 1e-6 (the sum is formed in another order);
//! 3. the byte collectives: rank 0's bytes reach every rank, every rank's bytes reach rank 0.
//!
//! Rank 0 prints one JSON line with the largest differences; the exit status is 1 if a check fails.

use hsconas_distributed::Job;
use hsconas_train::sgd::{Sgd, SgdSettings};
use tch::nn::{self, Module};
use tch::{Device, Kind, Reduction, Tensor};

/// Largest difference allowed between the data-parallel and the one-process weights after one step.
const TOLERANCE: f64 = 1e-6;

struct Replica {
    vs: nn::VarStore,
    net: nn::Sequential,
}

fn replica() -> Replica {
    tch::manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let net = nn::seq()
        .add(nn::linear(&root / "fc1", 16, 32, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(&root / "fc2", 32, 4, Default::default()));
    Replica { vs, net }
}

fn batch(rank: usize) -> (Tensor, Tensor) {
    tch::manual_seed(100 + rank as i64);
    let x = Tensor::randn([8, 16], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(4, [8], (Kind::Int64, Device::Cpu));
    (x, y)
}

fn loss(r: &Replica, (x, y): &(Tensor, Tensor)) -> Tensor {
    r.net
        .forward(x)
        .cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, 0.0)
}

fn settings() -> SgdSettings {
    SgdSettings {
        momentum: 0.9,
        weight_decay: 0.0,
        decay_norms_and_biases: false,
        clip_norm: 0.0,
    }
}

/// The variables of `vs` by name, flattened.
fn weights(vs: &nn::VarStore) -> Vec<(String, Vec<f32>)> {
    let mut all: Vec<(String, Vec<f32>)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| {
            (
                n,
                Vec::<f32>::try_from(t.detach().reshape([-1])).expect("floats"),
            )
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn max_diff(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|((_, x), (_, y))| x.iter().zip(y).map(|(p, q)| f64::from((p - q).abs())))
        .fold(0.0, f64::max)
}

fn main() {
    let job = match Job::init() {
        Ok(job) => job,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let c = job.collective();
    let (rank, ranks) = (c.rank(), c.size());
    let lr = 0.1;

    // 1. Identical data on every rank.
    let distributed = replica();
    let mut opt = Sgd::new(&distributed.vs, settings());
    opt.backward_step_averaged(&loss(&distributed, &batch(0)), lr, c);
    let single = replica();
    let mut single_opt = Sgd::new(&single.vs, settings());
    single_opt.backward_step(&loss(&single, &batch(0)), lr);
    let identical = max_diff(&weights(&distributed.vs), &weights(&single.vs));

    // 2. Each rank its own shard, against the mean of the single-process gradients of all shards.
    let distributed = replica();
    let mut opt = Sgd::new(&distributed.vs, settings());
    opt.backward_step_averaged(&loss(&distributed, &batch(rank)), lr, c);
    let reference = replica();
    let mut params: Vec<(String, Tensor)> = reference
        .vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let inputs: Vec<&Tensor> = params.iter().map(|(_, p)| p).collect();
    let mut mean: Vec<Tensor> = inputs.iter().map(|p| p.zeros_like()).collect();
    for r in 0..ranks {
        let grads = Tensor::run_backward(&[loss(&reference, &batch(r))], &inputs, false, false);
        for (m, g) in mean.iter_mut().zip(&grads) {
            *m = &*m + g / ranks as f64;
        }
    }
    tch::no_grad(|| {
        for (p, g) in inputs.iter().zip(&mean) {
            let _ = p.shallow_clone().g_sub_(&(g * lr));
        }
    });
    let shards = max_diff(&weights(&distributed.vs), &weights(&reference.vs));

    // 3. Byte collectives.
    let mut bytes = if rank == 0 {
        b"from rank 0".to_vec()
    } else {
        Vec::new()
    };
    c.broadcast_bytes(&mut bytes);
    let mut broadcast_ok = [f64::from(u8::from(bytes == b"from rank 0"))];
    c.all_reduce_sum_f64(&mut broadcast_ok);
    let gathered = c.gather_bytes(format!("rank {rank}").repeat(rank + 1).as_bytes());

    if rank == 0 {
        let gather_ok = gathered.is_some_and(|all| {
            all.len() == ranks
                && all
                    .iter()
                    .enumerate()
                    .all(|(r, b)| b == format!("rank {r}").repeat(r + 1).as_bytes())
        });
        let ok = identical <= TOLERANCE
            && shards <= TOLERANCE
            && broadcast_ok[0] == ranks as f64
            && gather_ok;
        println!(
            "{{\"ranks\":{ranks},\"identical_data_max_diff\":{identical:e},\"shards_max_diff\":{shards:e},\
             \"tolerance\":{TOLERANCE:e},\"broadcast_ok\":{},\"gather_ok\":{gather_ok},\"ok\":{ok}}}",
            broadcast_ok[0] == ranks as f64
        );
        if !ok {
            std::process::exit(1);
        }
    }
}
