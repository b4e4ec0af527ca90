//! The learner's exercise: fails until `src/exercise.rs` is fixed.
//!
//!     cargo test -p race-condition --features exercise
#![cfg(feature = "exercise")]

use debuglab_harness::testing::{assert_fix_verified, run_variant};
use debuglab_harness::Variant;

#[tokio::test]
async fn exercise_loses_no_update() {
    debuglab_harness::replica::set_program(env!("CARGO_BIN_EXE_race-condition-replica"), &[]);
    let report = run_variant(&race_condition::SCENARIO, Variant::Exercise).await;
    assert_fix_verified(&report);
}
