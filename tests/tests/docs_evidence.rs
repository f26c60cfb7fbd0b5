//! Every number listed in `docs/evidence/claims.toml` is what its committed evidence file says, and the
//! check notices when a document or an evidence file changes alone.

use std::path::{Path, PathBuf};

use hsconas_tests::evidence::{check, load_manifest, Manifest, MANIFEST};

fn repo_root() -> PathBuf {
    hsconas_foundation::package_dir!()
        .join("..")
        .canonicalize()
        .expect("repository root")
}

#[test]
fn documented_numbers_match_their_evidence() {
    let root = repo_root();
    let manifest = load_manifest(&root).expect("the claims manifest parses");
    assert!(
        manifest.claims.len() >= 10,
        "{MANIFEST} lists only {} claims",
        manifest.claims.len()
    );
    let failures = check(&root).expect("the check runs");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A copy of what the claims read and the manifest as read from the copy.
fn claims_copy() -> (tempfile::TempDir, Manifest) {
    let copy = copy_of_the_claims(&repo_root());
    let manifest = load_manifest(copy.path()).expect("manifest");
    (copy, manifest)
}

/// Copies what the claims read (documents, evidence, manifest) into a temporary tree.
fn copy_of_the_claims(root: &Path) -> tempfile::TempDir {
    let manifest = load_manifest(root).expect("manifest");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut paths: Vec<String> = vec![MANIFEST.to_string()];
    for c in &manifest.claims {
        paths.push(c.doc.clone());
        paths.push(c.file.clone());
        paths.extend(c.values.iter().filter_map(|v| v.file.clone()));
    }
    for t in &manifest.tables {
        paths.push(t.doc.clone());
        paths.push(t.file.clone());
    }
    paths.sort();
    paths.dedup();
    for p in paths {
        let to = dir.path().join(&p);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(root.join(&p), &to).unwrap_or_else(|e| panic!("copying {p}: {e}"));
    }
    dir
}

/// Changes one digit of the first numeric claim's text in its document.
#[test]
fn an_altered_document_fails_the_check() {
    let (copy, manifest) = claims_copy();
    assert!(
        check(copy.path()).expect("runs").is_empty(),
        "the copy holds"
    );
    // A claim whose first value is a number: alter the digit that follows the text before it.
    let claim = manifest
        .claims
        .iter()
        .find(|c| c.text.contains("{}") && c.values.first().is_some_and(|v| v.decimals.is_some()))
        .expect("a numeric claim");
    let prefix = claim.text.split("{}").next().expect("a prefix");
    let prefix = prefix.split_whitespace().collect::<Vec<_>>().join(" ");
    let doc_path = copy.path().join(&claim.doc);
    let doc = std::fs::read_to_string(&doc_path).expect("doc");
    // Find the prefix with any white space between its words.
    let folded: String = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    // The occurrence of the prefix that the claim's first number follows (the words may occur earlier).
    let digit_at = folded
        .match_indices(&prefix)
        .map(|(i, _)| i + prefix.len())
        .find(|&at| {
            folded[at..]
                .trim_start()
                .starts_with(|c: char| c.is_ascii_digit())
        })
        .map(|at| at + (folded[at..].len() - folded[at..].trim_start().len()))
        .expect("the claim's text, followed by its number, is in the doc");
    let digit = folded.as_bytes()[digit_at] as char;
    let other = if digit == '7' { '3' } else { '7' };
    let mut altered = folded.clone();
    altered.replace_range(digit_at..digit_at + 1, &other.to_string());
    std::fs::write(&doc_path, altered).expect("write");
    let failures = check(copy.path()).expect("runs");
    assert!(
        failures
            .iter()
            .any(|f| f.contains(&claim.doc) && f.contains("expected")),
        "altering {digit} to {other} in {} went unnoticed: {failures:?}",
        claim.doc
    );
}

/// Changes a number in an evidence file.
#[test]
fn an_altered_evidence_file_fails_the_check() {
    let (copy, manifest) = claims_copy();
    let (claim, value) = manifest
        .claims
        .iter()
        .find_map(|c| {
            c.values
                .iter()
                .find(|v| v.decimals.is_some() && v.file.is_none())
                .map(|v| (c.clone(), v.clone()))
        })
        .expect("a numeric claim");
    let path = copy.path().join(&claim.file);
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("evidence")).expect("JSON");
    let slot = json.pointer_mut(&value.pointer).expect("the value");
    let x = slot.as_f64().expect("a number");
    // Large enough to change the printed digits whatever the decimals and scale.
    *slot = serde_json::json!(x * 1.5 + 1.0);
    std::fs::write(&path, serde_json::to_vec(&json).expect("serialise")).expect("write");
    let failures = check(copy.path()).expect("runs");
    assert!(
        failures.iter().any(|f| f.contains(&claim.file)),
        "altering {}#{} went unnoticed: {failures:?}",
        claim.file,
        value.pointer
    );
}

#[test]
fn a_claim_without_its_evidence_file_fails() {
    let (copy, manifest) = claims_copy();
    let file = &manifest.claims[0].file;
    std::fs::remove_file(copy.path().join(file)).expect("remove");
    let failures = check(copy.path()).expect("runs");
    assert!(
        failures.iter().any(|f| f.contains("cannot read evidence")),
        "{failures:?}"
    );
}

/// Changes one cell of a table that a document copies from a rendered evidence file.
#[test]
fn an_altered_copied_table_fails_the_check() {
    let (copy, manifest) = claims_copy();
    let entry = manifest
        .tables
        .first()
        .expect("the manifest lists a copied table");
    let doc_path = copy.path().join(&entry.doc);
    let doc = std::fs::read_to_string(&doc_path).expect("doc");
    let source = std::fs::read_to_string(copy.path().join(&entry.file)).expect("evidence");
    // The last data row of the evidence's first table, as the document has it.
    let row = source
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter(|l| !l.contains("---"))
        .last()
        .expect("a table row");
    assert!(doc.contains(row), "the document copies the row {row:?}");
    let altered_row = row.replacen('|', "| altered", 2);
    std::fs::write(&doc_path, doc.replacen(row, &altered_row, 1)).expect("write");
    let failures = check(copy.path()).expect("runs");
    assert!(
        failures
            .iter()
            .any(|f| f.contains(&entry.doc) && f.contains("is not in the document")),
        "altering {row:?} in {} went unnoticed: {failures:?}",
        entry.doc
    );
}
