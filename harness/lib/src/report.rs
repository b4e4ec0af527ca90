//! The report of one run, as JSON and as text for a terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::plot::{sparkline, Plot, PlotKind, Points};
use crate::terminal::{paint, styles};
use crate::Variant;
use anstyle::Style;

/// The result of running one variant of one scenario.
///
/// Serialised as `{scenario, variant, healthy, duration_ms, summary, metrics,
/// evidence, series, plots}`.
/// Every string in it has been passed through [`crate::redact::redact`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The scenario's id.
    pub scenario: String,
    /// The variant that ran.
    pub variant: Variant,
    /// Whether the service met the scenario's objective.
    pub healthy: bool,
    /// Wall-clock time of the run, set-up included.
    pub duration_ms: u64,
    /// One sentence on the verdict and the figures that decided it.
    pub summary: String,
    /// The measured figures, by name.
    pub metrics: BTreeMap<String, f64>,
    /// What an engineer would look at: plans, server views, log lines.
    pub evidence: Vec<String>,
    /// The figures followed over the run, by name: `[[x, y], …]`.
    #[serde(default)]
    pub series: BTreeMap<String, Points>,
    /// How to draw them ([`crate::plot`]).
    #[serde(default)]
    pub plots: Vec<Plot>,
}

/// What a report means for the variant that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A buggy variant showed its symptom, as it should.
    SymptomReproduced,
    /// A buggy variant did not show its symptom: the scenario is broken.
    SymptomNotReproduced,
    /// A fixed (or exercise) variant met the objective.
    FixVerified,
    /// A fixed (or exercise) variant still shows the symptom.
    SymptomPersists,
}

impl Outcome {
    /// Whether this is what the variant should produce.
    pub fn as_expected(self) -> bool {
        matches!(self, Outcome::SymptomReproduced | Outcome::FixVerified)
    }

    /// A short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::SymptomReproduced => "symptom reproduced",
            Outcome::SymptomNotReproduced => "symptom NOT reproduced",
            Outcome::FixVerified => "fix verified",
            Outcome::SymptomPersists => "symptom persists",
        }
    }
}

impl Report {
    /// What the report means for its variant.
    pub fn outcome(&self) -> Outcome {
        match (self.variant.expected_healthy(), self.healthy) {
            (false, false) => Outcome::SymptomReproduced,
            (false, true) => Outcome::SymptomNotReproduced,
            (true, true) => Outcome::FixVerified,
            (true, false) => Outcome::SymptomPersists,
        }
    }

    /// A metric by name.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).copied()
    }

    /// The report as text for a terminal, every metric included; `color` adds ANSI colours.
    pub fn render_text(&self, color: bool) -> String {
        self.render(color, None)
    }

    /// The report for a learner: the verdict, the `key` figures (in that
    /// order), then the evidence; the other metrics are only counted.
    pub fn render_key_figures(&self, color: bool, key: &[&str]) -> String {
        self.render(color, Some(key))
    }

    fn render(&self, color: bool, key: Option<&[&str]>) -> String {
        let paint = |style: Style, text: &str| paint(color, style, text);
        let outcome = self.outcome();
        let health = if self.healthy {
            paint(styles::GOOD, "HEALTHY")
        } else {
            paint(styles::BAD, "UNHEALTHY")
        };
        let outcome_label = if outcome.as_expected() {
            paint(styles::STRONG, outcome.label())
        } else {
            paint(styles::SURPRISE, outcome.label())
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} · {} · {} · {} · {:.1} s",
            paint(styles::STRONG, &self.scenario),
            self.variant,
            health,
            outcome_label,
            self.duration_ms as f64 / 1000.0
        );
        let _ = writeln!(out, "  {}", self.summary);
        let shown: Vec<(&str, f64)> = match key {
            Some(key) => key
                .iter()
                .filter_map(|name| self.metrics.get(*name).map(|value| (*name, *value)))
                .collect(),
            None => self
                .metrics
                .iter()
                .map(|(name, value)| (name.as_str(), *value))
                .collect(),
        };
        if !shown.is_empty() {
            let heading = if key.is_some() {
                "key figures"
            } else {
                "metrics"
            };
            let _ = writeln!(out, "\n{}", paint(styles::STRONG, heading));
            let width = shown.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
            for (name, value) in &shown {
                let _ = writeln!(out, "  {name:<width$}  {}", format_number(*value));
            }
            if shown.len() < self.metrics.len() {
                let _ = writeln!(
                    out,
                    "  (+{} more metrics with --format json)",
                    self.metrics.len() - shown.len()
                );
            }
        }
        // Sparklines go with colours: where those are off (NO_COLOR, a pipe),
        // the reader may be a program or a screen reader.
        if color {
            out.push_str(&self.render_sparklines(&paint));
        }
        if !self.evidence.is_empty() {
            let _ = writeln!(out, "\n{}", paint(styles::STRONG, "evidence"));
            for line in &self.evidence {
                let mut lines = line.lines();
                if let Some(first) = lines.next() {
                    let _ = writeln!(out, "  - {first}");
                }
                for rest in lines {
                    let _ = writeln!(out, "    {rest}");
                }
            }
        }
        out
    }
}

impl Report {
    /// The line plots' series as sparklines under their plot's title, with
    /// their lowest and highest value; empty when there are none.
    fn render_sparklines(&self, paint: &dyn Fn(Style, &str) -> String) -> String {
        let mut out = String::new();
        for plot in self.plots.iter().filter(|plot| plot.kind == PlotKind::Line) {
            let drawn: Vec<(&str, &Points)> = plot
                .lines
                .iter()
                .filter_map(|line| {
                    let points = self.series.get(&line.series)?;
                    (points.len() >= 2).then_some((line.label.as_str(), points))
                })
                .collect();
            if drawn.is_empty() {
                continue;
            }
            if out.is_empty() {
                let _ = writeln!(out, "\n{}", paint(styles::STRONG, "over the run"));
            }
            let _ = writeln!(out, "  {}", plot.title);
            let width = drawn
                .iter()
                .map(|(label, _)| label.chars().count())
                .max()
                .unwrap_or(0);
            for (label, points) in drawn {
                let low = points.iter().map(|point| point[1]).fold(f64::MAX, f64::min);
                let high = points.iter().map(|point| point[1]).fold(f64::MIN, f64::max);
                let _ = writeln!(
                    out,
                    "    {label:<width$}  {}  {} to {}{}",
                    paint(styles::PICTURE, &sparkline(points, SPARKLINE_WIDTH)),
                    format_number(low),
                    format_number(high),
                    if plot.y.unit.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", plot.y.unit)
                    }
                );
            }
        }
        out
    }
}

/// Columns of a sparkline in the terminal report.
const SPARKLINE_WIDTH: usize = 40;

/// Formats a metric: whole numbers without decimals, others with one
/// decimal from 100 up and three below; thousands grouped (`59,999,000`).
pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        grouped(value)
    } else if value.abs() >= 100.0 {
        group_digits(&format!("{value:.1}"))
    } else {
        format!("{value:.3}")
    }
}

/// `value` rounded to a whole number, its thousands grouped: `59,999,000`
/// (for sentences; metrics keep [`format_number`]).
pub fn grouped(value: f64) -> String {
    group_digits(&format!("{}", value.round()))
}

/// `text`, a formatted number, with commas between the thousands of its whole part.
fn group_digits(text: &str) -> String {
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, format!(".{fraction}")),
        None => (unsigned, String::new()),
    };
    let mut out = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    let sign = if out.chars().all(|c| c == '0' || c == ',') {
        ""
    } else {
        sign
    };
    format!("{sign}{out}{fraction}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_numbers_have_thousands_separators() {
        assert_eq!(grouped(999_900.0), "999,900");
        assert_eq!(grouped(59_999_000.4), "59,999,000");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(-1_234.0), "-1,234");
        assert_eq!(grouped(0.2), "0");
        assert_eq!(grouped(-0.2), "0");
    }

    #[test]
    fn metrics_are_grouped_with_their_decimals() {
        assert_eq!(format_number(1_234_567.0), "1,234,567");
        assert_eq!(format_number(12_345.67), "12,345.7");
        assert_eq!(format_number(-1_234.5), "-1,234.5");
        assert_eq!(format_number(80.25), "80.250");
        assert_eq!(format_number(40.0), "40");
    }

    #[test]
    fn key_figures_come_in_their_order_and_the_rest_are_counted() {
        let mut report = report(Variant::Buggy, false);
        report.metrics = BTreeMap::from([
            ("a".to_owned(), 1.0),
            ("b".to_owned(), 2.0),
            ("c".to_owned(), 3.0),
        ]);
        let text = report.render_key_figures(false, &["c", "a", "missing"]);
        let c = text.find("  c  3").expect("c is shown");
        let a = text.find("  a  1").expect("a is shown");
        assert!(c < a, "{text}");
        assert!(!text.contains("  b  2"), "{text}");
        assert!(
            text.contains("(+1 more metrics with --format json)"),
            "{text}"
        );
    }

    fn report(variant: Variant, healthy: bool) -> Report {
        Report {
            scenario: "slow-query".into(),
            variant,
            healthy,
            duration_ms: 1234,
            summary: "p95 80 ms is above the 10 ms objective".into(),
            metrics: BTreeMap::from([("p95_ms".into(), 80.25), ("calls".into(), 40.0)]),
            evidence: vec!["plan: Seq Scan on orders\n  rows removed: 999,900".into()],
            series: BTreeMap::new(),
            plots: Vec::new(),
        }
    }

    #[test]
    fn line_plots_show_as_sparklines_only_with_colours() {
        let mut report = report(Variant::Buggy, false);
        report.series.insert(
            "waiting".into(),
            crate::plot::numbered([0.0, 45.0, 45.0, 0.0]),
        );
        report.plots.push(
            Plot::new("pool", PlotKind::Line, "Pool over the sale")
                .y("requests", "requests")
                .line("waiting", "Redis waiting")
                .line("never_recorded", "missing"),
        );
        let text = report.render_text(true);
        assert!(text.contains("over the run"), "{text}");
        assert!(text.contains("  Pool over the sale\n"), "{text}");
        assert!(
            text.contains(&format!(
                "Redis waiting  {}  0 to 45 requests",
                paint(true, styles::PICTURE, "▁██▁")
            )),
            "{text}"
        );
        assert!(!text.contains("missing"), "{text}");
        let plain = report.render_text(false);
        assert!(
            !plain.contains("over the run") && !plain.contains('▁'),
            "{plain}"
        );
    }

    #[test]
    fn outcome_depends_on_variant_and_health() {
        assert_eq!(
            report(Variant::Buggy, false).outcome(),
            Outcome::SymptomReproduced
        );
        assert_eq!(
            report(Variant::Buggy, true).outcome(),
            Outcome::SymptomNotReproduced
        );
        assert_eq!(report(Variant::Fixed, true).outcome(), Outcome::FixVerified);
        assert_eq!(
            report(Variant::Exercise, false).outcome(),
            Outcome::SymptomPersists
        );
    }

    #[test]
    fn text_rendering_has_verdict_metrics_and_evidence() {
        let text = report(Variant::Buggy, false).render_text(false);
        assert!(text.starts_with("slow-query · buggy · UNHEALTHY · symptom reproduced · 1.2 s\n"));
        assert!(text.contains("  p95_ms  80.250\n"));
        assert!(text.contains("  calls   40\n"));
        assert!(text.contains("  - plan: Seq Scan on orders\n      rows removed: 999,900\n"));
        assert!(!text.contains('\x1b'));
        assert!(report(Variant::Buggy, false)
            .render_text(true)
            .contains(&paint(true, styles::BAD, "UNHEALTHY")));
    }

    #[test]
    fn json_has_the_documented_shape() {
        let json = serde_json::to_value(report(Variant::Fixed, true)).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "scenario",
            "variant",
            "healthy",
            "duration_ms",
            "metrics",
            "evidence",
            "series",
            "plots",
        ] {
            assert!(keys.contains(&key), "missing {key} in {json}");
        }
        assert_eq!(json["variant"], "fixed");
        assert_eq!(json["metrics"]["calls"], 40.0);
    }
}
