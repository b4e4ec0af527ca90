//! # debuglab-pictures
//!
//! Pictures of debuglab runs, drawn from their [`Report`]s alone (so a report
//! read back from an exercise's program, or from a JSON file, draws the same):
//!
//! - [`chart`]: one [`Plot`] of a report as SVG (plotters' SVG backend), in a
//!   [`chart::Frame`] that several panels can share;
//! - [`page`]: self-contained HTML pages — one run, a comparison of two runs
//!   on the same axes, and an index of comparisons. No script, no network:
//!   inline SVG and CSS, so they open offline in a workshop room.
//!
//! [`Report`]: debuglab_harness::Report
//! [`Plot`]: debuglab_harness::Plot

pub mod chart;
pub mod page;

/// What can go wrong drawing a picture.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    /// plotters could not draw a chart.
    #[error("cannot draw a chart: {0}")]
    Draw(String),
}
