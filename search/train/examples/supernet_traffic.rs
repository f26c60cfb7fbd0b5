//! What one data-parallel supernet step sends and computes, for the scaling model of docs/scale-out.md:
//! for the CIFAR-10 supernet (layout A, input 32, 10 classes) and the ImageNet one (layout A, input 224,
//! 1000 classes), the supernet's parameters, and over sampled paths the gradient values one step
//! all-reduces (every tensor the path touches: a sliced channel scale still has the whole tensor's
//! gradient) and the path's multiply-accumulates per image. Prints JSON.
//!
//! `cargo run --release -p hsconas-train --example supernet_traffic -- --paths 20`

use clap::Parser;
use hsconas_models::{build, Layout, NetConfig, SearchSpace};
use hsconas_train::nn::{Mode, Supernet};
use hsconas_train::supernet_run::step_arch;
use serde_json::json;
use tch::{nn, Device, Kind, Tensor};

#[derive(Parser)]
struct Args {
    /// Sampled paths per supernet (the training steps' own sampling, steps 0..paths, seed 0).
    #[arg(long, default_value_t = 20)]
    paths: u64,
}

fn stats(values: &[f64]) -> serde_json::Value {
    let n = values.len().max(1) as f64;
    json!({
        "mean": values.iter().sum::<f64>() / n,
        "min": values.iter().copied().fold(f64::INFINITY, f64::min),
        "max": values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tch::set_num_threads(1);
    let space = SearchSpace::full();
    let mut rows = Vec::new();
    for (name, input_size, classes) in [("cifar10", 32, 10), ("imagenet", 224, 1000)] {
        let config = NetConfig {
            layout: Layout::A,
            input_size,
            classes,
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let supernet = Supernet::new(&vs.root(), config)?;
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let total: i64 = params.iter().map(|(_, t)| t.numel() as i64).sum();
        let inputs: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
        let (mut floats, mut macs) = (Vec::new(), Vec::new());
        for step in 0..args.paths {
            let arch = step_arch(&space, 0, step);
            // Two images: batch norm in training mode needs more than one value per channel.
            let x = Tensor::zeros(
                [2, 3, input_size as i64, input_size as i64],
                (Kind::Float, Device::Cpu),
            );
            let loss = supernet.forward(&x, &arch, Mode::Train).sum(Kind::Float);
            let grads = Tensor::run_backward(&[loss], &inputs, false, false);
            let reduced: usize = grads
                .iter()
                .filter(|g| g.defined())
                .map(Tensor::numel)
                .sum();
            floats.push(reduced as f64);
            macs.push(build::network(&arch, &config)?.macs() as f64);
        }
        rows.push(json!({
            "supernet": name,
            "input_size": input_size,
            "classes": classes,
            "layout": "A",
            "supernet_params": total,
            "paths": args.paths,
            "allreduced_floats_per_step": stats(&floats),
            "path_macs_per_image": stats(&macs),
        }));
    }
    println!("{}", serde_json::to_string_pretty(&rows)?);
    Ok(())
}
