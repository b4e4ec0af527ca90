//! The buggy checkout runs the pools dry under load and the fixed one does
//! not, with the same pools, on real PostgreSQL and Redis.

use debuglab_harness::testing::{assert_fix_verified, assert_symptom_reproduced, SharedReport};
use debuglab_harness::{Report, Variant};
use pool_exhaustion::{CACHE_POOL, DB_POOL, P99_OBJECTIVE_MS, SCENARIO, WORKLOAD};

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
    assert!(
        report.metric("p99_ms").unwrap() > P99_OBJECTIVE_MS,
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
    assert_eq!(report.metric("unfinished"), Some(0.0), "{text}");
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
async fn waiters_pile_up_only_in_the_buggy_checkout() {
    let (buggy, fixed) = (buggy().await, fixed().await);
    let (buggy_mean, fixed_mean) = (
        buggy.metric("mean_waiters").unwrap(),
        fixed.metric("mean_waiters").unwrap(),
    );
    assert!(
        buggy_mean >= 10.0 * fixed_mean.max(0.1),
        "mean requests waiting for a Redis connection: buggy {buggy_mean}, fixed {fixed_mean}"
    );
}
