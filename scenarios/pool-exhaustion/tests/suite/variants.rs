//! The buggy checkout runs the pools dry under load and the fixed one does
//! not, with the same pools, on real PostgreSQL and Redis.

use debuglab_harness::testing::{
    assert_fix_verified, assert_no_spoilers, assert_symptom_reproduced, SharedReport,
};
use debuglab_harness::{Report, Scenario, Variant};
use pool_exhaustion::{CACHE_POOL, DB_POOL, SCENARIO, WORKLOAD};

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
async fn buggy_checkout_times_out_waiting_for_connections() {
    let report = buggy().await;
    assert_symptom_reproduced(report);
    let text = report.render_text(false);
    assert!(report.metric("pool_timeouts").unwrap() > 0.0, "{text}");
    // Checkouts that failed waited the whole acquire timeout first.
    assert!(
        report.metric("p99_ms").unwrap() >= DB_POOL.acquire_timeout.as_millis() as f64,
        "{text}"
    );
    // Connections were held, not merely busy: the database saw them idle in a transaction.
    assert!(
        report.metric("idle_in_transaction_max").unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        report
            .evidence
            .iter()
            .any(|line| line.contains("idle in transaction")),
        "{text}"
    );
    // The run ends on its own: every checkout finished or failed, none hung.
    assert_eq!(report.metric("requests_unfinished"), Some(0.0), "{text}");
    assert_eq!(report.metric("timed_out"), Some(0.0), "{text}");
}

#[tokio::test]
async fn fixed_checkout_succeeds_with_the_same_pools() {
    let report = fixed().await;
    assert_fix_verified(report);
    let text = report.render_text(false);
    assert_eq!(report.metric("pool_timeouts"), Some(0.0), "{text}");
    assert_eq!(
        report.metric("succeeded"),
        Some(WORKLOAD.requests as f64),
        "{text}"
    );
    assert_eq!(
        report.metric("orders_recorded"),
        Some(WORKLOAD.requests as f64),
        "{text}"
    );
    assert!(
        report.metric("db_backends_max").unwrap() <= f64::from(DB_POOL.max_connections),
        "{text}"
    );
    assert!(
        report.metric("cache_in_use_max").unwrap() <= f64::from(CACHE_POOL.max_connections),
        "{text}"
    );
}

#[tokio::test]
async fn waiters_pile_up_in_the_buggy_checkout_for_the_whole_sale() {
    let (buggy, fixed) = (buggy().await, fixed().await);
    let (buggy_mean, fixed_mean) = (
        buggy.metric("mean_waiters").unwrap(),
        fixed.metric("mean_waiters").unwrap(),
    );
    // Nearly every checkout the pool cannot serve waits, all sale long: the
    // 45 beyond the pool's 5, minus the moments the sale starts and ends.
    // (A loaded machine makes the fixed checkout queue too, so the two are
    // not compared by a ratio.)
    let beyond_the_pool = (WORKLOAD.concurrency - CACHE_POOL.max_connections as usize) as f64;
    assert!(
        buggy_mean >= 0.6 * beyond_the_pool && buggy_mean > fixed_mean,
        "mean requests waiting for a Redis connection: buggy {buggy_mean}, fixed {fixed_mean}"
    );
}

#[tokio::test]
async fn the_buggy_report_gives_the_fix_away_nowhere() {
    assert_no_spoilers(buggy().await, SCENARIO.info());
}
