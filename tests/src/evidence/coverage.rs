//! Which numbers of a document the claims do not account for.
//!
//! A *checked* document (`[[document]]` in the manifest) may hold a decimal number only where a claim's
//! value, a copied evidence table or a listed constant (`[[constant]]`, with the reason it is not a
//! measurement) puts it. So a wrong copy of a number cannot hide in a sentence no claim reads: either a
//! claim at that place fails, or the number is not accounted for.
//!
//! A number here is a decimal (`57.06`, `-0.66`, `1,234.5`): counts, dates and settings written as whole
//! numbers are not required to be claimed (a claim may still check them). Not numbers: digits inside a
//! word or a name (`x0.5`, `shuffle3:0.7`, `seed-0.json`), versions (`1.31.1`), and inline code
//! (`--target-ms 0.7`). Fenced blocks (transcripts) are prose here: their numbers are checked.

use std::ops::Range;
use std::sync::LazyLock;

/// A decimal: digits, a point and digits (thousands grouped with commas allowed).
static DECIMAL: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"\d{1,3}(?:,\d{3})+\.\d+|\d+\.\d+").expect("a valid pattern")
});

/// `text` (folded) with the marks of fenced blocks blanked and inline code spans found: the byte
/// ranges of inline code.
fn inline_code(text: &str) -> (String, Vec<Range<usize>>) {
    let text = text.replace("```", "   ");
    let mut spans = Vec::new();
    let mut open: Option<usize> = None;
    for (at, c) in text.char_indices() {
        if c == '`' {
            match open.take() {
                Some(start) => spans.push(start..at + 1),
                None => open = Some(at),
            }
        }
    }
    (text, spans)
}

/// The decimal numbers of a folded document, as byte ranges (a sign written before one is included).
pub fn decimal_numbers(text: &str) -> Vec<Range<usize>> {
    let (text, code) = inline_code(text);
    let before = |at: usize| text[..at].chars().next_back();
    let wordish = |c: char| c.is_alphanumeric() || c == '_';
    DECIMAL
        .find_iter(&text)
        .filter_map(|m| {
            let mut start = m.start();
            match before(start) {
                Some(c) if wordish(c) || ".:/\\#=".contains(c) => return None,
                Some(c) if "+-±−".contains(c) => {
                    let sign_at = start - c.len_utf8();
                    if before(sign_at).is_some_and(wordish) {
                        return None; // a hyphenated name: `seed-0.5`, `T-0.7`
                    }
                    start = sign_at;
                }
                _ => {}
            }
            let mut after = text[m.end()..].chars();
            match (after.next(), after.next()) {
                (Some('.'), Some(d)) if d.is_ascii_digit() => return None, // a version
                (Some('x' | '×'), next) if !next.is_some_and(wordish) => {} // a speed-up
                (Some(c), _) if wordish(c) || c == '/' => return None,
                _ => {}
            }
            if code.iter().any(|span| span.contains(&m.start())) {
                return None;
            }
            Some(start..m.end())
        })
        .collect()
}

/// The numbers of `text` that no range of `covered` contains, each with the words around it.
pub fn uncovered(text: &str, covered: &[Range<usize>]) -> Vec<String> {
    decimal_numbers(text)
        .into_iter()
        .filter(|n| {
            // Its digits: a sign written before a claimed value (`±3.0`) may be the claim's words.
            let digits = text[n.clone()]
                .find(|c: char| c.is_ascii_digit())
                .map_or(n.start, |at| n.start + at);
            !covered.iter().any(|c| c.start <= digits && n.end <= c.end)
        })
        .map(|n| {
            let from = floor_char(text, n.start.saturating_sub(50));
            let to = floor_char(text, (n.end + 30).min(text.len()));
            format!("{} in \"…{}…\"", &text[n.clone()], &text[from..to])
        })
        .collect()
}

fn floor_char(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(text: &str) -> Vec<&str> {
        decimal_numbers(text)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn decimals_in_prose_and_transcripts_are_numbers() {
        assert_eq!(
            numbers("winner 57.06% (56.53 / 57.59), -0.66 points, ±0.5 ms, 1,234.5 images, 0.58x"),
            vec!["57.06", "56.53", "57.59", "-0.66", "±0.5", "1,234.5", "0.58"]
        );
        assert_eq!(numbers("```text measured 0.687 ms ```"), vec!["0.687"]);
    }

    #[test]
    fn names_versions_and_code_are_not_numbers() {
        let text = "ShuffleNetV2 x0.5, shuffle3:0.7, seed-0.5.json, ONNX Runtime 1.31.1, \
                    `--target-ms 0.7`, v1.2, results/u06-0.84ms, 0.84ms";
        assert!(numbers(text).is_empty(), "{:?}", numbers(text));
    }

    #[test]
    fn a_number_outside_every_covered_range_is_reported_with_its_words() {
        let text = "median 53.92% and winner 57.06%";
        let covered = vec![Range { start: 7, end: 13 }]; // "53.92%" minus the sign
        let missing = uncovered(text, &covered);
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(missing[0].starts_with("57.06 in"), "{missing:?}");
        let everything = vec![Range {
            start: 0,
            end: text.len(),
        }];
        assert!(uncovered(text, &everything).is_empty());
    }
}
