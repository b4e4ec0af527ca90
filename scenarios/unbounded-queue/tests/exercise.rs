//! The learner's check: fails until `src/exercise.rs` is fixed.
//!
//!     cargo test -p unbounded-queue --features exercise --test exercise
//!
//! (`debuglab check unbounded-queue` says the same, with the report.)

pub use unbounded_queue::*;

// The live heap is part of the evidence.
debuglab_harness::install_counting_allocator!();

#[path = "../src/exercise.rs"]
mod exercise;

use debuglab_harness::testing::{assert_fix_verified, run_variant};
use debuglab_harness::Variant;

static EXERCISE: UnboundedQueue = UnboundedQueue::with_candidate(ingest_of!(exercise));

#[tokio::test]
async fn exercise_holds_little_and_loses_nothing() {
    let report = run_variant(&EXERCISE, Variant::Exercise).await;
    assert_fix_verified(&report);
}
