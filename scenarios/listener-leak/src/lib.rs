//! # Listener leak: the dashboard service's memory climbs all day
//!
//! A dashboard service opens a `DataService` for every request. While it is
//! open, the dashboard shows the app's announcements, which arrive on an
//! in-process event bus ([`EventBus`]), and the user's price alerts, which
//! arrive on Redis pub/sub (channel `prices:<user>`).
//!
//! The service's memory climbs all day and never comes down; it is restarted
//! every night "to be safe". Redis reports thousands of connected clients for
//! a service that keeps a handful of dashboards open at a time, and
//! publishing an announcement gets slower every hour.
//!
//! ## The contract
//!
//! Whatever the code looks like, the service must (checked in [`verdict`]
//! from evidence the variant cannot forge):
//!
//! - show every event to every open dashboard for as long as it is open:
//!   each dashboard stays open for several rounds, and each round publishes
//!   an announcement on the bus and a price alert on Redis whose payloads the
//!   variant cannot predict, then checks that the dashboard shows them;
//! - leave nothing behind when a dashboard closes: the bus's own listener
//!   count, the run's tokio tasks (`num_alive_tasks` of the run's own
//!   runtime), the clients Redis lists on the run's database (`CLIENT LIST`)
//!   and the live heap (the harness's counting allocator) do not grow with
//!   the dashboards served (growth per 1,000 dashboards after warm-up), and
//!   once every dashboard has closed, no listener is left on the bus and no
//!   client on the run's Redis database;
//! - open and update every dashboard without an error.
//!
//! The run is laid out in [`workload`] (the dashboards and their events),
//! [`probes`] (what is sampled and measured) and [`verdict`] (the
//! judgement, a pure function).

pub mod buggy;
pub mod bus;
pub mod fixed;
pub mod probes;
pub mod verdict;
pub mod workload;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use deadpool_redis::redis;
use debuglab_harness::{
    Result, RunContext, Scenario, ScenarioInfo, Service, Sources, Variant, Verdict,
};
pub use futures::future::BoxFuture;
use tokio::sync::watch;

pub use bus::{Event, EventBus, ListenerId};
pub use verdict::Figures;
pub use workload::{DASHBOARDS, OPEN_AT_ONCE, ROUNDS, WORKLOAD};

/// What the services of one app share: built by the harness, handed to the variant.
pub struct App {
    /// Announcements for every open dashboard.
    pub bus: Arc<EventBus>,
    /// A Redis client for pub/sub (each subscriber needs its own connection).
    pub redis: redis::Client,
}

/// Why opening or updating a dashboard failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Redis refused or failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// How many of the latest events of each kind a dashboard keeps: enough that
/// an event is still there when the run looks for it, whatever arrived since.
pub const SHOWN_KEPT: usize = 256;

/// What a dashboard has shown: the latest events of each kind, and counts.
#[derive(Clone, Debug, Default)]
pub struct Shown {
    announcements: VecDeque<u64>,
    prices: VecDeque<String>,
    announcements_seen: u64,
    prices_seen: u64,
}

impl Shown {
    /// Whether announcement `id` is among the latest shown.
    pub fn has_announcement(&self, id: u64) -> bool {
        self.announcements.contains(&id)
    }

    /// Whether the price alert `price` is among the latest shown.
    pub fn has_price(&self, price: &str) -> bool {
        self.prices.iter().any(|shown| shown == price)
    }

    fn keep<T>(list: &mut VecDeque<T>, item: T) {
        if list.len() == SHOWN_KEPT {
            list.pop_front();
        }
        list.push_back(item);
    }
}

/// What a dashboard shows; the same in every variant.
pub struct SessionState {
    /// Whose dashboard.
    pub user_id: i64,
    /// The dashboard's data, loaded when the service opens (32 KiB).
    dashboard: Vec<u8>,
    shown: watch::Sender<Shown>,
}

/// Bytes of dashboard data each service holds.
pub const DASHBOARD_BYTES: usize = 32 * 1024;

impl SessionState {
    /// Loads `user_id`'s dashboard.
    pub fn load(user_id: i64) -> Arc<SessionState> {
        Arc::new(SessionState {
            user_id,
            dashboard: vec![(user_id % 251) as u8; DASHBOARD_BYTES],
            shown: watch::Sender::new(Shown::default()),
        })
    }

    /// Shows an event on the dashboard.
    pub fn on_event(&self, event: &Event) {
        match event {
            Event::Announcement(id) => self.shown.send_modify(|shown| {
                Shown::keep(&mut shown.announcements, *id);
                shown.announcements_seen += 1;
            }),
        }
    }

    /// Shows a price alert on the dashboard.
    pub fn on_price(&self, price: String) {
        self.shown.send_modify(|shown| {
            Shown::keep(&mut shown.prices, price);
            shown.prices_seen += 1;
        });
    }

    /// Announcements shown so far.
    pub fn announcements_seen(&self) -> u64 {
        self.shown.borrow().announcements_seen
    }

    /// Price alerts shown so far.
    pub fn prices_seen(&self) -> u64 {
        self.shown.borrow().prices_seen
    }

    /// The latest price alert.
    pub fn last_price(&self) -> Option<String> {
        self.shown.borrow().prices.back().cloned()
    }

    /// Watches what the dashboard shows (to wait for an event to appear).
    pub fn shown(&self) -> watch::Receiver<Shown> {
        self.shown.subscribe()
    }

    /// The dashboard's size in bytes.
    pub fn dashboard_len(&self) -> usize {
        self.dashboard.len()
    }
}

/// What every variant's `DataService` offers.
pub trait DataServiceApi: Send + Sync + Sized + 'static {
    /// Opens the service for one request of `user_id`.
    fn open(
        app: &App,
        user_id: i64,
    ) -> impl Future<Output = std::result::Result<Self, AppError>> + Send;
    /// The dashboard it keeps.
    fn state(&self) -> &Arc<SessionState>;
}

/// A variant's run: the dashboards driven with its `DataService`, measured.
pub type RunDashboards = for<'a> fn(&'a RunContext) -> BoxFuture<'a, Result<Figures>>;

#[doc(hidden)]
pub use debuglab_harness as __harness;

/// The [`RunDashboards`] of a module that has a `DataService` implementing
/// [`DataServiceApi`]: `data_service_of!(fixed)`. The exercise's binary and
/// the tests use it for code that is not in this library.
#[macro_export]
macro_rules! data_service_of {
    ($code:ident) => {{
        fn run_dashboards<'a>(
            ctx: &'a $crate::__harness::RunContext,
        ) -> $crate::BoxFuture<'a, $crate::__harness::Result<$crate::Figures>> {
            ::std::boxed::Box::pin($crate::workload::run_dashboards::<$code::DataService>(ctx))
        }
        run_dashboards as $crate::RunDashboards
    }};
}

static INFO: ScenarioInfo = ScenarioInfo {
    id: "listener-leak",
    title: "Listener leak",
    summary: "The dashboard service's memory, tasks and Redis clients climb with every request and never come down; publishing an announcement gets slower every hour.",
    services: &[Service::Redis],
    signal_metric: "listeners_left",
    key_metrics: &[
        "listeners_per_1000",
        "tasks_per_1000",
        "redis_clients_per_1000",
        "heap_bytes_per_1000",
        "listeners_left",
        "redis_clients_left",
        "missed_announcements",
        "missed_price_alerts",
        "dispatch_us_first_tenth",
        "dispatch_us_last_tenth",
    ],
    live_gauges: &["listeners", "tokio_tasks", "redis_clients", "live_heap_mib"],
    hints: include_str!("../HINTS.md"),
    solution: include_str!("../SOLUTION.md"),
    sources: Sources {
        buggy: include_str!("buggy.rs"),
        fixed: include_str!("fixed.rs"),
    },
};

/// The listener-leak scenario, running its buggy and fixed code, or a
/// candidate's (the learner's exercise, a test's wrong fix) as the exercise.
pub struct ListenerLeak {
    candidate: Option<RunDashboards>,
}

/// The scenario, for the CLI's list.
pub static SCENARIO: ListenerLeak = ListenerLeak { candidate: None };

impl ListenerLeak {
    /// The scenario with `run` (see [`data_service_of!`]) as the code its exercise variant runs.
    pub const fn with_candidate(run: RunDashboards) -> ListenerLeak {
        ListenerLeak {
            candidate: Some(run),
        }
    }

    /// The run a `variant` uses.
    pub fn dashboards(&self, variant: Variant) -> Result<RunDashboards> {
        variant.pick(
            INFO.id,
            data_service_of!(buggy),
            data_service_of!(fixed),
            self.candidate,
        )
    }
}

impl Scenario for ListenerLeak {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(async move {
            let run = self.dashboards(ctx.variant())?;
            let figures = run(ctx).await?;
            Ok(verdict::verdict(&figures))
        })
    }
}
