//! # Listener leak: memory and tasks that grow forever
//!
//! Every request to a dashboard opens a `DataService`. It registers a
//! listener on the app's event bus (to show announcements) and spawns a task
//! that follows the user's price alerts on Redis pub/sub. Neither is ever
//! removed: the listener holds the service's state, the task holds its Redis
//! connection, and both outlive the request. Memory, tasks, Redis clients and
//! the time to publish an event all grow with every request, until the
//! process dies.
//!
//! A run sends a thousand requests, samples listeners, live heap bytes (the
//! harness's counting allocator), alive tokio tasks and Redis clients as it
//! goes, and judges the *growth* per 1,000 requests — not absolute numbers,
//! so the verdict holds on any machine. Every request must still receive an
//! announcement and a price alert, so dropping the listeners is not a fix.

pub mod buggy;
pub mod bus;
pub mod exercise;
pub mod fixed;

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::redis;
use debuglab_harness::alloc::live_heap_bytes;
use debuglab_harness::report::format_number;
use debuglab_harness::sampler::sample_every;
use debuglab_harness::stats::{slope, Latencies};
use debuglab_harness::workload::{drive, Workload};
use debuglab_harness::{Result, RunContext, Scenario, ScenarioInfo, Service, Variant, Verdict};
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;

pub use bus::{Event, EventBus, ListenerId};

/// What the services of one app share: built by the harness, handed to the variant.
pub struct App {
    /// Announcements for every open dashboard.
    pub bus: Arc<EventBus>,
    /// A Redis client for pub/sub (each subscriber needs its own connection).
    pub redis: redis::Client,
}

/// Why opening a service failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Redis refused or failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What a dashboard shows; the same in every variant.
pub struct SessionState {
    /// Whose dashboard.
    pub user_id: i64,
    /// The dashboard's data, loaded when the service opens (32 KiB).
    dashboard: Vec<u8>,
    announcements: AtomicU64,
    last_price: Mutex<Option<String>>,
    price_updates: watch::Sender<u64>,
}

/// Bytes of dashboard data each service holds.
pub const DASHBOARD_BYTES: usize = 32 * 1024;

impl SessionState {
    /// Loads `user_id`'s dashboard.
    pub fn load(user_id: i64) -> Arc<SessionState> {
        Arc::new(SessionState {
            user_id,
            dashboard: vec![(user_id % 251) as u8; DASHBOARD_BYTES],
            announcements: AtomicU64::new(0),
            last_price: Mutex::new(None),
            price_updates: watch::Sender::new(0),
        })
    }

    /// Shows an event on the dashboard.
    pub fn on_event(&self, event: &Event) {
        match event {
            Event::Announcement(_) => {
                self.announcements.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Shows a price alert on the dashboard.
    pub fn on_price(&self, price: String) {
        *self
            .last_price
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(price);
        self.price_updates.send_modify(|count| *count += 1);
    }

    /// Announcements seen so far.
    pub fn announcements_seen(&self) -> u64 {
        self.announcements.load(Ordering::Relaxed)
    }

    /// The latest price alert.
    pub fn last_price(&self) -> Option<String> {
        self.last_price
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Watches the number of price alerts seen.
    pub fn price_updates(&self) -> watch::Receiver<u64> {
        self.price_updates.subscribe()
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

/// Requests in a run.
pub const REQUESTS: usize = 1_000;
/// How long a request waits for its price alert before it counts as lost.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Most growth per 1,000 requests a healthy service shows, after warm-up.
pub const MAX_LISTENERS_PER_1000: f64 = 10.0;
/// Tasks: the same bound as listeners.
pub const MAX_TASKS_PER_1000: f64 = 10.0;
/// Redis clients: the same bound.
pub const MAX_CLIENTS_PER_1000: f64 = 10.0;
/// Heap: 1 MiB per 1,000 requests (a leak of one dashboard each is 32 MiB).
pub const MAX_HEAP_BYTES_PER_1000: f64 = 1024.0 * 1024.0;

static INFO: ScenarioInfo = ScenarioInfo {
    id: "listener-leak",
    title: "Listener leak",
    summary: "Each request registers a listener and a Redis subscriber that are never removed: memory and tasks grow forever.",
    services: &[Service::Redis],
    signal_metric: "listeners_end",
    key_metrics: &["listeners_end", "tasks_end", "redis_clients_end", "heap_growth_bytes", "listeners_per_1000", "heap_bytes_per_1000", "dispatch_us_first_tenth", "dispatch_us_last_tenth"],
    readme: include_str!("../README.md"),
};

/// The listener-leak scenario.
pub struct ListenerLeak;

/// The scenario, for the CLI's list.
pub static SCENARIO: ListenerLeak = ListenerLeak;

impl Scenario for ListenerLeak {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        match ctx.variant() {
            Variant::Buggy => Box::pin(run::<buggy::DataService>(ctx)),
            Variant::Fixed => Box::pin(run::<fixed::DataService>(ctx)),
            Variant::Exercise => Box::pin(run::<exercise::DataService>(ctx)),
        }
    }
}

/// What one request saw.
struct RequestSeen {
    dispatch: Duration,
    announcement_delivered: bool,
    price_delivered: bool,
}

/// The process at one moment.
#[derive(Clone, Copy, Debug)]
struct Snapshot {
    requests_done: usize,
    listeners: usize,
    heap_bytes: usize,
    tasks: usize,
    redis_clients: usize,
}

async fn run<S: DataServiceApi>(ctx: &RunContext) -> Result<Verdict> {
    let redis = ctx.redis().await?;
    let app = Arc::new(App {
        bus: Arc::new(EventBus::new()),
        redis: redis.client()?,
    });
    let publisher = redis.probe_connection().await?;
    let done = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Handle::current();

    let snapshot = {
        let (app, done, redis, runtime) = (
            Arc::clone(&app),
            Arc::clone(&done),
            redis.clone(),
            runtime.clone(),
        );
        move || {
            let (app, done, redis, runtime) = (
                Arc::clone(&app),
                Arc::clone(&done),
                redis.clone(),
                runtime.clone(),
            );
            async move {
                Snapshot {
                    requests_done: done.load(Ordering::Relaxed),
                    listeners: app.bus.listener_count(),
                    heap_bytes: live_heap_bytes(),
                    tasks: runtime.metrics().num_alive_tasks(),
                    redis_clients: redis
                        .clients()
                        .await
                        .map(|clients| clients.len())
                        .unwrap_or(0),
                }
            }
        }
    };
    let start = snapshot().await;
    let sampler = sample_every(Duration::from_millis(100), snapshot.clone());

    let workload = Workload {
        requests: REQUESTS,
        concurrency: 4,
        max_duration: Duration::from_secs(60),
        hard_limit: Duration::from_secs(90),
    };
    let outcome = {
        let (app, done) = (Arc::clone(&app), Arc::clone(&done));
        drive("dashboard requests", workload, move |index| {
            let (app, done, mut publisher) =
                (Arc::clone(&app), Arc::clone(&done), publisher.clone());
            async move {
                let user_id = index as i64 + 1;
                let service = S::open(&app, user_id).await?;
                let state = Arc::clone(service.state());

                let started = Instant::now();
                app.bus.publish(&Event::Announcement(index as u64));
                let dispatch = started.elapsed();

                let mut updates = state.price_updates();
                let price = format!("price-{index}");
                let _receivers: i64 = redis::cmd("PUBLISH")
                    .arg(format!("prices:{user_id}"))
                    .arg(&price)
                    .query_async(&mut publisher)
                    .await?;
                let delivered =
                    tokio::time::timeout(DELIVERY_TIMEOUT, updates.wait_for(|count| *count >= 1))
                        .await;
                let seen = RequestSeen {
                    dispatch,
                    announcement_delivered: state.announcements_seen() >= 1,
                    price_delivered: matches!(delivered, Ok(Ok(_)))
                        && state.last_price() == Some(price),
                };
                drop(service);
                done.fetch_add(1, Ordering::Relaxed);
                Ok::<_, AppError>(seen)
            }
        })
        .await
    };
    // Give aborted tasks one scheduler pass to wind down before the last look.
    tokio::task::yield_now().await;
    let samples = sampler.stop().await;
    let end = snapshot().await;

    let seen: Vec<&RequestSeen> = outcome
        .records
        .iter()
        .filter_map(|record| record.result.as_ref().ok())
        .collect();
    let errors = outcome.errors();
    let first_error = outcome
        .records
        .iter()
        .find_map(|record| record.result.as_ref().err().map(ToString::to_string));
    let missed_announcements = seen
        .iter()
        .filter(|request| !request.announcement_delivered)
        .count();
    let missed_prices = seen
        .iter()
        .filter(|request| !request.price_delivered)
        .count();

    // Growth per 1,000 requests, after the first tenth (warm-up: buffers, pools).
    let mut points: Vec<Snapshot> = samples.iter().map(|sample| sample.value).collect();
    points.push(end);
    let warm: Vec<Snapshot> = points
        .into_iter()
        .filter(|point| point.requests_done >= REQUESTS / 10)
        .collect();
    let per_1000 = |pick: fn(&Snapshot) -> usize| {
        let xy: Vec<(f64, f64)> = warm
            .iter()
            .map(|point| (point.requests_done as f64 / 1000.0, pick(point) as f64))
            .collect();
        slope(&xy).unwrap_or(0.0)
    };
    let listeners_per_1000 = per_1000(|s| s.listeners);
    let heap_per_1000 = per_1000(|s| s.heap_bytes);
    let tasks_per_1000 = per_1000(|s| s.tasks);
    let clients_per_1000 = per_1000(|s| s.redis_clients);
    let heap_growth = end.heap_bytes as f64 - start.heap_bytes as f64;

    let dispatch_us = |slice: &[&RequestSeen]| {
        Latencies::new(slice.iter().map(|request| request.dispatch))
            .p50_ms()
            .unwrap_or(0.0)
            * 1000.0
    };
    let tenth = (seen.len() / 10).max(1);
    let dispatch_first = dispatch_us(&seen[..tenth.min(seen.len())]);
    let dispatch_last = dispatch_us(&seen[seen.len().saturating_sub(tenth)..]);

    ctx.metric("requests", outcome.records.len() as f64);
    ctx.metric("errors", errors as f64);
    ctx.metric("unfinished", outcome.unfinished as f64);
    ctx.metric("missed_announcements", missed_announcements as f64);
    ctx.metric("missed_price_alerts", missed_prices as f64);
    ctx.metric("listeners_end", end.listeners as f64);
    ctx.metric("tasks_end", end.tasks as f64);
    ctx.metric("redis_clients_end", end.redis_clients as f64);
    ctx.metric("heap_growth_bytes", heap_growth);
    ctx.metric("listeners_per_1000", round1(listeners_per_1000));
    ctx.metric("tasks_per_1000", round1(tasks_per_1000));
    ctx.metric("redis_clients_per_1000", round1(clients_per_1000));
    ctx.metric("heap_bytes_per_1000", heap_per_1000.round());
    ctx.metric("dispatch_us_first_tenth", round1(dispatch_first));
    ctx.metric("dispatch_us_last_tenth", round1(dispatch_last));

    ctx.evidence(format!(
        "{} requests, 4 at a time; each opens a DataService holding a {} KiB dashboard, gets one announcement from the bus and one price alert from Redis pub/sub",
        REQUESTS,
        DASHBOARD_BYTES / 1024
    ));
    ctx.evidence(format!(
        "growth per 1,000 requests after warm-up: listeners {:+.1}, tokio tasks {:+.1}, Redis clients {:+.1}, heap {} bytes (bounds: 10, 10, 10, 1 MiB)",
        listeners_per_1000,
        tasks_per_1000,
        clients_per_1000,
        format_number(heap_per_1000.round())
    ));
    ctx.evidence(format!(
        "start → end: listeners {} → {}, tasks {} → {}, Redis clients {} → {} (INFO clients / CLIENT LIST), live heap {} → {} bytes",
        start.listeners,
        end.listeners,
        start.tasks,
        end.tasks,
        start.redis_clients,
        end.redis_clients,
        format_number(start.heap_bytes as f64),
        format_number(end.heap_bytes as f64)
    ));
    ctx.evidence(format!(
        "samples (requests: listeners / tasks / Redis clients / heap MiB): {}",
        warm_timeline(
            &samples
                .iter()
                .map(|sample| sample.value)
                .collect::<Vec<_>>()
        )
    ));
    ctx.evidence(format!(
        "event dispatch (publish to every listener), median: {dispatch_first:.1} µs in the first tenth of requests, {dispatch_last:.1} µs in the last"
    ));
    if let Ok(clients) = redis.info("clients").await {
        if let Some(connected) = clients.get("connected_clients") {
            ctx.evidence(format!("Redis INFO clients: connected_clients:{connected}"));
        }
    }
    if let Some(error) = &first_error {
        ctx.evidence(format!("{errors} requests failed; the first: {error}"));
    }
    if missed_announcements + missed_prices > 0 {
        ctx.evidence(format!(
            "{missed_announcements} requests missed their announcement and {missed_prices} their price alert: a live subscriber must get every event"
        ));
    }

    // The app goes away with the run; leaked subscribers are disconnected by
    // the harness when the Redis database is released.
    drop(app);

    let mut problems = Vec::new();
    let mut grows = |name: &str, value: f64, bound: f64, unit: &str| {
        if value > bound {
            problems.push(format!(
                "{name} grow by {} {unit}per 1,000 requests",
                format_number(value.round())
            ));
        }
    };
    grows("listeners", listeners_per_1000, MAX_LISTENERS_PER_1000, "");
    grows("tokio tasks", tasks_per_1000, MAX_TASKS_PER_1000, "");
    grows("Redis clients", clients_per_1000, MAX_CLIENTS_PER_1000, "");
    grows(
        "live heap bytes",
        heap_per_1000,
        MAX_HEAP_BYTES_PER_1000,
        "",
    );
    if errors > 0 || outcome.unfinished > 0 {
        problems.push(format!(
            "{} requests failed or hung",
            errors + outcome.unfinished
        ));
    }
    if missed_announcements + missed_prices > 0 {
        problems.push(format!(
            "{} events were not delivered to live subscribers",
            missed_announcements + missed_prices
        ));
    }
    if outcome.records.len() < REQUESTS {
        problems.push(format!(
            "only {} of {REQUESTS} requests ran",
            outcome.records.len()
        ));
    }
    Ok(Verdict::from_problems(&problems, || {
        format!(
            "Flat after warm-up: listeners, tasks and Redis clients stay at {} / {} / {} while every one of {} requests got its announcement and price alert.",
            end.listeners, end.tasks, end.redis_clients, REQUESTS
        )
    }))
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn warm_timeline(points: &[Snapshot]) -> String {
    let step = (points.len() / 6).max(1);
    points
        .iter()
        .step_by(step)
        .map(|point| {
            format!(
                "{}: {} / {} / {} / {:.1}",
                point.requests_done,
                point.listeners,
                point.tasks,
                point.redis_clients,
                point.heap_bytes as f64 / (1024.0 * 1024.0)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
