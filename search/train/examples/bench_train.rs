//! Training throughput of one architecture through our `tch` code, on random batches prepared up front
//! (so only the network and the optimiser are timed). `scripts/bench-train.sh` runs it side by side with
//! `scripts/bench/train_pytorch.py`, which trains the same layer graph with PyTorch.
//!
//! `cargo run --release -p hsconas-train --example bench_train -- --arch STR --batch 64 --threads 2`

use clap::Parser;
use hsconas_models::{build, Arch, Layout, NetConfig};
use hsconas_train::nn::{Mode, Standalone};
use hsconas_train::sgd::{Sgd, SgdSettings};
use tch::{nn, Device, Kind, Reduction, Tensor};

#[derive(Parser)]
struct Args {
    /// Architecture string.
    #[arg(long)]
    arch: String,
    /// Layout.
    #[arg(long, default_value = "A")]
    layout: Layout,
    /// Input size.
    #[arg(long, default_value_t = 32)]
    input_size: usize,
    /// Classes.
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    batch: i64,
    /// libtorch threads.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Timed steps.
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// Print the loss every N steps to stderr (a check that both sides learn alike; 0: never).
    #[arg(long, default_value_t = 0)]
    print_loss: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tch::set_num_threads(args.threads);
    tch::manual_seed(0);
    let arch: Arch = args.arch.parse()?;
    let config = NetConfig {
        layout: args.layout,
        input_size: args.input_size,
        classes: args.classes,
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Standalone::new(&vs.root(), build::network(&arch, &config)?);
    let mut opt = Sgd::new(&vs, SgdSettings::default());
    let s = args.input_size as i64;
    let batches: Vec<(Tensor, Tensor)> = (0..4)
        .map(|_| {
            (
                Tensor::randn([args.batch, 3, s, s], (Kind::Float, Device::Cpu)),
                Tensor::randint(
                    args.classes as i64,
                    [args.batch],
                    (Kind::Int64, Device::Cpu),
                ),
            )
        })
        .collect();
    let mut step = |i: usize| {
        let (x, y) = &batches[i % batches.len()];
        let loss = net.forward(x, Mode::Train).cross_entropy_loss::<Tensor>(
            y,
            None,
            Reduction::Mean,
            -100,
            0.0,
        );
        opt.backward_step(&loss, args.lr);
        if args.print_loss > 0 && i.is_multiple_of(args.print_loss) {
            eprintln!(
                "step {i}: loss {:.4}",
                f64::try_from(&loss).unwrap_or(f64::NAN)
            );
        }
    };
    for i in 0..args.warmup {
        step(i);
    }
    let start = std::time::Instant::now();
    for i in 0..args.steps {
        step(i);
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"tool\": \"hsconas-tch\", \"images_per_s\": {:.2}, \"steps\": {}, \"batch\": {}, \"threads\": {}, \"seconds\": {seconds:.3}}}",
        (args.steps as f64 * args.batch as f64) / seconds,
        args.steps,
        args.batch,
        args.threads
    );
    Ok(())
}
