//! The learner's check: fails until `src/exercise.rs` is fixed.
//!
//!     cargo test -p race-condition --features exercise --test exercise
//!
//! (`debuglab check race-condition` says the same, with the report.) The
//! replicas are the exercise's own program, as in `debuglab run`.

pub use race_condition::*;

#[path = "../src/exercise.rs"]
mod exercise;

use debuglab_harness::testing::{assert_fix_verified, run_variant};
use debuglab_harness::Variant;

static EXERCISE: RaceCondition = RaceCondition::with_candidate(code_of!(exercise));

#[tokio::test]
async fn exercise_loses_no_like_and_no_tip() {
    debuglab_harness::replica::set_program(
        env!("CARGO_BIN_EXE_race-condition-exercise"),
        &["__replica", "--"],
    );
    let report = run_variant(&EXERCISE, Variant::Exercise).await;
    assert_fix_verified(&report);
}
