//! Progress bars of long jobs (profiling, calibration, training), one style for all.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` items of `unit` with elapsed time and ETA, led by `label` (the elapsed time when
/// `None`, e.g. `epoch 3/10` for training); hidden when `show` is false (JSON output, tests).
pub fn progress_bar(len: usize, label: Option<&str>, unit: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let label = label.map_or_else(|| "{elapsed_precise}".to_string(), escape);
    let template = format!("{label} [{{bar:30}}] {{pos}}/{{len}} {unit}, ETA {{eta}} {{msg}}");
    ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

/// `text` with its braces doubled, so that the template shows it literally.
fn escape(text: &str) -> String {
    text.replace('{', "{{").replace('}', "}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_bars_draw_nothing_and_visible_ones_count() {
        assert!(progress_bar(3, None, "pieces", false).is_hidden());
        let bar = progress_bar(5, Some("epoch {1}/2"), "steps", true);
        bar.inc(2);
        assert_eq!(bar.position(), 2);
        assert_eq!(bar.length(), Some(5));
    }
}
