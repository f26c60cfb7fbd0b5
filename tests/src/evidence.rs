//! Documented numbers checked against the result files they come from.
//!
//! `docs/evidence/claims.toml` lists claims: a piece of text of a document (`README.md`, `docs/*.md`)
//! with `{}` placeholders, the evidence file (a committed JSON result) and, per placeholder, a JSON pointer
//! into it and how the value is printed. A claim holds when the document contains the text with every
//! placeholder filled from the evidence (white space folded, so line wrapping does not matter) and names
//! the evidence file, so a reader can find it. Rounding to the printed decimals is the only tolerance: a
//! documented number is the evidence's number as printed, or the check fails.
//!
//! Tables that a study's report renders (a committed Markdown file beside its JSON, e.g. the
//! `results.md` of `scripts/reproduce.sh`) are listed as `[[table]]` entries instead of one claim per
//! cell: every Markdown table of the evidence file must appear in the document as it is (white space
//! folded), and the document must name the file.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the claims are listed, relative to the repository root.
pub const MANIFEST: &str = "docs/evidence/claims.toml";

/// The claims file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Every claim.
    #[serde(rename = "claim")]
    pub claims: Vec<Claim>,
    /// Every rendered table the documents copy.
    #[serde(rename = "table", default)]
    pub tables: Vec<TableClaim>,
}

/// A document that copies the tables of a rendered evidence file (Markdown).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableClaim {
    /// The document, relative to the repository root.
    pub doc: String,
    /// The evidence file (Markdown with tables), relative to the repository root.
    pub file: String,
}

/// One documented statement and where its numbers come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// The document, relative to the repository root.
    pub doc: String,
    /// The evidence file (JSON), relative to the repository root.
    pub file: String,
    /// The text as the document has it, one `{}` per value.
    pub text: String,
    /// The values, in placeholder order.
    #[serde(default)]
    pub values: Vec<ValueSpec>,
}

/// One number (or string) of a claim.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueSpec {
    /// RFC 6901 pointer into the evidence file, e.g. `/winner/measured_ms`.
    pub pointer: String,
    /// Another evidence file for this value (default: the claim's).
    #[serde(default)]
    pub file: Option<String>,
    /// Decimals printed (default: the number as JSON prints it).
    #[serde(default)]
    pub decimals: Option<usize>,
    /// Factor applied before printing (100 for a fraction printed as percent).
    #[serde(default = "one")]
    pub scale: f64,
    /// Print a `+` before non-negative numbers.
    #[serde(default)]
    pub sign: bool,
    /// Group the integer part by thousands with commas.
    #[serde(default)]
    pub thousands: bool,
}

fn one() -> f64 {
    1.0
}

/// Why the check could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The manifest could not be read or parsed.
    #[error("{path}: {message}")]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Checks every claim of the manifest under `root`; returns one message per claim that does not hold
/// (empty: all hold).
pub fn check(root: &Path) -> Result<Vec<String>, EvidenceError> {
    let manifest = load_manifest(root)?;
    let mut files = Files::new(root);
    let mut failures: Vec<String> = manifest
        .claims
        .iter()
        .enumerate()
        .filter_map(|(i, claim)| {
            check_claim(claim, &mut files)
                .err()
                .map(|why| format!("claim {} ({}): {why}", i + 1, claim.doc))
        })
        .collect();
    failures.extend(manifest.tables.iter().enumerate().filter_map(|(i, table)| {
        check_tables(table, &mut files)
            .err()
            .map(|why| format!("table entry {} ({}): {why}", i + 1, table.doc))
    }));
    Ok(failures)
}

/// The Markdown tables of `text`: blocks of consecutive lines that start with `|`, each folded.
pub fn markdown_tables(text: &str) -> Vec<String> {
    let mut tables = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim_start().starts_with('|') {
            current.push(line);
        } else if !current.is_empty() {
            tables.push(fold(&current.join("\n")));
            current.clear();
        }
    }
    tables
}

fn check_tables(entry: &TableClaim, files: &mut Files) -> Result<(), String> {
    let source = std::fs::read_to_string(files.root.join(&entry.file))
        .map_err(|e| format!("cannot read evidence {}: {e}", entry.file))?;
    let tables = markdown_tables(&source);
    if tables.is_empty() {
        return Err(format!("{} holds no Markdown table", entry.file));
    }
    let text = files.doc(&entry.doc)?;
    for table in &tables {
        if !text.contains(table.as_str()) {
            let header: String = table.chars().take(80).collect();
            return Err(format!(
                "the table of {} that starts \"{header}\" is not in the document as it is there{}",
                entry.file,
                nearest(text, table)
            ));
        }
    }
    if !evidence_names(&entry.doc, &entry.file)
        .iter()
        .any(|name| text.contains(name.as_str()))
    {
        return Err(format!("the document does not name {}", entry.file));
    }
    Ok(())
}

/// Reads and parses the manifest under `root`.
pub fn load_manifest(root: &Path) -> Result<Manifest, EvidenceError> {
    let path = root.join(MANIFEST);
    let err = |message: String| EvidenceError::Manifest {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
    toml::from_str(&text).map_err(|e| err(e.to_string()))
}

/// Documents (white space folded) and evidence files, read once.
struct Files {
    root: PathBuf,
    docs: HashMap<String, Result<String, String>>,
    json: HashMap<String, Result<serde_json::Value, String>>,
}

impl Files {
    fn new(root: &Path) -> Files {
        Files {
            root: root.to_path_buf(),
            docs: HashMap::new(),
            json: HashMap::new(),
        }
    }

    fn doc(&mut self, name: &str) -> Result<&str, String> {
        let path = self.root.join(name);
        self.docs
            .entry(name.to_string())
            .or_insert_with(|| {
                std::fs::read_to_string(&path)
                    .map(|t| fold(&t))
                    .map_err(|e| format!("cannot read {name}: {e}"))
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    fn json(&mut self, name: &str) -> Result<&serde_json::Value, String> {
        let path = self.root.join(name);
        self.json
            .entry(name.to_string())
            .or_insert_with(|| {
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("cannot read evidence {name}: {e}"))?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("evidence {name} is not JSON: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Runs of white space as one space (markdown wraps lines anywhere).
fn fold(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_claim(claim: &Claim, files: &mut Files) -> Result<(), String> {
    let pieces: Vec<&str> = claim.text.split("{}").collect();
    if pieces.len() != claim.values.len() + 1 {
        return Err(format!(
            "the text has {} placeholders but {} values are given",
            pieces.len() - 1,
            claim.values.len()
        ));
    }
    let mut expected = pieces[0].to_string();
    for (spec, piece) in claim.values.iter().zip(&pieces[1..]) {
        let file = spec.file.as_deref().unwrap_or(&claim.file);
        let value = files
            .json(file)?
            .pointer(&spec.pointer)
            .ok_or_else(|| format!("{file} has nothing at {}", spec.pointer))?;
        expected
            .push_str(&render(value, spec).map_err(|e| format!("{file}#{}: {e}", spec.pointer))?);
        expected.push_str(piece);
    }
    let expected = fold(&expected);
    let text = files.doc(&claim.doc)?;
    if !text.contains(&expected) {
        return Err(format!(
            "expected \"{expected}\" (from {}){}",
            claim.file,
            nearest(text, &expected)
        ));
    }
    let names = evidence_names(&claim.doc, &claim.file);
    if !names.iter().any(|name| text.contains(name.as_str())) {
        return Err(format!(
            "the document does not name its evidence (any of: {})",
            names.join(", ")
        ));
    }
    Ok(())
}

/// How a document may name the evidence `file`: the file or one of its folders down to the study folder
/// (`docs/evidence/<study>`), each repository-relative or relative to the document's folder.
fn evidence_names(doc: &str, file: &str) -> Vec<String> {
    let doc_dir = Path::new(doc).parent().unwrap_or_else(|| Path::new(""));
    let study_depth = Path::new(MANIFEST).components().count();
    let mut names = Vec::new();
    let mut path = Some(Path::new(file));
    while let Some(p) = path.filter(|p| p.components().count() >= study_depth) {
        names.push(p.display().to_string());
        names.push(relative_path(doc_dir, p));
        path = p.parent();
    }
    names.dedup();
    names
}

/// `to` as written in a document in `from_dir` (both relative to the repository root).
fn relative_path(from_dir: &Path, to: &Path) -> String {
    let depth = from_dir.components().count();
    let mut out = String::new();
    for _ in 0..depth {
        out.push_str("../");
    }
    match to.strip_prefix(from_dir) {
        Ok(rest) => rest.display().to_string(),
        Err(_) => format!("{out}{}", to.display()),
    }
}

/// Where the document says something else: the passage that starts like the expected text.
fn nearest(text: &str, expected: &str) -> String {
    let prefix: String = expected
        .chars()
        .take_while(|c| !c.is_ascii_digit() && *c != '+' && *c != '-')
        .collect();
    if prefix.trim().len() < 4 {
        return "; the document does not contain it".into();
    }
    match text.find(&prefix) {
        Some(at) => {
            let shown: String = text[at..]
                .chars()
                .take(expected.chars().count() + 10)
                .collect();
            format!("; the document says \"{shown}\"")
        }
        None => "; the document does not contain it".into(),
    }
}

/// A JSON value printed as `spec` says.
pub fn render(value: &serde_json::Value, spec: &ValueSpec) -> Result<String, String> {
    match value {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        serde_json::Value::Number(n) => {
            let x = n.as_f64().ok_or("not a finite number")? * spec.scale;
            Ok(format_number(x, spec))
        }
        other => Err(format!("{other} is not a number or a string")),
    }
}

fn format_number(x: f64, spec: &ValueSpec) -> String {
    let mut text = match spec.decimals {
        Some(d) => format!("{x:.d$}"),
        None => x.to_string(),
    };
    if spec.thousands {
        text = group_thousands(&text);
    }
    if spec.sign && !text.starts_with('-') {
        text.insert(0, '+');
    }
    text
}

fn group_thousands(text: &str) -> String {
    let (sign, rest) = text
        .strip_prefix('-')
        .map_or(("", text), |rest| ("-", rest));
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let mut out = format!("{sign}{grouped}");
    if let Some(f) = frac {
        let _ = write!(out, ".{f}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(decimals: Option<usize>, scale: f64, sign: bool, thousands: bool) -> ValueSpec {
        ValueSpec {
            pointer: String::new(),
            file: None,
            decimals,
            scale,
            sign,
            thousands,
        }
    }

    #[test]
    fn numbers_print_as_the_spec_says() {
        let v = |x: f64| serde_json::json!(x);
        assert_eq!(
            render(&v(0.4526), &spec(Some(1), 100.0, false, false)),
            Ok("45.3".into())
        );
        assert_eq!(
            render(&v(0.011), &spec(Some(1), 100.0, true, false)),
            Ok("+1.1".into())
        );
        assert_eq!(
            render(&v(-0.005), &spec(Some(1), 100.0, true, false)),
            Ok("-0.5".into())
        );
        assert_eq!(
            render(&v(1234567.0), &spec(Some(0), 1.0, false, true)),
            Ok("1,234,567".into())
        );
        assert_eq!(
            render(&v(-1234.5), &spec(Some(1), 1.0, false, true)),
            Ok("-1,234.5".into())
        );
        assert_eq!(
            render(&serde_json::json!(818), &spec(None, 1.0, false, false)),
            Ok("818".into())
        );
        assert_eq!(
            render(
                &serde_json::json!("shuffle3:0.5"),
                &spec(None, 1.0, false, false)
            ),
            Ok("shuffle3:0.5".into())
        );
        assert!(render(&serde_json::json!([1]), &spec(None, 1.0, false, false)).is_err());
    }

    #[test]
    fn evidence_may_be_named_by_its_file_or_its_study_folder() {
        let names = evidence_names("docs/a.md", "docs/evidence/study/run/x.json");
        for name in [
            "docs/evidence/study/run/x.json",
            "evidence/study/run/x.json",
            "docs/evidence/study/run",
            "docs/evidence/study",
            "evidence/study",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n == "docs/evidence" || n == "evidence"),
            "{names:?}"
        );
    }

    #[test]
    fn markdown_tables_are_the_blocks_of_pipe_lines() {
        let text = "# T\n\n| a | b |\n| --- | --- |\n| 1 |  2 |\n\ntext | not a table\n| c |\n";
        assert_eq!(
            markdown_tables(text),
            vec![
                "| a | b | | --- | --- | | 1 | 2 |".to_string(),
                "| c |".to_string()
            ]
        );
        assert!(markdown_tables("no tables here\n").is_empty());
    }

    #[test]
    fn paths_are_written_relative_to_the_document() {
        assert_eq!(
            relative_path(Path::new("docs"), Path::new("docs/evidence/a.json")),
            "evidence/a.json"
        );
        assert_eq!(
            relative_path(Path::new(""), Path::new("docs/evidence/a.json")),
            "docs/evidence/a.json"
        );
        assert_eq!(
            relative_path(Path::new("docs/x"), Path::new("docs/evidence/a.json")),
            "../../docs/evidence/a.json"
        );
    }
}
