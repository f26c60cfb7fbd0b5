//! `hsconas predictor`: fit the accuracy predictor on your own training results, show what a predictor
//! file holds, and (with libtorch) train a designed sample of the space to fit it on. `fit` and `show`
//! need no libtorch (the fit is a ridge regression on architecture features).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use hsconas_foundation::outln;
use hsconas_models::NetConfig;
use hsconas_nas::ground_truth::RankingScore;
use hsconas_nas::predictor::{
    few_shot_curve, fit_predictor, FitReport, FittedOn, Predictor, PriorChoice, TauSpread,
    TrainingResults, FEATURES, MIN_HELD_OUT,
};

#[derive(Debug, Subcommand)]
pub enum PredictorCommand {
    /// Fit a predictor on trained networks (a results file) and report how well it ranks networks it
    /// did not see.
    Fit(FitArgs),
    /// Print what a predictor file holds (the built-in one without FILE).
    Show(ShowArgs),
    /// How tau on held-out networks grows with the number of trainings fitted on: for each K, many
    /// random draws of K networks to fit on, each scored on the rest, beside the prior alone and MACs.
    Curve(CurveArgs),
    /// Train a designed sample of the space on your data (resumable; `--jobs`, or ranks under mpirun)
    /// and keep the results file that `fit` reads up to date.
    #[cfg(feature = "train")]
    Collect(super::predictor_collect::CollectArgs),
}

/// The trained networks of a task, what to adapt and their geometry (`fit` and `curve`).
#[derive(Debug, Args)]
pub struct TaskArgs {
    /// Training results: a TSV with a header naming the columns, `arch` and `top1` (test top-1 in
    /// percent) among them, one training per line (several seeds of one network are averaged; optional
    /// `data` and `recipe` columns), or a ground-truth JSON (docs/evidence/ground-truth/ground-truth.json).
    #[arg(long, value_name = "FILE")]
    results: PathBuf,
    /// What to adapt: `builtin` (the predictor built into hsconas), `none` (a plain fit) or a predictor
    /// file. Default: `builtin` for networks of its layout and class count (layout A, 10 classes) at any
    /// input size (it reads them at its own 32x32), else `none`.
    #[arg(long, value_name = "builtin|none|FILE")]
    prior: Option<PriorChoice>,
    /// Stage widths the networks were trained with [default: the results' recipe's `layout=`, else the
    /// prior's, else A].
    #[arg(long, value_name = "A|B|W1,W2,W3,W4")]
    layout: Option<String>,
    /// Input size the networks were trained at [default: the results' recipe's `resize=S` (what
    /// `collect --resize S` writes), else the prior's, else 32].
    #[arg(long, value_name = "S")]
    input_size: Option<usize>,
    /// Classes of the task [default: the prior's, else 10].
    #[arg(long, value_name = "N")]
    classes: Option<usize>,
}

/// A task's results, its prior (with its name) and the networks' configuration.
struct Task {
    results: TrainingResults,
    prior: Option<Predictor>,
    prior_name: String,
    config: NetConfig,
}

impl TaskArgs {
    /// Reads the results and the prior and settles the geometry: given flags win, then what the results'
    /// recipe says (`layout=`, `resize=`), then the prior's, then the built-in predictor's. Without
    /// `--prior`, the built-in predictor is the prior for networks of its layout and class count
    /// ([`PriorChoice::automatic`]).
    fn load(&self) -> anyhow::Result<Task> {
        let results = TrainingResults::load(&self.results)?;
        let built_in = Predictor::built_in()?;
        let recipe_size = match results.recipe_setting("resize") {
            None | Some("none") => None,
            Some(size) => Some(size.parse::<usize>().with_context(|| {
                format!("the results' recipe says resize={size}: not a size in pixels")
            })?),
        };
        let recipe_layout = results.recipe_setting("layout");
        let geometry = |base: NetConfig| -> anyhow::Result<NetConfig> {
            Ok(NetConfig {
                layout: match (&self.layout, recipe_layout) {
                    (Some(text), _) => text.parse().context("--layout")?,
                    (None, Some(text)) => text
                        .parse()
                        .with_context(|| format!("the results' recipe says layout={text}"))?,
                    (None, None) => base.layout,
                },
                input_size: self.input_size.or(recipe_size).unwrap_or(base.input_size),
                classes: self.classes.unwrap_or(base.classes),
            })
        };
        let choice = match &self.prior {
            Some(choice) => choice.clone(),
            None => PriorChoice::automatic(&geometry(built_in.config)?, &built_in),
        };
        let prior = choice.load(&built_in).context("--prior")?;
        let prior_name = match &choice {
            PriorChoice::None => "none".to_string(),
            PriorChoice::BuiltIn => "builtin".to_string(),
            PriorChoice::File(path) => path.display().to_string(),
        };
        let config = geometry(prior.as_ref().map_or(built_in.config, |p| p.config))?;
        config.validate()?;
        if let Some(p) = prior.as_ref() {
            if (p.config.layout, p.config.classes) != (config.layout, config.classes) {
                eprintln!(
                    "warning: the prior {prior_name} was fitted on networks at {}; these are at {}: \
                     its features (stage widths, the head) describe other networks, so its order may \
                     not carry over (`--prior none` fits from these results alone; a `predictor curve` \
                     with each shows which ranks better)",
                    words(&p.config),
                    words(&config)
                );
            }
        }
        Ok(Task {
            results,
            prior,
            prior_name,
            config,
        })
    }
}

#[derive(Debug, Args)]
pub struct FitArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Where to write the predictor (JSON; read by `--predictor FILE` of `estimate`, `search`, `run`).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The images they were trained on, recorded in the predictor (default: the results' `data`
    /// column, else "unknown"); searches on other data are warned.
    #[arg(long, value_name = "TEXT")]
    data: Option<String>,
    /// How they were trained, recorded in the predictor (default: the results' recipe, else "unknown").
    #[arg(long, value_name = "TEXT")]
    recipe: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct CurveArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Numbers of trainings to fit on (each must leave 4 networks or more to score on).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2,4,8,16",
        value_name = "K,K,..."
    )]
    sizes: Vec<usize>,
    /// Random draws of K networks per size.
    #[arg(long, default_value_t = 200, value_name = "N")]
    draws: usize,
    /// Seed of the draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the curve as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A predictor file (default: the built-in predictor).
    file: Option<PathBuf>,
    /// Print the whole file as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(
    cmd: PredictorCommand,
    #[cfg(feature = "train")] collective: &dyn hsconas_train::Collective,
) -> anyhow::Result<()> {
    match cmd {
        PredictorCommand::Fit(args) => fit(args),
        PredictorCommand::Show(args) => show(args),
        PredictorCommand::Curve(args) => curve(args),
        #[cfg(feature = "train")]
        PredictorCommand::Collect(args) => super::predictor_collect::run(args, collective),
    }
}

fn fit(args: FitArgs) -> anyhow::Result<()> {
    let Task {
        results,
        prior,
        prior_name,
        config,
    } = args.task.load()?;
    let fitted_on = FittedOn {
        data: args
            .data
            .clone()
            .or(results.data.clone())
            .unwrap_or_else(|| "unknown".into()),
        recipe: args
            .recipe
            .clone()
            .or(results.recipe.clone())
            .unwrap_or_else(|| "unknown".into()),
        results: args
            .task
            .results
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        trainings: results.trainings(),
    };
    let (predictor, report) =
        fit_predictor(&results, prior.as_ref(), &prior_name, config, fitted_on)?;
    predictor.save(&args.out)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    outln!("{}", geometry_words(&config, prior.as_ref()))?;
    print_report(&report)?;
    outln!("wrote {}", args.out.display())?;
    Ok(())
}

fn curve(args: CurveArgs) -> anyhow::Result<()> {
    let Task {
        results,
        prior,
        prior_name,
        config,
    } = args.task.load()?;
    let n = results.networks.len();
    // A plain fit cross-validates its strength (three networks or more); an adaptation starts from two.
    let smallest = if prior.is_some() { 2 } else { 3 };
    let sizes: Vec<usize> = args
        .sizes
        .iter()
        .copied()
        .filter(|&k| k >= smallest && k + MIN_HELD_OUT <= n)
        .collect();
    if sizes.len() < args.sizes.len() {
        eprintln!(
            "{n} trained networks, prior {prior_name}: sizes outside {smallest} to {} (a fit needs \
             {smallest} and leaves {MIN_HELD_OUT} or more to score on) are left out",
            n.saturating_sub(MIN_HELD_OUT)
        );
    }
    if sizes.is_empty() {
        anyhow::bail!("no size of --sizes fits {n} trained networks");
    }
    let points = few_shot_curve(
        &results,
        prior.as_ref(),
        config,
        &sizes,
        args.draws,
        args.seed,
    )?;
    if args.json {
        let report = serde_json::json!({
            "networks": n,
            "config": config,
            "prior": prior_name,
            "prior_config": prior.as_ref().map(|p| p.config),
            "draws": args.draws,
            "seed": args.seed,
            "points": points,
        });
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    outln!("{}", geometry_words(&config, prior.as_ref()))?;
    outln!(
        "{n} trained networks; prior {prior_name}; {} draws per K (tau over the networks not drawn: mean, \
         and 2.5th to 97.5th percentile over draws; RMSE on them in points of top-1, mean over draws)",
        args.draws
    )?;
    let spread = |s: &TauSpread| format!("{:+.2} ({:+.2} to {:+.2})", s.mean, s.low, s.high);
    outln!(
        "{:>4} {:>9} {:<24} {:<24} {:<24} {:<27} {}",
        "K",
        "held out",
        "fitted",
        "prior alone",
        "MACs",
        "fitted above prior / MACs",
        "RMSE fitted / prior"
    )?;
    for p in &points {
        outln!(
            "{:>4} {:>9} {:<24} {:<24} {:<24} {:<27} {:.2} / {}",
            p.k,
            p.held_out,
            spread(&p.fitted),
            p.prior.as_ref().map_or("-".into(), spread),
            spread(&p.macs),
            format!(
                "{} / {:.0}%",
                p.fitted_above_prior
                    .map_or("-".into(), |s| format!("{:.0}%", s * 100.0)),
                p.fitted_above_macs * 100.0
            ),
            p.fitted_rmse,
            p.prior_rmse.map_or("-".into(), |r| format!("{r:.2}"))
        )?;
    }
    Ok(())
}

/// `layout A, 32x32 inputs, 10 classes`.
fn words(c: &NetConfig) -> String {
    format!(
        "layout {}, {}x{} inputs, {} classes",
        c.layout, c.input_size, c.input_size, c.classes
    )
}

/// The networks' geometry and the prior's, when it reads networks at another one.
fn geometry_words(config: &NetConfig, prior: Option<&Predictor>) -> String {
    match prior {
        Some(p) if p.config != *config => format!(
            "networks at {}; the prior reads them at {} (its own)",
            words(config),
            words(&p.config)
        ),
        _ => format!("networks at {}", words(config)),
    }
}

fn tau(score: &RankingScore) -> String {
    match score.kendall_tau_ci95 {
        Some(ci) => format!(
            "{:.2} (95% interval {:.2} to {:.2})",
            score.kendall_tau, ci.low, ci.high
        ),
        None => format!("{:.2}", score.kendall_tau),
    }
}

fn print_report(r: &FitReport) -> anyhow::Result<()> {
    outln!(
        "fitted on {} trained networks ({} trainings), prior: {}, ridge strength {}",
        r.networks,
        r.trainings,
        r.prior,
        r.strength
    )?;
    outln!("Kendall tau against the trained top-1, each network predicted by a model that never saw it:")?;
    outln!("  this predictor   {}", tau(&r.held_out))?;
    if let Some(prior) = &r.prior_alone {
        outln!("  the prior alone  {}", tau(prior))?;
    }
    outln!("  MACs             {}", tau(&r.macs))?;
    outln!(
        "held-out error {:.2} points of top-1 (root mean square); Spearman rho {:.2}; the best network is \
         {:.2} points better than the best of the predictor's top 3",
        r.held_out_rmse,
        r.held_out.spearman_rho,
        r.held_out.top3_regret
    )?;
    outln!(
        "(intervals: 2,000 bootstrap resamples of the networks; with few networks they are wide, and an \
         interval that holds another row's tau does not show a difference)"
    )?;
    Ok(())
}

fn show(args: ShowArgs) -> anyhow::Result<()> {
    let (predictor, name) = match &args.file {
        Some(path) => (Predictor::load(path)?, path.display().to_string()),
        None => (Predictor::built_in()?, "the built-in predictor".to_string()),
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&predictor)?)?;
        return Ok(());
    }
    describe(&predictor, &name, "")
}

fn describe(p: &Predictor, name: &str, indent: &str) -> anyhow::Result<()> {
    outln!("{indent}{name} (format {})", p.format)?;
    outln!(
        "{indent}  networks    {}; fitted on {} trained networks",
        words(&p.config),
        p.networks
    )?;
    match &p.fitted_on {
        Some(f) => {
            outln!("{indent}  data        {}", f.data)?;
            outln!("{indent}  recipe      {}", f.recipe)?;
            outln!(
                "{indent}  results     {} ({} trainings)",
                f.results,
                f.trainings
            )?;
        }
        None => {
            outln!("{indent}  (written before predictor files recorded their data and recipe)")?
        }
    }
    if let Some(rmse) = p.held_out_rmse {
        outln!("{indent}  error       {rmse:.2} points of top-1 on networks it did not see (held-out RMSE)")?;
    }
    outln!(
        "{indent}  model       ridge regression, strength {}, mean top-1 {:.2}; largest weights (standardised features):",
        p.ridge.strength,
        p.ridge.intercept
    )?;
    let mut order: Vec<usize> = (0..FEATURES.len()).collect();
    order.sort_by(|&a, &b| {
        p.ridge.weights[b]
            .abs()
            .total_cmp(&p.ridge.weights[a].abs())
    });
    for &k in order.iter().take(5) {
        outln!("{indent}    {:+8.3}  {}", p.ridge.weights[k], FEATURES[k])?;
    }
    if let Some(prior) = &p.prior {
        outln!("{indent}  adapted from (its predictions plus the model above):")?;
        describe(prior, "prior", &format!("{indent}    "))?;
    }
    Ok(())
}
