//! The buggy caches grow with every new product viewed and never expire; the
//! fixed ones stay within their bound and keep the hit rate.

use debuglab_harness::testing::{assert_fix_verified, assert_symptom_reproduced, SharedReport};
use debuglab_harness::{Report, Variant};
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
    let distinct = report.metric("distinct_products").unwrap();
    // One entry per product ever viewed, in the process and in Redis.
    assert_eq!(report.metric("cache_entries_end"), Some(distinct), "{text}");
    assert_eq!(report.metric("redis_keys_end"), Some(distinct), "{text}");
    assert!(distinct > CONFIG.max_entries as f64, "{text}");
    assert!(
        report.metric("redis_keys_without_expiry").unwrap() > 0.0,
        "{text}"
    );
}

#[tokio::test]
async fn fixed_caches_stay_bounded_and_keep_the_hit_rate() {
    let report = fixed().await;
    assert_fix_verified(report);
    let text = report.render_text(false);
    assert!(
        report.metric("cache_entries_end").unwrap() <= CONFIG.max_entries as f64,
        "{text}"
    );
    assert_eq!(
        report.metric("redis_keys_without_expiry"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(report.metric("wrong_pages"), Some(0.0), "{text}");
}

#[tokio::test]
async fn the_fix_keeps_most_of_the_buggy_hit_rate() {
    let (buggy, fixed) = (buggy().await, fixed().await);
    let (buggy_rate, fixed_rate) = (
        buggy.metric("hit_rate").unwrap(),
        fixed.metric("hit_rate").unwrap(),
    );
    assert!(
        fixed_rate >= 0.8 * buggy_rate,
        "hit rate fixed {fixed_rate}, buggy {buggy_rate}"
    );
    // ...while the heap stops growing once the cache is full.
    assert!(
        fixed.metric("late_heap_bytes_per_1000_views").unwrap() * 4.0
            < buggy.metric("late_heap_bytes_per_1000_views").unwrap(),
        "late heap growth fixed {:?}, buggy {:?}",
        fixed.metric("late_heap_bytes_per_1000_views"),
        buggy.metric("late_heap_bytes_per_1000_views")
    );
}
