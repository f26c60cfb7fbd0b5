//! Scatter plots as PNG or SVG (chosen by the file extension), drawn with `plotters` and an embedded font
//! so that they render the same on a machine without fonts.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// Colours of series (re-exported so that callers need no `plotters` dependency).
pub use plotters::style::RGBColor;

/// One set of points.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Colour.
    pub color: RGBColor,
    /// `(x, y)` points.
    pub points: Vec<(f64, f64)>,
}

/// A scatter plot.
pub struct Scatter<'a> {
    /// Title on top.
    pub title: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// Point sets.
    pub series: Vec<Series<'a>>,
    /// Draw `y = x` and the ±`band` relative lines (e.g. 0.1 for ±10%).
    pub identity: Option<f64>,
}

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The file name asks for a format other than PNG or SVG.
    #[error("plot file '{}' must end in .png or .svg", .0.display())]
    Format(PathBuf),
    /// The drawing backend failed (an unwritable file, a degenerate range).
    #[error("drawing {}: {message}", path.display())]
    Draw {
        /// The plot file.
        path: PathBuf,
        /// The backend's message.
        message: String,
    },
}

/// Colours used across reports.
pub const BLUE: RGBColor = RGBColor(31, 119, 180);
/// Second series.
pub const ORANGE: RGBColor = RGBColor(255, 127, 14);
/// Reference lines.
pub const GREY: RGBColor = RGBColor(120, 120, 120);

/// Renders `$plot` (a type with `render`) into `$path`, PNG or SVG by extension, 900x700 pixels.
macro_rules! draw_file {
    ($plot:expr, $path:expr) => {{
        ensure_font();
        let path: &Path = $path;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let size = (900, 700);
        match ext.as_deref() {
            Some("png") => $plot.render(BitMapBackend::new(path, size).into_drawing_area()),
            Some("svg") => $plot.render(SVGBackend::new(path, size).into_drawing_area()),
            _ => return Err(PlotError::Format(path.to_path_buf())),
        }
        .map_err(|message| PlotError::Draw {
            path: path.to_path_buf(),
            message,
        })
    }};
}

fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Registration only fails for an unparsable font, and this one is fixed at build time.
        let _ = register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

impl Scatter<'_> {
    /// Draws the plot to `path` (`.png` or `.svg`), 900x700 pixels.
    pub fn draw(&self, path: &Path) -> Result<(), PlotError> {
        draw_file!(self, path)
    }

    fn render<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{e:?}");
        root.fill(&WHITE).map_err(err)?;
        let all = || self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in all() {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if self.identity.is_some() {
            (x0, y0) = (x0.min(y0), x0.min(y0));
            (x1, y1) = (x1.max(y1), x1.max(y1));
        }
        let pad = |a: f64, b: f64| {
            let p = ((b - a) * 0.05).max(1e-9);
            (a - p)..(b + p)
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(pad(x0, x1), pad(y0, y1))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(err)?;
        if let Some(band) = self.identity {
            let (lo, hi) = (x0.min(y0), x1.max(y1));
            for (factor, label) in [
                (1.0, "y = x".to_string()),
                (1.0 + band, format!("±{:.0}%", band * 100.0)),
                (1.0 - band, String::new()),
            ] {
                let style = if factor == 1.0 {
                    GREY.stroke_width(2)
                } else {
                    GREY.mix(0.6).stroke_width(1)
                };
                let series = chart
                    .draw_series(LineSeries::new(
                        [(lo, lo * factor), (hi, hi * factor)],
                        style,
                    ))
                    .map_err(err)?;
                if !label.is_empty() {
                    series
                        .label(label)
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
                }
            }
        }
        for s in &self.series {
            let color = s.color;
            chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                )
                .map_err(err)?
                .label(s.label)
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        }
        let legend_rows = self.series.len() + usize::from(self.identity.is_some()) * 2;
        chart
            .configure_series_labels()
            .position(quietest_corner(all(), (x0, x1), (y0, y1), legend_rows))
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
        Ok(())
    }
}

/// The corner of the plot where a legend of `rows` entries covers the fewest points (upper left on ties).
fn quietest_corner<'p>(
    points: impl Iterator<Item = &'p (f64, f64)>,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    rows: usize,
) -> SeriesLabelPosition {
    // The legend's share of the plot: about 0.3 of the width, 0.1 plus 0.04 per row of the height.
    let (width, height) = (0.3, (0.1 + 0.04 * rows as f64).min(0.9));
    let mut covered = [0usize; 4];
    for &(x, y) in points {
        let fx = (x - x0) / (x1 - x0).max(1e-12);
        let fy = (y - y0) / (y1 - y0).max(1e-12);
        let (left, right) = (fx <= width, fx >= 1.0 - width);
        let (top, bottom) = (fy >= 1.0 - height, fy <= height);
        for (i, inside) in [left && top, right && top, left && bottom, right && bottom]
            .into_iter()
            .enumerate()
        {
            covered[i] += usize::from(inside);
        }
    }
    match (0..4).min_by_key(|&i| covered[i]) {
        Some(1) => SeriesLabelPosition::UpperRight,
        Some(2) => SeriesLabelPosition::LowerLeft,
        Some(3) => SeriesLabelPosition::LowerRight,
        _ => SeriesLabelPosition::UpperLeft,
    }
}

/// A histogram of values with an optional vertical marker (e.g. a latency target).
pub struct Histogram<'a> {
    /// Title on top.
    pub title: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// The values.
    pub values: Vec<f64>,
    /// Number of equal-width bins.
    pub bins: usize,
    /// A vertical line at `x` with a legend label.
    pub marker: Option<(f64, &'a str)>,
}

impl Histogram<'_> {
    /// Draws the histogram to `path` (`.png` or `.svg`), 900x700 pixels.
    pub fn draw(&self, path: &Path) -> Result<(), PlotError> {
        draw_file!(self, path)
    }

    fn render<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{e:?}");
        root.fill(&WHITE).map_err(err)?;
        let mut lo = self.values.iter().copied().fold(f64::MAX, f64::min);
        let mut hi = self.values.iter().copied().fold(f64::MIN, f64::max);
        if let Some((x, _)) = self.marker {
            (lo, hi) = (lo.min(x), hi.max(x));
        }
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        }
        let bins = self.bins.max(1);
        let width = ((hi - lo) / bins as f64).max(1e-9);
        let mut counts = vec![0usize; bins];
        for &v in &self.values {
            counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(lo..(lo + width * bins as f64), 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc("count")
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &n)| {
                let x = lo + i as f64 * width;
                Rectangle::new([(x, 0.0), (x + width, n as f64)], BLUE.mix(0.7).filled())
            }))
            .map_err(err)?;
        if let Some((x, label)) = self.marker {
            chart
                .draw_series(LineSeries::new(
                    [(x, 0.0), (x, top)],
                    ORANGE.stroke_width(3),
                ))
                .map_err(err)?
                .label(label)
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], ORANGE.stroke_width(3)));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(("sans-serif", 16))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_goes_where_it_hides_the_fewest_points() {
        let corner =
            |points: &[(f64, f64)]| quietest_corner(points.iter(), (0.0, 1.0), (0.0, 1.0), 3);
        assert_eq!(corner(&[]), SeriesLabelPosition::UpperLeft);
        assert_eq!(
            corner(&[(0.05, 0.95), (0.5, 0.5)]),
            SeriesLabelPosition::UpperRight
        );
        assert_eq!(
            corner(&[(0.05, 0.95), (0.95, 0.95), (0.05, 0.05)]),
            SeriesLabelPosition::LowerRight
        );
        // A diagonal (predicted vs measured) leaves the upper left and lower right free.
        let diagonal: Vec<(f64, f64)> = (0..=10)
            .map(|i| (i as f64 / 10.0, i as f64 / 10.0))
            .collect();
        assert_eq!(corner(&diagonal), SeriesLabelPosition::UpperLeft);
    }
}
