//! Speed of the data pipeline alone: decoding a dataset into memory, then one epoch of augmented,
//! normalised training batches from the background loader (nothing consumes them but a checksum).
//! `scripts/bench-train.sh` compares it with the training throughput: it must not be the bottleneck.
//!
//! `cargo run --release -p hsconas-data --example bench_data -- --data ../shared/data/cifar10-jpeg.tar.gz`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use hsconas_data::{epoch_batches, Crop, LoaderSettings, ReadOptions, Transform};

#[derive(Parser)]
struct Args {
    /// Dataset.
    #[arg(long)]
    data: PathBuf,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Loader threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let start = Instant::now();
    let splits = hsconas_data::open(&args.data, ReadOptions::default())?;
    let decode = start.elapsed().as_secs_f64();
    let train = Arc::new(splits.train);
    let (mean, std) = train.channel_stats();
    let transform = Arc::new(Transform {
        crop: Crop::Pad { pad: 4 },
        flip: true,
        mean,
        std,
    });
    let settings = LoaderSettings {
        batch_size: args.batch,
        train: true,
        drop_last: true,
        seed: 0,
        prefetch: 8,
        workers: args.workers,
    };
    let start = Instant::now();
    let (mut images, mut checksum) = (0usize, 0f64);
    for batch in epoch_batches(train.clone(), transform, &settings, 0, 0) {
        images += batch.labels.len();
        checksum += f64::from(batch.pixels[0]);
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"tool\": \"hsconas-data\", \"decoded_images\": {}, \"decode_seconds\": {decode:.2}, \"decode_images_per_s\": {:.0}, \"loader_images_per_s\": {:.0}, \"workers\": {}, \"checksum\": {checksum:.3}}}",
        train.len(),
        train.len() as f64 / decode,
        images as f64 / seconds,
        args.workers
    );
    Ok(())
}
