//! The learner's check: fails until `src/exercise.rs` is fixed.
//!
//!     cargo test -p listener-leak --features exercise --test exercise
//!
//! (`debuglab check listener-leak` says the same, with the report.)

// The scenario judges the heap: this program counts it.
debuglab_harness::install_counting_allocator!();

pub use listener_leak::*;

#[path = "../src/exercise.rs"]
mod exercise;

use debuglab_harness::testing::{assert_fix_verified, run_variant};
use debuglab_harness::Variant;

static EXERCISE: ListenerLeak = ListenerLeak::with_candidate(data_service_of!(exercise));

#[tokio::test]
async fn exercise_leaves_nothing_behind() {
    let report = run_variant(&EXERCISE, Variant::Exercise).await;
    assert_fix_verified(&report);
}
