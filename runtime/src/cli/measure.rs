//! `hsconas-runtime measure`: a named list of models, measured in interleaved rounds, group by group; the
//! results file is rewritten atomically after every group, and a rerun skips what it already holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use hsconas_foundation::progress::progress_bar;
use hsconas_foundation::write_atomic;
use hsconas_runtime::backend;
use hsconas_runtime::measure_job::measure_models;
use hsconas_vocabulary::{Fingerprint, Protocol, Stats};
use serde::{Deserialize, Serialize};

use super::engine_args::{EngineArgs, ProtocolArgs};

#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// JSON manifest: `{"models": [{"name": "stem", "path": "stem.onnx"}, ...]}` (paths relative to it).
    manifest: PathBuf,
    /// Results file (JSON, keyed by model name). An existing one is resumed.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    protocol: ProtocolArgs,
    /// Models measured together in one interleaved group.
    #[arg(long, default_value_t = 16, value_name = "N")]
    group: usize,
    /// Batch size for symbolic batch dimensions.
    #[arg(long, default_value_t = 1)]
    batch: usize,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    models: Vec<ManifestEntry>,
}

#[derive(Debug, Deserialize)]
struct ManifestEntry {
    name: String,
    path: PathBuf,
}

/// The results file.
#[derive(Debug, Serialize, Deserialize)]
struct Results {
    backend: String,
    provider: String,
    threads: usize,
    protocol: Protocol,
    fingerprint: Fingerprint,
    results: BTreeMap<String, Stats>,
}

pub fn run(args: MeasureArgs) -> anyhow::Result<()> {
    if args.group == 0 {
        bail!("--group must be at least 1");
    }
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(&args.manifest)
            .with_context(|| format!("reading {}", args.manifest.display()))?,
    )
    .with_context(|| format!("{} is not a valid manifest", args.manifest.display()))?;
    let base = args.manifest.parent().unwrap_or(Path::new("."));
    let config = args.engine.config();
    let engine = backend::build(&config)?;
    let protocol = args.protocol.protocol();
    let mut results = load_or_start(&args.out, engine.version(), &config, &protocol)?;
    let todo: Vec<&ManifestEntry> = manifest
        .models
        .iter()
        .filter(|m| !results.results.contains_key(&m.name))
        .collect();
    if todo.len() < manifest.models.len() {
        eprintln!(
            "resuming: {} of {} models already measured in {}",
            manifest.models.len() - todo.len(),
            manifest.models.len(),
            args.out.display()
        );
    }
    let bar = progress_bar(todo.len(), None, "models", true);
    for group in todo.chunks(args.group) {
        let bytes = group
            .iter()
            .map(|entry| {
                let path = base.join(&entry.path);
                std::fs::read(&path)
                    .with_context(|| format!("reading model '{}' ({})", entry.name, path.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        bar.set_message(format!("({} in this group)", group.len()));
        let names: Vec<&str> = group.iter().map(|e| e.name.as_str()).collect();
        let outcomes = measure_models(engine.as_ref(), &refs, &protocol, args.batch, |_, _| {
            bar.tick()
        })
        .with_context(|| format!("measuring the group {names:?}"))?;
        for (entry, outcome) in group.iter().zip(outcomes) {
            results.provider = outcome.provider.to_string();
            results.results.insert(entry.name.clone(), outcome.stats);
        }
        write_atomic(&args.out, &serde_json::to_vec_pretty(&results)?)?;
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
    eprintln!(
        "{} models measured; results in {}",
        results.results.len(),
        args.out.display()
    );
    Ok(())
}

/// An existing results file measured with the same settings, or a fresh one.
fn load_or_start(
    out: &Path,
    backend: String,
    config: &backend::BackendConfig,
    protocol: &Protocol,
) -> anyhow::Result<Results> {
    let fresh = Results {
        backend,
        provider: config
            .providers
            .first()
            .map_or("cpu".into(), ToString::to_string),
        threads: config.threads,
        protocol: protocol.clone(),
        fingerprint: hsconas_runtime::fingerprint::detect(),
        results: BTreeMap::new(),
    };
    if !out.exists() {
        return Ok(fresh);
    }
    let old: Results = serde_json::from_slice(
        &std::fs::read(out).with_context(|| format!("reading {}", out.display()))?,
    )
    .with_context(|| {
        format!(
            "{} exists but is not a results file; delete it or choose another --out",
            out.display()
        )
    })?;
    if old.backend != fresh.backend
        || old.threads != fresh.threads
        || old.protocol != fresh.protocol
    {
        bail!(
            "{} was measured with other settings ({}, {} threads); delete it or choose another --out to measure with {}, {} threads",
            out.display(),
            old.backend,
            old.threads,
            fresh.backend,
            fresh.threads
        );
    }
    Ok(old)
}
