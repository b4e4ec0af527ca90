//! What the run watches while the dashboards come and go (the bus's
//! listeners, the run's tokio tasks, the live heap, Redis `CLIENT LIST`),
//! what it measures once they have all closed, and the metrics and evidence
//! it records.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::alloc::HeapCounter;
use debuglab_harness::redis::RunRedis;
use debuglab_harness::report::format_number;
use debuglab_harness::sampler::{sample_every, Sample, Sampler};
use debuglab_harness::stats::Latencies;
use debuglab_harness::workload::WorkloadOutcome;
use debuglab_harness::{Plot, PlotKind, RunContext};
use tokio::time::Instant;

use crate::verdict::{
    Figures, Growth, Leftovers, MAX_CLIENTS_PER_1000, MAX_HEAP_BYTES_PER_1000,
    MAX_LISTENERS_PER_1000, MAX_TASKS_PER_1000,
};
use crate::workload::{Dashboard, Tally, OPEN_AT_ONCE, ROUNDS, THINK_TIME, WARM_UP};
use crate::{AppError, EventBus, DASHBOARD_BYTES};

/// How often the process and Redis are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// How often in a live run, which may last 15 minutes and leak thousands of
/// Redis clients (each sample lists them all).
pub const LIVE_SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// How long closed dashboards get to wind down (a task to end, Redis to see
/// a connection close) before what is left counts as left behind.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(2);

/// The process and Redis at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    /// Dashboards served so far.
    pub served: usize,
    /// Dashboards open now.
    pub open: usize,
    /// Listeners registered on the bus (the bus's own count).
    pub listeners: usize,
    /// Tasks alive on the run's runtime.
    pub tasks: usize,
    /// Live heap bytes of the process.
    pub heap_bytes: usize,
    /// Clients connected to the run's Redis database, the harness's probes left out.
    pub redis_clients: usize,
}

/// Takes a snapshot; the heap is read before Redis' answer is allocated.
pub async fn snapshot(
    bus: &EventBus,
    tally: &Tally,
    redis: &RunRedis,
    heap: HeapCounter,
) -> Snapshot {
    let mut snapshot = Snapshot {
        served: tally.served.load(Ordering::Relaxed),
        open: tally.open.load(Ordering::Relaxed),
        listeners: bus.listener_count(),
        tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        heap_bytes: heap.live_bytes(),
        redis_clients: 0,
    };
    snapshot.redis_clients = redis.clients().await.map_or(0, |clients| clients.len());
    snapshot
}

/// The sampler that watches the dashboards come and go.
pub struct Watch {
    start: Snapshot,
    sampler: Sampler<Snapshot>,
}

/// What the sampler saw, and the snapshot before the first dashboard.
pub struct Watched {
    /// Before the first dashboard opened.
    pub start: Snapshot,
    /// Taken while they came and went.
    pub samples: Vec<Sample<Snapshot>>,
}

impl Watch {
    /// Takes the starting snapshot, then samples every [`SAMPLE_EVERY`]
    /// ([`LIVE_SAMPLE_EVERY`] in a live run); the latest values are also the
    /// live run's gauges.
    pub async fn start(
        ctx: &RunContext,
        bus: &Arc<EventBus>,
        tally: &Arc<Tally>,
        redis: &RunRedis,
        heap: HeapCounter,
    ) -> Watch {
        let start = snapshot(bus, tally, redis, heap).await;
        let (bus, tally, redis, progress) = (
            Arc::clone(bus),
            Arc::clone(tally),
            redis.clone(),
            Arc::clone(ctx.progress()),
        );
        let every = if ctx.is_live() {
            LIVE_SAMPLE_EVERY
        } else {
            SAMPLE_EVERY
        };
        let sampler = sample_every(every, move || {
            let (bus, tally, redis, progress) = (
                Arc::clone(&bus),
                Arc::clone(&tally),
                redis.clone(),
                Arc::clone(&progress),
            );
            async move {
                let sample = snapshot(&bus, &tally, &redis, heap).await;
                progress.gauge("listeners", sample.listeners as f64);
                progress.gauge("tokio_tasks", sample.tasks as f64);
                progress.gauge("redis_clients", sample.redis_clients as f64);
                progress.gauge("live_heap_mib", mib(sample.heap_bytes as f64));
                sample
            }
        });
        Watch { start, sampler }
    }

    /// Stops sampling.
    pub async fn stop(self) -> Watched {
        Watched {
            start: self.start,
            samples: self.sampler.stop().await,
        }
    }
}

impl Watched {
    /// Growth per 1,000 dashboards served, fitted over the samples taken
    /// after warm-up: a slope, so neither the machine nor the start matters.
    /// The dashboards open at each sample are a second variable of the fit:
    /// what an open dashboard holds comes and goes, and is not growth.
    pub fn growth(&self) -> Growth {
        let warm: Vec<&Snapshot> = self
            .samples
            .iter()
            .map(|sample| &sample.value)
            .filter(|snapshot| snapshot.served >= WARM_UP)
            .collect();
        let per_1000 = |pick: fn(&Snapshot) -> usize| {
            let points: Vec<(f64, f64, f64)> = warm
                .iter()
                .map(|s| (s.served as f64 / 1000.0, s.open as f64, pick(s) as f64))
                .collect();
            slope_holding(&points)
        };
        match per_1000(|s| s.listeners) {
            None => Growth::default(),
            Some(listeners) => Growth {
                measured: true,
                listeners,
                tasks: per_1000(|s| s.tasks).unwrap_or(0.0),
                redis_clients: per_1000(|s| s.redis_clients).unwrap_or(0.0),
                heap_bytes: per_1000(|s| s.heap_bytes).unwrap_or(0.0),
            },
        }
    }

    fn max_of(&self, pick: fn(&Snapshot) -> usize) -> usize {
        self.samples
            .iter()
            .map(|sample| pick(&sample.value))
            .max()
            .unwrap_or(0)
    }
}

/// The process and Redis once every dashboard has closed.
pub struct Settled {
    /// The last snapshot.
    pub snapshot: Snapshot,
    /// How long it took to settle (or [`SETTLE_LIMIT`], if it never did).
    pub waited: Duration,
}

impl Settled {
    /// What was left behind, compared with `start`.
    pub fn figures(&self, start: &Snapshot) -> Leftovers {
        Leftovers {
            listeners: self.snapshot.listeners,
            redis_clients: self.snapshot.redis_clients,
            tasks: self.snapshot.tasks as i64 - start.tasks as i64,
        }
    }
}

/// Waits, up to [`SETTLE_LIMIT`], until no listener is left on the bus, no
/// client on the run's Redis database and no more tasks than at `start`:
/// closed dashboards wind down asynchronously (a task ends at its next poll,
/// Redis sees a closed connection a moment later).
pub async fn settle(
    bus: &EventBus,
    redis: &RunRedis,
    heap: HeapCounter,
    start: &Snapshot,
) -> Settled {
    let tally = Tally::default();
    let began = Instant::now();
    loop {
        let snapshot = snapshot(bus, &tally, redis, heap).await;
        let settled =
            snapshot.listeners == 0 && snapshot.redis_clients == 0 && snapshot.tasks <= start.tasks;
        if settled || began.elapsed() >= SETTLE_LIMIT {
            return Settled {
                snapshot,
                waited: began.elapsed(),
            };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Records the metrics and the evidence of a run.
pub async fn record(
    ctx: &RunContext,
    figures: &Figures,
    outcome: &WorkloadOutcome<Dashboard, AppError>,
    watched: &Watched,
    settled: &Settled,
    redis: &RunRedis,
) {
    let (deliveries, growth, left) = (&figures.deliveries, &figures.growth, &figures.leftovers);
    let dispatch = Dispatch::of(outcome);
    record_plots(ctx, watched);
    for (name, value) in [
        ("dashboards_served", figures.dashboards.served as f64),
        (
            "dashboards_missing_events",
            deliveries.dashboards_missing as f64,
        ),
        (
            "missed_announcements",
            deliveries.announcements_missed as f64,
        ),
        ("missed_price_alerts", deliveries.alerts_missed as f64),
        ("price_alerts_unheard", deliveries.alerts_unheard as f64),
        ("listeners_per_1000", round1(growth.listeners)),
        ("tasks_per_1000", round1(growth.tasks)),
        ("redis_clients_per_1000", round1(growth.redis_clients)),
        ("heap_bytes_per_1000", growth.heap_bytes.round()),
        ("listeners_left", left.listeners as f64),
        ("redis_clients_left", left.redis_clients as f64),
        ("tasks_left", left.tasks as f64),
        ("listeners_max", watched.max_of(|s| s.listeners) as f64),
        ("tasks_max", watched.max_of(|s| s.tasks) as f64),
        (
            "redis_clients_max",
            watched.max_of(|s| s.redis_clients) as f64,
        ),
        (
            "heap_growth_bytes",
            settled.snapshot.heap_bytes as f64 - watched.start.heap_bytes as f64,
        ),
        ("dispatch_us_first_tenth", round1(dispatch.first_us)),
        ("dispatch_us_last_tenth", round1(dispatch.last_us)),
        ("listeners_called_first_tenth", dispatch.first_called),
        ("listeners_called_last_tenth", dispatch.last_called),
    ] {
        ctx.metric(name, value);
    }
    record_evidence(ctx, figures, watched, settled, &dispatch);
    if let Ok(clients) = redis.info("clients").await {
        if let Some(connected) = clients.get("connected_clients") {
            ctx.evidence(format!(
                "Redis INFO clients, after every dashboard had closed: connected_clients:{connected} (the harness's own connection included)"
            ));
        }
    }
}

fn record_evidence(
    ctx: &RunContext,
    figures: &Figures,
    watched: &Watched,
    settled: &Settled,
    dispatch: &Dispatch,
) {
    let (dashboards, deliveries, growth) =
        (&figures.dashboards, &figures.deliveries, &figures.growth);
    ctx.evidence(format!(
        "{} dashboards served, {OPEN_AT_ONCE} open at a time: each opened a DataService holding a {} KiB dashboard and stayed open for {ROUNDS} rounds, {} ms apart; each round published an announcement on the bus and a price alert on Redis pub/sub (prices:<user>), with payloads nobody could predict",
        dashboards.served, DASHBOARD_BYTES / 1024, THINK_TIME.as_millis()
    ));
    ctx.evidence(format!(
        "shown by their open dashboard: {} of {} announcements, {} of {} price alerts; {} dashboards missed at least one; PUBLISH found no subscriber for {} alerts",
        deliveries.announcements_due - deliveries.announcements_missed, deliveries.announcements_due,
        deliveries.alerts_due - deliveries.alerts_missed, deliveries.alerts_due,
        deliveries.dashboards_missing, deliveries.alerts_unheard
    ));
    if deliveries.impatient {
        ctx.evidence(format!(
            "after {} missed events the run waited at most {} ms for each later one (a delivery is due within {} s)",
            crate::workload::MISSES_BEFORE_IMPATIENCE,
            crate::workload::LATE_PATIENCE.as_millis(),
            crate::workload::DELIVERY_TIMEOUT.as_secs()
        ));
    }
    if let Some(error) = &dashboards.first_error {
        ctx.evidence(format!(
            "{} dashboards failed; the first: {error}",
            dashboards.failed
        ));
    }
    ctx.evidence(format!(
        "growth per 1,000 dashboards served, after the first {WARM_UP}: listeners {:+.1}, tokio tasks {:+.1}, Redis clients {:+.1}, live heap {} KiB (bounds: {MAX_LISTENERS_PER_1000}, {MAX_TASKS_PER_1000}, {MAX_CLIENTS_PER_1000}, {} KiB)",
        growth.listeners, growth.tasks, growth.redis_clients,
        format_number((growth.heap_bytes / 1024.0).round()), MAX_HEAP_BYTES_PER_1000 / 1024.0
    ));
    let (start, end) = (&watched.start, &settled.snapshot);
    ctx.evidence(format!(
        "before the first dashboard → after every one had closed (waited {} ms for them to wind down): listeners on the bus {} → {}, tokio tasks {} → {}, Redis clients on the run's database (CLIENT LIST) {} → {}, live heap {:.1} → {:.1} MiB",
        settled.waited.as_millis(), start.listeners, end.listeners, start.tasks, end.tasks,
        start.redis_clients, end.redis_clients, mib(start.heap_bytes as f64), mib(end.heap_bytes as f64)
    ));
    ctx.evidence(format!(
        "samples (dashboards served: listeners / tokio tasks / Redis clients / heap MiB): {}",
        timeline(&watched.samples)
    ));
    ctx.evidence(format!(
        "publishing an announcement on the bus called {:.0} listeners (median) for the first tenth of the dashboards and {:.0} for the last; it took {:.1} µs and {:.1} µs",
        dispatch.first_called, dispatch.last_called, dispatch.first_us, dispatch.last_us
    ));
}

/// Publishing on the bus, early and late in the run: medians over the
/// first and the last tenth of the dashboards served.
struct Dispatch {
    first_us: f64,
    last_us: f64,
    first_called: f64,
    last_called: f64,
}

impl Dispatch {
    fn of(outcome: &WorkloadOutcome<Dashboard, AppError>) -> Dispatch {
        let mut served: Vec<(usize, &Dashboard)> = outcome
            .records
            .iter()
            .filter_map(|record| {
                record
                    .result
                    .as_ref()
                    .ok()
                    .map(|dashboard| (record.index, dashboard))
            })
            .filter(|(_, dashboard)| dashboard.announcements_due > 0)
            .collect();
        served.sort_by_key(|(index, _)| *index);
        let tenth = (served.len() / 10).max(1).min(served.len());
        let (first, last) = (&served[..tenth], &served[served.len() - tenth..]);
        let micros = |slice: &[(usize, &Dashboard)]| {
            Latencies::new(slice.iter().map(|(_, dashboard)| dashboard.dispatch))
                .p50_ms()
                .unwrap_or(0.0)
                * 1000.0
        };
        let called = |slice: &[(usize, &Dashboard)]| {
            let values: Vec<f64> = slice
                .iter()
                .map(|(_, d)| d.listeners_called as f64)
                .collect();
            debuglab_harness::stats::median(&values).unwrap_or(0.0)
        };
        Dispatch {
            first_us: micros(first),
            last_us: micros(last),
            first_called: called(first),
            last_called: called(last),
        }
    }
}

/// The pictures of a run: what the service holds, and its heap, over the dashboards served.
pub fn record_plots(ctx: &RunContext, watched: &Watched) {
    let over_served = |pick: fn(&Snapshot) -> f64| -> Vec<[f64; 2]> {
        watched
            .samples
            .iter()
            .map(|sample| [sample.value.served as f64, pick(&sample.value)])
            .collect()
    };
    ctx.series("listeners", over_served(|s| s.listeners as f64));
    ctx.series("tasks", over_served(|s| s.tasks as f64));
    ctx.series("redis_clients", over_served(|s| s.redis_clients as f64));
    ctx.series("live_heap_mib", over_served(|s| mib(s.heap_bytes as f64)));
    ctx.plot(
        Plot::new(
            "held",
            PlotKind::Line,
            "What the service holds as dashboards come and go",
        )
        .x("dashboards served", "")
        .y("count", "")
        .line("listeners", "listeners on the event bus")
        .line("tasks", "tokio tasks alive")
        .line("redis_clients", "Redis clients connected"),
    );
    ctx.plot(
        Plot::new("heap", PlotKind::Line, "The service's live heap")
            .x("dashboards served", "")
            .y("live heap", "MiB")
            .line("live_heap_mib", "live heap"),
    );
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn mib(bytes: f64) -> f64 {
    round1(bytes / (1024.0 * 1024.0))
}

/// A few samples: `60: 8 / 30 / 8 / 4.1, …`.
fn timeline(samples: &[Sample<Snapshot>]) -> String {
    let step = (samples.len() / 8).max(1);
    samples
        .iter()
        .step_by(step)
        .map(|sample| {
            let s = &sample.value;
            format!(
                "{}: {} / {} / {} / {:.1}",
                s.served,
                s.listeners,
                s.tasks,
                s.redis_clients,
                mib(s.heap_bytes as f64)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The least-squares slope of y on x with z held constant, from `(x, z, y)`
/// points (y = a + b·x + c·z; returns b); the plain slope of y on x when z
/// never changes; `None` with fewer than three points or a single x.
pub fn slope_holding(points: &[(f64, f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mean = |pick: fn(&(f64, f64, f64)) -> f64| points.iter().map(pick).sum::<f64>() / n;
    let (mx, mz, my) = (mean(|p| p.0), mean(|p| p.1), mean(|p| p.2));
    let (mut sxx, mut szz, mut sxz, mut sxy, mut szy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (x, z, y) in points {
        let (x, z, y) = (x - mx, z - mz, y - my);
        sxx += x * x;
        szz += z * z;
        sxz += x * z;
        sxy += x * y;
        szy += z * y;
    }
    if sxx == 0.0 {
        return None;
    }
    let det = sxx * szz - sxz * sxz;
    if det <= 1e-9 * sxx * szz.max(1.0) {
        return Some(sxy / sxx);
    }
    Some((szz * sxy - sxz * szy) / det)
}

#[cfg(test)]
mod tests {
    use super::slope_holding;

    #[test]
    fn slopes_hold_the_second_variable() {
        // y = 2 + 3x + 5z exactly, z varying independently of x.
        let points: Vec<(f64, f64, f64)> =
            [(0.0, 1.0), (1.0, 0.0), (2.0, 2.0), (3.0, 1.0), (4.0, 3.0)]
                .iter()
                .map(|&(x, z)| (x, z, 2.0 + 3.0 * x + 5.0 * z))
                .collect();
        assert!((slope_holding(&points).unwrap() - 3.0).abs() < 1e-9);
        // z constant: the plain slope.
        let flat = [(0.0, 4.0, 1.0), (1.0, 4.0, 3.0), (2.0, 4.0, 5.0)];
        assert_eq!(slope_holding(&flat), Some(2.0));
        assert_eq!(slope_holding(&flat[..2]), None);
        assert_eq!(
            slope_holding(&[(1.0, 0.0, 1.0), (1.0, 1.0, 2.0), (1.0, 2.0, 3.0)]),
            None
        );
    }
}
