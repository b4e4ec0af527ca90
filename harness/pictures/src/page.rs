//! Self-contained HTML pages of runs: one report, two reports compared on
//! the same axes, and an index of comparisons. Inline CSS and SVG only — no
//! script, no font, nothing fetched — so a page opens offline.

use debuglab_harness::plot::Plot;
use debuglab_harness::report::format_number;
use debuglab_harness::{Outcome, Report, ScenarioInfo};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::chart::{self, Frame};
use crate::PictureError;

/// The pages' style sheet: readable on a projector, printable.
const STYLE: &str = include_str!("page.css");

/// The HTML page of one run: its verdict, key figures, plots, evidence and every metric.
pub fn report_page(info: &ScenarioInfo, report: &Report) -> Result<String, PictureError> {
    let plots = report
        .plots
        .iter()
        .map(|plot| {
            let frame = Frame::fit(plot, &[&report.series]);
            Ok((plot, chart::render(plot, &report.series, &frame, None)?))
        })
        .collect::<Result<Vec<_>, PictureError>>()?;
    let title = format!("{} · {}", info.title, report.variant);
    let body = html! {
        header {
            p.kicker { "debuglab · " code { (info.id) } }
            h1 { (info.title) " — " (report.variant) " variant" }
            (verdict_card(report, false))
        }
        (key_figures(info, &[report]))
        @if !plots.is_empty() {
            section {
                h2 { "Over the run" }
                @for (plot, svg) in &plots {
                    (figure(plot, svg))
                }
            }
        }
        (evidence(report, "Evidence", true))
        (all_metrics(report))
    };
    Ok(document(&title, body))
}

/// The HTML page of two runs of one scenario side by side (buggy and fixed,
/// or the exercise and fixed): every plot drawn for both on the same axes.
pub fn comparison_page(
    info: &ScenarioInfo,
    left: &Report,
    right: &Report,
) -> Result<String, PictureError> {
    let mut rows = Vec::new();
    for plot in plots_of_both(left, right) {
        let frame = Frame::fit(plot, &[&left.series, &right.series]);
        let panel = |report: &Report| {
            chart::render(plot, &report.series, &frame, Some(report.variant.id()))
        };
        rows.push((plot, panel(left)?, panel(right)?));
    }
    let title = format!("{} · {} and {}", info.title, left.variant, right.variant);
    let body = html! {
        header {
            p.kicker { "debuglab · " code { (info.id) } }
            h1 { (info.title) " — " (left.variant) " and " (right.variant) }
            p.lede { (info.summary) }
            div.pair {
                (verdict_card(left, left.outcome() == Outcome::FixVerified))
                (verdict_card(right, right.outcome() == Outcome::FixVerified))
            }
        }
        (key_figures(info, &[left, right]))
        @if !rows.is_empty() {
            section {
                h2 { "Over the run, on the same axes" }
                @for (plot, left_svg, right_svg) in &rows {
                    div.pair {
                        (figure(plot, left_svg))
                        (figure(plot, right_svg))
                    }
                }
            }
        }
        div.pair {
            (evidence(left, &format!("Evidence of the {} run", left.variant), false))
            (evidence(right, &format!("Evidence of the {} run", right.variant), false))
        }
    };
    Ok(document(&title, body))
}

/// One line of the index: a scenario, its two runs' outcomes, and its comparison page.
#[derive(Clone, Debug)]
pub struct IndexEntry<'a> {
    /// The scenario.
    pub info: &'a ScenarioInfo,
    /// The two runs compared, in the order the page shows them.
    pub reports: [&'a Report; 2],
    /// The comparison page, relative to the index.
    pub href: String,
}

/// The index of a lab's comparison pages.
pub fn index_page(entries: &[IndexEntry<'_>]) -> String {
    let body = html! {
        header {
            p.kicker { "debuglab" }
            h1 { "Every scenario, bug and fix" }
            p.lede { "Each page shows a scenario's buggy and fixed runs side by side, on the same axes." }
        }
        table.index {
            thead { tr { th { "scenario" } th { "the symptom" } th { "runs" } } }
            tbody {
                @for entry in entries {
                    tr {
                        td { a href=(entry.href) { (entry.info.title) } br; code { (entry.info.id) } }
                        td { (entry.info.summary) }
                        td {
                            @for report in entry.reports {
                                span class=(outcome_class(report)) { (report.variant) ": " (report.outcome().label()) }
                                br;
                            }
                        }
                    }
                }
            }
        }
    };
    document("debuglab · every scenario", body)
}

/// Every plot of `left`, then those only `right` has, by id.
fn plots_of_both<'a>(left: &'a Report, right: &'a Report) -> Vec<&'a Plot> {
    let mut plots: Vec<&Plot> = left.plots.iter().collect();
    plots.extend(
        right
            .plots
            .iter()
            .filter(|plot| left.plots.iter().all(|other| other.id != plot.id)),
    );
    plots
}

fn document(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main { (body) }
                footer { "Written by debuglab " (env!("CARGO_PKG_VERSION")) ". Self-contained: it needs no network." }
            }
        }
    }
    .into_string()
}

fn outcome_class(report: &Report) -> &'static str {
    if report.outcome().as_expected() {
        "outcome expected"
    } else {
        "outcome unexpected"
    }
}

/// A run's verdict: healthy or not, what that means for its variant, and
/// its summary — folded when `fold` (a verified fix's summary names the fix).
fn verdict_card(report: &Report, fold: bool) -> Markup {
    let health = if report.healthy {
        "healthy"
    } else {
        "unhealthy"
    };
    html! {
        section class={ "verdict " (health) } {
            p.badge {
                strong { (health.to_uppercase()) }
                " · " (report.variant) " · " (report.outcome().label())
                " · " (format!("{:.1} s", report.duration_ms as f64 / 1000.0))
            }
            @if fold {
                details { summary { "The verdict (it may name the fix)" } p { (report.summary) } }
            } @else {
                p { (report.summary) }
            }
        }
    }
}

/// The scenario's key figures for each report, in the scenario's order.
fn key_figures(info: &ScenarioInfo, reports: &[&Report]) -> Markup {
    let names: Vec<&str> = info
        .key_metrics
        .iter()
        .copied()
        .filter(|name| reports.iter().any(|report| report.metric(name).is_some()))
        .collect();
    html! {
        @if !names.is_empty() {
            section {
                h2 { "Key figures" }
                table.figures {
                    thead { tr { th { "figure" } @for report in reports { th { (report.variant) } } } }
                    tbody {
                        @for name in &names {
                            tr {
                                td { code { (name) } }
                                @for report in reports {
                                    td.number { (report.metric(name).map(figure_text).unwrap_or_else(|| "–".to_owned())) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A figure with thousands separators.
fn figure_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() >= 10_000.0 {
        debuglab_harness::report::grouped(value)
    } else {
        format_number(value)
    }
}

fn figure(plot: &Plot, svg: &str) -> Markup {
    html! {
        figure.plot id={ "plot-" (plot.id) } data-plot=(plot.id) role="img"
            aria-label={ (plot.title) ": " (plot.y.caption()) " against " (plot.x.caption()) } {
            (PreEscaped(svg))
        }
    }
}

fn evidence(report: &Report, heading: &str, open: bool) -> Markup {
    html! {
        section.evidence {
            details open[open] {
                summary { h2 { (heading) } }
                ul {
                    @for line in &report.evidence {
                        li { pre { (line) } }
                    }
                }
            }
        }
    }
}

fn all_metrics(report: &Report) -> Markup {
    html! {
        section {
            details {
                summary { h2 { "Every metric" } }
                table.figures {
                    tbody {
                        @for (name, value) in &report.metrics {
                            tr { td { code { (name) } } td.number { (figure_text(*value)) } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use debuglab_harness::plot::{numbered, PlotKind};
    use debuglab_harness::{Sources, Variant};

    use super::*;

    static INFO: ScenarioInfo = ScenarioInfo {
        id: "pool-exhaustion",
        title: "Pool exhaustion",
        summary: "checkouts wait, then fail",
        services: &[],
        signal_metric: "pool_timeouts",
        key_metrics: &["pool_timeouts", "p99_ms"],
        live_gauges: &[],
        hints: "",
        solution: "",
        sources: Sources {
            buggy: "",
            fixed: "",
        },
    };

    fn report(variant: Variant, healthy: bool, waiting: &[f64]) -> Report {
        Report {
            scenario: INFO.id.to_owned(),
            variant,
            healthy,
            duration_ms: 2_500,
            summary: format!("{variant} <summary> & more"),
            metrics: BTreeMap::from([
                ("pool_timeouts".to_owned(), 12_345.0),
                ("p99_ms".to_owned(), 80.5),
            ]),
            evidence: vec!["first line\n  second <line>".to_owned()],
            series: BTreeMap::from([("waiting".to_owned(), numbered(waiting.iter().copied()))]),
            plots: vec![Plot::new("pools", PlotKind::Line, "The pools")
                .x("time", "ms")
                .y("waiting", "")
                .line("waiting", "waiting")],
        }
    }

    /// Nothing a page needs comes from elsewhere: no script, style sheet, image or font to fetch.
    fn assert_self_contained(html: &str) {
        for needle in ["<script", "<link", "src=", "url(", "@import", "href=\"http"] {
            assert!(!html.contains(needle), "the page has {needle}");
        }
    }

    #[test]
    fn a_report_page_has_the_verdict_figures_plots_and_escaped_evidence() {
        let html = report_page(&INFO, &report(Variant::Buggy, false, &[0.0, 45.0, 3.0])).unwrap();
        assert_self_contained(&html);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(
            html.contains("UNHEALTHY") && html.contains("symptom reproduced"),
            "{html}"
        );
        assert!(html.contains("buggy &lt;summary&gt; &amp; more"), "{html}");
        assert!(html.contains("12,345"), "thousands are grouped: {html}");
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains("id=\"plot-pools\""));
        assert!(html.contains("second &lt;line&gt;"));
    }

    #[test]
    fn a_comparison_draws_both_runs_on_the_same_axes_and_folds_a_verified_fix() {
        let buggy = report(Variant::Buggy, false, &[0.0, 45.0, 45.0]);
        let fixed = report(Variant::Fixed, true, &[0.0, 2.0, 0.0]);
        let html = comparison_page(&INFO, &buggy, &fixed).unwrap();
        assert_self_contained(&html);
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("The pools — buggy") && html.contains("The pools — fixed"));
        // The fixed panel's y axis reaches the buggy run's 45 too.
        let fixed_panel = &html[html.find("The pools — fixed").unwrap()..];
        assert!(fixed_panel.contains(">\n40\n<"), "{fixed_panel}");
        assert!(html.contains("The verdict (it may name the fix)"));
        assert!(
            html.contains("<td class=\"number\">12,345</td><td class=\"number\">12,345</td>"),
            "{html}"
        );
    }

    #[test]
    fn the_index_links_every_comparison() {
        let (buggy, fixed) = (
            report(Variant::Buggy, false, &[1.0]),
            report(Variant::Fixed, false, &[1.0]),
        );
        let entries = [IndexEntry {
            info: &INFO,
            reports: [&buggy, &fixed],
            href: "pool-exhaustion-compare.html".to_owned(),
        }];
        let html = index_page(&entries);
        assert_self_contained(&html);
        assert!(html.contains("href=\"pool-exhaustion-compare.html\""));
        assert!(
            html.contains("outcome unexpected"),
            "a fix not verified stands out: {html}"
        );
    }
}
