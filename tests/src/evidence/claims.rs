//! Checking the claims of one document: each claim's words are found at every place the document has
//! them, and each place must print the values of one of the claims that share those words.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{LazyLock, Mutex};

use super::{evidence_names, fold, nearest, render, Claim, Covered, Files};

/// The values of `claim` as its document must print them.
pub(super) fn claim_values(claim: &Claim, files: &mut Files<'_>) -> Result<Vec<String>, String> {
    let placeholders = claim.text.matches("{}").count();
    if placeholders != claim.values.len() {
        return Err(format!(
            "the text has {placeholders} placeholders but {} values are given",
            claim.values.len()
        ));
    }
    claim
        .values
        .iter()
        .map(|spec| {
            let file = spec.file.as_deref().unwrap_or(&claim.file);
            let value = files
                .json(file)?
                .pointer(&spec.pointer)
                .ok_or_else(|| format!("{file} has nothing at {}", spec.pointer))?;
            render(value, spec).map_err(|e| format!("{file}#{}: {e}", spec.pointer))
        })
        .collect()
}

/// Checks claims that share their words and document (`(index, claim)`): each is found with its values
/// and names its evidence, and every place with those words prints the values of one of them.
pub(super) fn check_claims(
    claims: &[(usize, &Claim)],
    files: &mut Files<'_>,
    covered: &mut Covered,
) -> Vec<String> {
    let Some(&(first, model)) = claims.first() else {
        return Vec::new();
    };
    let doc = model.doc.clone();
    let failure = |i: usize, why: String| format!("claim {} ({doc}): {why}", i + 1);
    let pieces: Vec<String> = model.text.split("{}").map(fold_piece).collect();
    let mut failures = Vec::new();
    let mut expected: Vec<(usize, &Claim, Vec<String>)> = Vec::new();
    for &(i, claim) in claims {
        match claim_values(claim, files) {
            Ok(values) => expected.push((i, claim, values)),
            Err(why) => failures.push(failure(i, why)),
        }
    }
    let text = match files.doc(&doc) {
        Ok(text) => text.to_string(),
        Err(why) => return vec![failure(first, why)],
    };
    let places = places(&text, &pieces);
    let printed = |place: &[Range<usize>]| -> Vec<String> {
        place.iter().map(|r| text[r.clone()].to_string()).collect()
    };
    for (i, claim, values) in &expected {
        let mut sentence = pieces[0].clone();
        for (value, piece) in values.iter().zip(&pieces[1..]) {
            sentence.push_str(value);
            sentence.push_str(piece);
        }
        if !places.iter().any(|p| printed(p) == *values) {
            failures.push(failure(
                *i,
                format!(
                    "expected \"{sentence}\" (from {}){}",
                    claim.file,
                    nearest(&text, &sentence)
                ),
            ));
        }
        let names = evidence_names(&doc, &claim.file);
        if !names.iter().any(|name| text.contains(name.as_str())) {
            failures.push(failure(
                *i,
                format!(
                    "the document does not name its evidence (any of: {})",
                    names.join(", ")
                ),
            ));
        }
    }
    for place in places {
        let said = printed(&place);
        if expected.iter().any(|(_, _, values)| *values == said) {
            for range in place {
                covered.add(&doc, range);
            }
        } else if !expected.is_empty() {
            let from = place
                .first()
                .map_or(0, |r| r.start.saturating_sub(pieces[0].len()));
            let to = place.last().map_or(from, |r| r.end);
            failures.push(failure(
                first,
                format!(
                    "a copy prints {} in \"{}\", which is no claim's evidence (expected {})",
                    said.join(", "),
                    &text[from..to],
                    expected
                        .iter()
                        .map(|(_, _, v)| v.join(", "))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            ));
        }
    }
    failures
}

/// A piece of a claim's text between values, folded like the document but keeping the white space at
/// its ends (it separates the piece from the values).
fn fold_piece(piece: &str) -> String {
    let mut folded = String::new();
    if piece.starts_with(char::is_whitespace) {
        folded.push(' ');
    }
    folded.push_str(&fold(piece));
    if piece.ends_with(char::is_whitespace) && !fold(piece).is_empty() {
        folded.push(' ');
    }
    folded
}

/// The compiled regex of a claim's pattern, compiled once per process (a check runs many times in the
/// mutation test, with the same claims).
fn compiled(pattern: &str) -> regex::Regex {
    static COMPILED: LazyLock<Mutex<HashMap<String, regex::Regex>>> =
        LazyLock::new(Default::default);
    let mut compiled = COMPILED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    compiled
        .entry(pattern.to_string())
        .or_insert_with(|| {
            regex::Regex::new(pattern).expect("escaped words and fixed value patterns")
        })
        .clone()
}

/// Every place of `text` where the claim's words (`pieces`, the text between its values) appear in
/// order: the byte ranges its values are printed at. A value inside the text is what lies between two
/// pieces (no white space); a value at either end is the word there, its punctuation left out.
fn places(text: &str, pieces: &[String]) -> Vec<Vec<Range<usize>>> {
    let last = pieces.len() - 1;
    let mut pattern = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            // A number is taken whole first (so that `0.10.` ends the value at `0.10`), else a word.
            pattern.push_str(if i == last && piece.is_empty() {
                r"([+\-±]?\d[\d,]*(?:\.\d+)?|[^\s)\]]*[^\s.,;:)\]])"
            } else if i == 1 && pieces[0].is_empty() {
                r"([+\-±]?\d[\d,]*(?:\.\d+)?|[^\s(\[]+?)"
            } else {
                r"([+\-±]?\d[\d,]*(?:\.\d+)?|\S+?)"
            });
        }
        pattern.push_str(&regex::escape(piece));
    }
    // A table row is matched whole: from the start of its line to the end when the claim ends the row.
    if pieces[0].starts_with('|') {
        pattern.insert_str(0, "(?m)^");
        if pieces[last].ends_with('|') {
            pattern.push('$');
        }
    }
    compiled(&pattern)
        .captures_iter(text)
        .map(|found| found.iter().skip(1).flatten().map(|m| m.range()).collect())
        .collect()
}
