//! # Unbounded queue: the ingester's memory climbs with every burst
//!
//! The shop's apps send their events (page views, carts, orders) to a Redis
//! stream, `events`. An ingester reads the stream as the consumer group
//! `ingest` ([`Feed`]), stores each event as a row of the PostgreSQL table
//! `events` ([`Store`]), and acknowledges it. Reading and writing run side by
//! side: a reader takes events from the stream and hands them to a writer,
//! which stores them in batches of [`BATCH`].
//!
//! Most of the day it keeps up. When the apps flush their offline buffers —
//! at opening time, after a network outage — tens of thousands of events
//! arrive within seconds. Then the ingester's memory climbs by hundreds of
//! megabytes a minute until the container is killed for running out of it;
//! Redis lists tens of thousands of pending entries for the group; the
//! dashboards fall minutes behind; and after each restart some events are
//! missing from the database for good.
//!
//! ## The contract
//!
//! Whatever the code looks like, the ingester must (checked in [`verdict`]
//! from evidence the variant cannot forge):
//!
//! - store every event exactly once: each event the apps sent ends up as one
//!   row of `events` or — when the ingester gives up on it — in the
//!   dead-letter stream `events:dead` ([`Feed::dead_letter`]), where an
//!   operator can replay it; none is left unsettled once the ingester has
//!   stopped (it stops when its feed closes, within the run);
//! - set aside at most one event in ten ([`MAX_DEAD_SHARE`]): the
//!   dead-letter stream is for exceptions, not for the traffic;
//! - hold at most [`MAX_HELD`] events at any time: events taken from the
//!   stream and neither stored nor set aside, counted from the stores
//!   themselves — the group's `entries-read` in Redis, minus the rows in
//!   PostgreSQL, minus the length of `events:dead` — never from the
//!   ingester's own figures; and, where the program counts its heap (the
//!   harness's counting allocator), grow the live heap by at most 100 KiB
//!   per 1,000 events taken;
//! - acknowledge an event only once it is stored or set aside: the entries
//!   Redis counts as acknowledged (`entries-read` − `pending`) never exceed
//!   what PostgreSQL and `events:dead` hold;
//! - return without an error once its feed is closed.
//!
//! The run is laid out in [`workload`] (the events and the ingester's
//! life), [`probes`] (what is sampled and audited) and [`verdict`] (the
//! judgement, a pure function).

pub mod buggy;
pub mod fixed;
pub mod pipeline;
pub mod probes;
pub mod verdict;
pub mod workload;

use debuglab_harness::postgres::{DatabaseTemplate, PgConnection};
use debuglab_harness::{
    HarnessError, Result, RunContext, Scenario, ScenarioInfo, Service, Sources, Variant, Verdict,
};
pub use futures::future::BoxFuture;
use sqlx::migrate::Migrator;

pub use pipeline::{Event, Feed, IngestError, Store};
pub use verdict::{Figures, MAX_DEAD_SHARE, MAX_HELD};
pub use workload::{EVENTS, WORKLOAD};

/// The Redis stream the apps add their events to.
pub const STREAM: &str = "events";
/// The consumer group the ingester reads the stream as.
pub const GROUP: &str = "ingest";
/// The ingester's name in the group.
pub const CONSUMER: &str = "ingester-1";
/// The dead-letter stream: events the ingester set aside, for an operator to replay.
pub const DEAD_LETTERS: &str = "events:dead";

/// Events the ingester takes from the stream, and stores, at a time.
pub const BATCH: usize = 100;

/// A variant's ingester: runs until its feed is closed and everything it
/// took is settled, then returns.
pub type Ingest = fn(Feed, Store) -> BoxFuture<'static, std::result::Result<(), IngestError>>;

/// The [`Ingest`] of a module that has
/// `async fn ingest(feed: Feed, store: Store) -> Result<(), IngestError>`:
/// `ingest_of!(fixed)`. The exercise's binary and the tests use it for code
/// that is not in this library.
#[macro_export]
macro_rules! ingest_of {
    ($code:ident) => {{
        fn run_ingest(
            feed: $crate::Feed,
            store: $crate::Store,
        ) -> $crate::BoxFuture<'static, ::std::result::Result<(), $crate::IngestError>> {
            ::std::boxed::Box::pin($code::ingest(feed, store))
        }
        run_ingest as $crate::Ingest
    }};
}

/// The `events` table, made once per process and copied for each run.
pub static SCHEMA: DatabaseTemplate = DatabaseTemplate {
    name: "unbounded_queue_events",
    description: "creating the events table",
    seed: create_schema,
};

/// The schema (`migrations/`).
pub static MIGRATIONS: Migrator = sqlx::migrate!();

fn create_schema(conn: &mut PgConnection) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        MIGRATIONS
            .run_direct(&mut *conn)
            .await
            .map_err(|error| HarnessError::Setup {
                scenario: INFO.id.to_owned(),
                detail: format!("migration failed: {error}"),
            })
    })
}

static INFO: ScenarioInfo = ScenarioInfo {
    id: "unbounded-queue",
    title: "Unbounded queue",
    summary: "Whenever the apps send a burst of events, the ingester's memory climbs until it is killed, Redis piles up pending entries, and events go missing from the database.",
    services: &[Service::Postgres, Service::Redis],
    signal_metric: "held_max",
    key_metrics: &[
        "held_max",
        "held_bound",
        "heap_bytes_per_1000_events",
        "pending_max",
        "events_stored",
        "events_dead_lettered",
        "events_lost",
        "acknowledged_unstored_max",
        "held_ms_p99",
        "end_to_end_ms_p99",
    ],
    live_gauges: &["held", "waiting_in_redis", "pending", "stored", "live_heap_mib"],
    hints: include_str!("../HINTS.md"),
    solution: include_str!("../SOLUTION.md"),
    sources: Sources {
        buggy: include_str!("buggy.rs"),
        fixed: include_str!("fixed.rs"),
    },
};

/// The unbounded-queue scenario, running its buggy and fixed code, or a
/// candidate's (the learner's exercise, a test's wrong fix) as the exercise.
pub struct UnboundedQueue {
    candidate: Option<Ingest>,
}

/// The scenario, for the CLI's list.
pub static SCENARIO: UnboundedQueue = UnboundedQueue { candidate: None };

impl UnboundedQueue {
    /// The scenario with `ingest` (see [`ingest_of!`]) as the code its exercise variant runs.
    pub const fn with_candidate(ingest: Ingest) -> UnboundedQueue {
        UnboundedQueue {
            candidate: Some(ingest),
        }
    }

    /// The ingester a `variant` runs.
    pub fn ingester(&self, variant: Variant) -> Result<Ingest> {
        variant.pick(
            INFO.id,
            ingest_of!(buggy),
            ingest_of!(fixed),
            self.candidate,
        )
    }
}

impl Scenario for UnboundedQueue {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(async move {
            let ingest = self.ingester(ctx.variant())?;
            let figures = workload::run_ingester(ctx, ingest).await?;
            Ok(verdict::verdict(&figures))
        })
    }
}
