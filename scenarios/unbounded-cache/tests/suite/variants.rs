//! The buggy caches grow with every new product viewed and keep old prices;
//! the fixed ones stay within their bound, expire, and keep the hit rate.

use debuglab_harness::testing::{
    assert_fix_verified, assert_no_spoilers, assert_symptom_reproduced, metric, SharedReport,
};
use debuglab_harness::{Report, Scenario, Variant};
use unbounded_cache::{CONFIG, SCENARIO};

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
async fn buggy_caches_grow_with_distinct_products() {
    let report = buggy().await;
    assert_symptom_reproduced(report);
    let text = report.render_text(false);
    let distinct = metric(report, "distinct_products");
    assert!(distinct > CONFIG.max_entries as f64, "{text}");
    // One entry per product ever viewed, in the process and in Redis...
    assert_eq!(metric(report, "local_entries_end"), distinct, "{text}");
    assert_eq!(metric(report, "redis_keys_end"), distinct, "{text}");
    assert_eq!(
        metric(report, "redis_keys_never_expiring"),
        distinct,
        "{text}"
    );
    // ...which the heap shows, whatever the service says about itself.
    assert!(
        metric(report, "heap_growth_bytes") > metric(report, "heap_bound_bytes"),
        "{text}"
    );
    // And a changed price stays old on both instances.
    assert_eq!(metric(report, "stale_views_after_ttl"), 2.0, "{text}");
    assert_eq!(metric(report, "wrong_pages"), 0.0, "{text}");
    assert_eq!(metric(report, "requests_failed"), 0.0, "{text}");
    assert_eq!(metric(report, "timed_out"), 0.0, "{text}");
}

#[tokio::test]
async fn fixed_caches_stay_bounded_and_fresh() {
    let report = fixed().await;
    assert_fix_verified(report);
    let text = report.render_text(false);
    assert!(
        metric(report, "local_entries_end") <= CONFIG.max_entries as f64,
        "{text}"
    );
    assert!(
        metric(report, "heap_growth_bytes") <= metric(report, "heap_bound_bytes"),
        "{text}"
    );
    assert_eq!(metric(report, "redis_keys_never_expiring"), 0.0, "{text}");
    assert!(
        metric(report, "redis_longest_ttl_ms") <= CONFIG.ttl.as_millis() as f64,
        "{text}"
    );
    assert_eq!(metric(report, "stale_views_after_ttl"), 0.0, "{text}");
    assert_eq!(metric(report, "wrong_pages"), 0.0, "{text}");
    assert_eq!(
        metric(report, "requests_finished"),
        metric(report, "requests_planned"),
        "{text}"
    );
}

#[tokio::test]
async fn the_fix_keeps_the_hit_rate_and_stops_the_growth() {
    let (buggy, fixed) = (buggy().await, fixed().await);
    let (buggy_rate, fixed_rate) = (metric(buggy, "hit_rate"), metric(fixed, "hit_rate"));
    assert!(
        fixed_rate >= 0.8 * buggy_rate,
        "hit rate fixed {fixed_rate}, buggy {buggy_rate}"
    );
    let (buggy_late, fixed_late) = (
        metric(buggy, "late_heap_bytes_per_1000_views"),
        metric(fixed, "late_heap_bytes_per_1000_views"),
    );
    assert!(
        fixed_late * 4.0 < buggy_late,
        "heap growth per 1,000 views in the second half: fixed {fixed_late}, buggy {buggy_late}"
    );
}

#[tokio::test]
async fn the_buggy_report_gives_the_fix_away_nowhere() {
    assert_no_spoilers(buggy().await, SCENARIO.info());
}
