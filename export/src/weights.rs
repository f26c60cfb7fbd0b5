//! Weights for a layer graph: a seeded random initialisation and the check that a set of tensors fits
//! a graph. The container itself, [`Weights`], lives in `hsconas-foundation`.

use hsconas_foundation::{HostTensor, Weights};
use hsconas_models::graph::{Graph, ParamKind, ParamSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::ExportError;

/// What weights are for a graph (`use hsconas_export::GraphWeights` to call these on [`Weights`]).
pub trait GraphWeights: Sized {
    /// Every tensor the graph needs, drawn from a seeded generator (the same seed gives the same weights).
    ///
    /// Convolutions get He-normal kernels, batch norms plausible running statistics (mean near 0,
    /// variance near 1) and scales near 1, so that activations stay in a sane range through deep networks
    /// and outputs are not degenerate.
    fn random(graph: &Graph, seed: u64) -> Self;

    /// The tensor for `spec`, checked against its shape.
    fn require(&self, spec: &ParamSpec) -> Result<&HostTensor, ExportError>;

    /// Checks that every tensor the graph needs is present with the right shape (extra tensors are fine).
    fn check(&self, graph: &Graph) -> Result<(), ExportError>;
}

impl GraphWeights for Weights {
    fn random(graph: &Graph, seed: u64) -> Weights {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut weights = Weights::default();
        for spec in graph.params() {
            let n = spec.numel();
            let normal = |rng: &mut ChaCha8Rng, std: f64| -> Vec<f32> {
                let d = Normal::new(0.0, std)
                    .unwrap_or_else(|_| unreachable!("std is finite and positive"));
                (0..n).map(|_| d.sample(rng) as f32).collect()
            };
            let uniform = |rng: &mut ChaCha8Rng, lo: f32, hi: f32| -> Vec<f32> {
                (0..n).map(|_| rng.random_range(lo..hi)).collect()
            };
            let data = match spec.kind {
                ParamKind::ConvWeight => {
                    let fan_in: usize = spec.shape[1..].iter().product();
                    normal(&mut rng, (2.0 / fan_in as f64).sqrt())
                }
                ParamKind::LinearWeight => normal(&mut rng, (1.0 / spec.shape[1] as f64).sqrt()),
                ParamKind::ConvBias
                | ParamKind::LinearBias
                | ParamKind::BnBias
                | ParamKind::BnMean => normal(&mut rng, 0.1),
                ParamKind::BnWeight => uniform(&mut rng, 0.6, 1.4),
                ParamKind::BnVar => uniform(&mut rng, 0.6, 1.6),
            };
            weights.insert(
                spec.name,
                HostTensor {
                    shape: spec.shape,
                    data,
                },
            );
        }
        weights
    }

    fn require(&self, spec: &ParamSpec) -> Result<&HostTensor, ExportError> {
        let t = self
            .get(&spec.name)
            .ok_or_else(|| ExportError::MissingTensor {
                name: spec.name.clone(),
                shape: spec.shape.clone(),
            })?;
        if t.shape != spec.shape {
            return Err(ExportError::WrongShape {
                name: spec.name.clone(),
                expected: spec.shape.clone(),
                found: t.shape.clone(),
            });
        }
        Ok(t)
    }

    fn check(&self, graph: &Graph) -> Result<(), ExportError> {
        graph
            .params()
            .iter()
            .try_for_each(|spec| self.require(spec).map(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsconas_models::{build, Arch, NetConfig, Op, Scale};

    fn small_graph() -> Graph {
        let arch = Arch::uniform(Op::Shuffle3, Scale::FULL).expect("valid");
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

    #[test]
    fn random_weights_are_seeded_and_complete() {
        let g = small_graph();
        let a = Weights::random(&g, 3);
        assert_eq!(a, Weights::random(&g, 3));
        assert_ne!(a, Weights::random(&g, 4));
        a.check(&g).expect("complete");
        assert_eq!(a.len(), g.params().len());
    }

    #[test]
    fn weights_that_do_not_fit_the_graph_are_named() {
        let g = small_graph();
        let w = Weights::random(&g, 1);
        let bytes = w.to_safetensors_bytes();
        assert_eq!(Weights::from_safetensors_bytes(&bytes).expect("parses"), w);

        let mut missing = w.clone();
        missing.remove("layers.3.main.0.weight");
        let err = missing.check(&g).expect_err("missing").to_string();
        assert!(err.contains("layers.3.main.0.weight"), "{err}");

        let mut wrong = w;
        wrong.insert(
            "head.fc.weight",
            HostTensor {
                shape: vec![10, 3],
                data: vec![0.0; 30],
            },
        );
        let err = wrong.check(&g).expect_err("wrong shape").to_string();
        assert!(
            err.contains("head.fc.weight") && err.contains("[10, 1024]"),
            "{err}"
        );
    }
}
