//! Documented numbers checked against the result files they come from.
//!
//! `docs/evidence/claims.toml` lists claims: a piece of text of a document (`README.md`, `docs/*.md`)
//! with `{}` placeholders, the evidence file (a committed JSON result) and, per placeholder, a JSON pointer
//! into it and how the value is printed. A claim holds when the document contains the text with every
//! placeholder filled from the evidence (white space folded, so line wrapping does not matter) and names
//! the evidence file, so a reader can find it. Rounding to the printed decimals is the only tolerance: a
//! documented number is the evidence's number as printed, or the check fails.
//!
//! Every copy counts: a claim's text is found at *every* place the document has it (its words between
//! the values), and each place must print the evidence's values; a claim found nowhere fails.
//!
//! Tables that a study's report renders (a committed Markdown file beside its JSON, e.g. the
//! `results.md` of `research/scripts/reproduce.sh`) are listed as `[[table]]` entries instead of one claim per
//! cell: every Markdown table of the evidence file must appear in the document as it is (white space
//! folded), and the document must name the file.
//!
//! Documents listed as `[[document]]` are checked for coverage as well ([`coverage`]): each decimal
//! number in them must be a claim's value, inside a copied table, or a listed `[[constant]]`.

mod claims;
pub mod coverage;
mod render;

pub use render::render;

use std::collections::HashMap;
use std::ops::Range;
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
    /// Numbers that are settings or constants, not results, with the reason.
    #[serde(rename = "constant", default)]
    pub constants: Vec<Constant>,
    /// Documents whose every decimal number must be accounted for.
    #[serde(rename = "document", default)]
    pub documents: Vec<CheckedDocument>,
}

/// Text of a document whose numbers are not results (a target setting, a recipe), so no evidence file
/// holds them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constant {
    /// The document, relative to the repository root.
    pub doc: String,
    /// The text as the document has it (every place it appears is accounted for).
    pub text: String,
    /// Why its numbers are not measurements.
    pub why: String,
}

/// A document held to full coverage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckedDocument {
    /// The document, relative to the repository root.
    pub doc: String,
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
    /// Added before scaling (-1 for a ratio printed as a change: 1.031 as 3.1%).
    #[serde(default)]
    pub offset: f64,
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

/// Checks every claim of the manifest under `root`, and the coverage of its checked documents; returns
/// one message per claim (or document) that does not hold (empty: all hold).
pub fn check(root: &Path) -> Result<Vec<String>, EvidenceError> {
    check_with(root, &mut EvidenceCache::default())
}

/// The evidence files a check has parsed, by name: a caller that checks the same tree again with only
/// its documents changed (the mutation test) passes one cache to every [`check_with`].
#[derive(Default)]
pub struct EvidenceCache(HashMap<String, Result<serde_json::Value, String>>);

/// [`check`], reading the evidence files through `cache` (documents and the manifest are read afresh).
pub fn check_with(root: &Path, cache: &mut EvidenceCache) -> Result<Vec<String>, EvidenceError> {
    let manifest = load_manifest(root)?;
    let mut files = Files::new(root, cache);
    let mut covered = Covered::new();
    let mut failures = Vec::new();
    // Claims with the same words in the same document (a sentence said of several runs) are checked
    // together: each must be found, and each place must print the values of one of them.
    let mut groups: Vec<((String, String), Vec<usize>)> = Vec::new();
    for (i, claim) in manifest.claims.iter().enumerate() {
        let key = (claim.doc.clone(), fold(&claim.text));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    // In a checked document a claim's own words hold no number: each is a value, compared, or a
    // listed constant.
    for (i, claim) in manifest.claims.iter().enumerate() {
        if manifest.documents.iter().any(|d| d.doc == claim.doc) {
            let words = fold(&claim.text.replace("{}", " "));
            for number in coverage::decimal_numbers(&words) {
                failures.push(format!(
                    "claim {} ({}): its text holds the number {}: make it a value, or a constant",
                    i + 1,
                    claim.doc,
                    &words[number]
                ));
            }
        }
    }
    for (_, members) in groups {
        let claims: Vec<(usize, &Claim)> =
            members.iter().map(|&i| (i, &manifest.claims[i])).collect();
        failures.extend(claims::check_claims(&claims, &mut files, &mut covered));
    }
    for (i, table) in manifest.tables.iter().enumerate() {
        if let Err(why) = check_tables(table, &mut files, &mut covered) {
            failures.push(format!("table entry {} ({}): {why}", i + 1, table.doc));
        }
    }
    for (i, constant) in manifest.constants.iter().enumerate() {
        let expected = fold(&constant.text);
        let text = match files.doc(&constant.doc) {
            Ok(text) => text,
            Err(why) => {
                failures.push(format!("constant {} ({}): {why}", i + 1, constant.doc));
                continue;
            }
        };
        let places: Vec<_> = text.match_indices(&expected).map(|(at, _)| at).collect();
        if places.is_empty() {
            failures.push(format!(
                "constant {} ({}): \"{expected}\" is not in the document",
                i + 1,
                constant.doc
            ));
        }
        for at in places {
            covered.add(&constant.doc, at..at + expected.len());
        }
    }
    for document in &manifest.documents {
        let text = match files.doc(&document.doc) {
            Ok(text) => text,
            Err(why) => {
                failures.push(format!("document {}: {why}", document.doc));
                continue;
            }
        };
        for number in coverage::uncovered(text, covered.of(&document.doc)) {
            failures.push(format!(
                "{}: {number} is no claim's value, in no copied table and no listed constant",
                document.doc
            ));
        }
    }
    Ok(failures)
}

/// The ranges of each folded document that claims, tables and constants account for.
struct Covered(HashMap<String, Vec<Range<usize>>>);

impl Covered {
    fn new() -> Covered {
        Covered(HashMap::new())
    }

    fn add(&mut self, doc: &str, range: Range<usize>) {
        self.0.entry(doc.to_string()).or_default().push(range);
    }

    fn of(&self, doc: &str) -> &[Range<usize>] {
        self.0.get(doc).map_or(&[], Vec::as_slice)
    }
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

fn check_tables(
    entry: &TableClaim,
    files: &mut Files<'_>,
    covered: &mut Covered,
) -> Result<(), String> {
    let source = std::fs::read_to_string(files.root.join(&entry.file))
        .map_err(|e| format!("cannot read evidence {}: {e}", entry.file))?;
    let tables = markdown_tables(&source);
    if tables.is_empty() {
        return Err(format!("{} holds no Markdown table", entry.file));
    }
    let text = files.doc(&entry.doc)?;
    for table in &tables {
        for (at, _) in text.match_indices(table.as_str()) {
            covered.add(&entry.doc, at..at + table.len());
        }
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
struct Files<'cache> {
    root: PathBuf,
    docs: HashMap<String, Result<String, String>>,
    json: &'cache mut EvidenceCache,
}

impl<'cache> Files<'cache> {
    fn new(root: &Path, json: &'cache mut EvidenceCache) -> Files<'cache> {
        Files {
            root: root.to_path_buf(),
            docs: HashMap::new(),
            json,
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
            .0
            .entry(name.to_string())
            .or_insert_with(|| {
                let bytes = crate::read_evidence(&path)
                    .map_err(|e| format!("cannot read evidence {name}: {e}"))?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("evidence {name} is not JSON: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// White space folded to one space (Markdown wraps lines anywhere), except that each table row keeps a
/// line of its own: a claim never spans two rows, and a table-row claim matches whole rows.
fn fold(text: &str) -> String {
    let mut folded = String::new();
    let mut in_table = false;
    for line in text.lines() {
        let words = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if words.is_empty() {
            continue;
        }
        let row = words.starts_with('|');
        if !folded.is_empty() {
            folded.push(if row || in_table { '\n' } else { ' ' });
        }
        folded.push_str(&words);
        in_table = row;
    }
    folded
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

#[cfg(test)]
mod tests {
    use super::*;

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
                "| a | b |\n| --- | --- |\n| 1 | 2 |".to_string(),
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
