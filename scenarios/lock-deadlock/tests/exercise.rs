//! The learner's check: fails until `src/exercise.rs` is fixed.
//!
//!     cargo test -p lock-deadlock --features exercise --test exercise
//!
//! (`debuglab check lock-deadlock` says the same, with the report.)

pub use lock_deadlock::*;

#[path = "../src/exercise.rs"]
mod exercise;

use debuglab_harness::testing::{assert_fix_verified, run_variant};
use debuglab_harness::Variant;

static EXERCISE: LockDeadlock = LockDeadlock::with_candidate(code_of!(exercise));

#[tokio::test]
async fn exercise_meets_the_objective() {
    let report = run_variant(&EXERCISE, Variant::Exercise).await;
    assert_fix_verified(&report);
}
