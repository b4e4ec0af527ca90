//! The learner's check: fails until `src/exercise.rs` is fixed.
//!
//!     cargo test -p unbounded-cache --features exercise --test exercise
//!
//! (`debuglab check unbounded-cache` says the same, with the report.)

// The scenario judges the heap: this program counts it.
debuglab_harness::install_counting_allocator!();

pub use unbounded_cache::*;

#[path = "../src/exercise.rs"]
mod exercise;

use debuglab_harness::testing::{assert_fix_verified, run_variant};
use debuglab_harness::Variant;

static EXERCISE: UnboundedCache = UnboundedCache::with_candidate(product_pages_of!(exercise));

#[tokio::test]
async fn exercise_stays_bounded_and_fresh() {
    let report = run_variant(&EXERCISE, Variant::Exercise).await;
    assert_fix_verified(&report);
}
