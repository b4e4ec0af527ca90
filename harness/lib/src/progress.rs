//! Progress of the slow parts of a run (pulling, seeding, the workload).
//!
//! The harness marks each such part with [`step`]. By default a step is only
//! logged; the CLI installs a [`ProgressSink`] that draws a spinner for it.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Displays steps; installed once per process by the program that owns the terminal.
pub trait ProgressSink: Send + Sync + 'static {
    /// A step started; the returned handle is finished when the step ends.
    fn begin(&self, label: &str) -> Box<dyn ActiveStep>;
}

/// A step being displayed.
pub trait ActiveStep: Send {
    /// The step ended after `elapsed`.
    fn finish(self: Box<Self>, elapsed: Duration);
}

static SINK: OnceLock<Box<dyn ProgressSink>> = OnceLock::new();

/// Installs the sink that displays steps; later calls are ignored.
pub fn install(sink: impl ProgressSink) {
    let _ = SINK.set(Box::new(sink));
}

/// A slow part of a run, shown until the value is dropped.
#[must_use = "a step ends when it is dropped"]
pub struct Step {
    label: String,
    started: Instant,
    active: Option<Box<dyn ActiveStep>>,
}

/// Starts a step called `label` (lowercase, like "seeding 1,000,000 orders").
pub fn step(label: impl Into<String>) -> Step {
    let label = label.into();
    tracing::debug!("{label}...");
    let active = SINK.get().map(|sink| sink.begin(&label));
    Step {
        label,
        started: Instant::now(),
        active,
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        tracing::debug!("{} took {:.1} s", self.label, elapsed.as_secs_f64());
        if let Some(active) = self.active.take() {
            active.finish(elapsed);
        }
    }
}
