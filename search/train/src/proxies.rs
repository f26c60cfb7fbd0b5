//! Zero-cost accuracy proxies: scores of an untrained network, computed on one batch (or none), that are
//! meant to rank architectures like their trained accuracy does, at a fraction of a second each.
//!
//! Every proxy scores a fresh network with a seeded initialisation (`GraphWeights::random`: He-normal
//! kernels; batch-norm running statistics reset to mean 0 and variance 1), so a score depends only on
//! the architecture, the seed and the batch:
//!
//! - **synflow** (Tanaka et al. 2020; as a NAS proxy, Abdelfattah et al. 2021): every tensor replaced by its
//!   absolute value, an all-ones input of one image in double precision, `R = sum(output)`; the score is
//!   `sum |theta * dR/dtheta|` over convolution and linear weights. Batch norms use their (reset) running
//!   statistics. It never looks at the data.
//! - **snip** (Lee et al. 2019): `sum |theta * dL/dtheta|` over the same weights, `L` the cross-entropy of the
//!   batch (batch norms on batch statistics).
//! - **grad-norm**: the sum over those weight tensors of the Euclidean norm of `dL/dtheta`.
//! - **naswot** (Mellor et al. 2021): the binary code of every image (which ReLU outputs are positive),
//!   `K[i][j]` = the number of units on which images i and j agree; the score is `log |det K|`.

use std::collections::HashMap;

use hsconas_export::GraphWeights;
use hsconas_foundation::Weights;
use hsconas_models::graph::{Activation, Graph, NodeOp, ParamKind};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::nn::{Mode, Standalone};
use crate::TrainError;

/// A zero-cost proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proxy {
    /// Synaptic flow of the all-positive network (data-free).
    Synflow,
    /// Connection sensitivity on one batch.
    Snip,
    /// Norms of the loss gradients on one batch.
    GradNorm,
    /// Log-determinant of the ReLU activation-pattern kernel of one batch.
    Naswot,
}

impl Proxy {
    /// Every proxy.
    pub const ALL: [Proxy; 4] = [Proxy::Synflow, Proxy::Snip, Proxy::GradNorm, Proxy::Naswot];

    /// Its name on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            Proxy::Synflow => "synflow",
            Proxy::Snip => "snip",
            Proxy::GradNorm => "grad-norm",
            Proxy::Naswot => "naswot",
        }
    }
}

/// A fresh network of `graph` with the seeded initialisation, in `kind` on the CPU.
fn fresh(graph: &Graph, seed: u64, kind: Kind) -> Result<(nn::VarStore, Standalone), TrainError> {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let mut net = Standalone::new(&vs.root(), graph.clone());
    net.load(&<Weights as GraphWeights>::random(graph, seed))?;
    net.reset_running_stats();
    if kind == Kind::Double {
        vs.double();
    }
    Ok((vs, net))
}

/// The convolution and linear weights of `graph`, as tensors of `net`.
fn weight_tensors(graph: &Graph, net: &Standalone) -> Result<Vec<Tensor>, TrainError> {
    graph
        .params()
        .into_iter()
        .filter(|p| matches!(p.kind, ParamKind::ConvWeight | ParamKind::LinearWeight))
        .map(|p| {
            net.module()
                .tensor(&p.name)
                .map(Tensor::shallow_clone)
                .ok_or(TrainError::MissingTensor(p.name))
        })
        .collect()
}

/// `proxy` of the network `graph` describes, initialised with `seed`, on `images` (`[n, c, h, w]`, the
/// network's input normalisation applied) with their `labels` (`[n]`, class indices). Synflow only uses
/// the images' shape. Larger is better for every proxy.
pub fn score(
    proxy: Proxy,
    graph: &Graph,
    images: &Tensor,
    labels: &Tensor,
    seed: u64,
) -> Result<f64, TrainError> {
    match proxy {
        Proxy::Synflow => synflow(graph, images, seed),
        Proxy::Snip | Proxy::GradNorm => gradient_proxy(proxy, graph, images, labels, seed),
        Proxy::Naswot => naswot(graph, images, seed),
    }
}

fn synflow(graph: &Graph, images: &Tensor, seed: u64) -> Result<f64, TrainError> {
    let (vs, net) = fresh(graph, seed, Kind::Double)?;
    synflow_of(&vs, &net, graph, images.size())
}

/// Synflow of `net` (its tensors in `vs`, double precision) for inputs shaped like `shape`.
fn synflow_of(
    vs: &nn::VarStore,
    net: &Standalone,
    graph: &Graph,
    mut shape: Vec<i64>,
) -> Result<f64, TrainError> {
    tch::no_grad(|| {
        for (_, t) in vs.variables() {
            let _ = t.shallow_clone().abs_();
        }
    });
    shape[0] = 1;
    let ones = Tensor::ones(shape.as_slice(), (Kind::Double, Device::Cpu));
    net.forward(&ones, Mode::Eval).sum(Kind::Double).backward();
    let mut total = 0.0;
    for w in weight_tensors(graph, net)? {
        total += f64::try_from((&w * w.grad()).abs().sum(Kind::Double))?;
    }
    Ok(total)
}

fn gradient_proxy(
    proxy: Proxy,
    graph: &Graph,
    images: &Tensor,
    labels: &Tensor,
    seed: u64,
) -> Result<f64, TrainError> {
    let (_vs, net) = fresh(graph, seed, Kind::Float)?;
    let logits = net.forward(&images.to_kind(Kind::Float), Mode::Train);
    logits.cross_entropy_for_logits(labels).backward();
    let mut total = 0.0;
    for w in weight_tensors(graph, &net)? {
        let g = w.grad();
        let term = match proxy {
            Proxy::Snip => (&w * &g).abs().sum(Kind::Double),
            _ => g.to_kind(Kind::Double).norm(),
        };
        total += f64::try_from(term)?;
    }
    Ok(total)
}

fn naswot(graph: &Graph, images: &Tensor, seed: u64) -> Result<f64, TrainError> {
    let (_vs, net) = fresh(graph, seed, Kind::Float)?;
    let n = images.size()[0];
    let kernel = tch::no_grad(|| {
        let mut kernel = Tensor::zeros([n, n], (Kind::Double, Device::Cpu));
        let _logits = net.module().forward_observed(
            &images.to_kind(Kind::Float),
            Mode::Train,
            &HashMap::new(),
            &mut |node, y| {
                if matches!(node.op, NodeOp::Act(Activation::Relu | Activation::Relu6)) {
                    let codes = y.gt(0.0).to_kind(Kind::Double).view([n, -1]);
                    let opposite: Tensor = codes.ones_like() - &codes;
                    kernel += codes.matmul(&codes.tr()) + opposite.matmul(&opposite.tr());
                }
            },
        );
        kernel
    });
    let (_, log_abs_det) = kernel.slogdet();
    Ok(f64::try_from(log_abs_det)?)
}

#[cfg(test)]
mod tests {
    use hsconas_models::{build, Arch, NetConfig, Op, Scale};

    use super::*;

    fn graph(arch: &str) -> Graph {
        let arch: Arch = arch.parse().expect("valid");
        build::network(
            &arch,
            &NetConfig {
                input_size: 32,
                classes: 10,
                ..NetConfig::default()
            },
        )
        .expect("builds")
    }

    fn uniform(op: Op, tenths: u8) -> Graph {
        let arch = Arch::uniform(op, Scale::from_tenths(tenths).expect("scale")).expect("valid");
        graph(&arch.to_string())
    }

    fn batch(seed: i64, n: i64) -> (Tensor, Tensor) {
        tch::manual_seed(seed);
        let x = Tensor::randn([n, 3, 32, 32], (Kind::Float, Device::Cpu));
        let y = Tensor::randint(10, [n], (Kind::Int64, Device::Cpu));
        (x, y)
    }

    #[test]
    fn synflow_ignores_the_data_and_scales_with_the_classifier() {
        let g = uniform(Op::Shuffle3, 3);
        let (a, la) = batch(1, 4);
        let (b, lb) = batch(2, 4);
        let s = score(Proxy::Synflow, &g, &a, &la, 0).expect("synflow");
        assert!(s.is_finite() && s > 0.0, "{s}");
        assert_eq!(s, score(Proxy::Synflow, &g, &b, &lb, 0).expect("synflow"));
        assert_ne!(s, score(Proxy::Synflow, &g, &a, &la, 1).expect("synflow"));

        // R is linear in the classifier's weights, and every term is a weight times a gradient that is
        // proportional to them: doubling the classifier doubles the score.
        let (vs, net) = fresh(&g, 0, Kind::Double).expect("fresh");
        let fc = net.module().tensor("head.fc.weight").expect("classifier");
        tch::no_grad(|| {
            let _ = fc.shallow_clone().g_mul_scalar_(2.0);
        });
        let doubled = synflow_of(&vs, &net, &g, a.size()).expect("synflow");
        assert!((doubled / s - 2.0).abs() < 1e-9, "{doubled} vs 2 x {s}");

        let wide = score(Proxy::Synflow, &uniform(Op::Shuffle3, 6), &a, &la, 0).expect("synflow");
        assert!(
            wide > s,
            "a wider network has more synaptic flow: {wide} vs {s}"
        );
    }

    #[test]
    fn gradient_proxies_are_positive_deterministic_and_use_the_labels() {
        let g = uniform(Op::Shuffle5, 2);
        let (x, y) = batch(3, 8);
        for proxy in [Proxy::Snip, Proxy::GradNorm] {
            let s = score(proxy, &g, &x, &y, 0).expect("score");
            assert!(s.is_finite() && s > 0.0, "{proxy:?}: {s}");
            assert_eq!(s, score(proxy, &g, &x, &y, 0).expect("score"), "{proxy:?}");
            let other_labels = (&y + 1).remainder(10);
            assert_ne!(
                s,
                score(proxy, &g, &x, &other_labels, 0).expect("score"),
                "{proxy:?}"
            );
        }
    }

    #[test]
    fn naswot_needs_distinct_activation_patterns() {
        let g = uniform(Op::Shuffle3, 2);
        let (x, y) = batch(4, 8);
        let distinct = score(Proxy::Naswot, &g, &x, &y, 0).expect("naswot");
        assert!(distinct.is_finite(), "{distinct}");
        // K is a sum of Gram matrices with entries at most the number of units N_A: log det K <= n log N_A.
        let units: i64 = {
            let (_vs, net) = fresh(&g, 0, Kind::Float).expect("fresh");
            let mut units = 0;
            let _logits = net.module().forward_observed(
                &x.narrow(0, 0, 1),
                Mode::Train,
                &HashMap::new(),
                &mut |node, t| {
                    if matches!(node.op, NodeOp::Act(Activation::Relu | Activation::Relu6)) {
                        units += t.numel() as i64;
                    }
                },
            );
            units
        };
        assert!(
            distinct <= 8.0 * (units as f64).ln(),
            "{distinct} vs {units} units"
        );
        // Eight copies of one image share one code: K has rank 1 and no finite log-determinant.
        let same = x.narrow(0, 0, 1).repeat([8, 1, 1, 1]);
        let degenerate = score(Proxy::Naswot, &g, &same, &y, 0).expect("naswot");
        assert!(
            degenerate.is_infinite() || degenerate < distinct - 50.0,
            "{degenerate} vs {distinct}"
        );
    }
}
