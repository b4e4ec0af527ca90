//! The buggy service leaves a listener, tasks and a Redis connection behind
//! for every dashboard; the fixed one leaves nothing while every open
//! dashboard shows every event.

use debuglab_harness::testing::{
    assert_fix_verified, assert_no_spoilers, assert_symptom_reproduced, SharedReport,
};
use debuglab_harness::{Report, Scenario, Variant};
use listener_leak::{DASHBOARDS, ROUNDS, SCENARIO};

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
async fn buggy_service_grows_with_every_dashboard() {
    let report = buggy().await;
    assert_symptom_reproduced(report);
    let text = report.render_text(false);
    // Linear growth: about one listener, one Redis client and two tasks (the
    // subscriber and its connection's driver) per dashboard.
    assert!(
        report.metric("listeners_per_1000").unwrap() > 500.0,
        "{text}"
    );
    assert!(report.metric("tasks_per_1000").unwrap() > 500.0, "{text}");
    assert!(
        report.metric("redis_clients_per_1000").unwrap() > 500.0,
        "{text}"
    );
    // At least half a dashboard (32 KiB) per dashboard served stays on the heap.
    assert!(
        report.metric("heap_bytes_per_1000").unwrap() > 16.0 * 1024.0 * 1000.0,
        "{text}"
    );
    // What every dashboard registered is still there once all have closed
    // (counted against the dashboards served: on a loaded machine the run's
    // watch may stop the workload early).
    let served = report.metric("dashboards_served").unwrap();
    assert!(served >= 100.0, "{text}");
    assert!(
        report.metric("listeners_left").unwrap() >= served * 0.9,
        "{text}"
    );
    assert!(
        report.metric("redis_clients_left").unwrap() >= served * 0.9,
        "{text}"
    );
    // It is a leak, not a loss: the buggy service shows every event.
    assert_eq!(
        report.metric("dashboards_missing_events"),
        Some(0.0),
        "{text}"
    );
    assert!(
        report.summary.contains(
            "listeners were still registered on the bus after every dashboard had closed"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn fixed_service_leaves_nothing_and_shows_every_event() {
    let report = fixed().await;
    assert_fix_verified(report);
    let text = report.render_text(false);
    assert_eq!(report.metric("listeners_left"), Some(0.0), "{text}");
    assert_eq!(report.metric("redis_clients_left"), Some(0.0), "{text}");
    assert_eq!(report.metric("missed_announcements"), Some(0.0), "{text}");
    assert_eq!(report.metric("missed_price_alerts"), Some(0.0), "{text}");
    assert_eq!(
        report.metric("dashboards_served"),
        Some(DASHBOARDS as f64),
        "{text}"
    );
    assert_eq!(
        report.metric("requests_finished"),
        Some(DASHBOARDS as f64),
        "{text}"
    );
    assert_eq!(report.metric("requests_failed"), Some(0.0), "{text}");
    assert!(
        report.summary.contains(&format!(
            "showed every one of their {} announcements",
            DASHBOARDS as u32 * ROUNDS
        )),
        "{text}"
    );
}

#[tokio::test]
async fn publishing_calls_more_listeners_only_when_they_pile_up() {
    let (buggy, fixed) = (buggy().await, fixed().await);
    let called = |report: &Report, tenth: &str| {
        report
            .metric(&format!("listeners_called_{tenth}_tenth"))
            .unwrap()
    };
    // Every listener ever registered is called on every publish.
    assert!(
        called(buggy, "last") > 0.8 * buggy.metric("dashboards_served").unwrap(),
        "buggy: {}",
        buggy.render_text(false)
    );
    // Only the dashboards open at the moment are called.
    assert!(
        called(fixed, "last") <= listener_leak::OPEN_AT_ONCE as f64,
        "fixed: {}",
        fixed.render_text(false)
    );
    // And it shows in the time a publish takes: far from any threshold.
    let slowdown = |report: &Report| {
        report.metric("dispatch_us_last_tenth").unwrap()
            / report.metric("dispatch_us_first_tenth").unwrap().max(0.1)
    };
    assert!(
        slowdown(buggy) > 3.0 * slowdown(fixed),
        "dispatch slowdown buggy {:.1}x, fixed {:.1}x",
        slowdown(buggy),
        slowdown(fixed)
    );
}

#[tokio::test]
async fn the_buggy_report_gives_the_fix_away_nowhere() {
    assert_no_spoilers(buggy().await, SCENARIO.info());
}
