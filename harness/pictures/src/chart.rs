//! One [`Plot`] of one report drawn as SVG with plotters, inside a [`Frame`]
//! that may be shared with other reports' panels (a comparison draws buggy
//! and fixed on the same axes).

use std::collections::BTreeMap;
use std::ops::Range;

use debuglab_harness::plot::{Plot, PlotKind, Points};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::PictureError;

/// Width and height of one panel, in SVG pixels (it scales with the page).
pub const PANEL_SIZE: (u32, u32) = (640, 360);

/// Bins of a histogram.
const HISTOGRAM_BINS: usize = 30;

/// Series colours (Tableau 10), the same series the same colour in every panel.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x9c, 0x75, 0x5f),
];

/// Bounds are drawn in this colour, dashed.
const BOUND_COLOR: RGBColor = RGBColor(0x33, 0x33, 0x33);

/// A report's series by name.
pub type SeriesMap = BTreeMap<String, Points>;

/// The axes of a plot, shared by every panel drawn with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// The x axis' range.
    pub x: Range<f64>,
    /// The y axis' range.
    pub y: Range<f64>,
    /// A histogram's bin edges (ascending); empty for other kinds.
    pub bins: Vec<f64>,
}

impl Frame {
    /// The frame that fits `plot`'s series in every one of `panels`, and its bounds.
    pub fn fit(plot: &Plot, panels: &[&SeriesMap]) -> Frame {
        let drawn: Vec<&Points> = panels
            .iter()
            .flat_map(|series| {
                plot.lines
                    .iter()
                    .filter_map(|line| series.get(&line.series))
            })
            .collect();
        match plot.kind {
            PlotKind::Line | PlotKind::Points => {
                let xs = drawn.iter().flat_map(|points| points.iter().map(|p| p[0]));
                let ys = drawn.iter().flat_map(|points| points.iter().map(|p| p[1]));
                let bounds = plot.bounds.iter().map(|bound| bound.value);
                Frame::plain(
                    span(xs, plot.x.log),
                    value_span(ys.chain(bounds), plot.y.log),
                )
            }
            PlotKind::Histogram => histogram_frame(plot, &drawn),
            PlotKind::Bars => {
                let groups = plot.categories.len().max(
                    drawn
                        .iter()
                        .flat_map(|points| points.iter().map(|p| p[0] as usize + 1))
                        .max()
                        .unwrap_or(1),
                );
                let ys = drawn.iter().flat_map(|points| points.iter().map(|p| p[1]));
                let bounds = plot.bounds.iter().map(|bound| bound.value);
                Frame::plain(
                    -0.5..groups as f64 - 0.5,
                    value_span(ys.chain(bounds), plot.y.log),
                )
            }
            PlotKind::Timeline => {
                let rows = drawn
                    .iter()
                    .map(|points| points.len())
                    .max()
                    .unwrap_or(1)
                    .max(1);
                let ends = drawn
                    .iter()
                    .flat_map(|points| points.iter().flat_map(|p| [p[0], p[1]]));
                Frame::plain(span(ends, false), rows as f64..0.0)
            }
        }
    }

    fn plain(x: Range<f64>, y: Range<f64>) -> Frame {
        Frame {
            x,
            y,
            bins: Vec::new(),
        }
    }
}

/// The range of `values` (positive ones on a log axis), never empty.
fn span(values: impl Iterator<Item = f64>, log: bool) -> Range<f64> {
    let (low, high) = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .fold((f64::MAX, f64::MIN), |(low, high), v| {
            (low.min(v), high.max(v))
        });
    if low > high {
        return if log { 1.0..10.0 } else { 0.0..1.0 };
    }
    if (high - low).abs() < f64::EPSILON {
        return if log {
            low / 2.0..high * 2.0
        } else {
            low - 1.0..high + 1.0
        };
    }
    low..high
}

/// The range of measured values: from 0 (linear) with head room above the
/// highest, where the legend goes.
fn value_span(values: impl Iterator<Item = f64>, log: bool) -> Range<f64> {
    let range = span(values, log);
    if log {
        // A decade below the smallest value, so that bars standing on the
        // floor show it, and most of one above for the legend.
        10f64.powf(range.start.log10().floor() - 1.0)..range.end * 8.0
    } else {
        let low = range.start.min(0.0);
        low..range.end + (range.end - low).abs() * LEGEND_ROOM
    }
}

/// Head room above the highest value, as a share of the range: the legend's place.
const LEGEND_ROOM: f64 = 0.4;

/// Bins over every value of every panel (log-spaced on a log axis), and the
/// y range that holds the fullest bin.
fn histogram_frame(plot: &Plot, drawn: &[&Points]) -> Frame {
    let values = || drawn.iter().flat_map(|points| points.iter().map(|p| p[1]));
    let bounds = plot.bounds.iter().map(|bound| bound.value);
    let x = span(values().chain(bounds), plot.x.log);
    // Whole decades, so that a log axis has its powers of ten to label.
    let x = if plot.x.log {
        10f64.powf(x.start.log10().floor())..10f64.powf(x.end.log10().ceil())
    } else {
        x
    };
    let bins: Vec<f64> = (0..=HISTOGRAM_BINS)
        .map(|edge| {
            let share = edge as f64 / HISTOGRAM_BINS as f64;
            if plot.x.log {
                x.start * (x.end / x.start).powf(share)
            } else {
                x.start + (x.end - x.start) * share
            }
        })
        .collect();
    let fullest = drawn
        .iter()
        .flat_map(|points| bin_counts(points, &bins))
        .max()
        .unwrap_or(1);
    Frame {
        x: bins[0]..bins[HISTOGRAM_BINS],
        y: 0.0..(fullest as f64 * (1.0 + LEGEND_ROOM)).max(1.0),
        bins,
    }
}

/// How many of `points`' y values fall in each bin (the last bin includes its upper edge).
pub fn bin_counts(points: &[[f64; 2]], bins: &[f64]) -> Vec<usize> {
    let mut counts = vec![0; bins.len().saturating_sub(1)];
    for value in points.iter().map(|p| p[1]) {
        if let Some(index) = bins
            .windows(2)
            .position(|edge| value >= edge[0] && value < edge[1])
        {
            counts[index] += 1;
        } else if bins.last() == Some(&value) && !counts.is_empty() {
            *counts.last_mut().expect("not empty") += 1;
        }
    }
    counts
}

/// Draws `plot` with the `series` of one report in `frame`, titled `heading`
/// under the plot's title when given; returns the SVG document.
pub fn render(
    plot: &Plot,
    series: &SeriesMap,
    frame: &Frame,
    heading: Option<&str>,
) -> Result<String, PictureError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PANEL_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let caption = match heading {
            Some(heading) => format!("{} — {heading}", plot.title),
            None => plot.title.clone(),
        };
        let (x, y) = (frame.x.clone(), frame.y.clone());
        match (plot.x.log, plot.y.log) {
            (false, false) => draw(&root, plot, series, frame, &caption, x, y),
            (true, false) => draw(&root, plot, series, frame, &caption, x.log_scale(), y),
            (false, true) => draw(&root, plot, series, frame, &caption, x, y.log_scale()),
            (true, true) => draw(
                &root,
                plot,
                series,
                frame,
                &caption,
                x.log_scale(),
                y.log_scale(),
            ),
        }?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn draw<'a, X, Y>(
    root: &Area<'a>,
    plot: &Plot,
    series: &SeriesMap,
    frame: &Frame,
    caption: &str,
    x: X,
    y: Y,
) -> Result<(), PictureError>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(draw_error)?;
    let categories = plot.categories.clone();
    let x_label = move |value: &f64| match plot.kind {
        PlotKind::Bars => category_label(&categories, *value),
        _ => tick(*value),
    };
    let y_label = |value: &f64| match plot.kind {
        PlotKind::Timeline => String::new(),
        _ => tick(*value),
    };
    chart
        .configure_mesh()
        .x_desc(plot.x.caption())
        .y_desc(match plot.kind {
            PlotKind::Histogram => "requests".to_owned(),
            _ => plot.y.caption(),
        })
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .x_labels(match plot.kind {
            PlotKind::Bars => frame.x.end.ceil() as usize + 1,
            _ => 8,
        })
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(draw_error)?;
    draw_series(&mut chart, plot, series, frame)?;
    draw_bounds(&mut chart, plot, frame)?;
    chart
        .configure_series_labels()
        .position(legend_corner(plot, series, frame))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(draw_error)?;
    Ok(())
}

/// Where the legend goes: the upper right, but for a timeline the corner
/// its bars leave emptiest (rows run down in the order they began, so bars
/// may fill any corner but one).
fn legend_corner(plot: &Plot, series: &SeriesMap, frame: &Frame) -> SeriesLabelPosition {
    if plot.kind != PlotKind::Timeline {
        return SeriesLabelPosition::UpperRight;
    }
    let bars: Vec<(usize, [f64; 2])> = plot
        .lines
        .iter()
        .filter_map(|line| series.get(&line.series))
        .flat_map(|points| points.iter().copied().enumerate())
        .filter(|(_, [start, end])| end > start)
        .collect();
    // The legend's box: about 45% of the width and 35% of the rows.
    let (x, rows) = (&frame.x, frame.y.start.max(1.0));
    let left_until = x.start + 0.45 * (x.end - x.start);
    let right_from = x.end - 0.45 * (x.end - x.start);
    let corners = [
        (SeriesLabelPosition::UpperRight, false, true),
        (SeriesLabelPosition::LowerLeft, true, false),
        (SeriesLabelPosition::UpperLeft, false, false),
        (SeriesLabelPosition::LowerRight, true, true),
    ];
    let crowding = |lower: bool, right: bool| {
        bars.iter()
            .filter(|(row, [start, end])| {
                let row = *row as f64 + 0.5;
                let in_rows = if lower {
                    row > 0.65 * rows
                } else {
                    row < 0.35 * rows
                };
                let in_width = if right {
                    *end > right_from
                } else {
                    *start < left_until
                };
                in_rows && in_width
            })
            .count()
    };
    corners
        .into_iter()
        .min_by_key(|(_, lower, right)| crowding(*lower, *right))
        .map_or(SeriesLabelPosition::UpperRight, |(corner, _, _)| corner)
}

type Chart<'a, 'b, X, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>;

fn draw_series<X, Y>(
    chart: &mut Chart<'_, '_, X, Y>,
    plot: &Plot,
    series: &SeriesMap,
    frame: &Frame,
) -> Result<(), PictureError>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let count = plot.lines.len().max(1);
    for (index, line) in plot.lines.iter().enumerate() {
        let Some(points) = series.get(&line.series) else {
            continue;
        };
        let color = PALETTE[index % PALETTE.len()];
        let annotation = match plot.kind {
            PlotKind::Line => {
                let mut ordered: Vec<(f64, f64)> = points.iter().map(|p| (p[0], p[1])).collect();
                ordered.sort_by(|a, b| a.0.total_cmp(&b.0));
                chart
                    .draw_series(LineSeries::new(ordered, color.stroke_width(2)))
                    .map_err(draw_error)?
            }
            PlotKind::Points => {
                let dots = points
                    .iter()
                    .map(|p| Circle::new((p[0], p[1]), 3, color.mix(0.7).filled()));
                chart.draw_series(dots).map_err(draw_error)?
            }
            PlotKind::Histogram => {
                let counts = bin_counts(points, &frame.bins);
                let bars = frame
                    .bins
                    .windows(2)
                    .zip(counts)
                    .filter(|(_, n)| *n > 0)
                    .map(|(edge, n)| {
                        Rectangle::new(
                            [(edge[0], 0.0), (edge[1], n as f64)],
                            color.mix(0.55).filled(),
                        )
                    });
                chart.draw_series(bars).map_err(draw_error)?
            }
            PlotKind::Bars => {
                let width = 0.8 / count as f64;
                // On a log scale, bars stand on the axis' floor rather than on 0.
                let floor = if plot.y.log { frame.y.start } else { 0.0 };
                let bars = points.iter().map(|p| {
                    let left = p[0] - 0.4 + width * index as f64;
                    Rectangle::new([(left, floor), (left + width * 0.9, p[1])], color.filled())
                });
                chart.draw_series(bars).map_err(draw_error)?
            }
            PlotKind::Timeline => {
                // A row without this phase has an empty span, drawn as nothing.
                let bars =
                    points
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p[1] > p[0])
                        .map(|(row, p)| {
                            Rectangle::new(
                                [(p[0], row as f64 + 0.1), (p[1], row as f64 + 0.9)],
                                color.filled(),
                            )
                        });
                chart.draw_series(bars).map_err(draw_error)?
            }
        };
        annotation
            .label(line.label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    Ok(())
}

fn draw_bounds<X, Y>(
    chart: &mut Chart<'_, '_, X, Y>,
    plot: &Plot,
    frame: &Frame,
) -> Result<(), PictureError>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    for bound in &plot.bounds {
        let ends = if plot.kind == PlotKind::Histogram {
            vec![(bound.value, frame.y.start), (bound.value, frame.y.end)]
        } else {
            vec![(frame.x.start, bound.value), (frame.x.end, bound.value)]
        };
        chart
            .draw_series(DashedLineSeries::new(
                ends,
                8,
                5,
                BOUND_COLOR.stroke_width(2),
            ))
            .map_err(draw_error)?
            .label(bound.label.clone())
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 14, y)], BOUND_COLOR.stroke_width(2))
            });
    }
    Ok(())
}

/// A tick label: thousands grouped, at most two decimals, no trailing zeros.
fn tick(value: f64) -> String {
    if value.abs() >= 1000.0 {
        return debuglab_harness::report::grouped(value);
    }
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// The name of the category at `value` (bars sit on whole numbers); none between them.
fn category_label(categories: &[String], value: f64) -> String {
    let index = value.round();
    if (value - index).abs() > 0.01 || index < 0.0 {
        return String::new();
    }
    categories.get(index as usize).cloned().unwrap_or_default()
}

fn draw_error<E: std::error::Error + Send + Sync>(error: DrawingAreaErrorKind<E>) -> PictureError {
    PictureError::Draw(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use debuglab_harness::plot::numbered;

    fn series(entries: &[(&str, Points)]) -> SeriesMap {
        entries
            .iter()
            .map(|(name, points)| (name.to_string(), points.clone()))
            .collect()
    }

    /// The SVG as XML, with every text it shows.
    fn parsed(svg: &str) -> (roxmltree::Document<'_>, Vec<String>) {
        let document = roxmltree::Document::parse(svg).expect("the SVG parses as XML");
        let texts = document
            .descendants()
            .filter(|node| node.has_tag_name("text"))
            .filter_map(|node| node.text())
            .map(|text| text.trim().to_owned())
            .collect();
        (document, texts)
    }

    /// Elements of `tag` drawn in palette colour `index`.
    fn in_colour<'a>(
        document: &'a roxmltree::Document<'_>,
        tag: &str,
        index: usize,
    ) -> Vec<roxmltree::Node<'a, 'a>> {
        let RGBColor(r, g, b) = PALETTE[index];
        let colour = format!("#{r:02X}{g:02X}{b:02X}");
        document
            .descendants()
            .filter(|node| node.has_tag_name(tag))
            .filter(|node| {
                node.attribute("stroke") == Some(&colour) || node.attribute("fill") == Some(&colour)
            })
            .collect()
    }

    #[test]
    fn a_line_plot_has_its_title_axes_points_legend_and_bound() {
        let plot = Plot::new("pool", PlotKind::Line, "Pool over the sale")
            .x("time", "ms")
            .y("waiting", "requests")
            .line("waiting", "Redis waiting")
            .line("in_use", "Redis in use")
            .bound(5.0, "pool size: 5");
        let data = series(&[
            ("waiting", numbered([0.0, 45.0, 45.0, 3.0, 0.0])),
            ("in_use", numbered([5.0, 5.0, 5.0])),
        ]);
        let svg = render(&plot, &data, &Frame::fit(&plot, &[&data]), Some("buggy")).unwrap();
        let (document, texts) = parsed(&svg);
        for text in [
            "Pool over the sale — buggy",
            "time (ms)",
            "waiting (requests)",
            "Redis waiting",
            "Redis in use",
            "pool size: 5",
        ] {
            assert!(texts.iter().any(|t| t == text), "no {text:?} in {texts:?}");
        }
        let lines = in_colour(&document, "polyline", 0);
        assert_eq!(lines.len(), 1, "{svg}");
        let points = lines[0]
            .attribute("points")
            .unwrap()
            .split_whitespace()
            .count();
        assert_eq!(points, 5);
        let second = in_colour(&document, "polyline", 1);
        assert_eq!(
            second[0]
                .attribute("points")
                .unwrap()
                .split_whitespace()
                .count(),
            3
        );
    }

    #[test]
    fn a_histogram_counts_values_into_shared_log_bins() {
        let plot = Plot::new("latency", PlotKind::Histogram, "Latency")
            .x("latency", "ms")
            .log_x()
            .line("latency_ms", "order history")
            .bound(100.0, "objective");
        let slow = series(&[("latency_ms", numbered([800.0, 900.0, 1000.0, 950.0]))]);
        let fast = series(&[("latency_ms", numbered([1.0, 1.5, 3.0, 1.1]))]);
        let frame = Frame::fit(&plot, &[&slow, &fast]);
        assert_eq!(frame.bins.len(), HISTOGRAM_BINS + 1);
        assert!(frame.x.start <= 1.0 && frame.x.end >= 1000.0, "{frame:?}");
        let counts = bin_counts(&fast["latency_ms"], &frame.bins);
        assert_eq!(counts.iter().sum::<usize>(), 4);
        let svg = render(&plot, &fast, &frame, Some("fixed")).unwrap();
        let (document, texts) = parsed(&svg);
        assert!(
            texts.iter().any(|t| t == "latency (ms, log scale)"),
            "{texts:?}"
        );
        assert!(texts.iter().any(|t| t == "requests"), "{texts:?}");
        let nonempty = counts.iter().filter(|n| **n > 0).count();
        assert_eq!(nonempty, 3, "{counts:?}");
        // One bar per bin that holds a value (the legend's square is opaque).
        let bars = document
            .descendants()
            .filter(|node| node.has_tag_name("rect") && node.attribute("opacity") == Some("0.55"))
            .count();
        assert_eq!(bars, nonempty, "{svg}");
    }

    #[test]
    fn bars_stand_on_their_categories() {
        let plot = Plot::new("stores", PlotKind::Bars, "Likes per store")
            .x("store", "")
            .y("likes", "likes")
            .categories(["PostgreSQL", "Redis"])
            .line("expected", "expected")
            .line("actual", "actual");
        let data = series(&[
            ("expected", vec![[0.0, 2000.0], [1.0, 2000.0]]),
            ("actual", vec![[0.0, 1400.0], [1.0, 1900.0]]),
        ]);
        let svg = render(&plot, &data, &Frame::fit(&plot, &[&data]), None).unwrap();
        let (document, texts) = parsed(&svg);
        for text in [
            "PostgreSQL",
            "Redis",
            "likes (likes)",
            "Likes per store",
            "2,000",
        ] {
            assert!(texts.iter().any(|t| t == text), "no {text:?} in {texts:?}");
        }
        // Two bars and a legend square for each series.
        assert_eq!(in_colour(&document, "rect", 0).len(), 3, "{svg}");
        assert_eq!(in_colour(&document, "rect", 1).len(), 3, "{svg}");
    }

    #[test]
    fn a_timeline_legend_goes_where_its_bars_leave_room() {
        let plot = Plot::new("computations", PlotKind::Timeline, "Computations")
            .x("time", "ms")
            .y("computation", "")
            .line("computing", "computing");
        let legend = |rows: Vec<[f64; 2]>, frame_rows: f64| {
            let data = series(&[("computing", rows)]);
            let frame = Frame {
                x: 0.0..1000.0,
                y: frame_rows..0.0,
                bins: Vec::new(),
            };
            legend_corner(&plot, &data, &frame)
        };
        // Rows that begin later and later: the upper right is empty.
        let diagonal = (0..10).map(|i| [i as f64 * 90.0, i as f64 * 90.0 + 100.0]);
        assert_eq!(
            legend(diagonal.collect(), 10.0),
            SeriesLabelPosition::UpperRight
        );
        // A few rows across the whole width, on axes shared with a longer
        // timeline: below them is room.
        let few = vec![[0.0, 50.0], [300.0, 350.0], [900.0, 950.0]];
        assert_eq!(legend(few, 40.0), SeriesLabelPosition::LowerLeft);
        // Long bars at the top and bottom rows on the left: the lower right.
        let mut rows = vec![[0.0, 1000.0]; 4];
        rows.extend(vec![[0.0, 10.0]; 2]);
        rows.extend(vec![[0.0, 300.0]; 4]);
        assert_eq!(legend(rows, 10.0), SeriesLabelPosition::LowerRight);
    }

    #[test]
    fn a_timeline_has_a_row_per_request_and_a_bar_per_phase() {
        let plot = Plot::new("requests", PlotKind::Timeline, "Requests")
            .x("time", "ms")
            .y("request", "")
            .line("waiting", "waiting for a connection")
            .line("holding", "holding it");
        let data = series(&[
            ("waiting", vec![[0.0, 10.0], [0.0, 200.0], [5.0, 400.0]]),
            ("holding", vec![[10.0, 160.0], [200.0, 350.0]]),
        ]);
        let frame = Frame::fit(&plot, &[&data]);
        assert_eq!(frame.y, 3.0..0.0);
        let svg = render(&plot, &data, &frame, None).unwrap();
        let (document, _) = parsed(&svg);
        assert_eq!(in_colour(&document, "rect", 0).len(), 3 + 1);
        assert_eq!(in_colour(&document, "rect", 1).len(), 2 + 1);
    }

    #[test]
    fn points_are_dots() {
        let plot = Plot::new("latency", PlotKind::Points, "Latency by size")
            .x("units", "")
            .y("latency", "ms")
            .line("q", "quotes");
        let data = series(&[("q", vec![[1.0, 2.0], [1.0, 3.0], [40.0, 900.0]])]);
        let svg = render(&plot, &data, &Frame::fit(&plot, &[&data]), None).unwrap();
        let (document, _) = parsed(&svg);
        assert_eq!(
            document
                .descendants()
                .filter(|node| node.has_tag_name("circle"))
                .count(),
            3,
            "{svg}"
        );
    }

    #[test]
    fn missing_series_and_empty_plots_still_draw() {
        let plot = Plot::new("nothing", PlotKind::Line, "Nothing yet")
            .x("time", "ms")
            .y("n", "")
            .line("absent", "absent");
        let empty = SeriesMap::new();
        let svg = render(&plot, &empty, &Frame::fit(&plot, &[&empty]), None).unwrap();
        parsed(&svg);
    }

    #[test]
    fn ticks_are_short_and_grouped() {
        assert_eq!(tick(1.5), "1.5");
        assert_eq!(tick(2.0), "2");
        assert_eq!(tick(0.05), "0.05");
        assert_eq!(tick(12_500.0), "12,500");
        assert_eq!(tick(-0.001), "0");
    }
}
