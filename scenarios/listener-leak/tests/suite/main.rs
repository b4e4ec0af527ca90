//! The scenario's tests, in one program so that its containers start and
//! its data is seeded once:
//!
//! - [`variants`]: the buggy variant reproduces the symptom in every run, the
//!   fixed one verifies, and the signal between them is clear;
//! - [`wrong_fixes`]: the ways people really get this bug wrong, each judged
//!   unhealthy with the line that says why, and other correct fixes judged
//!   healthy;
//! - [`properties`]: the fix changes what was wrong and nothing else.

// The scenario judges the heap: this program counts it.
debuglab_harness::install_counting_allocator!();

// Candidate code in `wrong_fixes` refers to the service's types as
// `crate::…`, as buggy.rs does.
pub use listener_leak::*;

mod properties;
mod variants;
mod wrong_fixes;
