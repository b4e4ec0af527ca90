//! Pictures of a run, as data: the series a report carries and how to draw them.
//!
//! A scenario records each figure it followed over the run as a *series*
//! (`[[x, y], …]`, [`crate::RunContext::series`]) and says how to draw it
//! with a [`Plot`] ([`crate::RunContext::plot`]): a title, two labelled axes
//! with units, the series as lines, bars or histogram, and the objective or
//! bound as a horizontal line. Both travel in the [`crate::Report`] (JSON
//! `series` and `plots`), so a report read back from an exercise's program,
//! or from a file, can be drawn again: `debuglab run --html`, `debuglab
//! compare`, and the sparklines of the terminal report.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pools::Checkout;
use crate::sampler::Sample;
use crate::workload::WorkloadOutcome;

/// A series: `[x, y]` points in the order they were taken.
pub type Points = Vec<[f64; 2]>;

/// The points of sampled values: x is the time of the sample in ms, y what `pick` reads.
pub fn sampled<T>(samples: &[Sample<T>], pick: impl Fn(&T) -> f64) -> Points {
    samples
        .iter()
        .map(|sample| [millis(sample.at), pick(&sample.value)])
        .collect()
}

/// The points of `values` numbered from 1: x is the request (or view, or event), y its value.
pub fn numbered(values: impl IntoIterator<Item = f64>) -> Points {
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| [(index + 1) as f64, value])
        .collect()
}

/// A sample of a workload's requests on a timeline, as the pools saw them:
/// a row per request, each with the time it waited for its first pooled
/// connection and the time it went on after (see [`PlotKind::Timeline`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectionTimeline {
    /// The requests shown, row by row (their indexes).
    pub requests: Vec<usize>,
    /// `[start, first checkout]` of each row, in ms since the workload began.
    pub waiting: Points,
    /// `[first checkout, end]` of each row (`[end, end]` for a request that
    /// never got a connection: it waited all along).
    pub served: Points,
}

impl ConnectionTimeline {
    /// Every `every`-th finished request of `outcome`, by index, placed by
    /// the run's `checkouts` ([`crate::RunContext::checkouts`]).
    pub fn of<T, E>(
        outcome: &WorkloadOutcome<T, E>,
        checkouts: &[Checkout],
        every: usize,
    ) -> ConnectionTimeline {
        let mut records: Vec<_> = outcome
            .records
            .iter()
            .filter(|record| record.index % every.max(1) == 0)
            .collect();
        records.sort_by_key(|record| record.index);
        let mut timeline = ConnectionTimeline::default();
        for record in records {
            let (start, end) = (record.started, record.started + record.latency);
            let first = checkouts
                .iter()
                .filter(|checkout| checkout.request == record.index)
                .map(|checkout| checkout.at)
                .min()
                .unwrap_or(end)
                .clamp(start, end);
            timeline.requests.push(record.index);
            timeline.waiting.push([millis(start), millis(first)]);
            timeline.served.push([millis(first), millis(end)]);
        }
        timeline
    }

    /// A phase each request reports (a call it made, by request index, in
    /// ms since the workload began), aligned with the rows; rows without it get `[0, 0]`.
    pub fn phase(&self, spans: &std::collections::HashMap<usize, [f64; 2]>) -> Points {
        self.requests
            .iter()
            .map(|request| spans.get(request).copied().unwrap_or([0.0, 0.0]))
            .collect()
    }
}

/// Each finished request's latency in ms (x is the request's index): the
/// series of a latency histogram.
pub fn latencies<T, E>(outcome: &WorkloadOutcome<T, E>) -> Points {
    outcome
        .records
        .iter()
        .map(|record| [record.index as f64, millis(record.latency)])
        .collect()
}

/// A duration in milliseconds, for an axis.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// How a plot draws its series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlotKind {
    /// Each series as a line through its points, in x order: a figure over
    /// time, over requests, over views.
    Line,
    /// Each point of each series as a dot: many values per x (a latency per
    /// request by its size).
    Points,
    /// The y values of each series counted into bins along the x axis (log
    /// bins when the x axis is logarithmic): a latency distribution.
    Histogram,
    /// One group of bars per category (x = 0, 1, … names
    /// [`Plot::categories`]), one bar per series: expected against actual.
    Bars,
    /// One row per item (a request): point `i` of each series is `[start,
    /// end]` of one phase of item `i`, drawn as a bar — a Gantt chart.
    Timeline,
}

/// One axis: what it measures, in which unit, and whether its scale is logarithmic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    /// What the axis measures ("time since the sale began").
    pub label: String,
    /// Its unit ("ms", "connections"); empty for a pure count.
    #[serde(default)]
    pub unit: String,
    /// A logarithmic scale (latencies that span decades).
    #[serde(default)]
    pub log: bool,
}

impl Axis {
    /// The label with its unit and scale: `latency (ms, log scale)`.
    pub fn caption(&self) -> String {
        let notes: Vec<&str> = [self.unit.as_str(), if self.log { "log scale" } else { "" }]
            .into_iter()
            .filter(|note| !note.is_empty())
            .collect();
        if notes.is_empty() {
            self.label.clone()
        } else {
            format!("{} ({})", self.label, notes.join(", "))
        }
    }
}

/// One series drawn in a plot, with its legend label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The series' name in the report's `series`.
    pub series: String,
    /// Its label in the legend.
    pub label: String,
}

/// An objective or a limit, drawn across the plot at `value` on the y axis
/// (on the x axis for a histogram, whose x axis carries the values).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bound {
    /// Where the line goes.
    pub value: f64,
    /// What it is ("pool size: 5", "objective: p99 <= 3 s").
    pub label: String,
}

/// How to draw some of a report's series: a chart with a title, two axes
/// with units, a legend, and the bounds that judge it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plot {
    /// Unique within its report: `[a-z0-9_]`, used for anchors and file names.
    pub id: String,
    /// The chart's title: what it shows, in a learner's words.
    pub title: String,
    /// How the series are drawn.
    pub kind: PlotKind,
    /// The horizontal axis.
    pub x: Axis,
    /// The vertical axis.
    pub y: Axis,
    /// The series drawn, in legend order.
    pub lines: Vec<Line>,
    /// Objectives and limits, drawn as lines with their labels.
    #[serde(default)]
    pub bounds: Vec<Bound>,
    /// The names of x = 0, 1, … for [`PlotKind::Bars`].
    #[serde(default)]
    pub categories: Vec<String>,
}

impl Plot {
    /// A plot called `id` of the given kind, with no axes labelled and no series yet.
    pub fn new(id: &str, kind: PlotKind, title: &str) -> Plot {
        Plot {
            id: id.to_owned(),
            title: title.to_owned(),
            kind,
            x: Axis::default(),
            y: Axis::default(),
            lines: Vec::new(),
            bounds: Vec::new(),
            categories: Vec::new(),
        }
    }

    /// Labels the x axis.
    pub fn x(mut self, label: &str, unit: &str) -> Plot {
        self.x = Axis {
            label: label.to_owned(),
            unit: unit.to_owned(),
            log: self.x.log,
        };
        self
    }

    /// Labels the y axis.
    pub fn y(mut self, label: &str, unit: &str) -> Plot {
        self.y = Axis {
            label: label.to_owned(),
            unit: unit.to_owned(),
            log: self.y.log,
        };
        self
    }

    /// Makes the x axis logarithmic.
    pub fn log_x(mut self) -> Plot {
        self.x.log = true;
        self
    }

    /// Makes the y axis logarithmic.
    pub fn log_y(mut self) -> Plot {
        self.y.log = true;
        self
    }

    /// Draws the series `series`, labelled `label` in the legend.
    pub fn line(mut self, series: &str, label: &str) -> Plot {
        self.lines.push(Line {
            series: series.to_owned(),
            label: label.to_owned(),
        });
        self
    }

    /// Draws a bound at `value`, labelled `label`.
    pub fn bound(mut self, value: f64, label: &str) -> Plot {
        self.bounds.push(Bound {
            value,
            label: label.to_owned(),
        });
        self
    }

    /// Names the categories of a bar plot (x = 0, 1, …).
    pub fn categories<S: AsRef<str>>(mut self, names: impl IntoIterator<Item = S>) -> Plot {
        self.categories = names
            .into_iter()
            .map(|name| name.as_ref().to_owned())
            .collect();
        self
    }
}

/// Eight levels of a sparkline, lowest first.
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The shape of `points` in at most `width` characters (`▁▂▃▅▇`): the y
/// values, in x order, resampled to `width` columns (each the largest y of
/// its stretch, so a short peak still shows), scaled from the lowest to the
/// highest value. Empty for no points; flat at the bottom when all are equal.
pub fn sparkline(points: &[[f64; 2]], width: usize) -> String {
    let values: Vec<f64> = points
        .iter()
        .map(|point| point[1])
        .filter(|y| y.is_finite())
        .collect();
    if values.is_empty() || width == 0 {
        return String::new();
    }
    let columns = width.min(values.len());
    let column_max = |column: usize| {
        let start = column * values.len() / columns;
        let end = ((column + 1) * values.len() / columns).max(start + 1);
        values[start..end].iter().copied().fold(f64::MIN, f64::max)
    };
    let resampled: Vec<f64> = (0..columns).map(column_max).collect();
    let low = values.iter().copied().fold(f64::MAX, f64::min);
    let high = values.iter().copied().fold(f64::MIN, f64::max);
    resampled
        .iter()
        .map(|value| {
            if high <= low {
                return SPARKS[0];
            }
            let level = ((value - low) / (high - low) * (SPARKS.len() - 1) as f64).round();
            SPARKS[level as usize]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_shows_the_shape_and_keeps_short_peaks() {
        let rising = numbered([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        assert_eq!(sparkline(&rising, 8), "▁▂▃▄▅▆▇█");
        let peak = numbered([0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(sparkline(&peak, 4), "▁█▁▁");
        assert_eq!(sparkline(&numbered([3.0, 3.0]), 10), "▁▁");
        assert_eq!(sparkline(&[], 10), "");
        assert_eq!(
            sparkline(&numbered((0..100).map(f64::from)), 10)
                .chars()
                .count(),
            10
        );
    }

    #[test]
    fn plots_are_built_with_axes_lines_and_bounds() {
        let plot = Plot::new("pool", PlotKind::Line, "Pool over time")
            .x("time", "ms")
            .y("connections", "")
            .log_y()
            .line("in_use", "in use")
            .bound(5.0, "pool size: 5");
        assert_eq!(plot.x.caption(), "time (ms)");
        assert_eq!(plot.y.caption(), "connections (log scale)");
        assert!(plot.y.log && !plot.x.log);
        assert_eq!(plot.lines[0].series, "in_use");
        assert_eq!(plot.bounds[0].value, 5.0);
        let json = serde_json::to_value(&plot).unwrap();
        assert_eq!(json["kind"], "line");
        let back: Plot = serde_json::from_value(json).unwrap();
        assert_eq!(back, plot);
    }

    #[test]
    fn a_connection_timeline_waits_until_the_first_checkout() {
        use crate::workload::{Ended, RequestRecord};
        let record = |index: usize, started: u64, latency: u64| RequestRecord {
            index,
            started: Duration::from_millis(started),
            latency: Duration::from_millis(latency),
            result: Ok::<(), ()>(()),
        };
        let outcome = WorkloadOutcome {
            records: vec![record(2, 0, 500), record(0, 0, 300), record(1, 10, 100)],
            planned: 3,
            issued: 3,
            unfinished: 0,
            cut_off: false,
            ended: Ended::AllIssued,
            elapsed: Duration::from_millis(500),
        };
        let checkout = |request: usize, at: u64| Checkout {
            request,
            at: Duration::from_millis(at),
            store: crate::Service::Redis,
        };
        let checkouts = [checkout(0, 250), checkout(0, 40), checkout(2, 480)];
        let timeline = ConnectionTimeline::of(&outcome, &checkouts, 2);
        assert_eq!(timeline.requests, vec![0, 2]);
        assert_eq!(timeline.waiting, vec![[0.0, 40.0], [0.0, 480.0]]);
        assert_eq!(timeline.served, vec![[40.0, 300.0], [480.0, 500.0]]);
        let calls = std::collections::HashMap::from([(2, [481.0, 499.0])]);
        assert_eq!(timeline.phase(&calls), vec![[0.0, 0.0], [481.0, 499.0]]);
        // A request that never got a connection waited all along.
        let none = ConnectionTimeline::of(&outcome, &[], 1);
        assert_eq!(none.waiting[1], [10.0, 110.0]);
        assert_eq!(none.served[1], [110.0, 110.0]);
    }

    #[test]
    fn samples_become_points_in_milliseconds() {
        let samples = vec![
            Sample {
                at: Duration::from_millis(0),
                value: 4_usize,
            },
            Sample {
                at: Duration::from_millis(20),
                value: 7,
            },
        ];
        assert_eq!(
            sampled(&samples, |v| *v as f64),
            vec![[0.0, 4.0], [20.0, 7.0]]
        );
    }
}
