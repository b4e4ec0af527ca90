//! The buggy storefront computes the report once per shopper at every
//! expiry; the fixed one once per expiry, for every replica at once, and
//! both follow the data.

use debuglab_harness::testing::{
    assert_fix_verified, assert_no_spoilers, assert_symptom_reproduced, metric, SharedReport,
};
use debuglab_harness::{PlotKind, Report, Scenario, Variant};

use crate::{
    use_replica_program, MAX_COMPUTATIONS_PER_EXPIRY, MAX_COMPUTATIONS_PER_WAVE, SCENARIO,
};

// Each variant runs once; its report is shared by the tests below.
static BUGGY: SharedReport = SharedReport::new();
static FIXED: SharedReport = SharedReport::new();

async fn buggy() -> &'static Report {
    use_replica_program();
    BUGGY.get(&SCENARIO, Variant::Buggy).await
}

async fn fixed() -> &'static Report {
    use_replica_program();
    FIXED.get(&SCENARIO, Variant::Fixed).await
}

/// Every shopper was answered with a report as the database has it, fresh
/// once the TTL had passed: what both variants must do.
fn assert_answers_right(report: &Report) {
    let text = report.render_text(false);
    assert!(metric(report, "answered_requests") > 0.0, "{text}");
    for name in [
        "failed_requests",
        "wrong_answers",
        "stale_answers",
        "stale_after_traffic",
        "replica_failures",
    ] {
        assert_eq!(metric(report, name), 0.0, "{name}: {text}");
    }
}

#[tokio::test]
async fn buggy_computes_the_report_many_times_per_expiry() {
    let report = buggy().await;
    assert_symptom_reproduced(report);
    assert_answers_right(report);
    let text = report.render_text(false);
    assert!(
        metric(report, "computations_per_expiry") > 4.0 * MAX_COMPUTATIONS_PER_EXPIRY,
        "{text}"
    );
    // Several at once, by PostgreSQL's activity view and by its log.
    assert!(
        metric(report, "peak_concurrent_computations") > 1.0,
        "{text}"
    );
    assert!(
        metric(report, "computations_per_wave") > 4.0 * MAX_COMPUTATIONS_PER_WAVE,
        "{text}"
    );
    assert!(report.summary.contains("computations per expiry"), "{text}");
}

#[tokio::test]
async fn fixed_computes_it_about_once_per_expiry_and_follows_the_data() {
    let report = fixed().await;
    assert_fix_verified(report);
    assert_answers_right(report);
    let text = report.render_text(false);
    assert!(
        metric(report, "computations_per_expiry") <= MAX_COMPUTATIONS_PER_EXPIRY,
        "{text}"
    );
    assert!(metric(report, "computations") >= 1.0, "{text}");
    assert_eq!(metric(report, "hung_requests"), 0.0, "{text}");
    // One caller computes; the others, in whichever replica, wait for it.
    assert_eq!(metric(report, "most_computations_at_once"), 1.0, "{text}");
}

#[tokio::test]
async fn the_signal_is_clear() {
    let (buggy, fixed) = (buggy().await, fixed().await);
    // Fivefold at least: a busy machine thins the buggy stampede (fewer
    // shoppers miss at the same moment), never the fixed single computation.
    for (name, factor) in [
        ("computations_per_burst", 5.0),
        ("computations_per_expiry", 5.0),
    ] {
        let (buggy_rate, fixed_rate) = (metric(buggy, name), metric(fixed, name));
        assert!(
            buggy_rate >= factor * fixed_rate,
            "{name}: buggy {buggy_rate}, fixed {fixed_rate}"
        );
    }
    // Redis saw the misses: every shopper of the buggy code that found the report gone.
    assert!(
        metric(buggy, "keyspace_misses") > 0.0,
        "{}",
        buggy.render_text(false)
    );
}

#[tokio::test]
async fn the_reports_draw_what_their_evidence_describes() {
    let report = fixed().await;
    for (id, kind) in [
        ("computations_per_expiry", PlotKind::Bars),
        ("computations", PlotKind::Line),
        ("running_at_once", PlotKind::Line),
        ("keyspace_misses", PlotKind::Line),
        ("latency", PlotKind::Line),
        ("freshness", PlotKind::Line),
        ("computation_timeline", PlotKind::Timeline),
    ] {
        let plot = report
            .plots
            .iter()
            .find(|plot| plot.id == id)
            .unwrap_or_else(|| panic!("no plot {id}: {:?}", report.plots));
        assert_eq!(plot.kind, kind, "{id}");
        assert!(!plot.x.label.is_empty() && !plot.y.label.is_empty(), "{id}");
        for line in &plot.lines {
            let points = report.series.get(&line.series);
            assert!(
                points.is_some_and(|points| !points.is_empty()),
                "{id}: no points in {}",
                line.series
            );
        }
    }
    let per_expiry = report
        .plots
        .iter()
        .find(|plot| plot.id == "computations_per_expiry")
        .unwrap();
    assert_eq!(per_expiry.bounds[0].value, MAX_COMPUTATIONS_PER_EXPIRY);
}

#[tokio::test]
async fn the_buggy_report_gives_the_fix_away_nowhere() {
    assert_no_spoilers(buggy().await, SCENARIO.info());
}
