//! Weight initialisation schemes applied to a whole `VarStore` after its networks were created.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// How convolution kernels start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum InitScheme {
    /// Kaiming-normal with fan out (torchvision's choice; what the networks are created with).
    #[default]
    Kaiming,
    /// Single Path One-Shot's: kernels `N(0, 1 / in_channels_per_group)`, so pointwise kernels start small
    /// and depthwise ones large (every convolution is followed by a batch norm, so this sets each layer's
    /// effective learning rate rather than its output scale).
    Spos,
}

impl InitScheme {
    /// Whether this is [`InitScheme::Kaiming`] (the networks' own initialisation).
    pub fn is_kaiming(&self) -> bool {
        *self == InitScheme::Kaiming
    }
}

/// Re-draws every convolution kernel (4-D `*.weight`) of `vs` under `scheme`, in name order from a generator
/// seeded with `seed` (not libtorch's global one, so the result depends on nothing else); other tensors
/// are kept.
pub fn initialise(vs: &nn::VarStore, scheme: InitScheme, seed: u64) {
    if scheme == InitScheme::Kaiming {
        return;
    }
    // Sorted by name: `variables()` is a hash map, and the draws must land on the same tensors in every
    // process for a seed to give the same network.
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    tch::no_grad(|| {
        for (name, t) in variables {
            let size = t.size();
            if size.len() == 4 && name.ends_with("weight") {
                let normal = Normal::new(0.0, 1.0 / size[1] as f64)
                    .unwrap_or_else(|_| unreachable!("a positive, finite standard deviation"));
                let values: Vec<f32> = (0..t.numel())
                    .map(|_| normal.sample(&mut rng) as f32)
                    .collect();
                let fresh = Tensor::from_slice(&values)
                    .view(size.as_slice())
                    .to_kind(t.kind())
                    .to_device(t.device());
                t.shallow_clone().copy_(&fresh);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn spos_scales_kernels_by_their_input_channels() {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let pointwise = (&root / "pw").var("weight", &[256, 128, 1, 1], nn::Init::Const(1.0));
        let depthwise = (&root / "dw").var("weight", &[128, 1, 3, 3], nn::Init::Const(1.0));
        let bn = (&root / "bn").var("weight", &[128], nn::Init::Const(1.0));
        initialise(&vs, InitScheme::Spos, 1);
        let std = |t: &Tensor| f64::try_from(t.to_kind(Kind::Double).std(true)).expect("scalar");
        assert!(
            (std(&pointwise) - 1.0 / 128.0).abs() < 0.001,
            "{}",
            std(&pointwise)
        );
        assert!((std(&depthwise) - 1.0).abs() < 0.05, "{}", std(&depthwise));
        assert_eq!(f64::try_from(bn.sum(Kind::Double)).expect("scalar"), 128.0);
    }

    #[test]
    fn a_seed_gives_the_same_kernels_whatever_the_map_order() {
        let draw = || {
            let vs = nn::VarStore::new(Device::Cpu);
            for i in 0..16 {
                let _ = (&vs.root() / format!("conv{i}")).var(
                    "weight",
                    &[4, 2, 1, 1],
                    nn::Init::Const(0.0),
                );
            }
            initialise(&vs, InitScheme::Spos, 7);
            let mut all: Vec<(String, Vec<f32>)> = vs
                .variables()
                .into_iter()
                .map(|(n, t)| (n, Vec::<f32>::try_from(t.view([-1])).expect("f32")))
                .collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            all
        };
        assert_eq!(draw(), draw());
    }
}
