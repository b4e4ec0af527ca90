//! The buggy variant reproduces the slow query and the fixed one verifies the
//! fix, on a real PostgreSQL with a million orders; and nothing a learner
//! reads before asking for the solution gives the fix away.

use debuglab_harness::testing::{
    assert_fix_verified, assert_no_spoilers, assert_symptom_reproduced, SharedReport,
};
use debuglab_harness::{Report, Scenario, Variant};
use slow_query::{BUFFERS_PER_REQUEST_BOUND, SCENARIO, WORKLOAD};

// Each variant runs once; its report is shared by the tests below.
static BUGGY: SharedReport = SharedReport::new();
static FIXED: SharedReport = SharedReport::new();

async fn buggy() -> &'static Report {
    BUGGY.get(&SCENARIO, Variant::Buggy).await
}

async fn fixed() -> &'static Report {
    FIXED.get(&SCENARIO, Variant::Fixed).await
}

fn evidence_mentions(report: &Report, text: &str) -> bool {
    report.evidence.iter().any(|line| line.contains(text))
}

#[tokio::test]
async fn buggy_variant_reads_the_whole_table_for_each_request() {
    let report = buggy().await;
    assert_symptom_reproduced(report);
    let text = report.render_text(false);
    assert!(
        report.metric("seq_scans_on_orders").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(evidence_mentions(report, "Seq Scan on orders"), "{text}");
    // About a table's worth of buffers per request, far over the bound.
    assert!(
        report.metric("buffers_per_request").unwrap() > 50.0 * BUFFERS_PER_REQUEST_BOUND,
        "{text}"
    );
    assert!(
        report.metric("rows_removed_by_filter").unwrap() > 900_000.0,
        "{text}"
    );
    assert!(report.summary.contains("Seq Scan on orders"), "{text}");
    assert!(
        report.metric("slow_log_lines").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    // The bug is the work, not the answer.
    assert_eq!(report.metric("wrong_answers"), Some(0.0), "{text}");
    assert_eq!(report.metric("stale_answers"), Some(0.0), "{text}");
    assert_eq!(report.metric("requests_failed"), Some(0.0), "{text}");
    assert_eq!(report.metric("timed_out"), Some(0.0), "{text}");
}

#[tokio::test]
async fn fixed_variant_reads_ten_orders_through_the_index() {
    let report = fixed().await;
    assert_fix_verified(report);
    let text = report.render_text(false);
    assert!(
        evidence_mentions(
            report,
            "Index Scan using idx_orders_user_id_created_at on orders"
        ),
        "{text}"
    );
    assert_eq!(report.metric("seq_scans_on_orders"), Some(0.0), "{text}");
    assert_eq!(report.metric("plan_rows_read"), Some(10.0), "{text}");
    assert!(
        report.metric("buffers_per_request").unwrap() <= BUFFERS_PER_REQUEST_BOUND,
        "{text}"
    );
    assert_eq!(report.metric("queries_per_request"), Some(1.0), "{text}");
    assert_eq!(report.metric("wrong_answers"), Some(0.0), "{text}");
    assert_eq!(report.metric("stale_answers"), Some(0.0), "{text}");
    assert_eq!(
        report.metric("requests_finished"),
        Some(WORKLOAD.requests as f64),
        "{text}"
    );
}

#[tokio::test]
async fn the_fix_does_a_hundredth_of_the_work() {
    let (buggy, fixed) = (buggy().await, fixed().await);
    let (before, after) = (
        buggy.metric("buffers_per_request").unwrap(),
        fixed.metric("buffers_per_request").unwrap(),
    );
    assert!(
        before >= 100.0 * after,
        "shared buffers per request: buggy {before}, fixed {after}, expected at least 100x fewer"
    );
}

#[tokio::test]
async fn the_buggy_report_gives_the_fix_away_nowhere() {
    // The files a learner reads first are checked for all scenarios in
    // harness/cli/tests/spoilers.rs; the report is checked here.
    assert_no_spoilers(buggy().await, SCENARIO.info());
}
