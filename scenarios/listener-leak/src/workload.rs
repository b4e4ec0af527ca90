//! The dashboards: 400 of them, 8 open at a time; each stays open for three
//! rounds, and each round publishes an announcement on the bus and a price
//! alert on Redis, then checks that the open dashboard shows both.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{self, aio::MultiplexedConnection};
use debuglab_harness::alloc::heap_counter;
use debuglab_harness::workload::{Workload, WorkloadOutcome};
use debuglab_harness::{Result, RunContext};
use tokio::time::Instant;

use crate::probes::{self, Watch};
use crate::verdict::{Dashboards, Deliveries, Figures};
use crate::{App, AppError, DataServiceApi, Event, EventBus, SessionState, Shown};

/// Dashboards a run serves.
pub const DASHBOARDS: usize = 400;

/// Dashboards open at once.
pub const OPEN_AT_ONCE: usize = 8;

/// Rounds of events each dashboard gets while it is open.
pub const ROUNDS: u32 = 3;

/// How long a user looks at the dashboard between two rounds.
pub const THINK_TIME: Duration = Duration::from_millis(15);

/// How long an event may take to appear on an open dashboard (local Redis
/// and an in-process bus take well under a millisecond: this is slack for a
/// loaded machine, never a speed objective).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Once this many events were missed the verdict is settled, and later
/// events get [`LATE_PATIENCE`] to appear, so that a broken variant does not
/// make the run wait [`DELIVERY_TIMEOUT`] for each of hundreds of events.
pub const MISSES_BEFORE_IMPATIENCE: usize = 8;

/// How long an event may take to appear once the verdict is settled.
pub const LATE_PATIENCE: Duration = Duration::from_millis(20);

/// Dashboards served before growth is measured: buffers and the runtime warm up.
pub const WARM_UP: usize = DASHBOARDS / 10;

/// The dashboards: 400, 8 open at a time; in a live run, 5 a second for as
/// long as the learner watches (about 4,500 in 15 minutes: some 300 MiB of
/// heap and 4,500 Redis clients for the buggy service).
pub const WORKLOAD: Workload = Workload {
    requests: DASHBOARDS,
    concurrency: OPEN_AT_ONCE,
    max_duration: Duration::from_secs(60),
    hard_limit: Duration::from_secs(90),
    live_rate: 5,
};

/// Dashboards served so far and open now, counted by the workload.
#[derive(Default)]
pub struct Tally {
    /// Dashboards that closed after their rounds.
    pub served: AtomicUsize,
    /// Dashboards between the start of `open` and the end of their close.
    pub open: AtomicUsize,
}

/// Event payloads nobody can predict: a hash of a counter, keyed per run.
struct Payloads {
    key: RandomState,
    next: AtomicU64,
}

impl Payloads {
    fn new() -> Payloads {
        Payloads {
            key: RandomState::new(),
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u64 {
        self.key.hash_one(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// What the dashboards of a run share.
struct Shared {
    app: Arc<App>,
    publisher: MultiplexedConnection,
    payloads: Payloads,
    tally: Arc<Tally>,
    misses: AtomicUsize,
}

impl Shared {
    /// How long the next event may take to appear.
    fn patience(&self) -> Duration {
        if self.misses.load(Ordering::Relaxed) < MISSES_BEFORE_IMPATIENCE {
            DELIVERY_TIMEOUT
        } else {
            LATE_PATIENCE
        }
    }

    fn missed(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one dashboard was sent and showed while it was open.
#[derive(Clone, Debug, Default)]
pub struct Dashboard {
    /// Announcements published while it was open.
    pub announcements_due: u32,
    /// Of those, shown on it.
    pub announcements_shown: u32,
    /// Price alerts published for its user while it was open.
    pub alerts_due: u32,
    /// Of those, shown on it.
    pub alerts_shown: u32,
    /// Price alerts Redis delivered to no subscriber (`PUBLISH` answered 0).
    pub alerts_unheard: u32,
    /// How long the bus took to publish its first announcement.
    pub dispatch: Duration,
    /// How many listeners the bus called for its first announcement.
    pub listeners_called: usize,
}

impl Dashboard {
    /// Whether it missed an event while it was open.
    pub fn missed_any(&self) -> bool {
        self.announcements_shown < self.announcements_due || self.alerts_shown < self.alerts_due
    }
}

/// Serves the dashboards with the variant's `S`, watches the process and
/// Redis meanwhile, and returns the figures the verdict is made of (also
/// recorded on `ctx`).
pub async fn run_dashboards<S: DataServiceApi>(ctx: &RunContext) -> Result<Figures> {
    let heap = heap_counter(ctx.info().id)?;
    let redis = ctx.redis().await?;
    let tally = Arc::new(Tally::default());
    let shared = Arc::new(Shared {
        app: Arc::new(App {
            bus: Arc::new(EventBus::new()),
            redis: redis.client()?,
        }),
        publisher: redis.probe_connection().await?,
        payloads: Payloads::new(),
        tally: Arc::clone(&tally),
        misses: AtomicUsize::new(0),
    });
    let watch = Watch::start(ctx, &shared.app.bus, &tally, &redis, heap).await;
    let outcome = {
        let shared = Arc::clone(&shared);
        ctx.drive("dashboards", WORKLOAD, move |index| {
            serve_dashboard::<S>(Arc::clone(&shared), index)
        })
        .await
    };
    let watched = watch.stop().await;
    let settled = probes::settle(&shared.app.bus, &redis, heap, &watched.start).await;
    let figures = Figures {
        dashboards: dashboards(&outcome, ctx.is_live()),
        deliveries: deliveries(&outcome, &shared),
        growth: watched.growth(),
        leftovers: settled.figures(&watched.start),
    };
    probes::record(ctx, &figures, &outcome, &watched, &settled, &redis).await;
    Ok(figures)
}

/// One dashboard's life: open, rounds of events, close.
async fn serve_dashboard<S: DataServiceApi>(
    shared: Arc<Shared>,
    index: usize,
) -> std::result::Result<Dashboard, AppError> {
    shared.tally.open.fetch_add(1, Ordering::Relaxed);
    let life = dashboard_life::<S>(&shared, index).await;
    shared.tally.open.fetch_sub(1, Ordering::Relaxed);
    if life.is_ok() {
        shared.tally.served.fetch_add(1, Ordering::Relaxed);
    }
    life
}

/// Opens the dashboard, plays its rounds, closes it; stops at its first miss.
async fn dashboard_life<S: DataServiceApi>(
    shared: &Shared,
    index: usize,
) -> std::result::Result<Dashboard, AppError> {
    // Indexes grow without end in a live run; every user id stays unique.
    let user_id = index as i64 + 1;
    let service = S::open(&shared.app, user_id).await?;
    let state = Arc::clone(service.state());
    let mut dashboard = Dashboard::default();
    for round in 0..ROUNDS {
        if round > 0 {
            // The user reads the dashboard: it stays open between rounds.
            tokio::time::sleep(THINK_TIME).await;
        }
        // A dashboard that missed an event is broken; its later rounds would
        // only add waiting.
        if !announce(shared, &state, &mut dashboard).await
            || !alert(shared, &state, &mut dashboard).await?
        {
            break;
        }
    }
    drop(service);
    Ok(dashboard)
}

/// Publishes an announcement on the bus; whether the dashboard showed it.
async fn announce(shared: &Shared, state: &SessionState, dashboard: &mut Dashboard) -> bool {
    let id = shared.payloads.next();
    let started = Instant::now();
    let called = shared.app.bus.publish(&Event::Announcement(id));
    if dashboard.announcements_due == 0 {
        dashboard.dispatch = started.elapsed();
        dashboard.listeners_called = called;
    }
    dashboard.announcements_due += 1;
    let shown = appears(shared, state, |shown| shown.has_announcement(id)).await;
    dashboard.announcements_shown += u32::from(shown);
    shown
}

/// Publishes a price alert for the dashboard's user on Redis; whether the
/// dashboard showed it.
async fn alert(
    shared: &Shared,
    state: &SessionState,
    dashboard: &mut Dashboard,
) -> std::result::Result<bool, AppError> {
    let price = format!("{:016x}", shared.payloads.next());
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(format!("prices:{}", state.user_id))
        .arg(&price)
        .query_async(&mut shared.publisher.clone())
        .await?;
    dashboard.alerts_due += 1;
    // Nobody subscribed: the alert is lost, no need to wait for it.
    let shown = if receivers == 0 {
        dashboard.alerts_unheard += 1;
        shared.missed();
        false
    } else {
        appears(shared, state, |shown| shown.has_price(&price)).await
    };
    dashboard.alerts_shown += u32::from(shown);
    Ok(shown)
}

/// Whether the dashboard shows what `expected` looks for within the run's
/// patience; a miss makes the run less patient.
async fn appears(
    shared: &Shared,
    state: &SessionState,
    expected: impl FnMut(&Shown) -> bool,
) -> bool {
    let mut shown = state.shown();
    let appeared = matches!(
        tokio::time::timeout(shared.patience(), shown.wait_for(expected)).await,
        Ok(Ok(_))
    );
    if !appeared {
        shared.missed();
    }
    appeared
}

/// The dashboards, as the workload saw them. A live run ends when the
/// learner stops it: the dashboards open then were cut off, not hung.
fn dashboards(outcome: &WorkloadOutcome<Dashboard, AppError>, live: bool) -> Dashboards {
    let (planned, unfinished) = if live {
        (outcome.records.len(), 0)
    } else {
        (WORKLOAD.requests, outcome.unfinished)
    };
    Dashboards {
        planned,
        served: outcome.records.len() - outcome.errors(),
        failed: outcome.errors(),
        unfinished,
        first_error: outcome
            .records
            .iter()
            .find_map(|record| record.result.as_ref().err().map(ToString::to_string)),
    }
}

/// The events due to open dashboards, and those they showed.
fn deliveries(outcome: &WorkloadOutcome<Dashboard, AppError>, shared: &Shared) -> Deliveries {
    let mut deliveries = Deliveries::default();
    for dashboard in outcome
        .records
        .iter()
        .filter_map(|record| record.result.as_ref().ok())
    {
        deliveries.announcements_due += u64::from(dashboard.announcements_due);
        deliveries.announcements_missed +=
            u64::from(dashboard.announcements_due - dashboard.announcements_shown);
        deliveries.alerts_due += u64::from(dashboard.alerts_due);
        deliveries.alerts_missed += u64::from(dashboard.alerts_due - dashboard.alerts_shown);
        deliveries.alerts_unheard += u64::from(dashboard.alerts_unheard);
        deliveries.dashboards_missing += usize::from(dashboard.missed_any());
    }
    deliveries.impatient = shared.misses.load(Ordering::Relaxed) >= MISSES_BEFORE_IMPATIENCE;
    deliveries
}
