//! The learner's check: fails until `src/exercise.rs` is fixed.
//!
//!     cargo test -p pool-exhaustion --features exercise --test exercise
//!
//! (`debuglab check pool-exhaustion` says the same, with the report.)

pub use pool_exhaustion::*;

#[path = "../src/exercise.rs"]
mod exercise;

use debuglab_harness::testing::{assert_fix_verified, run_variant};
use debuglab_harness::Variant;

static EXERCISE: PoolExhaustion = PoolExhaustion::with_candidate(place_order_of!(exercise));

#[tokio::test]
async fn exercise_meets_the_objective() {
    let report = run_variant(&EXERCISE, Variant::Exercise).await;
    assert_fix_verified(&report);
}
