//! The buggy service leaks a listener, a task and a Redis connection per
//! request; the fixed one stays flat while delivering every event.

use debuglab_harness::testing::{assert_fix_verified, assert_symptom_reproduced, SharedReport};
use debuglab_harness::{Report, Variant};
use listener_leak::{REQUESTS, SCENARIO};

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
async fn buggy_service_grows_with_every_request() {
    let report = buggy().await;
    assert_symptom_reproduced(report);
    let text = report.render_text(false);
    // Linear growth: close to one listener, one subscriber and one Redis client per request.
    assert!(
        report.metric("listeners_per_1000").unwrap() > 500.0,
        "{text}"
    );
    assert!(report.metric("tasks_per_1000").unwrap() > 500.0, "{text}");
    assert!(
        report.metric("redis_clients_per_1000").unwrap() > 500.0,
        "{text}"
    );
    // At least half a dashboard (32 KiB) per request stays on the heap.
    assert!(
        report.metric("heap_bytes_per_1000").unwrap() > 16.0 * 1024.0 * 1000.0,
        "{text}"
    );
    assert!(
        report.metric("listeners_end").unwrap() >= REQUESTS as f64 * 0.9,
        "{text}"
    );
}

#[tokio::test]
async fn fixed_service_stays_flat_and_delivers_every_event() {
    let report = fixed().await;
    assert_fix_verified(report);
    let text = report.render_text(false);
    assert!(report.metric("listeners_end").unwrap() <= 4.0, "{text}");
    assert!(report.metric("redis_clients_end").unwrap() <= 4.0, "{text}");
    assert_eq!(report.metric("missed_announcements"), Some(0.0), "{text}");
    assert_eq!(report.metric("missed_price_alerts"), Some(0.0), "{text}");
    assert_eq!(report.metric("requests"), Some(REQUESTS as f64), "{text}");
}

#[tokio::test]
async fn dispatch_slows_down_only_when_listeners_pile_up() {
    let (buggy, fixed) = (buggy().await, fixed().await);
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
