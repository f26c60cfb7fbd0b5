//! `hsconas export crate`: a complete Rust inference crate for a trained network.
//!
//! The crate holds `Cargo.toml`, `src/lib.rs` (`Model::load`, `predict`, `classify`, typed errors,
//! backends `tract` and `ort` as features), the ONNX model (embedded with `include_bytes!` or loaded
//! from the crate directory), a README with a usage example, `examples/classify.rs`,
//! `examples/bench.rs`, and `tests/golden.rs`: a fixed input with the logits the model gives for it now
//! (tract's for an FP32 model; ONNX Runtime's, computed by the caller, for an INT8 one, which ONNX
//! Runtime runs with integer kernels and tract in f32 between its quantise and dequantise nodes:
//! [`write_crate`]).
//! Sources come from the templates in `export/templates/crate`; the generated Rust is run through
//! `rustfmt` when the toolchain has it.

use std::path::{Path, PathBuf};
use std::process::Command;

use tract_onnx::prelude::*;

use hsconas_foundation::golden::golden_input;
use hsconas_foundation::{snippets, write_atomic};

use crate::{trained_onnx, ExportError, ModelInfo, TrainedExport, Weights};

const CARGO_TOML: &str = include_str!("../templates/crate/Cargo.toml.in");
const LIB_RS: &str = include_str!("../templates/crate/lib.rs.in");
const GOLDEN_RS: &str = include_str!("../templates/crate/golden.rs.in");
const CLASSIFY_RS: &str = include_str!("../templates/crate/classify.rs.in");
const BENCH_RS: &str = include_str!("../templates/crate/bench.rs.in");
const README_MD: &str = include_str!("../templates/crate/README.md.in");

/// The relative error tract's logits of an INT8 model may show against ONNX Runtime's in the golden test.
const INT8_OTHER_TOLERANCE: &str = "5e-2";

/// How many classes `classify` returns (fewer when the network has fewer classes).
const TOP_K: usize = 5;

/// Settings of a generated crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrateOptions {
    /// Package name (a valid crate name; `-` becomes `_` in the library name).
    pub name: String,
    /// Embed the model with `include_bytes!` (default) rather than reading `model.onnx` at run time.
    pub embed: bool,
    /// Keep batch norms instead of folding them.
    pub keep_bn: bool,
    /// Replace the files of an existing non-empty output directory.
    pub overwrite: bool,
}

/// The model a crate ships and the logits its golden test expects for [`golden_input`].
#[derive(Debug, Clone, PartialEq)]
pub struct CrateModel {
    /// The serialised ONNX model.
    pub onnx: Vec<u8>,
    /// Its logits for `golden_input(info.input_size)`.
    pub golden: Vec<f32>,
    /// A QDQ model (`hsconas export onnx --precision int8`): the crate's default backend is ONNX
    /// Runtime (the golden logits are its), and tract, which runs the quantised convolutions in f32, is
    /// held to a looser tolerance.
    pub int8: bool,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedCrate {
    /// The crate directory.
    pub dir: PathBuf,
    /// Files written, relative to `dir`.
    pub files: Vec<PathBuf>,
    /// Whether `rustfmt` formatted the Rust sources (they are valid Rust either way).
    pub formatted: bool,
    /// The golden logits stored in `tests/golden.rs`.
    pub golden: Vec<f32>,
}

/// Refuses names Cargo would refuse or that cannot be a library name.
pub fn validate_crate_name(name: &str) -> Result<(), ExportError> {
    let bad = |why: &str| Err(ExportError::BadOption(format!("crate name '{name}' {why}")));
    let mut chars = name.chars();
    match chars.next() {
        None => return bad("is empty"),
        Some(c) if !c.is_ascii_alphabetic() => return bad("must start with an ASCII letter"),
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return bad("may contain only ASCII letters, digits, '-' and '_'");
    }
    if name.len() > 64 {
        return bad("is longer than 64 characters");
    }
    const RESERVED: &[&str] = &[
        "abstract",
        "as",
        "async",
        "await",
        "become",
        "box",
        "break",
        "const",
        "continue",
        "crate",
        "do",
        "dyn",
        "else",
        "enum",
        "extern",
        "false",
        "final",
        "fn",
        "for",
        "gen",
        "if",
        "impl",
        "in",
        "let",
        "loop",
        "macro",
        "match",
        "mod",
        "move",
        "mut",
        "override",
        "priv",
        "pub",
        "ref",
        "return",
        "self",
        "static",
        "struct",
        "super",
        "trait",
        "true",
        "try",
        "type",
        "typeof",
        "unsafe",
        "unsized",
        "use",
        "virtual",
        "where",
        "while",
        "yield",
        "alloc",
        "core",
        "std",
        "test",
        "proc_macro",
        "build",
        "deps",
        "examples",
        "incremental",
    ];
    if RESERVED.contains(&name.to_ascii_lowercase().replace('-', "_").as_str()) {
        return bad("is a Rust keyword or a name Cargo reserves");
    }
    Ok(())
}

/// The logits tract gives for one image (NCHW, batch 1) through an ONNX model.
pub fn tract_logits(
    onnx: &[u8],
    input: &[f32],
    input_size: usize,
) -> Result<Vec<f32>, ExportError> {
    let fail = |e: TractError| ExportError::Golden(format!("{e:#}"));
    let shape = [1, 3, input_size, input_size];
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(fail)?;
    let x = Tensor::from_shape(&shape, input).map_err(fail)?;
    let out = plan.run(tvec!(x.into())).map_err(fail)?;
    let view = out[0].to_plain_array_view::<f32>().map_err(fail)?;
    Ok(view.iter().copied().collect())
}

/// Writes the crate for a trained network into `out` with its FP32 model (golden logits from tract).
/// Name, weights and the model are checked before anything is written.
pub fn generate_crate(
    info: &ModelInfo,
    weights: &Weights,
    options: &CrateOptions,
    out: &Path,
) -> Result<GeneratedCrate, ExportError> {
    validate_crate_name(&options.name)?;
    let onnx = trained_onnx(
        info,
        weights,
        TrainedExport {
            keep_bn: options.keep_bn,
            ..TrainedExport::default()
        },
    )?;
    let golden = tract_logits(&onnx, &golden_input(info.input_size), info.input_size)?;
    let model = CrateModel {
        onnx,
        golden,
        int8: false,
    };
    write_crate(info, &model, options, out)
}

/// Writes the crate for a trained network into `out` with `model`, exported and run by the caller
/// (an INT8 model's golden logits come from ONNX Runtime). The name and the golden logits' length are
/// checked before anything is written.
pub fn write_crate(
    info: &ModelInfo,
    model: &CrateModel,
    options: &CrateOptions,
    out: &Path,
) -> Result<GeneratedCrate, ExportError> {
    validate_crate_name(&options.name)?;
    if model.golden.len() != info.classes.len() {
        return Err(ExportError::Golden(format!(
            "{} golden logits for {} classes",
            model.golden.len(),
            info.classes.len()
        )));
    }
    let files = render(info, options, model);
    check_output_dir(out, options.overwrite)?;
    let mut written = Vec::new();
    write_atomic(&out.join("model.onnx"), &model.onnx)?;
    written.push(PathBuf::from("model.onnx"));
    for (rel, text) in &files {
        let path = out.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| {
                ExportError::Fs(hsconas_foundation::FsError::new("creating", parent, source))
            })?;
        }
        write_atomic(&path, text.as_bytes())?;
        written.push(PathBuf::from(rel));
    }
    let rust_files: Vec<PathBuf> = written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| out.join(p))
        .collect();
    let formatted = rustfmt(&rust_files);
    Ok(GeneratedCrate {
        dir: out.to_path_buf(),
        files: written,
        formatted,
        golden: model.golden.clone(),
    })
}

/// The text of every generated file but the model, by path in the crate (before `rustfmt`).
fn render(
    info: &ModelInfo,
    options: &CrateOptions,
    model: &CrateModel,
) -> Vec<(&'static str, String)> {
    let values = placeholders(info, options, &model.golden, model.int8);
    vec![
        ("Cargo.toml", fill(CARGO_TOML, &values)),
        ("src/lib.rs", fill(LIB_RS, &values)),
        ("tests/golden.rs", fill(GOLDEN_RS, &values)),
        ("examples/classify.rs", fill(CLASSIFY_RS, &values)),
        ("examples/bench.rs", fill(BENCH_RS, &values)),
        ("README.md", fill(README_MD, &values)),
    ]
}

/// An output directory must be new or empty, unless `overwrite` (only the generated files are replaced).
fn check_output_dir(out: &Path, overwrite: bool) -> Result<(), ExportError> {
    let occupied = match std::fs::read_dir(out) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => {
            return Err(ExportError::Fs(hsconas_foundation::FsError::new(
                "reading", out, source,
            )))
        }
    };
    if occupied && !overwrite {
        return Err(ExportError::BadOption(format!(
            "'{}' exists and is not empty; choose a new directory or pass --overwrite to replace the \
             generated files in it",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|source| {
        ExportError::Fs(hsconas_foundation::FsError::new("creating", out, source))
    })
}

/// Formats with the toolchain's `rustfmt`; false when it is not installed or fails.
fn rustfmt(files: &[PathBuf]) -> bool {
    Command::new("rustfmt")
        .args(["--edition", "2021"])
        .args(files)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn placeholders(
    info: &ModelInfo,
    options: &CrateOptions,
    golden: &[f32],
    int8: bool,
) -> Vec<(&'static str, String)> {
    let lib_name = options.name.replace('-', "_");
    let floats = |v: &[f32]| {
        v.iter()
            .map(|&x| f32_literal(x))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let accuracy = match (&info.test, &info.val) {
        (Some(t), _) => format!(
            "{:.2}% top-1 on the test split ({} images)",
            t.top1, t.images
        ),
        (None, Some(v)) => format!(
            "{:.2}% top-1 on the validation split ({} images)",
            v.top1, v.images
        ),
        (None, None) => "not measured".to_string(),
    };
    let short_arch = format!(
        "{}...",
        info.architecture
            .split(',')
            .take(2)
            .collect::<Vec<_>>()
            .join(",")
    );
    let (model_source, load_fn, model_text) = if options.embed {
        (
            "/// The ONNX model, embedded in the library.\npub const MODEL_ONNX: &[u8] = include_bytes!(\"../model.onnx\");",
            "    /// Loads the model embedded in this crate with the default [`Options`] (CPU).\n    pub fn load() -> Result<Model> {\n        Model::load_with(&Options::default())\n    }\n\n    /// Loads the model embedded in this crate on the given backend and providers.\n    pub fn load_with(options: &Options) -> Result<Model> {\n        Model::from_bytes(MODEL_ONNX, options)\n    }",
            "`model.onnx`, embedded in the library (`include_bytes!`)",
        )
    } else {
        (
            "/// Where [`Model::load`] reads the model: `model.onnx` in this crate's directory.\npub const MODEL_PATH: &str = concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/model.onnx\");",
            "    /// Loads `model.onnx` from this crate's directory ([`MODEL_PATH`]) with the default [`Options`].\n    pub fn load() -> Result<Model> {\n        Model::load_with(&Options::default())\n    }\n\n    /// Loads `model.onnx` from this crate's directory on the given backend and providers.\n    pub fn load_with(options: &Options) -> Result<Model> {\n        Model::load_from(MODEL_PATH, options)\n    }",
            "`model.onnx`, read at run time from the crate directory (`MODEL_PATH`)",
        )
    };
    vec![
        ("NAME", options.name.clone()),
        ("LIB_NAME", lib_name),
        ("HSCONAS_VERSION", env!("CARGO_PKG_VERSION").to_string()),
        ("ARCH", info.architecture.clone()),
        ("ARCH_SHORT", short_arch),
        ("LAYOUT", info.layout.clone()),
        ("SIZE", info.input_size.to_string()),
        ("NUM_CLASSES", info.classes.len().to_string()),
        (
            "CLASSES",
            info.classes
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("CLASS_LIST", info.classes.join(", ")),
        ("MEAN", floats(&info.normalisation.mean)),
        ("STD", floats(&info.normalisation.std)),
        ("MEAN_TEXT", format!("{:?}", info.normalisation.mean)),
        ("STD_TEXT", format!("{:?}", info.normalisation.std)),
        ("ACCURACY", accuracy),
        ("TOP_K", TOP_K.min(info.classes.len()).to_string()),
        ("MODEL_SOURCE", model_source.to_string()),
        ("LOAD_FN", load_fn.to_string()),
        ("MODEL_TEXT", model_text.to_string()),
        ("EXPECTED", floats(golden)),
        ("PRECISION", if int8 { "int8" } else { "fp32" }.to_string()),
        (
            "DEFAULT_FEATURE",
            if int8 { "ort" } else { "tract" }.to_string(),
        ),
        ("COMPILED_BACKENDS", compiled_backends(int8)),
        ("BACKENDS_TEXT", backends_text(int8).0.to_string()),
        ("BACKEND_LIST", backends_text(int8).1.to_string()),
        (
            "GOLDEN_BACKEND",
            if int8 { "Ort" } else { "Tract" }.to_string(),
        ),
        ("OTHER_TOLERANCE", if int8 { INT8_OTHER_TOLERANCE } else { "1e-4" }.to_string()),
        (
            "OTHER_TOLERANCE_TEXT",
            if int8 {
                "tract runs the INT8 model's quantised convolutions in f32 between its quantise and \
                 dequantise nodes where ONNX Runtime runs integer kernels, so a value near a rounding \
                 boundary may land one quantisation step away."
            } else {
                "both compute in f32; only the order of additions differs."
            }
            .to_string(),
        ),
        (
            "GOLDEN_ENGINE",
            if int8 { "ONNX Runtime" } else { "tract" }.to_string(),
        ),
        (
            "PRECISION_TEXT",
            if int8 {
                "INT8 (QDQ: int8 weights per output channel, activations quantised with calibrated \
                 ranges): ONNX Runtime runs it with integer kernels, tract in f32"
            } else {
                "FP32"
            }
            .to_string(),
        ),
        ("GOLDEN_INPUT_FN", snippets::GOLDEN_INPUT.to_string()),
        ("RELATIVE_ERROR_FN", snippets::RELATIVE_ERROR.to_string()),
        ("PERCENTILE_FN", snippets::PERCENTILE.to_string()),
    ]
}

/// The README's sentence on the backends and its list of features, the default first.
fn backends_text(int8: bool) -> (&'static str, &'static str) {
    if int8 {
        (
            "The INT8 network runs with ONNX Runtime through\n[ort](https://crates.io/crates/ort) \
             (default: its integer kernels) or in pure Rust with\n\
             [tract](https://crates.io/crates/tract-onnx) (quantised convolutions in f32).",
            "- `tract`: `cargo build --features tract` (both backends) or `--no-default-features \
             --features tract` (pure Rust, nothing to install; the INT8 convolutions run in f32).\n\
             - `ort` (default feature): ONNX Runtime, with its integer kernels.",
        )
    } else {
        (
            "The network runs in pure Rust with\n[tract](https://crates.io/crates/tract-onnx) \
             (default) or with ONNX Runtime through\n[ort](https://crates.io/crates/ort).",
            "- `tract` (default feature): pure Rust, nothing to install.\n\
             - `ort`: `cargo build --features ort` (both backends) or `--no-default-features \
             --features ort` (ONNX\n  Runtime only).",
        )
    }
}

/// The entries of the generated `Backend::COMPILED`, the model's default backend first: tract for an
/// FP32 model, ONNX Runtime for an INT8 one (whose golden logits are ONNX Runtime's).
fn compiled_backends(int8: bool) -> String {
    let tract = "        #[cfg(feature = \"tract\")]\n        Backend::Tract,";
    let ort = "        #[cfg(feature = \"ort\")]\n        Backend::Ort,";
    if int8 {
        format!("{ort}\n{tract}")
    } else {
        format!("{tract}\n{ort}")
    }
}

/// A Rust expression of type `f32` for any value: `f32::NAN` and the infinities by name, finite values as
/// literals that read back to the same bits (`{:?}` prints the shortest such decimal, `-0.0` included).
fn f32_literal(x: f32) -> String {
    if x.is_nan() {
        "f32::NAN".into()
    } else if x == f32::INFINITY {
        "f32::INFINITY".into()
    } else if x == f32::NEG_INFINITY {
        "f32::NEG_INFINITY".into()
    } else {
        format!("{x:?}")
    }
}

/// Replaces every `{{KEY}}` of `values` in `template`.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut text = template.to_string();
    for (key, value) in values {
        text = text.replace(&format!("{{{{{key}}}}}"), value);
    }
    debug_assert!(
        !values.is_empty() && unfilled(&text).is_none(),
        "template placeholder {:?} has no value",
        unfilled(&text)
    );
    text
}

/// The first `{{UPPER_CASE}}` left in `text`.
fn unfilled(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        if let Some(end) = after.find("}}") {
            let key = &after[..end];
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                return Some(key);
            }
        }
        rest = after;
    }
    None
}

#[cfg(test)]
#[path = "crate_gen_tests.rs"]
mod tests;
