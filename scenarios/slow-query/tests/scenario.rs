//! The buggy variant reproduces the slow query and the fixed one verifies the
//! fix, on a real PostgreSQL with a million orders.

use debuglab_harness::testing::{assert_fix_verified, assert_symptom_reproduced, SharedReport};
use debuglab_harness::{Report, Variant};
use slow_query::SCENARIO;

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
async fn buggy_variant_reproduces_a_seq_scan_over_the_objective() {
    let report = buggy().await;
    assert_symptom_reproduced(report);
    assert!(
        report.metric("seq_scans_on_orders").unwrap_or(0.0) >= 1.0,
        "{}",
        report.render_text(false)
    );
    assert!(
        evidence_mentions(report, "Seq Scan on orders"),
        "{}",
        report.render_text(false)
    );
    assert!(report.metric("p95_ms").unwrap() > slow_query::P95_OBJECTIVE_MS);
    assert!(
        report.metric("slow_log_lines").unwrap_or(0.0) >= 1.0,
        "{}",
        report.render_text(false)
    );
    // The bug is the speed, not the answer.
    assert_eq!(report.metric("wrong_answers"), Some(0.0));
    assert_eq!(report.metric("stale_answers"), Some(0.0));
}

#[tokio::test]
async fn fixed_variant_reads_orders_through_the_index_within_the_objective() {
    let report = fixed().await;
    assert_fix_verified(report);
    assert!(
        evidence_mentions(
            report,
            "Index Scan using idx_orders_user_id_created_at on orders"
        ),
        "{}",
        report.render_text(false)
    );
    assert_eq!(report.metric("seq_scans_on_orders"), Some(0.0));
    assert_eq!(report.metric("wrong_answers"), Some(0.0));
    assert_eq!(report.metric("stale_answers"), Some(0.0));
    assert!(report.metric("requests").unwrap() >= 100.0);
}

#[tokio::test]
async fn the_fix_is_at_least_twenty_times_faster() {
    let (buggy, fixed) = (buggy().await, fixed().await);
    let ratio = buggy.metric("p50_ms").unwrap() / fixed.metric("p50_ms").unwrap();
    assert!(
        ratio >= 20.0,
        "median latency buggy {:.2} ms / fixed {:.2} ms = {ratio:.1}x, expected at least 20x",
        buggy.metric("p50_ms").unwrap(),
        fixed.metric("p50_ms").unwrap()
    );
}
