//! What the run watches while the sale goes on (both pools, `pg_stat_activity`,
//! Redis `CLIENT LIST`), what it audits afterwards (the orders table against
//! the payment provider's books, the Redis side effects), and the metrics and
//! evidence it records.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::plot::{self, ConnectionTimeline};
use debuglab_harness::postgres::{ActivityRow, RunDatabase};
use debuglab_harness::redis::{RunRedis, Ttl};
use debuglab_harness::sampler::{sample_every, Sample, Sampler};
use debuglab_harness::workload::WorkloadOutcome;
use debuglab_harness::{HarnessError, Plot, PlotKind, Result, RunContext};

use crate::verdict::{Figures, OrderAudit, PoolFigures, RedisAudit, P99_OBJECTIVE_MS};
use crate::workload::{CACHE_POOL, DB_POOL, PAYMENT_LATENCY, WORKLOAD};
use crate::{Payments, Receipt, Shop, ShopError};

/// The two pools at one moment, from the pools themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolSample {
    db_in_use: usize,
    cache_in_use: usize,
    cache_waiting: usize,
}

/// The servers' view at one moment: `pg_stat_activity` and Redis clients.
pub struct ServerSample {
    rows: Vec<ActivityRow>,
    redis_clients: usize,
}

impl ServerSample {
    fn idle_in_transaction(&self) -> usize {
        self.rows
            .iter()
            .filter(|row| row.state.as_deref() == Some("idle in transaction"))
            .count()
    }
}

/// The samplers that watch a sale.
pub struct Watch {
    pools: Sampler<PoolSample>,
    servers: Sampler<ServerSample>,
}

/// What the samplers saw.
pub struct Watched {
    pools: Vec<Sample<PoolSample>>,
    servers: Vec<Sample<ServerSample>>,
}

impl Watch {
    /// Samples both pools every 20 ms and the servers every 100 ms; the
    /// latest values are also the live run's gauges.
    pub fn start(
        ctx: &RunContext,
        shop: &Arc<Shop>,
        database: &RunDatabase,
        redis: &RunRedis,
    ) -> Watch {
        let (shop, progress) = (Arc::clone(shop), Arc::clone(ctx.progress()));
        let pools = sample_every(Duration::from_millis(20), move || {
            let (shop, progress) = (Arc::clone(&shop), Arc::clone(&progress));
            async move {
                let cache = shop.cache.status();
                let sample = PoolSample {
                    db_in_use: (shop.db.size() as usize).saturating_sub(shop.db.num_idle()),
                    cache_in_use: cache.size.saturating_sub(cache.available),
                    cache_waiting: cache.waiting,
                };
                progress.gauge("cache_waiting", sample.cache_waiting as f64);
                progress.gauge("db_in_use", sample.db_in_use as f64);
                sample
            }
        });
        let (database, redis, progress) =
            (database.clone(), redis.clone(), Arc::clone(ctx.progress()));
        let servers = sample_every(Duration::from_millis(100), move || {
            let (database, redis, progress) =
                (database.clone(), redis.clone(), Arc::clone(&progress));
            async move {
                let sample = ServerSample {
                    rows: database.activity().await.unwrap_or_default(),
                    redis_clients: redis.clients().await.map_or(0, |clients| clients.len()),
                };
                progress.gauge("idle_in_transaction", sample.idle_in_transaction() as f64);
                sample
            }
        });
        Watch { pools, servers }
    }

    /// Stops sampling.
    pub async fn stop(self) -> Watched {
        Watched {
            pools: self.pools.stop().await,
            servers: self.servers.stop().await,
        }
    }
}

impl Watched {
    fn max_of<T>(samples: &[Sample<T>], pick: impl Fn(&T) -> usize) -> usize {
        samples
            .iter()
            .map(|sample| pick(&sample.value))
            .max()
            .unwrap_or(0)
    }

    /// The figures the verdict uses.
    pub fn summary(&self) -> PoolFigures {
        // A burst of waiters when 50 requests arrive at once is normal;
        // waiters that stay are the symptom, so the mean tells them apart.
        let mean_waiters = self
            .pools
            .iter()
            .map(|sample| sample.value.cache_waiting as f64)
            .sum::<f64>()
            / self.pools.len().max(1) as f64;
        PoolFigures {
            mean_waiters: (mean_waiters * 10.0).round() / 10.0,
            db_backends_max: Self::max_of(&self.servers, |sample| sample.rows.len()),
            redis_clients_max: Self::max_of(&self.servers, |sample| sample.redis_clients),
            idle_in_transaction_max: Self::max_of(&self.servers, ServerSample::idle_in_transaction),
        }
    }
}

/// Reads the orders table and checks every order against the payment provider's books.
pub async fn audit_orders(database: &RunDatabase, payments: &Payments) -> Result<OrderAudit> {
    let mut conn = database.probe_connection().await?;
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as("SELECT id, user_id, total_cents, authorization_id FROM orders ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .map_err(HarnessError::postgres("reading the orders"))?;
    let mut audit = OrderAudit::default();
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for (_, _, _, authorization) in &rows {
        *uses.entry(authorization.as_str()).or_default() += 1;
    }
    for (id, user_id, total_cents, authorization) in &rows {
        audit.order_ids.push(*id);
        match payments.issued(authorization) {
            None => audit.unknown_authorizations += 1,
            Some(issued) if issued.user_id != *user_id || issued.amount_cents != *total_cents => {
                audit.mismatched_authorizations += 1;
            }
            Some(_) => {}
        }
        if uses[authorization.as_str()] > 1 {
            audit.shared_authorizations += 1;
        }
    }
    Ok(audit)
}

/// Reads the Redis side effects: every `orders_today:<user>` counter, and
/// each recorded order's `order_status:<order>` with its time to live.
pub async fn audit_redis(redis: &RunRedis, order_ids: &[i64]) -> Result<RedisAudit> {
    let counters = redis.key_values("orders_today:*").await?;
    let statuses: HashMap<String, (Option<String>, Ttl)> = redis
        .values_and_ttls(order_ids.iter().map(|id| format!("order_status:{id}")))
        .await?
        .into_iter()
        .map(|(key, value, ttl)| (key, (value, ttl)))
        .collect();
    let mut audit = RedisAudit {
        counted_checkouts: counters
            .iter()
            .filter_map(|(_, value)| value.parse::<i64>().ok())
            .sum(),
        ..RedisAudit::default()
    };
    for (value, ttl) in statuses.values() {
        if value.as_deref() != Some("paid") {
            audit.orders_without_status += 1;
        } else if *ttl == Ttl::Never {
            audit.statuses_without_expiry += 1;
        }
    }
    Ok(audit)
}

/// Records the metrics and the evidence of a sale.
pub fn record(ctx: &RunContext, figures: &Figures, watched: &Watched) {
    let checkouts = &figures.checkouts;
    let pools = &figures.pools;
    for (name, value) in [
        ("succeeded", checkouts.succeeded as f64),
        ("pool_timeouts", checkouts.pool_timeouts() as f64),
        ("db_pool_timeouts", checkouts.db_pool_timeouts as f64),
        ("cache_pool_timeouts", checkouts.cache_pool_timeouts as f64),
        ("other_errors", checkouts.other_errors as f64),
        ("wrong_receipts", checkouts.wrong_receipts as f64),
        ("p50_ms", checkouts.p50_ms),
        ("p99_ms", checkouts.p99_ms),
        ("provider_calls", figures.provider_calls as f64),
        (
            "payments_in_flight_max",
            figures.provider_most_in_flight as f64,
        ),
        ("orders_recorded", figures.orders.order_ids.len() as f64),
        (
            "orders_counted_in_redis",
            figures.redis.counted_checkouts as f64,
        ),
        ("mean_waiters", pools.mean_waiters),
        (
            "max_waiters",
            Watched::max_of(&watched.pools, |s| s.cache_waiting) as f64,
        ),
        (
            "db_in_use_max",
            Watched::max_of(&watched.pools, |s| s.db_in_use) as f64,
        ),
        (
            "cache_in_use_max",
            Watched::max_of(&watched.pools, |s| s.cache_in_use) as f64,
        ),
        ("db_backends_max", pools.db_backends_max as f64),
        ("redis_clients_max", pools.redis_clients_max as f64),
        (
            "idle_in_transaction_max",
            pools.idle_in_transaction_max as f64,
        ),
    ] {
        ctx.metric(name, value);
    }
    record_evidence(ctx, figures, watched);
}

fn record_evidence(ctx: &RunContext, figures: &Figures, watched: &Watched) {
    let checkouts = &figures.checkouts;
    ctx.evidence(format!(
        "{} checkouts, {} in flight (seed {}), payment provider {} ms: {} succeeded, {} pool timeouts, {} other errors; latency p50 {:.0} ms, p99 {:.0} ms (bound p99 <= {P99_OBJECTIVE_MS:.0} ms)",
        WORKLOAD.requests, WORKLOAD.concurrency, ctx.seed(), PAYMENT_LATENCY.as_millis(),
        checkouts.succeeded, checkouts.pool_timeouts(), checkouts.other_errors, checkouts.p50_ms, checkouts.p99_ms
    ));
    ctx.evidence(format!(
        "the payment provider's books: {} authorisations issued, at most {} at once; the orders table: {} orders",
        figures.provider_calls,
        figures.provider_most_in_flight,
        figures.orders.order_ids.len()
    ));
    ctx.evidence(format!(
        "PostgreSQL pool ({} connections, {} s acquire timeout): up to {} in use, {} acquire timeouts (PoolTimedOut)",
        DB_POOL.max_connections, DB_POOL.acquire_timeout.as_secs(),
        Watched::max_of(&watched.pools, |s| s.db_in_use), checkouts.db_pool_timeouts
    ));
    ctx.evidence(format!(
        "Redis pool, deadpool status ({} connections, {} s wait timeout): up to {} in use, up to {} requests waiting ({:.1} on average), {} wait timeouts",
        CACHE_POOL.max_connections, CACHE_POOL.acquire_timeout.as_secs(),
        Watched::max_of(&watched.pools, |s| s.cache_in_use), Watched::max_of(&watched.pools, |s| s.cache_waiting),
        figures.pools.mean_waiters, checkouts.cache_pool_timeouts
    ));
    ctx.evidence(format!(
        "Redis pool waiting over time: {}",
        timeline(&watched.pools, |sample| sample.cache_waiting)
    ));
    for first in [&checkouts.first_timeout, &checkouts.first_error]
        .into_iter()
        .flatten()
    {
        ctx.evidence(format!("first failure: {first}"));
    }
    if let Some(busiest) = watched
        .servers
        .iter()
        .max_by_key(|sample| (sample.value.idle_in_transaction(), sample.value.rows.len()))
    {
        ctx.evidence(format!(
            "pg_stat_activity at {} ms: {} connections, {} idle in transaction",
            busiest.at.as_millis(),
            busiest.value.rows.len(),
            busiest.value.idle_in_transaction()
        ));
        for row in busiest.value.rows.iter().take(5) {
            ctx.evidence(format!("pg_stat_activity: {row}"));
        }
    }
}

/// The pictures of a sale: both pools and the server over time, the
/// checkouts' latencies, and a sample of checkouts on a timeline.
pub fn record_plots(
    ctx: &RunContext,
    outcome: &WorkloadOutcome<Receipt, ShopError>,
    watched: &Watched,
    payments: &Payments,
) {
    ctx.series(
        "db_in_use",
        plot::sampled(&watched.pools, |s| s.db_in_use as f64),
    );
    ctx.series(
        "cache_in_use",
        plot::sampled(&watched.pools, |s| s.cache_in_use as f64),
    );
    ctx.series(
        "cache_waiting",
        plot::sampled(&watched.pools, |s| s.cache_waiting as f64),
    );
    ctx.plot(
        Plot::new("pools", PlotKind::Line, "The pools during the sale")
            .x("time since the sale began", "ms")
            .y("connections, or checkouts waiting", "")
            .line("db_in_use", "PostgreSQL connections in use")
            .line("cache_in_use", "Redis connections in use")
            .line("cache_waiting", "checkouts waiting for a Redis connection")
            .bound(
                f64::from(DB_POOL.max_connections),
                "pool size: 5 connections each",
            ),
    );
    ctx.series(
        "idle_in_transaction",
        plot::sampled(&watched.servers, |s| s.idle_in_transaction() as f64),
    );
    ctx.series(
        "backends",
        plot::sampled(&watched.servers, |s| s.rows.len() as f64),
    );
    ctx.plot(
        Plot::new(
            "server",
            PlotKind::Line,
            "PostgreSQL's view (pg_stat_activity)",
        )
        .x("time since the sale began", "ms")
        .y("connections", "")
        .line("backends", "the service's connections")
        .line("idle_in_transaction", "idle in transaction"),
    );
    ctx.series("checkout_latency_ms", plot::latencies(outcome));
    ctx.plot(
        Plot::new("latency", PlotKind::Histogram, "How long checkouts took")
            .x("latency", "ms")
            .log_x()
            .line("checkout_latency_ms", "checkouts")
            .bound(P99_OBJECTIVE_MS, "objective: p99 within 3 s"),
    );
    let timeline = ConnectionTimeline::of(outcome, &ctx.checkouts(), TIMELINE_EVERY);
    ctx.series("timeline_waiting", timeline.waiting.clone());
    ctx.series("timeline_served", timeline.served.clone());
    ctx.series("timeline_payment", timeline.phase(&payments.call_spans()));
    ctx.plot(
        Plot::new(
            "timeline",
            PlotKind::Timeline,
            "Every tenth checkout, start to answer",
        )
        .x("time since the sale began", "ms")
        .y("checkout", "")
        .line("timeline_waiting", "waiting for its first connection")
        .line("timeline_served", "after it got one")
        .line("timeline_payment", "in the payment provider's call"),
    );
}

/// Which checkouts the timeline shows: every tenth.
const TIMELINE_EVERY: usize = 10;

/// A few points of a sampled figure: `0 ms: 0, 200 ms: 45, …`.
fn timeline(samples: &[Sample<PoolSample>], pick: fn(&PoolSample) -> usize) -> String {
    let step = (samples.len() / 8).max(1);
    samples
        .iter()
        .step_by(step)
        .map(|sample| format!("{} ms: {}", sample.at.as_millis(), pick(&sample.value)))
        .collect::<Vec<_>>()
        .join(", ")
}
