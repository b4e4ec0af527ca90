//! The learner's exercise: fails until `src/exercise.rs` is fixed.
//!
//!     cargo test -p unbounded-cache --features exercise
#![cfg(feature = "exercise")]

use debuglab_harness::testing::{assert_fix_verified, run_variant};
use debuglab_harness::Variant;

#[tokio::test]
async fn exercise_stays_bounded() {
    let report = run_variant(&unbounded_cache::SCENARIO, Variant::Exercise).await;
    assert_fix_verified(&report);
}
