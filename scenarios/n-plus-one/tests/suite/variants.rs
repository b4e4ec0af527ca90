//! The buggy variant reproduces the N+1 pages and the fixed one verifies the
//! fix, on a real PostgreSQL behind a millisecond of network; and nothing a
//! learner reads before asking for the solution gives the fix away.

use debuglab_harness::testing::{
    assert_fix_verified, assert_no_spoilers, assert_symptom_reproduced, metric, SharedReport,
};
use debuglab_harness::{Report, Scenario, Variant};
use n_plus_one::{ROUND_TRIP_DELAY, SCENARIO, STATEMENTS_PER_PAGE_BOUND};

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
async fn buggy_variant_runs_a_statement_per_order() {
    let report = buggy().await;
    assert_symptom_reproduced(report);
    let text = report.render_text(false);
    // One for the orders, one per order: N + 1, counted by the server (a
    // little less when an unknown customer's empty page is among them).
    let (small, big) = (
        metric(report, "statements_per_page_20"),
        metric(report, "statements_per_page_100"),
    );
    assert!((19.0..=21.0).contains(&small), "{text}");
    assert!((95.0..=101.0).contains(&big), "{text}");
    assert!(
        report.summary.contains("statements per page of 100 orders"),
        "{text}"
    );
    // The busiest statement is the loop's: a call for every order shown,
    // at least twenty for each page answered.
    let loop_calls = report
        .evidence
        .iter()
        .find(|line| line.contains("FROM order_items"))
        .and_then(|line| {
            line.split("calls ")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no statement on order_items in the evidence: {text}"));
    assert!(
        loop_calls >= 20.0 * metric(report, "requests_finished"),
        "{text}"
    );
    // The bug is the round trips, not the answer.
    assert_eq!(metric(report, "wrong_answers"), 0.0, "{text}");
    assert_eq!(metric(report, "stale_answers"), 0.0, "{text}");
    assert_eq!(report.metric("requests_failed"), Some(0.0), "{text}");
}

#[tokio::test]
async fn the_buggy_page_waits_a_round_trip_per_statement_though_the_server_is_idle() {
    let report = buggy().await;
    let text = report.render_text(false);
    // Latency is the symptom. Every statement crosses the network, so a
    // page of 100 waits at least its statements' round trips: a lower bound
    // that a busy machine can only exceed, never break.
    let round_trip_ms = ROUND_TRIP_DELAY.as_secs_f64() * 1000.0;
    assert!(
        metric(report, "p50_ms_page_100")
            >= metric(report, "statements_per_page_100") * round_trip_ms,
        "{text}"
    );
    // The server works for a fraction of what the customer waits (both
    // measured in the same run, so a busy machine slows them together).
    assert!(
        metric(report, "db_ms_per_page_100") < 0.5 * metric(report, "p50_ms_page_100"),
        "{text}"
    );
}

#[tokio::test]
async fn fixed_variant_runs_two_statements_whatever_the_page_size() {
    let report = fixed().await;
    assert_fix_verified(report);
    let text = report.render_text(false);
    assert_eq!(metric(report, "statements_per_page_20"), 2.0, "{text}");
    assert_eq!(metric(report, "statements_per_page_100"), 2.0, "{text}");
    assert!(
        metric(report, "statements_per_page") <= STATEMENTS_PER_PAGE_BOUND,
        "{text}"
    );
    assert_eq!(metric(report, "wrong_answers"), 0.0, "{text}");
    assert_eq!(metric(report, "stale_answers"), 0.0, "{text}");
    assert_eq!(report.metric("requests_failed"), Some(0.0), "{text}");
}

#[tokio::test]
async fn the_fix_runs_fifty_times_fewer_statements_per_big_page() {
    let (buggy, fixed) = (buggy().await, fixed().await);
    let (before, after) = (
        metric(buggy, "statements_per_page"),
        metric(fixed, "statements_per_page"),
    );
    assert!(
        before >= 50.0 * after,
        "statements per page of 100: buggy {before}, fixed {after}, expected at least 50x fewer"
    );
}

#[tokio::test]
async fn the_buggy_report_gives_the_fix_away_nowhere() {
    // The files a learner reads first are checked for all scenarios in
    // harness/cli/tests/spoilers.rs; the report is checked here.
    assert_no_spoilers(buggy().await, SCENARIO.info());
}
