//! The masking semantics of the supernet: for random architectures, the supernet's eval-mode output with
//! masks equals the output of the extracted, sliced stand-alone subnet in libtorch, and the same weights
//! exported to ONNX give the same output in ONNX Runtime.

use hsconas_export::{onnx, BatchDim, OnnxOptions};
use hsconas_models::{build, Layout, NetConfig, SearchSpace};
use hsconas_runtime::backend::{self, BackendConfig, HostTensor};
use hsconas_train::nn::{Mode, Standalone, Supernet};
use rand::SeedableRng;
use tch::{nn, Device, Kind, Tensor};

/// Gives every batch-norm tensor non-trivial values (fresh ones are 1, 0, 0, 1, which would hide
/// mistakes in which channels are kept).
fn perturb_batch_norms(vs: &nn::VarStore) {
    tch::manual_seed(7);
    tch::no_grad(|| {
        for (name, t) in vs.variables() {
            let n = t.size();
            let fresh =
                if name.ends_with("running_var") || (n.len() == 1 && name.ends_with(".weight")) {
                    Tensor::rand(n.as_slice(), (Kind::Float, Device::Cpu)) + 0.5
                } else if name.ends_with("running_mean") || name.ends_with(".bias") {
                    Tensor::randn(n.as_slice(), (Kind::Float, Device::Cpu)) * 0.1
                } else {
                    continue;
                };
            t.shallow_clone().copy_(&fresh);
        }
    });
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.contiguous().view([-1])).expect("f32 tensor")
}

#[test]
fn masked_supernet_equals_sliced_subnet_in_tch_and_onnx_runtime() {
    let config = NetConfig {
        layout: Layout::A,
        input_size: 32,
        classes: 10,
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let supernet = Supernet::new(&vs.root(), config).expect("supernet");
    perturb_batch_norms(&vs);
    let ort = backend::build(&BackendConfig::default()).expect("ONNX Runtime (scripts/setup.sh)");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    tch::manual_seed(3);
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    for _ in 0..4 {
        let arch = SearchSpace::full().sample(&mut rng);
        let from_supernet = tch::no_grad(|| supernet.forward(&x, &arch, Mode::Eval));

        let weights = supernet.extract(&arch).expect("extract");
        let graph = build::network(&arch, &config).expect("graph");
        let sub_vs = nn::VarStore::new(Device::Cpu);
        let mut subnet = Standalone::new(&sub_vs.root(), graph.clone());
        subnet.load(&weights).expect("load");
        let from_subnet = tch::no_grad(|| subnet.forward(&x, Mode::Eval));
        let diff = f64::try_from((&from_supernet - &from_subnet).abs().max()).expect("scalar");
        assert!(
            diff <= 1e-5,
            "{arch}: supernet vs subnet max abs error {diff}"
        );

        let options = OnnxOptions {
            batch: BatchDim::Fixed(2),
            ..OnnxOptions::default()
        };
        let bytes = onnx::to_bytes(&graph, &weights, &options).expect("export");
        let mut model = ort.load(&bytes).expect("ONNX Runtime loads the export");
        let input = HostTensor {
            shape: vec![2, 3, 32, 32],
            data: to_vec(&x),
        };
        let out = model.run(&[input]).expect("runs").remove(0).data;
        let reference = to_vec(&from_supernet);
        let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let worst = out
            .iter()
            .zip(&reference)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst / scale <= 1e-4,
            "{arch}: ONNX Runtime vs supernet relative error {}",
            worst / scale
        );
    }
}
