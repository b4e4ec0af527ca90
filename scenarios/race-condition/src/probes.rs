//! What the run reads from the stores — during the run (the live gauges, and
//! PostgreSQL lock waits) and after it (the like counter and the wallet) —
//! and the metrics and evidence it records.
//!
//! Every read goes through the harness's probe connections: they are not the
//! variant's pools and never show in `pg_stat_statements`.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{self, aio::MultiplexedConnection};
use debuglab_harness::plot;
use debuglab_harness::postgres::{lock_waits_on, PgConnection, RunDatabase};
use debuglab_harness::redis::RunRedis;
use debuglab_harness::sampler::{sample_every, Sample, Sampler};
use debuglab_harness::{HarnessError, Plot, PlotKind, Result, RunContext};
use tokio::sync::Mutex as AsyncMutex;

use crate::replica::{ReplicaReport, DONE_KEY_PREFIX};
use crate::verdict::{Figures, Stores};
use crate::workload::{Plan, ReplicaRun, REMOTE_LATENCY};
use crate::{POST_ID, WALLET_ID};

/// The key of the like counter.
fn likes_key() -> String {
    format!("likes:{POST_ID}")
}

/// Reads the like counter and the wallet, as they are now.
pub async fn read_stores(database: &RunDatabase, redis: &RunRedis) -> Result<Stores> {
    let mut conn = database.probe_connection().await?;
    let (tips, cents) = read_wallet(&mut conn).await?;
    let likes = redis
        .values_and_ttls([likes_key()])
        .await?
        .into_iter()
        .next()
        .and_then(|(_, value, _)| value?.trim().parse().ok())
        .unwrap_or(0);
    Ok(Stores { likes, tips, cents })
}

/// Wallet 1's `(tips_received, balance_cents)`; zeros if the row is gone.
async fn read_wallet(conn: &mut PgConnection) -> Result<(i64, i64)> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT tips_received, balance_cents FROM wallets WHERE id = $1")
            .bind(WALLET_ID)
            .fetch_optional(conn)
            .await
            .map_err(HarnessError::postgres("reading the wallet"))?;
    Ok(row.unwrap_or((0, 0)))
}

/// One look at the stores while the replicas work.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreSample {
    /// Likes the replicas say they have done so far (their `debuglab:done:*` keys).
    pub likes_done: i64,
    /// Tips they say they have done.
    pub tips_done: i64,
    /// Cents of those tips.
    pub cents_done: i64,
    /// What the stores hold at that moment.
    pub stores: Stores,
    /// Lock requests waiting in the run's database (`pg_locks`).
    pub lock_waits: i64,
}

/// Samples the stores while the replicas work, on connections of its own.
pub struct StoreSampler {
    sampler: Sampler<StoreSample>,
}

/// The probe connections a sampler keeps open between samples.
type Probes = Arc<AsyncMutex<Option<(PgConnection, MultiplexedConnection)>>>;

impl StoreSampler {
    /// Samples every 100 ms (every second in a live run); the latest
    /// figures are also the live run's gauges.
    pub fn start(ctx: &RunContext, database: &RunDatabase, redis: &RunRedis) -> StoreSampler {
        let every = if ctx.is_live() {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(100)
        };
        let (database, redis, progress) =
            (database.clone(), redis.clone(), Arc::clone(ctx.progress()));
        let probes: Probes = Arc::new(AsyncMutex::new(None));
        let sampler = sample_every(every, move || {
            let (database, redis, progress, probes) = (
                database.clone(),
                redis.clone(),
                Arc::clone(&progress),
                Arc::clone(&probes),
            );
            async move {
                let sample = sample(&database, &redis, &probes).await.unwrap_or_default();
                let Stores { likes, tips, cents } = sample.stores;
                // The stores run ahead of the replicas' counts, which are
                // written every 200 ms: only a shortfall is shown.
                progress.gauge("likes_done", sample.likes_done as f64);
                progress.gauge("likes_missing", (sample.likes_done - likes).max(0) as f64);
                progress.gauge("tips_missing", (sample.tips_done - tips).max(0) as f64);
                progress.gauge("cents_missing", (sample.cents_done - cents).max(0) as f64);
                sample
            }
        });
        StoreSampler { sampler }
    }

    /// Stops sampling and returns what was seen.
    pub async fn stop(self) -> Vec<Sample<StoreSample>> {
        self.sampler.stop().await
    }
}

async fn sample(database: &RunDatabase, redis: &RunRedis, probes: &Probes) -> Result<StoreSample> {
    let mut probes = probes.lock().await;
    if probes.is_none() {
        *probes = Some((
            database.probe_connection().await?,
            redis.probe_connection().await?,
        ));
    }
    let (pg, cache) = probes.as_mut().expect("opened above");
    let result = read_sample(pg, cache).await;
    if result.is_err() {
        // Reconnect next time.
        *probes = None;
    }
    result
}

async fn read_sample(
    pg: &mut PgConnection,
    cache: &mut MultiplexedConnection,
) -> Result<StoreSample> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{DONE_KEY_PREFIX}*"))
        .query_async(cache)
        .await
        .map_err(HarnessError::redis("listing the replicas' counts"))?;
    let mut sample = StoreSample::default();
    let mut wanted = keys;
    wanted.push(likes_key());
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&wanted)
        .query_async(cache)
        .await
        .unwrap_or_default();
    let (done, likes) = values.split_at(values.len().saturating_sub(1));
    for value in done.iter().flatten() {
        let parts: Vec<i64> = value
            .split(' ')
            .filter_map(|part| part.parse().ok())
            .collect();
        if let [likes, tips, cents] = parts[..] {
            sample.likes_done += likes;
            sample.tips_done += tips;
            sample.cents_done += cents;
        }
    }
    let likes = likes
        .first()
        .cloned()
        .flatten()
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let (tips, cents) = read_wallet(pg).await?;
    sample.stores = Stores { likes, tips, cents };
    sample.lock_waits = lock_waits_on(pg).await?;
    Ok(sample)
}

/// Records the metrics and the evidence of a run.
pub fn record(
    ctx: &RunContext,
    plan: &Plan,
    figures: &Figures,
    runs: &[ReplicaRun],
    sampled: &[Sample<StoreSample>],
) {
    let (done, stores, calls) = (&figures.done, &figures.stores, &figures.calls);
    let lock_waits_max = sampled
        .iter()
        .map(|sample| sample.value.lock_waits)
        .max()
        .unwrap_or(0);
    record_metrics(ctx, plan, figures, lock_waits_max);
    let load = match plan.rate {
        0 => format!(
            "{} replica processes × {} likes, each with a tip, {} at a time each",
            plan.replicas, plan.operations_per_replica, plan.concurrency
        ),
        rate => format!(
            "{} replica processes at a time, each {rate} likes with tips a second, in batches of {}",
            plan.replicas, plan.operations_per_replica
        ),
    };
    ctx.evidence(format!(
        "{load} (seed {}); the notification and fraud-check services answer in {} ms",
        ctx.seed(),
        REMOTE_LATENCY.as_millis()
    ));
    record_replicas(ctx, runs);
    ctx.evidence(format!(
        "Redis likes:{POST_ID} = {} after {} successful likes",
        stores.likes, done.likes
    ));
    ctx.evidence(format!(
        "PostgreSQL wallet {WALLET_ID}: tips_received = {}, balance_cents = {} after {} successful tips of {} cents in total",
        stores.tips, stores.cents, done.tips, done.cents
    ));
    ctx.evidence(format!(
        "the remote services' own counts: the notification service answered {} calls, the fraud check {}",
        calls.notifications, calls.fraud_checks
    ));
    ctx.evidence(format!(
        "PostgreSQL lock requests waiting (pg_locks, every {} ms): at most {lock_waits_max} at once",
        if ctx.is_live() { 1000 } else { 100 }
    ));
    for failure in &figures.replica_failures {
        ctx.evidence(failure.clone());
    }
}

/// The pictures of a run: each store against what the replicas did, and
/// the updates missing from the stores as the run went on.
pub fn record_plots(ctx: &RunContext, figures: &Figures, sampled: &[Sample<StoreSample>]) {
    let (done, stores) = (&figures.done, &figures.stores);
    ctx.series(
        "expected",
        [[0.0, done.likes as f64], [1.0, done.tips as f64]],
    );
    ctx.series(
        "actual",
        [[0.0, stores.likes as f64], [1.0, stores.tips as f64]],
    );
    ctx.plot(
        Plot::new(
            "stores",
            PlotKind::Bars,
            "Each store against what the replicas did",
        )
        .x("", "")
        .y("updates", "")
        .categories(["likes in Redis", "tips in PostgreSQL"])
        .line("expected", "done by the replicas (their own counts)")
        .line("actual", "held by the store at the end"),
    );
    // The replicas write their counts every 200 ms, so the stores run
    // ahead of them now and then: only a shortfall is an update lost.
    let missing =
        |pick: fn(&StoreSample) -> i64| plot::sampled(sampled, move |s| pick(s).max(0) as f64);
    ctx.series("likes_missing", missing(|s| s.likes_done - s.stores.likes));
    ctx.series("tips_missing", missing(|s| s.tips_done - s.stores.tips));
    ctx.plot(
        Plot::new("lost", PlotKind::Line, "Updates missing from the stores")
            .x("time since the replicas started", "ms")
            .y("updates missing", "")
            .line("likes_missing", "likes missing in Redis")
            .line("tips_missing", "tips missing in PostgreSQL")
            .bound(0.0, "none may be lost"),
    );
}

/// One line per replica process (the first few of a live run's batches).
fn record_replicas(ctx: &RunContext, runs: &[ReplicaRun]) {
    const SHOWN: usize = 4;
    let reports: Vec<&ReplicaReport> = runs
        .iter()
        .filter_map(|(_, run)| run.as_ref().ok()?.report.as_ref())
        .collect();
    for report in reports.iter().take(SHOWN) {
        ctx.evidence(format!(
            "replica {}: {} likes and {} tips ({} cents) succeeded, {} failed; it called the notification service {} times and the fraud check {} times{}",
            report.replica,
            report.likes,
            report.tips,
            report.tipped_cents,
            report.failed_likes + report.failed_tips,
            report.notification_calls,
            report.fraud_check_calls,
            report
                .first_error
                .as_ref()
                .map(|error| format!("; first failure: {error}"))
                .unwrap_or_default()
        ));
    }
    if reports.len() > SHOWN {
        ctx.evidence(format!(
            "… and {} more replica processes",
            reports.len() - SHOWN
        ));
    }
}

/// Records what PostgreSQL saw: the statements the replicas ran (from
/// `pg_stat_statements`) and the transactions committed and rolled back.
pub async fn record_database(ctx: &RunContext, database: &RunDatabase, before: (i64, i64)) {
    if let Ok(statements) = database.statement_stats(4).await {
        for statement in statements {
            ctx.evidence(statement.to_string());
        }
    }
    if let Ok((commits, rollbacks)) = database.transaction_counts().await {
        ctx.metric("transactions_rolled_back", (rollbacks - before.1) as f64);
        ctx.evidence(format!(
            "PostgreSQL transactions in the run's database (pg_stat_database): {} committed, {} rolled back",
            commits - before.0,
            rollbacks - before.1
        ));
    }
}

/// The run's figures as metrics: what was done, what the stores hold, and
/// what is missing (negative when the stores hold more than was done).
fn record_metrics(ctx: &RunContext, plan: &Plan, figures: &Figures, lock_waits_max: i64) {
    let (done, stores, calls) = (&figures.done, &figures.stores, &figures.calls);
    let missing_likes = done.likes as i64 - stores.likes;
    let missing_tips = done.tips as i64 - stores.tips;
    for (name, value) in [
        ("replicas", plan.replicas as f64),
        ("concurrency_per_replica", plan.concurrency as f64),
        ("operations_planned", figures.planned.unwrap_or(0) as f64),
        ("likes_done", done.likes as f64),
        ("likes_counted", stores.likes as f64),
        ("missing_likes", missing_likes as f64),
        ("tips_done", done.tips as f64),
        ("tips_counted", stores.tips as f64),
        ("missing_tips", missing_tips as f64),
        ("cents_done", done.cents as f64),
        ("cents_counted", stores.cents as f64),
        ("missing_cents", (done.cents - stores.cents) as f64),
        ("missing_updates", (missing_likes + missing_tips) as f64),
        (
            "failed_operations",
            (done.failed_likes + done.failed_tips) as f64,
        ),
        ("operations_cut_off", done.likes_cut_off as f64),
        ("notification_calls", calls.notifications as f64),
        ("fraud_check_calls", calls.fraud_checks as f64),
        ("replica_failures", figures.replica_failures.len() as f64),
        ("pg_lock_waits_max", lock_waits_max as f64),
    ] {
        ctx.metric(name, value);
    }
}
