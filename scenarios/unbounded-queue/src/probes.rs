//! What the run watches while the ingester works — the stream's own
//! counters (`XINFO GROUPS`, `XLEN`), the rows in PostgreSQL, the live heap —
//! what it audits once the ingester has stopped, and the metrics, evidence
//! and plots it records.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{self, aio::MultiplexedConnection, Value};
use debuglab_harness::alloc::live_heap_bytes;
use debuglab_harness::plot::{self, Plot, PlotKind};
use debuglab_harness::postgres::{PgConnection, RunDatabase};
use debuglab_harness::redis::RunRedis;
use debuglab_harness::report::grouped;
use debuglab_harness::sampler::{sample_every, Sample, Sampler};
use debuglab_harness::stats::slope;
use debuglab_harness::{HarnessError, Result, RunContext};
use tokio::sync::Mutex;

use crate::pipeline::{entry_of, items, text};
use crate::verdict::{Figures, Holding, Memory, Settled, MAX_HEAP_BYTES_PER_1000, MAX_HELD};
use crate::workload::{Tally, BURST, EVENTS, WORKLOAD};
use crate::{DEAD_LETTERS, GROUP, STREAM};

/// How often the stores and the heap are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// How often in a live run, whose table grows for many minutes.
pub const LIVE_SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Fewest samples, and fewest events taken between the first and the last,
/// for a heap slope: fewer say nothing.
const SLOPE_SAMPLES: usize = 3;
const SLOPE_EVENTS: u64 = 1_000;

/// Events of the lag series at most (one in every few).
const LAG_POINTS: i64 = 400;

/// The stream's own counters at one moment, read in one transaction.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamFigures {
    /// Entries in `events` (the apps' events; the stream is never trimmed).
    pub in_stream: u64,
    /// Entries delivered to the group (`entries-read`).
    pub taken: u64,
    /// Delivered and not acknowledged (`pending`).
    pub pending: u64,
    /// Entries in `events:dead`.
    pub dead: u64,
}

impl StreamFigures {
    /// Events in the stream not yet taken.
    pub fn waiting(&self) -> u64 {
        self.in_stream.saturating_sub(self.taken)
    }
}

/// The harness's own connections to both stores.
pub struct Probe {
    redis: MultiplexedConnection,
    db: PgConnection,
}

impl Probe {
    /// Opens a probe connection to each store.
    pub async fn open(redis: &RunRedis, database: &RunDatabase) -> Result<Probe> {
        Ok(Probe {
            redis: redis.probe_connection().await?,
            db: database.probe_connection().await?,
        })
    }

    /// The stream's counters, all at the same moment.
    pub async fn stream(&mut self) -> Result<StreamFigures> {
        let (groups, in_stream, dead): (Value, u64, u64) = redis::pipe()
            .atomic()
            .cmd("XINFO")
            .arg("GROUPS")
            .arg(STREAM)
            .cmd("XLEN")
            .arg(STREAM)
            .cmd("XLEN")
            .arg(DEAD_LETTERS)
            .query_async(&mut self.redis)
            .await
            .map_err(HarnessError::redis("reading the stream's counters"))?;
        let (taken, pending) = group_counters(&groups);
        Ok(StreamFigures {
            in_stream,
            taken,
            pending,
            dead,
        })
    }

    /// Rows in `events`, as the table's trigger counts them (cheap enough
    /// to read every few milliseconds).
    pub async fn stored(&mut self) -> Result<u64> {
        let rows: i64 = sqlx::query_scalar("SELECT stored FROM events_count")
            .fetch_one(&mut self.db)
            .await
            .map_err(HarnessError::postgres("reading the count of stored events"))?;
        Ok(rows.max(0) as u64)
    }

    /// Rows in `events`, counted one by one.
    pub async fn rows(&mut self) -> Result<u64> {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&mut self.db)
            .await
            .map_err(HarnessError::postgres("counting the stored events"))?;
        Ok(rows.max(0) as u64)
    }
}

/// The group's `entries-read` and `pending` in an `XINFO GROUPS` reply.
fn group_counters(groups: &Value) -> (u64, u64) {
    for group in items(groups) {
        let fields: Vec<(String, &Value)> = match group {
            Value::Map(pairs) => pairs
                .iter()
                .filter_map(|(key, value)| Some((text(key)?, value)))
                .collect(),
            _ => items(group)
                .chunks(2)
                .filter_map(|pair| Some((text(pair.first()?)?, pair.get(1)?)))
                .collect(),
        };
        let number = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| key == name)
                .and_then(|(_, value)| text(value))
                .and_then(|value| value.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let name = fields
            .iter()
            .find(|(key, _)| key == "name")
            .and_then(|(_, value)| text(value));
        if name.as_deref() == Some(GROUP) {
            return (number("entries-read"), number("pending"));
        }
    }
    (0, 0)
}

/// The stores and the heap at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    /// The stream's counters.
    pub stream: StreamFigures,
    /// Rows in `events`, counted after the stream's counters.
    pub stored: u64,
    /// Live heap bytes, read first.
    pub heap_bytes: usize,
}

impl Snapshot {
    /// Events taken and neither stored nor set aside. Rows are counted after
    /// the stream, so a row stored meanwhile can only make this smaller.
    pub fn held(&self) -> u64 {
        self.stream
            .taken
            .saturating_sub(self.stored + self.stream.dead)
    }

    /// Events Redis counts as acknowledged beyond those stored or set aside
    /// (an undercount, never an overcount, for the same reason).
    pub fn acknowledged_unstored(&self) -> u64 {
        self.stream
            .taken
            .saturating_sub(self.stream.pending)
            .saturating_sub(self.stored + self.stream.dead)
    }

    /// Events sent and neither stored nor set aside.
    pub fn unsettled(&self) -> u64 {
        self.stream
            .in_stream
            .saturating_sub(self.stored + self.stream.dead)
    }
}

/// The sampler that follows the events while the ingester works.
pub struct Watch {
    sampler: Sampler<Option<Snapshot>>,
}

/// What the sampler saw.
pub struct Watched {
    /// The samples, oldest first.
    pub samples: Vec<Sample<Snapshot>>,
}

impl Watch {
    /// Samples every [`SAMPLE_EVERY`] ([`LIVE_SAMPLE_EVERY`] in a live run);
    /// the latest values are also the live run's gauges.
    pub async fn start(
        ctx: &RunContext,
        redis: &RunRedis,
        database: &RunDatabase,
        tally: &Arc<Tally>,
    ) -> Result<Watch> {
        let probe = Arc::new(Mutex::new(Probe::open(redis, database).await?));
        let (tally, progress) = (Arc::clone(tally), Arc::clone(ctx.progress()));
        let every = if ctx.is_live() {
            LIVE_SAMPLE_EVERY
        } else {
            SAMPLE_EVERY
        };
        let sampler = sample_every(every, move || {
            let (probe, tally, progress) = (
                Arc::clone(&probe),
                Arc::clone(&tally),
                Arc::clone(&progress),
            );
            async move {
                // A program without the counting allocator reads 0: said so, not judged.
                let heap_bytes = live_heap_bytes().unwrap_or(0);
                let mut probe = probe.lock().await;
                let stream = probe.stream().await.ok()?;
                let stored = probe.stored().await.ok()?;
                let snapshot = Snapshot {
                    stream,
                    stored,
                    heap_bytes,
                };
                tally
                    .unsettled
                    .store(snapshot.unsettled(), Ordering::Relaxed);
                progress.gauge("held", snapshot.held() as f64);
                progress.gauge("waiting_in_redis", stream.waiting() as f64);
                progress.gauge("pending", stream.pending as f64);
                progress.gauge("stored", stored as f64);
                progress.gauge("live_heap_mib", mib(heap_bytes as f64));
                Some(snapshot)
            }
        });
        Ok(Watch { sampler })
    }

    /// Stops sampling.
    pub async fn stop(self) -> Watched {
        let samples = self
            .sampler
            .stop()
            .await
            .into_iter()
            .filter_map(|sample| {
                sample.value.map(|value| Sample {
                    at: sample.at,
                    value,
                })
            })
            .collect();
        Watched { samples }
    }
}

impl Watched {
    /// The most the ingester held, and what Redis listed meanwhile.
    pub fn holding(&self) -> Holding {
        let most = |pick: fn(&Snapshot) -> u64| {
            self.samples
                .iter()
                .map(|sample| pick(&sample.value))
                .max()
                .unwrap_or(0)
        };
        Holding {
            samples: self.samples.len(),
            held_max: most(Snapshot::held),
            waiting_max: most(|s| s.stream.waiting()),
            pending_max: most(|s| s.stream.pending),
            acknowledged_unstored_max: most(Snapshot::acknowledged_unstored),
        }
    }

    /// The heap's growth per 1,000 events taken, fitted over the samples
    /// taken while events were being taken (up to the first that found them
    /// all taken): a slope, so neither the machine's speed nor the heap at
    /// the start matters.
    pub fn memory(&self) -> Memory {
        let counted = self
            .samples
            .iter()
            .any(|sample| sample.value.heap_bytes > 0);
        let intake = self.intake();
        let spread = intake.last().map_or(0, |s| s.stream.taken)
            - intake.first().map_or(0, |s| s.stream.taken);
        let points: Vec<(f64, f64)> = intake
            .iter()
            .map(|s| (s.stream.taken as f64 / 1000.0, s.heap_bytes as f64))
            .collect();
        Memory {
            counted,
            bytes_per_1000: (counted && points.len() >= SLOPE_SAMPLES && spread >= SLOPE_EVENTS)
                .then(|| slope(&points))
                .flatten(),
        }
    }

    /// The samples taken while events were being taken.
    fn intake(&self) -> Vec<&Snapshot> {
        let all_taken = self
            .samples
            .iter()
            .map(|sample| sample.value.stream.taken)
            .max()
            .unwrap_or(0);
        let mut intake = Vec::new();
        for sample in &self.samples {
            intake.push(&sample.value);
            if sample.value.stream.taken >= all_taken {
                break;
            }
        }
        intake
    }
}

/// Where every event is once the ingester has stopped: the stream's
/// counters, the rows, and every entry of `events:dead`.
pub async fn settle(redis: &RunRedis, probe: &mut Probe) -> Result<Settled> {
    let stream = probe.stream().await?;
    let stored = probe.rows().await?;
    let dead_entries: Value = redis::cmd("XRANGE")
        .arg(DEAD_LETTERS)
        .arg("-")
        .arg("+")
        .query_async(&mut redis.probe_connection().await?)
        .await
        .map_err(HarnessError::redis("reading the dead-letter stream"))?;
    let dead_ids: Vec<i64> = items(&dead_entries)
        .iter()
        .filter_map(entry_of)
        .filter_map(|(_, fields)| {
            fields
                .into_iter()
                .find(|(key, _)| key == "id")
                .and_then(|(_, id)| id.parse().ok())
        })
        .collect();
    let distinct: Vec<i64> = dead_ids
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let also_stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_id = ANY($1)")
            .bind(&distinct)
            .fetch_one(&mut probe.db)
            .await
            .map_err(HarnessError::postgres(
                "looking for set-aside events among the stored",
            ))?;
    let also_stored = also_stored.max(0) as u64;
    Ok(Settled {
        in_stream: stream.in_stream,
        taken: stream.taken,
        pending: stream.pending,
        stored,
        dead: distinct.len() as u64 - also_stored,
        duplicates: (dead_ids.len() - distinct.len()) as u64 + also_stored,
    })
}

/// How long the stored events waited, from their rows' timestamps: in the
/// stream (sent → taken) and in the ingester (taken → stored).
#[derive(Clone, Debug, Default)]
pub struct Lags {
    /// One event in every few: `(event id, ms in the stream, ms in the ingester)`.
    pub points: Vec<(i64, f64, f64)>,
    /// Sent → taken, over every stored event.
    pub in_stream: Percentiles,
    /// Taken → stored.
    pub held: Percentiles,
    /// Sent → stored.
    pub end_to_end: Percentiles,
    /// The longest an event was held, in ms.
    pub held_max: f64,
}

/// The median and the 99th percentile of some times, in ms.
#[derive(Clone, Copy, Debug, Default)]
pub struct Percentiles {
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
}

impl Percentiles {
    fn of(values: Option<Vec<f64>>) -> Percentiles {
        let at = |index: usize| {
            values
                .as_ref()
                .and_then(|values| values.get(index))
                .map_or(0.0, |ms| round1(*ms))
        };
        Percentiles {
            p50: at(0),
            p99: at(1),
        }
    }
}

/// The lags of the stored events.
pub async fn lags(probe: &mut Probe) -> Result<Lags> {
    let stored = probe.rows().await? as i64;
    let every = (stored / LAG_POINTS).max(1);
    let points: Vec<(i64, f64, f64)> = sqlx::query_as(
        "SELECT event_id,
                (extract(epoch FROM taken_at - sent_at) * 1000)::float8,
                (extract(epoch FROM stored_at - taken_at) * 1000)::float8
         FROM events WHERE event_id % $1 = 0 ORDER BY event_id",
    )
    .bind(every)
    .fetch_all(&mut probe.db)
    .await
    .map_err(HarnessError::postgres("reading the events' timestamps"))?;
    type Spreads = (
        Option<Vec<f64>>,
        Option<Vec<f64>>,
        Option<Vec<f64>>,
        Option<f64>,
    );
    let (in_stream, held, end_to_end, held_max): Spreads = sqlx::query_as(
        "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY waited),
                percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY held),
                percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY waited + held),
                max(held)
         FROM (SELECT (extract(epoch FROM taken_at - sent_at) * 1000)::float8 AS waited,
                      (extract(epoch FROM stored_at - taken_at) * 1000)::float8 AS held
               FROM events) AS lags",
    )
    .fetch_one(&mut probe.db)
    .await
    .map_err(HarnessError::postgres("summing up the events' timestamps"))?;
    Ok(Lags {
        points,
        in_stream: Percentiles::of(in_stream),
        held: Percentiles::of(held),
        end_to_end: Percentiles::of(end_to_end),
        held_max: held_max.map_or(0.0, round1),
    })
}

/// Records the metrics, the evidence and the plots of a run.
pub fn record(
    ctx: &RunContext,
    figures: &Figures,
    watched: &Watched,
    lags: &Lags,
    delay: Duration,
) {
    let (settled, holding, memory) = (&figures.settled, &figures.holding, &figures.memory);
    let heap = watched.heap_range();
    for (name, value) in [
        ("held_max", holding.held_max as f64),
        ("held_bound", MAX_HELD as f64),
        ("waiting_in_redis_max", holding.waiting_max as f64),
        ("pending_max", holding.pending_max as f64),
        (
            "acknowledged_unstored_max",
            holding.acknowledged_unstored_max as f64,
        ),
        ("events_sent", figures.sent.events as f64),
        ("events_in_stream", settled.in_stream as f64),
        ("events_taken", settled.taken as f64),
        ("events_stored", settled.stored as f64),
        ("events_dead_lettered", settled.dead as f64),
        ("events_lost", settled.lost() as f64),
        ("events_never_taken", settled.never_taken() as f64),
        ("dead_letter_duplicates", settled.duplicates as f64),
        ("pending_end", settled.pending as f64),
        ("heap_counted", f64::from(u8::from(memory.counted))),
        ("heap_growth_peak_bytes", (heap.1 - heap.0) as f64),
        ("waited_in_redis_ms_p50", lags.in_stream.p50),
        ("waited_in_redis_ms_p99", lags.in_stream.p99),
        ("held_ms_p50", lags.held.p50),
        ("held_ms_p99", lags.held.p99),
        ("held_ms_max", lags.held_max),
        ("end_to_end_ms_p50", lags.end_to_end.p50),
        ("end_to_end_ms_p99", lags.end_to_end.p99),
        ("samples", holding.samples as f64),
    ] {
        ctx.metric(name, value);
    }
    if let Some(bytes) = memory.bytes_per_1000.filter(|_| memory.counted) {
        ctx.metric("heap_bytes_per_1000_events", bytes.round());
    }
    record_evidence(ctx, figures, watched, lags, delay);
    record_plots(ctx, watched, lags, memory.counted);
}

fn record_evidence(
    ctx: &RunContext,
    figures: &Figures,
    watched: &Watched,
    lags: &Lags,
    delay: Duration,
) {
    let (settled, holding, memory) = (&figures.settled, &figures.holding, &figures.memory);
    ctx.evidence(format!(
        "{} events sent by the apps to the stream `{STREAM}` in bursts of {BURST}, {} at a time (planned: {}); the ingester reads it as the group `{GROUP}` and stores to PostgreSQL {} ms away (every statement's round trip pays it)",
        grouped(figures.sent.events as f64), WORKLOAD.concurrency, grouped(EVENTS as f64), delay.as_millis()
    ));
    ctx.evidence(format!(
        "sampled every {} ms from the stores (XINFO GROUPS entries-read and pending, XLEN, and the rows of events as its trigger counts them), {} samples: up to {} events waiting in Redis, up to {} held by the ingester — taken, neither stored nor set aside (at most {}) — and up to {} pending",
        if ctx.is_live() { LIVE_SAMPLE_EVERY } else { SAMPLE_EVERY }.as_millis(),
        holding.samples, grouped(holding.waiting_max as f64), grouped(holding.held_max as f64),
        grouped(MAX_HELD as f64), grouped(holding.pending_max as f64)
    ));
    ctx.evidence(format!(
        "once the ingester had stopped: {} events in the stream, {} taken, {} stored, {} set aside in {DEAD_LETTERS} ({} repeated), {} still pending, {} neither stored nor set aside",
        grouped(settled.in_stream as f64), grouped(settled.taken as f64), grouped(settled.stored as f64),
        grouped(settled.dead as f64), grouped(settled.duplicates as f64), grouped(settled.pending as f64),
        grouped(settled.lost() as f64)
    ));
    let (start, peak) = watched.heap_range();
    ctx.evidence(match (memory.counted, memory.bytes_per_1000) {
        (false, _) => "live heap: not counted in this program (no counting allocator installed); the held count above is the evidence".to_owned(),
        (true, slope) => format!(
            "live heap (the harness's counting allocator): {:.1} MiB when the ingester started, {:.1} MiB at most; {} per 1,000 events taken while they were being taken (at most {} KiB)",
            mib(start as f64), mib(peak as f64),
            slope.map_or_else(|| "too few samples to fit a slope".to_owned(), |bytes| format!("{} KiB", grouped((bytes / 1024.0).round()))),
            grouped(MAX_HEAP_BYTES_PER_1000 / 1024.0)
        ),
    });
    ctx.evidence(format!(
        "per stored event (its row's sent_at, taken_at, stored_at): waited in Redis {} ms (median) / {} ms (p99); held by the ingester {} / {} ms, at most {} ms; end to end {} / {} ms",
        lags.in_stream.p50, lags.in_stream.p99, lags.held.p50, lags.held.p99, lags.held_max,
        lags.end_to_end.p50, lags.end_to_end.p99
    ));
    ctx.evidence(format!(
        "samples (ms: waiting in Redis / held / pending / stored / heap MiB): {}",
        watched.timeline()
    ));
}

fn record_plots(ctx: &RunContext, watched: &Watched, lags: &Lags, heap_counted: bool) {
    let samples = &watched.samples;
    ctx.series(
        "waiting_in_redis",
        plot::sampled(samples, |s| s.stream.waiting() as f64),
    );
    ctx.series("held", plot::sampled(samples, |s| s.held() as f64));
    ctx.series(
        "pending",
        plot::sampled(samples, |s| s.stream.pending as f64),
    );
    ctx.plot(
        Plot::new("events", PlotKind::Line, "Where the events were, over time")
            .x("time since the ingester started", "ms")
            .y("events", "events")
            .line("held", "held by the ingester (taken, not stored)")
            .line("waiting_in_redis", "waiting in Redis (not taken)")
            .line("pending", "pending in Redis (taken, not acknowledged)")
            .bound(MAX_HELD as f64, "most the ingester may hold: 1,000"),
    );
    if heap_counted {
        record_heap_plots(ctx, watched);
    }
    ctx.series(
        "waited_in_redis_ms",
        lags.points.iter().map(|p| [p.0 as f64, p.1]),
    );
    ctx.series(
        "held_by_ingester_ms",
        lags.points.iter().map(|p| [p.0 as f64, p.2]),
    );
    ctx.plot(
        Plot::new(
            "lag",
            PlotKind::Line,
            "How long each event waited before it was stored",
        )
        .x("event", "id")
        .y("time", "ms")
        .line("waited_in_redis_ms", "in Redis (sent → taken)")
        .line("held_by_ingester_ms", "in the ingester (taken → stored)"),
    );
}

/// The live heap over time, and against the events taken with the
/// contract's slope drawn from where it started.
fn record_heap_plots(ctx: &RunContext, watched: &Watched) {
    ctx.series(
        "live_heap_mib",
        plot::sampled(&watched.samples, |s| mib(s.heap_bytes as f64)),
    );
    ctx.plot(
        Plot::new(
            "heap",
            PlotKind::Line,
            "Live heap of the process, over time",
        )
        .x("time since the ingester started", "ms")
        .y("live heap", "MiB")
        .line("live_heap_mib", "live heap"),
    );
    let intake = watched.intake();
    ctx.series(
        "heap_by_events_taken",
        intake
            .iter()
            .map(|s| [s.stream.taken as f64, s.heap_bytes as f64 / MIB]),
    );
    if let (Some(first), Some(last)) = (intake.first(), intake.last()) {
        let bound_at = |taken: u64| {
            let events = taken.saturating_sub(first.stream.taken) as f64;
            (first.heap_bytes as f64 + events / 1000.0 * MAX_HEAP_BYTES_PER_1000) / MIB
        };
        ctx.series(
            "heap_bound_by_events_taken",
            [first.stream.taken, last.stream.taken].map(|taken| [taken as f64, bound_at(taken)]),
        );
    }
    ctx.plot(
        Plot::new(
            "heap_growth",
            PlotKind::Line,
            "Live heap against events taken from the stream",
        )
        .x("events taken", "events")
        .y("live heap", "MiB")
        .line(
            "heap_by_events_taken",
            "live heap while events were being taken",
        )
        .line(
            "heap_bound_by_events_taken",
            "bound: +100 KiB per 1,000 events taken",
        ),
    );
}

impl Watched {
    /// The heap at the first sample and at its highest.
    fn heap_range(&self) -> (usize, usize) {
        let start = self.samples.first().map_or(0, |s| s.value.heap_bytes);
        let peak = self
            .samples
            .iter()
            .map(|s| s.value.heap_bytes)
            .max()
            .unwrap_or(0);
        (start, peak.max(start))
    }

    /// A few samples: `120: 19000 / 250 / 300 / 750 / 4.1, …`.
    fn timeline(&self) -> String {
        let step = (self.samples.len() / 8).max(1);
        self.samples
            .iter()
            .step_by(step)
            .map(|sample| {
                let s = &sample.value;
                format!(
                    "{}: {} / {} / {} / {} / {:.1}",
                    sample.at.as_millis(),
                    s.stream.waiting(),
                    s.held(),
                    s.stream.pending,
                    s.stored,
                    mib(s.heap_bytes as f64)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

const MIB: f64 = 1024.0 * 1024.0;

fn mib(bytes: f64) -> f64 {
    round1(bytes / MIB)
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn snapshot(taken: u64, stored: u64, heap_bytes: usize) -> Sample<Snapshot> {
        Sample {
            at: Duration::from_millis(taken),
            value: Snapshot {
                stream: StreamFigures {
                    in_stream: 20_000,
                    taken,
                    pending: taken - stored,
                    dead: 0,
                },
                stored,
                heap_bytes,
            },
        }
    }

    #[test]
    fn the_group_counters_are_read_by_name() {
        let group = |name: &str, read: Value, pending: i64| {
            Value::Array(vec![
                bulk("name"),
                bulk(name),
                bulk("pending"),
                Value::Int(pending),
                bulk("entries-read"),
                read,
            ])
        };
        let reply = Value::Array(vec![
            group("other", Value::Int(5), 1),
            group(GROUP, Value::Int(1_200), 300),
        ]);
        assert_eq!(group_counters(&reply), (1_200, 300));
        // Before the first read, Redis may say nil.
        let fresh = Value::Array(vec![group(GROUP, Value::Nil, 0)]);
        assert_eq!(group_counters(&fresh), (0, 0));
    }

    #[test]
    fn held_and_acknowledged_counts_never_overcount() {
        let mut s = snapshot(5_000, 4_000, 0).value;
        s.stream.dead = 100;
        assert_eq!(s.held(), 900);
        assert_eq!(s.acknowledged_unstored(), 0);
        // Acknowledged 4,500 while 4,100 are stored or set aside.
        s.stream.pending = 500;
        assert_eq!(s.acknowledged_unstored(), 400);
        // Rows counted after the stream may exceed what was taken.
        s.stored = 6_000;
        assert_eq!((s.held(), s.acknowledged_unstored()), (0, 0));
        assert_eq!(s.unsettled(), 13_900);
    }

    #[test]
    fn the_heap_slope_is_fitted_while_events_are_taken() {
        // 400 bytes per event taken and held, then the backlog drains.
        let watched = Watched {
            samples: vec![
                snapshot(0, 0, 1_000_000),
                snapshot(5_000, 0, 3_000_000),
                snapshot(10_000, 100, 5_000_000),
                snapshot(20_000, 200, 9_000_000),
                snapshot(20_000, 10_000, 5_000_000),
                snapshot(20_000, 20_000, 1_000_000),
            ],
        };
        let memory = watched.memory();
        assert!(memory.counted);
        assert_eq!(memory.bytes_per_1000, Some(400_000.0));
        assert_eq!(watched.holding().held_max, 19_800);
        // Flat while every event is taken.
        let flat = Watched {
            samples: (0..=20)
                .map(|k| snapshot(k * 1_000, k * 1_000, 2_000_000))
                .collect(),
        };
        assert_eq!(flat.memory().bytes_per_1000, Some(0.0));
    }

    #[test]
    fn too_few_samples_or_an_uncounted_heap_fit_no_slope() {
        let two = Watched {
            samples: vec![snapshot(0, 0, 1), snapshot(20_000, 0, 9)],
        };
        assert_eq!(two.memory().bytes_per_1000, None);
        let close = Watched {
            samples: vec![snapshot(0, 0, 1), snapshot(100, 0, 5), snapshot(200, 0, 9)],
        };
        assert_eq!(close.memory().bytes_per_1000, None);
        let uncounted = Watched {
            samples: (0..=20).map(|k| snapshot(k * 1_000, 0, 0)).collect(),
        };
        let memory = uncounted.memory();
        assert!(!memory.counted);
        assert_eq!(memory.bytes_per_1000, None);
    }
}
