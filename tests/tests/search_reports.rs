//! Every committed search report states the winner its own data choose: the winner is chosen again from
//! the report's candidates and measurements, and its reason, its counts (candidates measured, and how many
//! of them lie within the tolerance) and its sentence must be the committed ones.

use std::path::{Path, PathBuf};

use hsconas_nas::report::SearchReport;
use hsconas_tests::{read_evidence, repo_root};

/// Every JSON file (or gzip-compressed JSON file) under `dir` that parses as a search report with a winner.
fn committed_reports(dir: &Path) -> Vec<(PathBuf, SearchReport)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable evidence folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .to_str()
                .is_some_and(|p| p.ends_with(".json") || p.ends_with(".json.gz"))
            {
                let bytes = read_evidence(&path).expect("readable");
                let text = String::from_utf8_lossy(&bytes);
                if !text.contains("\"winner\"") || !text.contains("\"candidates\"") {
                    continue;
                }
                if let Ok(report) = serde_json::from_str::<SearchReport>(&text) {
                    if report.winner.is_some() {
                        found.push((path, report));
                    }
                }
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[test]
fn every_committed_winner_sentence_counts_what_its_report_holds() {
    let reports = committed_reports(&repo_root().join("docs/evidence"));
    assert!(
        reports.len() >= 5,
        "only {} committed search reports found",
        reports.len()
    );
    for (path, report) in reports {
        let stated = report.winner.as_ref().expect("a winner");
        let chosen = report
            .rechoose_winner()
            .unwrap_or_else(|| panic!("{}: no winner from its candidates", path.display()));
        let objective = &report.settings.objective;
        let at = path.display();
        assert_eq!(stated.arch, chosen.candidate.arch, "{at}: another winner");
        assert_eq!(stated.reason, chosen.reason, "{at}: another reason");
        assert_eq!(
            (stated.measured_candidates, stated.within_tolerance),
            (
                Some(chosen.measured_candidates),
                Some(chosen.within_tolerance)
            ),
            "{at}: the counts"
        );
        assert_eq!(
            stated.explanation,
            chosen.explanation(objective),
            "{at}: the sentence"
        );
    }
}
