//! The learner's check: fails until `src/exercise.rs` is fixed.
//!
//!     cargo test -p retry-storm --features exercise --test exercise
//!
//! (`debuglab check retry-storm` says the same, with the report.)

pub use retry_storm::*;

#[path = "../src/exercise.rs"]
mod exercise;

use debuglab_harness::testing::{assert_fix_verified, run_variant};
use debuglab_harness::Variant;

static EXERCISE: RetryStorm = RetryStorm::with_candidate(reserve_stock_of!(exercise));

#[tokio::test]
async fn exercise_meets_the_objective() {
    let report = run_variant(&EXERCISE, Variant::Exercise).await;
    assert_fix_verified(&report);
}
