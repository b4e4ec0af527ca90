//! The learner's exercise as a program of its own.
//!
//! `src/exercise.rs` is compiled here and nowhere else, so a half-typed
//! exercise never breaks the scenario's library, the CLI, or the workspace's
//! tests. `debuglab run cache-stampede` and `debuglab check cache-stampede`
//! build this binary (feature `exercise`) and start it; it also runs the
//! replica processes of its own runs (`cache-stampede-exercise __replica --
//! …`). See `debuglab_harness::runner` for its arguments.

// The exercise refers to the service's types as `crate::…`, as buggy.rs does.
pub use cache_stampede::*;

#[path = "../exercise.rs"]
mod exercise;

static EXERCISE: CacheStampede = CacheStampede::with_candidate(storefront_of!(exercise));

fn main() -> std::process::ExitCode {
    debuglab_harness::runner::main(&EXERCISE)
}
