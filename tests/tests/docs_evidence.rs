//! Every number listed in `docs/evidence/claims.toml` is what its committed evidence file says, and the
//! check notices when a document or an evidence file changes alone.

use std::path::Path;

use hsconas_tests::evidence::coverage::decimal_numbers;
use hsconas_tests::evidence::{
    check, check_with, load_manifest, render, EvidenceCache, Manifest, MANIFEST,
};
use hsconas_tests::repo_root;

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
    paths.extend(manifest.constants.iter().map(|c| c.doc.clone()));
    paths.extend(manifest.documents.iter().map(|d| d.doc.clone()));
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

/// The mutation test of the checked documents: every decimal number of each, changed in turn (its last
/// digit), makes the check fail, whether a claim, a copied table or a constant accounts for it.
#[test]
fn every_number_of_a_checked_document_is_guarded() {
    let (copy, manifest) = claims_copy();
    assert!(
        !manifest.documents.is_empty(),
        "no [[document]] in {MANIFEST}"
    );
    assert!(
        check(copy.path()).expect("runs").is_empty(),
        "the copy holds"
    );
    // Only the documents change below: the evidence is parsed once.
    let mut evidence = EvidenceCache::default();
    for document in &manifest.documents {
        let path = copy.path().join(&document.doc);
        let original = std::fs::read_to_string(&path).expect("doc");
        let numbers = decimal_numbers(&original);
        assert!(!numbers.is_empty(), "{} has no number", document.doc);
        for number in numbers {
            let last = number.end - 1;
            let digit = original.as_bytes()[last];
            let other = if digit == b'9' {
                '0'
            } else {
                (digit + 1) as char
            };
            let mut altered = original.clone();
            altered.replace_range(last..number.end, &other.to_string());
            std::fs::write(&path, &altered).expect("write");
            let failures = check_with(copy.path(), &mut evidence).expect("runs");
            assert!(
                failures.iter().any(|f| f.contains(&document.doc)),
                "{}: {} changed to {other} went unnoticed",
                document.doc,
                &original[number]
            );
        }
        std::fs::write(&path, &original).expect("restore");
    }
}

/// The claims check reads every copy: a second copy of a claimed sentence with another number fails,
/// although the first copy still holds (the defect: one right copy made every other copy free).
#[test]
fn a_wrong_second_copy_of_a_claimed_sentence_fails() {
    let (copy, manifest) = claims_copy();
    let claim = manifest
        .claims
        .iter()
        .find(|c| c.values.iter().any(|v| v.decimals.is_some()))
        .expect("a numeric claim");
    let evidence: serde_json::Value =
        serde_json::from_slice(&std::fs::read(copy.path().join(&claim.file)).expect("evidence"))
            .expect("JSON");
    let (mut sentence, mut altered_one) = (String::new(), false);
    let pieces: Vec<&str> = claim.text.split("{}").collect();
    for (i, piece) in pieces.iter().enumerate() {
        sentence.push_str(piece);
        if let Some(spec) = claim.values.get(i) {
            let source = match &spec.file {
                Some(file) => serde_json::from_slice(
                    &std::fs::read(copy.path().join(file)).expect("evidence"),
                )
                .expect("JSON"),
                None => evidence.clone(),
            };
            let value = source.pointer(&spec.pointer).expect("the value");
            let printed = render(value, spec).expect("renders");
            // The first number printed with decimals gets another last digit.
            let altered = if spec.decimals.is_some() && !altered_one {
                altered_one = true;
                let last = printed.chars().last().expect("a digit");
                let other = if last == '9' {
                    '0'
                } else {
                    char::from(last as u8 + 1)
                };
                format!("{}{other}", &printed[..printed.len() - 1])
            } else {
                printed
            };
            sentence.push_str(&altered);
        }
    }
    let path = copy.path().join(&claim.doc);
    let doc = std::fs::read_to_string(&path).expect("doc");
    std::fs::write(&path, format!("{doc}\n\nA copy: {sentence}.\n")).expect("write");
    let failures = check(copy.path()).expect("runs");
    assert!(
        failures.iter().any(|f| f.contains("a copy prints")),
        "a wrong copy of \"{}\" went unnoticed: {failures:?}",
        claim.text
    );
}

/// A number in a checked document that no claim, table or constant accounts for fails the check.
#[test]
fn a_number_no_claim_reads_fails_the_coverage_check() {
    let (copy, manifest) = claims_copy();
    let doc = &manifest.documents.first().expect("a checked document").doc;
    let path = copy.path().join(doc);
    let text = std::fs::read_to_string(&path).expect("doc");
    std::fs::write(&path, format!("{text}\nThe winner gained 1.89 points.\n")).expect("write");
    let failures = check(copy.path()).expect("runs");
    assert!(
        failures
            .iter()
            .any(|f| f.contains("1.89") && f.contains("is no claim's value")),
        "{failures:?}"
    );
}
