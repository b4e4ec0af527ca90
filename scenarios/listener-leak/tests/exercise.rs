//! The learner's exercise: fails until `src/exercise.rs` is fixed.
//!
//!     cargo test -p listener-leak --features exercise
#![cfg(feature = "exercise")]

use debuglab_harness::testing::{assert_fix_verified, run_variant};
use debuglab_harness::Variant;

#[tokio::test]
async fn exercise_stays_flat() {
    let report = run_variant(&listener_leak::SCENARIO, Variant::Exercise).await;
    assert_fix_verified(&report);
}
