//! The buggy client floods the warehouse after its outage and it never
//! recovers; the fixed one rides the outage out, with the same warehouse.

use debuglab_harness::testing::{
    assert_fix_verified, assert_no_spoilers, assert_symptom_reproduced, metric, SharedReport,
};
use debuglab_harness::{Report, Scenario, Variant};
use retry_storm::verdict::{MAX_AMPLIFICATION, MIN_RESERVED_AFTER_OUTAGE};
use retry_storm::{SCENARIO, WAREHOUSE};

// Each variant runs once; its report is shared by the tests below.
static BUGGY: SharedReport = SharedReport::new();
static FIXED: SharedReport = SharedReport::new();

async fn buggy() -> &'static Report {
    BUGGY.get(&SCENARIO, Variant::Buggy).await
}

async fn fixed() -> &'static Report {
    FIXED.get(&SCENARIO, Variant::Fixed).await
}

#[tokio::test]
async fn buggy_client_keeps_the_warehouse_down_after_its_outage() {
    let report = buggy().await;
    assert_symptom_reproduced(report);
    let text = report.render_text(false);
    assert!(
        metric(report, "amplification") > 10.0 * MAX_AMPLIFICATION,
        "{text}"
    );
    // The warehouse's capacity went to callers who had hung up, to the end.
    assert!(metric(report, "served_to_nobody") > 0.0, "{text}");
    assert_eq!(metric(report, "recovery_ms"), -1.0, "{text}");
    assert!(metric(report, "reserved_after_outage_pct") < 50.0, "{text}");
    // Orders still retried at the end were cut off, and the run still ended.
    assert!(metric(report, "orders_unfinished") > 0.0, "{text}");
    assert!(report.summary.contains("still being retried"), "{text}");
}

#[tokio::test]
async fn fixed_client_rides_the_outage_out() {
    let report = fixed().await;
    assert_fix_verified(report);
    let text = report.render_text(false);
    assert!(
        metric(report, "amplification") <= MAX_AMPLIFICATION,
        "{text}"
    );
    assert!(
        metric(report, "reserved_after_outage_pct") >= 100.0 * MIN_RESERVED_AFTER_OUTAGE,
        "{text}"
    );
    assert_eq!(metric(report, "orders_unfinished"), 0.0, "{text}");
    assert_eq!(metric(report, "orders_failed_while_down"), 0.0, "{text}");
    // Every answered order's outcome is in the table, once.
    assert_eq!(
        metric(report, "reservation_rows"),
        metric(report, "orders_offered"),
        "{text}"
    );
}

#[tokio::test]
async fn the_signal_is_clear() {
    let (buggy, fixed) = (buggy().await, fixed().await);
    let (storm, calm) = (
        metric(buggy, "amplification"),
        metric(fixed, "amplification"),
    );
    assert!(
        storm >= 20.0 * calm,
        "attempts per order: buggy {storm}, fixed {calm}"
    );
}

#[tokio::test]
async fn the_report_plots_attempts_against_the_capacity() {
    let report = buggy().await;
    let plot = report
        .plots
        .iter()
        .find(|plot| plot.id == "attempts")
        .expect("an attempts plot");
    assert_eq!(plot.bounds[0].value, WAREHOUSE.capacity_per_bucket());
    for line in &plot.lines {
        assert!(
            report
                .series
                .get(&line.series)
                .is_some_and(|points| !points.is_empty()),
            "no series {}",
            line.series
        );
    }
    assert!(report.plots.iter().any(|plot| plot.id == "queue"));
}

#[tokio::test]
async fn the_buggy_report_gives_the_fix_away_nowhere() {
    assert_no_spoilers(buggy().await, SCENARIO.info());
}
