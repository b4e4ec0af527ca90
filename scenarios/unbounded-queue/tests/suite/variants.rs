//! The buggy ingester takes the whole burst into memory while the database
//! catches up; the fixed one holds a few batches and leaves the rest in
//! Redis; both store every event exactly once.

use debuglab_harness::testing::{
    assert_fix_verified, assert_no_spoilers, assert_symptom_reproduced, metric, SharedReport,
};
use debuglab_harness::{Report, Scenario, Variant};
use unbounded_queue::{BATCH, EVENTS, MAX_HELD, SCENARIO};

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
async fn buggy_ingester_holds_the_backlog_in_memory() {
    let report = buggy().await;
    assert_symptom_reproduced(report);
    let text = report.render_text(false);
    // Most of the burst is taken from Redis long before it is stored...
    assert!(metric(report, "held_max") > 5.0 * MAX_HELD as f64, "{text}");
    // ...and Redis sees it as pending all that while.
    assert!(
        metric(report, "pending_max") >= metric(report, "held_max"),
        "{text}"
    );
    // The heap shows it too, where this program counts it.
    if metric(report, "heap_counted") == 1.0 {
        if let Some(slope) = report.metric("heap_bytes_per_1000_events") {
            assert!(slope > 100.0 * 1024.0, "{text}");
        }
    }
    // Within the run it loses nothing: the harm is what it holds.
    assert_eq!(metric(report, "events_stored"), EVENTS as f64, "{text}");
    assert_eq!(metric(report, "events_lost"), 0.0, "{text}");
    assert_eq!(metric(report, "acknowledged_unstored_max"), 0.0, "{text}");
    assert!(
        report.summary.starts_with("The ingester held up to"),
        "{text}"
    );
}

#[tokio::test]
async fn fixed_ingester_holds_a_few_batches_and_stores_everything() {
    let report = fixed().await;
    assert_fix_verified(report);
    let text = report.render_text(false);
    // The batch being stored, one waiting, and the one the reader holds.
    assert!(metric(report, "held_max") <= 3.0 * BATCH as f64, "{text}");
    for (name, value) in [
        ("events_sent", EVENTS as f64),
        ("events_stored", EVENTS as f64),
        ("events_dead_lettered", 0.0),
        ("events_lost", 0.0),
        ("events_never_taken", 0.0),
        ("pending_end", 0.0),
        ("acknowledged_unstored_max", 0.0),
        ("requests_failed", 0.0),
        ("timed_out", 0.0),
    ] {
        assert_eq!(metric(report, name), value, "{name}: {text}");
    }
}

#[tokio::test]
async fn the_signal_is_clear_and_plotted() {
    let (buggy, fixed) = (buggy().await, fixed().await);
    let ratio = metric(buggy, "held_max") / metric(fixed, "held_max").max(1.0);
    assert!(ratio >= 20.0, "held_max buggy/fixed: {ratio:.1}");
    for report in [buggy, fixed] {
        let events = report
            .plots
            .iter()
            .find(|plot| plot.id == "events")
            .expect("a plot of the events over time");
        assert_eq!(events.bounds[0].value, MAX_HELD as f64);
        for line in &events.lines {
            assert!(
                report
                    .series
                    .get(&line.series)
                    .is_some_and(|points| points.len() > 10),
                "series {} of {}",
                line.series,
                report.variant
            );
        }
        assert!(report.plots.iter().any(|plot| plot.id == "lag"));
    }
}

#[tokio::test]
async fn the_buggy_report_gives_the_fix_away_nowhere() {
    assert_no_spoilers(buggy().await, SCENARIO.info());
}
