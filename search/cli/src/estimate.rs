//! `hsconas estimate`: scores architectures with one accuracy estimator (a zero-cost proxy, a size
//! baseline, the fitted predictor, short training or the supernet's inherited weights), so an estimator
//! can be checked on any set of networks.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use hsconas_data::loader::make_batch;
use hsconas_foundation::outln;
use hsconas_models::{build, Arch, NetConfig};
use hsconas_nas::predictor::Predictor;
use hsconas_nas::{ArchScore, Estimator, EstimatorScores, PercentileScale};
use hsconas_train::eval::{batch_tensors, EvalSettings};
use hsconas_train::proxies::{self, Proxy};
use hsconas_train::short_training::ShortTraining;
use hsconas_train::supernet_run::{evaluate_subnet, EvalData};
use hsconas_train::trainer;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::arch::read_arch_file;
use super::data_args::DataArgs;
use super::supernet::{ensure_data_matches, load_supernet, spread_subset};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("networks").required(true).multiple(true).args(["arch", "archs"]))]
pub struct EstimateArgs {
    /// The estimator.
    #[arg(long, value_enum)]
    estimator: Estimator,
    /// An architecture string (repeat for several).
    #[arg(long, value_name = "STR")]
    arch: Vec<String>,
    /// A file of architectures: one per line, or tab-separated lines whose last field is one (a header
    /// whose last field is `arch`, blank lines and lines starting with `#` are skipped).
    #[arg(long, value_name = "FILE")]
    archs: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Images in the batch the proxies see (training images, drawn with --seed, not augmented).
    #[arg(long, default_value_t = 64, value_name = "B")]
    batch_size: usize,
    /// Seed of the networks' initialisation and of the batch.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Supernet checkpoint, for `--estimator supernet`.
    #[arg(long, value_name = "FILE")]
    supernet: Option<PathBuf>,
    /// Predictor model for `--estimator predictor` (a `predictor-model.json` written by
    /// `research/scripts/ground-truth.sh score`); default: the one built in, fitted on the committed ground truth.
    #[arg(long, value_name = "FILE")]
    predictor: Option<PathBuf>,
    /// Training steps per network for `--estimator short-training` (batches of --batch-size).
    #[arg(long, default_value_t = ShortTraining::default().steps, value_name = "N")]
    steps: usize,
    /// Validation images per network for `--estimator supernet` and `short-training` (spread over the
    /// split; 0: all).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    eval_images: usize,
    /// Training batches for each subnet's batch-norm recalibration (`--estimator supernet`).
    #[arg(long, default_value_t = 10, value_name = "K")]
    bn_batches: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn read_archs(args: &EstimateArgs) -> anyhow::Result<Vec<Arch>> {
    let mut archs: Vec<Arch> = args
        .arch
        .iter()
        .map(|t| {
            t.parse()
                .with_context(|| format!("invalid architecture '{t}'"))
        })
        .collect::<anyhow::Result<_>>()?;
    if let Some(path) = &args.archs {
        archs.extend(read_arch_file(path)?);
    }
    Ok(archs)
}

pub fn run(args: EstimateArgs) -> anyhow::Result<()> {
    let archs = read_archs(&args)?;
    anyhow::ensure!(!archs.is_empty(), "no architecture to score");
    anyhow::ensure!(
        args.estimator != Estimator::Supernet || args.supernet.is_some(),
        "--estimator supernet needs --supernet CHECKPOINT"
    );
    anyhow::ensure!(args.batch_size >= 2, "--batch-size must be at least 2");
    let data = args.data.prepare()?;
    let config = data.net_config(hsconas_models::Layout::A)?;
    let mut scorer = scorer(&args, &data, &config)?;
    let bar = hsconas_foundation::progress::progress_bar(
        archs.len(),
        Some(args.estimator.name()),
        "networks",
        !args.json,
    );
    let mut networks = Vec::with_capacity(archs.len());
    for arch in &archs {
        let start = Instant::now();
        let score = scorer(arch).with_context(|| format!("scoring {arch}"))?;
        networks.push(ArchScore {
            arch: arch.to_string(),
            score,
            seconds: start.elapsed().as_secs_f64(),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let report = EstimatorScores {
        estimator: args.estimator.name().to_string(),
        seed: args.seed,
        batch_size: args.batch_size,
        networks,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        for n in &report.networks {
            outln!("{:>14.6e}  {:>7.3} s  {}", n.score, n.seconds, n.arch)?;
        }
    }
    Ok(())
}

type Scorer<'a> = Box<dyn FnMut(&Arch) -> anyhow::Result<f64> + 'a>;

/// The estimator as a function of the architecture.
fn scorer<'a>(
    args: &'a EstimateArgs,
    data: &'a super::data_args::Prepared,
    config: &'a NetConfig,
) -> anyhow::Result<Scorer<'a>> {
    match args.estimator {
        Estimator::Supernet => {
            let checkpoint = args.supernet.as_deref().context("--supernet")?;
            let device = trainer::device(false)?;
            let (training, model) = load_supernet(checkpoint, device)?;
            ensure_data_matches(data, &model.config)?;
            let eval_data = EvalData {
                train: data.train.clone(),
                val: spread_subset(&data.val, args.eval_images),
                transform: data.transform.clone(),
            };
            let settings = EvalSettings {
                bn_batches: args.bn_batches,
                batch_size: 200,
                seed: args.seed,
            };
            Ok(Box::new(move |arch| {
                Ok(evaluate_subnet(&training.supernet, arch, &eval_data, &settings, device).top1)
            }))
        }
        Estimator::ShortTraining => {
            let short = ShortTraining {
                steps: args.steps,
                batch_size: args.batch_size,
                seed: args.seed,
                ..ShortTraining::default()
            };
            let val = spread_subset(&data.val, args.eval_images);
            Ok(Box::new(move |arch| {
                let graph = build::network(arch, config)?;
                Ok(short.accuracy(&graph, &data.train, &val, &data.transform)?)
            }))
        }
        cheap => cheap_scorer(
            cheap,
            data,
            *config,
            args.batch_size,
            args.seed,
            args.predictor.as_deref(),
        )?
        .with_context(|| format!("{} has no scorer", cheap.name())),
    }
}

/// The scorer of an estimator that needs neither a supernet nor training (the size baselines, the
/// zero-cost proxies and the fitted predictor), owning what it needs; `None` for `supernet` and
/// `short-training`. Proxies see one batch of `batch_size` training images drawn with `seed` (not
/// augmented), on networks initialised with `seed`; the predictor is read from `predictor` (default:
/// the built-in one). Shared by `hsconas estimate` and `hsconas search --estimator`.
pub(crate) fn cheap_scorer(
    estimator: Estimator,
    data: &super::data_args::Prepared,
    config: NetConfig,
    batch_size: usize,
    seed: u64,
    predictor: Option<&Path>,
) -> anyhow::Result<Option<Scorer<'static>>> {
    let proxy = match estimator {
        Estimator::Supernet | Estimator::ShortTraining => return Ok(None),
        Estimator::Params => {
            return Ok(Some(Box::new(move |arch| {
                Ok(build::network(arch, &config)?.param_count() as f64)
            })))
        }
        Estimator::Macs => {
            return Ok(Some(Box::new(move |arch| {
                Ok(build::network(arch, &config)?.macs() as f64)
            })))
        }
        Estimator::Predictor => {
            let model = match predictor {
                Some(path) => Predictor::load(path)?,
                None => Predictor::built_in()?,
            };
            if model.config != config {
                eprintln!(
                    "warning: the predictor was fitted on networks of layout {}, {}x{} inputs and {} classes, and \
                     reads every architecture at that configuration; these networks are {}, {}x{}, {} \
                     classes: how well it ranks them is unmeasured (fit one on a ground truth of your \
                     own, or use --estimator supernet).",
                    model.config.layout,
                    model.config.input_size,
                    model.config.input_size,
                    model.config.classes,
                    config.layout,
                    config.input_size,
                    config.input_size,
                    config.classes
                );
            }
            if let Some(fitted) = model.fitted_on.as_ref() {
                // "unknown": the file does not say, so there is nothing to compare.
                if fitted.data != "unknown" && !fitted.data.starts_with(&data.source) {
                    eprintln!(
                        "warning: the predictor was fitted on networks trained on {} ({}); these networks \
                         are scored for {}: if they will be trained on other data or with another recipe, \
                         how well it ranks them is unmeasured (fit one on your own results with `hsconas \
                         predictor collect` and `fit`, or use --estimator supernet).",
                        fitted.data, fitted.recipe, data.source
                    );
                }
            }
            return Ok(Some(Box::new(move |arch| Ok(model.predict(arch)?))));
        }
        Estimator::Synflow => Proxy::Synflow,
        Estimator::Snip => Proxy::Snip,
        Estimator::GradNorm => Proxy::GradNorm,
        Estimator::Naswot => Proxy::Naswot,
    };
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order.truncate(batch_size);
    let batch = make_batch(&data.train, &data.transform, &order, None);
    let (images, labels) = batch_tensors(&batch, tch::Device::Cpu);
    Ok(Some(Box::new(move |arch| {
        let graph = build::network(arch, &config)?;
        Ok(proxies::score(proxy, &graph, &images, &labels, seed)?)
    })))
}

/// A cheap estimator on the scale of an accuracy, for `hsconas search --estimator`. The predictor *is*
/// an accuracy (the trained test top-1 it predicts, in percent), so it enters `F` as that fraction. The
/// others are not (a proxy's or a size's score): each becomes its percentile among the scores of a
/// seeded uniform sample of the full space ([`PercentileScale`]), so `F` ranks candidates exactly as
/// the estimator does and the latency term keeps its usual weight. (The predictor went through the
/// percentile too until 2026-12-02: every candidate predicted above the sample's best then scored 1, and
/// from the fifth generation on the evolution chose among such ties by latency alone;
/// docs/accuracy-estimators.md.)
pub(crate) struct ScaledEstimator {
    scorer: Scorer<'static>,
    scale: AccuracyScale,
}

/// How a cheap estimator's score becomes an accuracy-like fraction.
enum AccuracyScale {
    /// A predicted accuracy in percent: divided by 100.
    Percent,
    /// Anything else: its percentile among the reference sample.
    Percentile(PercentileScale),
}

impl ScaledEstimator {
    /// Architectures in the reference sample of a percentile scale.
    pub(crate) const REFERENCE_SAMPLE: usize = 100;

    /// The scaled `estimator`, after scoring the reference sample drawn with `seed` where it needs one;
    /// `None` for `supernet` (which the search runs itself) and `short-training` (which
    /// `SearchArgs::settings` refuses for every candidate: minutes apiece belong in `--rerank`).
    pub(crate) fn new(
        estimator: Estimator,
        data: &super::data_args::Prepared,
        config: NetConfig,
        seed: u64,
        predictor: Option<&Path>,
    ) -> anyhow::Result<Option<ScaledEstimator>> {
        let Some(mut scorer) = cheap_scorer(estimator, data, config, 64, seed, predictor)? else {
            return Ok(None);
        };
        if estimator.scores_accuracy() {
            return Ok(Some(ScaledEstimator {
                scorer,
                scale: AccuracyScale::Percent,
            }));
        }
        let sample = PercentileScale::reference_sample(
            &hsconas_models::SearchSpace::full(),
            Self::REFERENCE_SAMPLE,
            seed,
        );
        let scores = sample
            .iter()
            .map(|arch| scorer(arch).with_context(|| format!("scoring {arch}")))
            .collect::<anyhow::Result<Vec<f64>>>()?;
        Ok(Some(ScaledEstimator {
            scorer,
            scale: AccuracyScale::Percentile(PercentileScale::new(scores)?),
        }))
    }

    /// Answers with `predictor` from now on (the refit of `hsconas search --refine`).
    pub(crate) fn adopt(&mut self, predictor: Predictor) {
        self.scorer = Box::new(move |arch| Ok(predictor.predict(arch)?));
        self.scale = AccuracyScale::Percent;
    }

    /// `arch`'s accuracy-like fraction in `0..=1`: the predicted top-1 / 100 (clamped, a ridge
    /// regression being unbounded), or the percentile of its score.
    pub(crate) fn fraction(&mut self, arch: &Arch) -> anyhow::Result<f64> {
        let score = (self.scorer)(arch)?;
        Ok(match &self.scale {
            AccuracyScale::Percent => (score / 100.0).clamp(0.0, 1.0),
            AccuracyScale::Percentile(scale) => scale.fraction(score),
        })
    }
}
