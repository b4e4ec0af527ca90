//! The learner's check: fails until `src/exercise.rs` is fixed.
//!
//!     cargo test -p cache-stampede --features exercise --test exercise
//!
//! (`debuglab check cache-stampede` says the same, with the report.) The
//! replicas are the exercise's own program, as in `debuglab run`.

pub use cache_stampede::*;

#[path = "../src/exercise.rs"]
mod exercise;

use debuglab_harness::testing::{assert_fix_verified, run_variant};
use debuglab_harness::Variant;

static EXERCISE: CacheStampede = CacheStampede::with_candidate(storefront_of!(exercise));

#[tokio::test]
async fn exercise_computes_the_report_once_per_expiry_and_follows_the_data() {
    debuglab_harness::replica::set_program(
        env!("CARGO_BIN_EXE_cache-stampede-exercise"),
        &["__replica", "--"],
    );
    let report = run_variant(&EXERCISE, Variant::Exercise).await;
    assert_fix_verified(&report);
}
