//! What the run reads from the servers — before the traffic (the report
//! before and after the new sales, and what one computation costs), during
//! it (PostgreSQL's count of work, the backends running, Redis' keyspace
//! hits and misses) and after it — and the metrics, evidence and plots it
//! records.
//!
//! Every read goes through the harness's probe connections: they are not the
//! variant's pools and never show in `pg_stat_statements`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deadpool_redis::redis::{self, aio::MultiplexedConnection};
use debuglab_harness::postgres::{ActivityRow, PgConnection, PgPool, RunDatabase, StatementTotals};
use debuglab_harness::redis::{parse_info, RunRedis};
use debuglab_harness::report::grouped;
use debuglab_harness::sampler::{sample_every, Sampler};
use debuglab_harness::{HarnessError, PoolSettings, Result, RunContext};
use tokio::sync::Mutex as AsyncMutex;

use crate::replica::{GO_KEY, READY_KEY};
use crate::verdict::Seen;
use crate::{
    fingerprint, query_best_sellers, Ask, BestSellers, CacheConfig, BEST_SELLERS_SQL, TOP_N,
};

/// How often the run looks at the servers while the replicas serve.
pub const LOOK_EVERY: Duration = Duration::from_millis(25);

/// How long a computation of the report took on average, in ms, by
/// PostgreSQL's own clock: the statements whose calls touch at least half a
/// computation's `blocks` (whatever their SQL), their time over their calls.
pub async fn computation_ms(database: &RunDatabase, blocks: i64) -> Result<f64> {
    let statements = database.statement_stats(STATEMENTS_READ).await?;
    let (total_ms, calls) = statements
        .iter()
        .filter(|statement| {
            let touched = statement.shared_blocks_hit + statement.shared_blocks_read;
            statement.calls > 0 && touched / statement.calls >= blocks / 2
        })
        .fold((0.0, 0), |(ms, calls), statement| {
            (ms + statement.total_ms, calls + statement.calls)
        });
    Ok(if calls == 0 {
        0.0
    } else {
        total_ms / calls as f64
    })
}

/// Statements `computation_ms` reads, those with the most time first.
const STATEMENTS_READ: i64 = 50;

/// The new sales committed behind the storefront's back: a big order for a
/// product far from the top, which puts it first.
pub const NEW_SALES_SQL: &str =
    "INSERT INTO order_lines (order_id, product_id, quantity, price_cents)
 VALUES (1000000, 7, 20000, 4999)";

/// The reports the run expects, and what one computation costs.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// The fingerprint of the report before the new sales.
    pub before: u64,
    /// The fingerprint of the report with them.
    pub after: u64,
    /// The best seller before the new sales, and with them.
    pub leaders: (String, String),
    /// Shared blocks one computation touches (its plan's own count).
    pub blocks: i64,
    /// The plan of one computation, in one line.
    pub plan: String,
}

/// Computes the report on the harness's own connection, before the new
/// sales and with them (in a transaction rolled back), and the shared
/// blocks of one computation from its plan (`EXPLAIN (ANALYZE, BUFFERS)`).
pub async fn expected_reports(database: &RunDatabase) -> Result<Expected> {
    let mut conn = database.probe_connection().await?;
    let before = query_best_sellers(&mut conn)
        .await
        .map_err(HarnessError::postgres("computing the report"))?;
    let after = with_new_sales_rolled_back(&mut conn).await?;
    let plan = database.explain_analyze(BEST_SELLERS_SQL, TOP_N).await?;
    let blocks = plan.shared_blocks().unwrap_or(0);
    let leader = |report: &BestSellers| {
        report
            .first()
            .map(|top| format!("{} ({} units)", top.name, grouped(top.units as f64)))
            .unwrap_or_default()
    };
    Ok(Expected {
        before: fingerprint(&before),
        after: fingerprint(&after),
        leaders: (leader(&before), leader(&after)),
        blocks,
        plan: plan.outline(),
    })
}

async fn with_new_sales_rolled_back(conn: &mut PgConnection) -> Result<BestSellers> {
    let mut tx = sqlx::Connection::begin(conn)
        .await
        .map_err(HarnessError::postgres("beginning a transaction"))?;
    sqlx::query(NEW_SALES_SQL)
        .execute(&mut *tx)
        .await
        .map_err(HarnessError::postgres("adding the new sales"))?;
    let after = query_best_sellers(&mut *tx)
        .await
        .map_err(HarnessError::postgres("computing the report"))?;
    tx.rollback()
        .await
        .map_err(HarnessError::postgres("rolling the new sales back"))?;
    Ok(after)
}

/// Commits the new sales `at` after the traffic's `start`, behind the
/// storefront's back; returns when the commit was done, in ms after `start`.
///
/// The connection is opened beforehand (`conn`, a probe connection): its
/// setup must not show as work during the traffic.
pub async fn commit_new_sales(
    mut conn: PgConnection,
    start: SystemTime,
    at: Duration,
) -> Result<f64> {
    let wait = (start + at)
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    // The moment is the plan's, not a synchronisation: the replicas serve regardless.
    tokio::time::sleep(wait).await;
    sqlx::query(NEW_SALES_SQL)
        .execute(&mut conn)
        .await
        .map_err(HarnessError::postgres("committing the new sales"))?;
    Ok(millis_since(start))
}

/// Milliseconds from `start` to now (negative before it).
pub fn millis_since(start: SystemTime) -> f64 {
    millis_between(start, SystemTime::now())
}

/// Milliseconds from `from` to `to` (negative when `to` is earlier).
fn millis_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(after) => after.as_secs_f64() * 1000.0,
        Err(before) => -before.duration().as_secs_f64() * 1000.0,
    }
}

/// The pools of the storefront the run asks itself.
const ASKER_POOL: PoolSettings = PoolSettings {
    max_connections: 1,
    acquire_timeout: Duration::from_secs(10),
};

/// How long the storefront the run asks may take to answer.
const ASK_LIMIT: Duration = Duration::from_secs(10);

/// A storefront of the variant's in the run's own process, on pools of its
/// own: asked once before the traffic (the report is in the cache when the
/// replicas start, as in a service that has been up for a while) and once
/// after it (does the report follow the data?).
pub struct Asker {
    db: PgPool,
    cache: deadpool_redis::Pool,
    ask: Ask,
    config: CacheConfig,
}

impl Asker {
    /// The pools for `ask`'s storefronts, configured with `ttl`.
    pub async fn new(
        database: &RunDatabase,
        redis: &RunRedis,
        ask: Ask,
        ttl: Duration,
    ) -> Result<Asker> {
        Ok(Asker {
            db: database.pool(ASKER_POOL).await?,
            cache: redis.pool(ASKER_POOL).await?,
            ask,
            config: CacheConfig { ttl },
        })
    }

    /// Asks a new storefront for the report once: what it got, against the
    /// report with the new sales.
    pub async fn ask(&self, ctx: &RunContext, expected: &Expected) -> Seen {
        let asked = (self.ask)(self.db.clone(), self.cache.clone(), self.config);
        match ctx
            .within("a request of the run's own", ASK_LIMIT, asked)
            .await
        {
            None => Seen::Failed(format!("no answer within {} s", ASK_LIMIT.as_secs())),
            Some(Err(error)) => Seen::Failed(error.to_string()),
            Some(Ok(report)) => match fingerprint(&report) {
                print if print == expected.after => Seen::Fresh,
                print if print == expected.before => Seen::Stale,
                _ => Seen::Wrong,
            },
        }
    }

    /// Closes its PostgreSQL pool.
    pub async fn close(self) {
        self.db.close().await;
    }
}

/// Waits (at most `limit`) until `replicas` replica processes have said
/// they are ready ([`READY_KEY`]); returns how many did.
pub async fn wait_until_ready(redis: &RunRedis, replicas: usize, limit: Duration) -> Result<usize> {
    let mut conn = redis.probe_connection().await?;
    let since = tokio::time::Instant::now();
    loop {
        let ready: usize = redis::cmd("LLEN")
            .arg(READY_KEY)
            .query_async(&mut conn)
            .await
            .map_err(HarnessError::redis("reading the ready replicas"))?;
        if ready >= replicas || since.elapsed() >= limit {
            return Ok(ready);
        }
        // Replicas start in a fraction of a second: a look every few ms is plenty.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Tells `replicas` replica processes to start ([`GO_KEY`]), and forgets
/// who was ready.
pub async fn say_go(redis: &RunRedis, replicas: usize) -> Result<()> {
    let mut conn = redis.probe_connection().await?;
    let tokens: Vec<usize> = (0..replicas).collect();
    redis::pipe()
        .del(READY_KEY)
        .ignore()
        .rpush(GO_KEY, tokens)
        .ignore()
        .query_async::<()>(&mut conn)
        .await
        .map_err(HarnessError::redis("telling the replicas to start"))
}

/// One look at the servers while the replicas serve.
#[derive(Clone, Copy, Debug, Default)]
pub struct Look {
    /// When, in ms after the traffic's start (negative before it; set when the watch stops).
    pub at_ms: f64,
    /// Computations of the report so far: the run database's shared blocks
    /// over one computation's.
    pub computations: f64,
    /// Backends running a statement in the run's database right now.
    pub running: i64,
    /// Redis `keyspace_misses` so far (the whole server's).
    pub misses: i64,
    /// Redis `keyspace_hits` so far.
    pub hits: i64,
}

/// The sampler that looks at the servers while the replicas serve.
pub struct Watch {
    first: (SystemTime, Look),
    sampler: Sampler<Option<(SystemTime, Look)>>,
}

/// The probe connections a watch keeps open between looks.
type Probes = Arc<AsyncMutex<Option<(PgConnection, MultiplexedConnection)>>>;

impl Watch {
    /// Opens its probe connections, then looks every [`LOOK_EVERY`] (every
    /// second in a live run); the latest figures are also the live run's gauges.
    pub async fn start(
        ctx: &RunContext,
        database: &RunDatabase,
        redis: &RunRedis,
        blocks: i64,
    ) -> Result<Watch> {
        let every = if ctx.is_live() {
            Duration::from_secs(1)
        } else {
            LOOK_EVERY
        };
        let (database, redis, progress) =
            (database.clone(), redis.clone(), Arc::clone(ctx.progress()));
        // Open and look once before the traffic: its first look is the
        // count the traffic's work grows from.
        let connections = (
            database.probe_connection().await?,
            redis.probe_connection().await?,
        );
        let probes: Probes = Arc::new(AsyncMutex::new(Some(connections)));
        let first = look(&database, &redis, &probes, blocks).await?;
        let first = (SystemTime::now(), first);
        let sampler = sample_every(every, move || {
            let (database, redis, progress, probes) = (
                database.clone(),
                redis.clone(),
                Arc::clone(&progress),
                Arc::clone(&probes),
            );
            async move {
                let look = look(&database, &redis, &probes, blocks).await.ok()?;
                progress.gauge("computations", look.computations.round());
                progress.gauge("running_now", look.running as f64);
                progress.gauge("keyspace_misses", look.misses as f64);
                Some((SystemTime::now(), look))
            }
        });
        Ok(Watch { first, sampler })
    }

    /// Stops looking; the looks' times are counted from `start`, the traffic's.
    pub async fn stop(self, start: SystemTime) -> Watched {
        let sampled = self.sampler.stop().await.into_iter();
        let looks = std::iter::once(self.first).chain(sampled.flat_map(|sample| sample.value));
        Watched {
            looks: looks
                .map(|(at, look)| Look {
                    at_ms: millis_between(start, at),
                    ..look
                })
                .collect(),
            baseline: 0.0,
        }
    }
}

async fn look(
    database: &RunDatabase,
    redis: &RunRedis,
    probes: &Probes,
    blocks: i64,
) -> Result<Look> {
    let mut probes = probes.lock().await;
    if probes.is_none() {
        *probes = Some((
            database.probe_connection().await?,
            redis.probe_connection().await?,
        ));
    }
    let (pg, cache) = probes.as_mut().expect("opened above");
    let result = read_look(pg, cache, blocks).await;
    if result.is_err() {
        // Reconnect next time.
        *probes = None;
    }
    result
}

async fn read_look(
    pg: &mut PgConnection,
    cache: &mut MultiplexedConnection,
    blocks: i64,
) -> Result<Look> {
    // Activity first: a computation that ends between the two reads is then
    // seen running, or counted, never neither.
    let running = ActivityRow::read(pg)
        .await?
        .iter()
        .filter(|row| is_working(row))
        .count() as i64;
    let totals = StatementTotals::read(pg).await?;
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(cache)
        .await
        .map_err(HarnessError::redis("reading INFO stats"))?;
    let stats = parse_info(&info);
    let stat = |name: &str| {
        stats
            .get(name)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    Ok(Look {
        at_ms: 0.0,
        computations: totals.shared_blocks as f64 / blocks.max(1) as f64,
        running,
        misses: stat("keyspace_misses"),
        hits: stat("keyspace_hits"),
    })
}

/// Whether a backend is doing work: running a statement, not waiting for a
/// lock (a caller queueing behind another's computation is not computing),
/// and not the run's own commit of new sales.
fn is_working(row: &ActivityRow) -> bool {
    let waiting_for_a_lock = row
        .wait_event
        .as_deref()
        .is_some_and(|event| event.starts_with("Lock/"));
    row.state.as_deref() == Some("active") && !waiting_for_a_lock && row.query != NEW_SALES_SQL
}

/// What the watch saw.
#[derive(Clone, Debug, Default)]
pub struct Watched {
    /// Every look, oldest first.
    pub looks: Vec<Look>,
    /// The count of computations at the traffic's start (the run's own
    /// request before it included), which the traffic's work grows from.
    pub baseline: f64,
}

impl Watched {
    /// The looks from the traffic's start on (and the last one before it).
    fn during(&self) -> &[Look] {
        let first = self.looks.iter().position(|look| look.at_ms >= 0.0);
        let from = first.map_or(self.looks.len(), |first| first.saturating_sub(1));
        &self.looks[from..]
    }

    /// The most backends seen at work at once during the traffic.
    pub fn peak_concurrent(&self) -> i64 {
        let during = self.looks.iter().filter(|look| look.at_ms >= 0.0);
        during.map(|look| look.running).max().unwrap_or(0)
    }

    /// Bursts of the database's work between quiet spells during the
    /// traffic: runs of looks that saw a backend at work or the count of
    /// computations grown. The count grows from [`Watched::baseline`] (looks
    /// before the start do not count); a count at the end (`last`) grown
    /// past the last look's adds to the last burst, or makes one.
    pub fn bursts(&self, last: f64) -> usize {
        let mut previous = self.baseline;
        let mut busy_before = false;
        let mut bursts = 0;
        let during = self.looks.iter().skip_while(|look| look.at_ms < 0.0);
        let ends = during.map(|look| (look.running, look.computations));
        for (running, computations) in ends.chain([(0, last)]) {
            let busy = running > 0 || computations >= previous + 0.5;
            if busy && !busy_before {
                bursts += 1;
            }
            (previous, busy_before) = (computations.max(previous), busy);
        }
        bursts
    }

    /// Computations done by `at_ms`: the last look's count at or before it.
    fn computations_by(&self, at_ms: f64) -> f64 {
        self.looks
            .iter()
            .take_while(|look| look.at_ms <= at_ms)
            .last()
            .map_or(0.0, |look| look.computations)
    }

    /// Computations finished in each TTL period of the traffic, from the
    /// start (`periods` of `ttl_ms`; the last one may be short).
    pub fn per_period(&self, ttl_ms: f64, traffic_ms: f64) -> Vec<f64> {
        let periods = (traffic_ms / ttl_ms).ceil().max(0.0) as usize;
        // The last period takes everything finished after the traffic too.
        let end = |period: usize| {
            if period + 1 == periods {
                f64::MAX
            } else {
                (period + 1) as f64 * ttl_ms
            }
        };
        (0..periods)
            .map(|period| {
                let from = match period {
                    0 => self.baseline,
                    _ => self.computations_by(period as f64 * ttl_ms),
                };
                (self.computations_by(end(period)) - from).max(0.0).round()
            })
            .collect()
    }

    /// Redis keyspace hits and misses from the traffic's start (the last
    /// look before it) to the last look.
    pub fn keyspace(&self) -> (i64, i64) {
        let during = self.during();
        match (during.first(), during.last()) {
            (Some(first), Some(last)) => (last.hits - first.hits, last.misses - first.misses),
            _ => (0, 0),
        }
    }
}

/// A percentile of `values` (sorted here), nearest rank.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub use record::{record, record_after_traffic, record_stores, record_waves};
pub use waves::{at_once, logged_computations, Logged};

mod record;
mod waves;

#[cfg(test)]
mod tests {
    use debuglab_harness::redis::Ttl;

    use super::*;

    fn look(at_ms: f64, computations: f64, running: i64) -> Look {
        Look {
            at_ms,
            computations,
            running,
            ..Look::default()
        }
    }

    #[test]
    fn computations_are_counted_per_ttl_period_from_the_looks() {
        let watched = Watched {
            baseline: 0.0,
            looks: vec![
                look(-20.0, 0.0, 0),
                look(10.0, 0.0, 3),
                look(240.0, 4.0, 0),
                look(260.0, 4.0, 2),
                look(499.0, 9.0, 0),
                look(510.0, 10.0, 0),
                look(700.0, 10.0, 0),
            ],
        };
        assert_eq!(watched.per_period(250.0, 750.0), vec![4.0, 5.0, 1.0]);
        // The run's own request before the start is not the traffic's.
        let warmed = Watched {
            baseline: 1.0,
            ..watched.clone()
        };
        assert_eq!(warmed.per_period(250.0, 750.0), vec![3.0, 5.0, 1.0]);
        assert_eq!(watched.peak_concurrent(), 3);
        assert_eq!(Watched::default().per_period(250.0, 500.0), vec![0.0, 0.0]);
        assert_eq!(Watched::default().peak_concurrent(), 0);
    }

    #[test]
    fn bursts_are_busy_looks_between_quiet_ones() {
        let watched = Watched {
            baseline: 0.0,
            looks: vec![
                look(0.0, 0.0, 0),
                look(25.0, 0.0, 4),
                look(50.0, 2.0, 2),
                look(75.0, 4.0, 0),
                look(100.0, 4.0, 0),
                // A computation that began and ended between two looks.
                look(125.0, 5.0, 0),
                look(150.0, 5.0, 0),
                look(175.0, 5.0, 1),
            ],
        };
        assert_eq!(watched.bursts(5.0), 3);
        // The last one ended after the last look: it still counts, once.
        assert_eq!(watched.bursts(6.0), 3);
        let quiet_end = Watched {
            looks: watched.looks[..5].to_vec(),
            baseline: 0.0,
        };
        assert_eq!(quiet_end.bursts(4.0), 1);
        assert_eq!(quiet_end.bursts(5.0), 2);
        assert_eq!(Watched::default().bursts(0.0), 0);
        assert_eq!(Watched::default().bursts(1.0), 1);
        // Work before the start (the run's own request) is no burst of the traffic's.
        let mut started_late = watched.clone();
        for look in &mut started_late.looks {
            look.at_ms -= 80.0;
        }
        started_late.baseline = 4.0;
        assert_eq!(started_late.bursts(5.0), 2);
    }

    #[test]
    fn backends_waiting_for_a_lock_or_idle_are_not_working() {
        let row = |state: &str, wait_event: Option<&str>, query: &str| ActivityRow {
            pid: 1,
            state: Some(state.to_owned()),
            wait_event: wait_event.map(str::to_owned),
            transaction_ms: None,
            state_ms: None,
            query: query.to_owned(),
        };
        assert!(is_working(&row("active", None, BEST_SELLERS_SQL)));
        assert!(is_working(&row(
            "active",
            Some("IO/DataFileRead"),
            BEST_SELLERS_SQL
        )));
        assert!(!is_working(&row(
            "active",
            Some("Lock/advisory"),
            "SELECT pg_advisory_xact_lock($1)"
        )));
        assert!(!is_working(&row(
            "idle",
            Some("Client/ClientRead"),
            BEST_SELLERS_SQL
        )));
        assert!(!is_working(&row("active", None, NEW_SALES_SQL)));
    }

    #[test]
    fn keyspace_and_peaks_count_from_the_start() {
        let at = |at_ms: f64, misses: i64, running: i64| Look {
            at_ms,
            misses,
            hits: 2 * misses,
            running,
            ..Look::default()
        };
        let watched = Watched {
            looks: vec![
                at(-50.0, 10, 5),
                at(-10.0, 12, 0),
                at(30.0, 40, 2),
                at(60.0, 41, 1),
            ],
            baseline: 0.0,
        };
        assert_eq!(watched.keyspace(), (58, 29));
        assert_eq!(watched.peak_concurrent(), 2);
        let before_only = Watched {
            looks: watched.looks[..2].to_vec(),
            baseline: 0.0,
        };
        assert_eq!(
            (before_only.keyspace(), before_only.peak_concurrent()),
            ((0, 0), 0)
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn the_ttl_sentinels_read_as_words() {
        assert_eq!(record::ttl_words(Ttl::Never), "never expires");
        assert_eq!(record::ttl_words(Ttl::Gone), "gone");
        assert_eq!(
            record::ttl_words(Ttl::Expires(Duration::from_millis(140))),
            "expires in 140 ms"
        );
    }
}
