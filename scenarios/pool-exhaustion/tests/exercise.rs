//! The learner's exercise: fails until `src/exercise.rs` is fixed.
//!
//!     cargo test -p pool-exhaustion --features exercise
#![cfg(feature = "exercise")]

use debuglab_harness::testing::{assert_fix_verified, run_variant};
use debuglab_harness::Variant;

#[tokio::test]
async fn exercise_meets_the_objective() {
    let report = run_variant(&pool_exhaustion::SCENARIO, Variant::Exercise).await;
    assert_fix_verified(&report);
}
