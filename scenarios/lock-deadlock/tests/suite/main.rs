//! The scenario's tests, in one program so that its container starts once:
//!
//! - [`variants`]: the buggy variant reproduces the deadlocks in every run,
//!   the fixed one verifies, and the signal between them is clear;
//! - [`wrong_fixes`]: the ways people really get this bug wrong, each judged
//!   unhealthy with the line that says why, and another correct fix judged
//!   healthy;
//! - [`properties`]: the fix changes when locks are taken, never what a
//!   transfer does to the books.

// Candidate code in `wrong_fixes` refers to the service's types as
// `crate::…`, as buggy.rs does.
pub use lock_deadlock::*;

mod properties;
mod variants;
mod wrong_fixes;
