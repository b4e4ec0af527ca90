//! # Race condition: lost updates across replicas
//!
//! A social app runs its API as several replicas behind a load balancer. When
//! a post is liked, the replica that handles it counts the like in Redis and
//! credits the post's author with a small tip in PostgreSQL. Both are written
//! as *read, await something, write*:
//!
//! ```text
//! likes = GET likes:1          balance = SELECT balance_cents …
//! notify the author (await)     fraud check (await)
//! SET likes:1 (likes + 1)       UPDATE … SET balance_cents = balance + tip
//! ```
//!
//! Two requests that read the same value both write value + 1: one update is
//! lost. Expected 2, actual 1. Each replica is a separate OS process sharing
//! only the servers, so a `Mutex` in the process cannot fix it; the fix has to
//! be atomic in the store (`INCR`, `UPDATE … SET n = n + $1`, or a lock or
//! optimistic transaction there).
//!
//! A run starts the replicas ([`debuglab_harness::replica`]), lets each
//! perform its share of likes and tips at a fixed concurrency, then compares
//! what the stores hold with the sum of what the replicas report they did.

pub mod alternatives;
pub mod buggy;
pub mod exercise;
pub mod fixed;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::AsyncCommands;
use debuglab_harness::postgres::{PgPool, RunDatabase};
use debuglab_harness::redis::RunRedis;
use debuglab_harness::replica::{self, ReplicaSpec};
use debuglab_harness::sampler::sample_every;
use debuglab_harness::workload::{drive, Workload};
use debuglab_harness::{
    HarnessError, PoolSettings, Result, RunContext, Scenario, ScenarioInfo, Service, Verdict,
};
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;

/// One replica's dependencies, built by the harness inside the replica process.
pub struct Replica {
    /// PostgreSQL: the wallets.
    pub db: PgPool,
    /// Redis: the like counters.
    pub cache: deadpool_redis::Pool,
    /// The notification service (tells an author about a like).
    pub notifications: RemoteService,
    /// The fraud-check service (approves a tip).
    pub fraud_check: RemoteService,
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// No Redis connection could be had.
    #[error("cache pool: {0}")]
    CachePool(#[from] deadpool_redis::PoolError),
    /// A Redis command failed.
    #[error("cache: {0}")]
    Cache(#[from] deadpool_redis::redis::RedisError),
}

/// Another service, a network round trip away.
pub struct RemoteService {
    latency: Duration,
}

impl RemoteService {
    /// A service that answers after `latency`.
    pub fn new(latency: Duration) -> RemoteService {
        RemoteService { latency }
    }

    /// Tells the author of `post_id` about a new like.
    pub async fn notify_author(&self, _post_id: i64) {
        tokio::time::sleep(self.latency).await;
    }

    /// Approves a tip of `amount_cents` to `wallet_id`.
    pub async fn approve(&self, _wallet_id: i64, _amount_cents: i64) {
        tokio::time::sleep(self.latency).await;
    }
}

/// The post everybody likes, and its author's wallet.
pub const POST_ID: i64 = 1;
/// The wallet of post 1's author (seeded by the migration).
pub const WALLET_ID: i64 = 1;
/// How long the notification and fraud-check services take: the race window.
pub const REMOTE_LATENCY: Duration = Duration::from_millis(2);
/// Each replica's pools.
pub const REPLICA_POOL: PoolSettings = PoolSettings {
    max_connections: 8,
    acquire_timeout: Duration::from_secs(10),
};

/// The wallet schema (`migrations/`).
pub static BASE_MIGRATIONS: Migrator = sqlx::migrate!();

/// How a run spreads its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Replica processes.
    pub replicas: usize,
    /// Operations each replica runs at once.
    pub concurrency: usize,
    /// Likes (each with a tip) per replica.
    pub operations_per_replica: usize,
    /// Seed for the tip amounts.
    pub seed: u64,
}

/// The scenario's load: 2 replicas × 16 at once × 600 likes = 1,200 increments per store.
pub fn standard_plan(seed: u64) -> Plan {
    Plan {
        replicas: 2,
        concurrency: 16,
        operations_per_replica: 600,
        seed,
    }
}

/// The tips replica `replica` sends, in cents (1 to 100 each).
pub fn tips(seed: u64, replica: usize, count: usize) -> Vec<i64> {
    let mut rng =
        StdRng::seed_from_u64(seed ^ (replica as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (0..count).map(|_| rng.random_range(1..=100)).collect()
}

/// What a replica reports when it is done (its last line of output, as JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// Which replica.
    pub replica: usize,
    /// Likes it recorded successfully.
    pub likes: u64,
    /// Tips it credited successfully.
    pub tips: u64,
    /// The sum of those tips, in cents.
    pub tipped_cents: i64,
    /// Operations that failed.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// A variant's two operations, as function pointers.
#[derive(Clone, Copy)]
struct Code {
    record_like:
        for<'r> fn(&'r Replica, i64) -> BoxFuture<'r, std::result::Result<(), ReplicaError>>,
    credit_wallet:
        for<'r> fn(&'r Replica, i64, i64) -> BoxFuture<'r, std::result::Result<(), ReplicaError>>,
}

macro_rules! code_of {
    ($variant:ident) => {{
        fn record_like(
            replica: &Replica,
            post_id: i64,
        ) -> BoxFuture<'_, std::result::Result<(), ReplicaError>> {
            Box::pin($variant::record_like(replica, post_id))
        }
        fn credit_wallet(
            replica: &Replica,
            wallet_id: i64,
            amount_cents: i64,
        ) -> BoxFuture<'_, std::result::Result<(), ReplicaError>> {
            Box::pin($variant::credit_wallet(replica, wallet_id, amount_cents))
        }
        Code {
            record_like,
            credit_wallet,
        }
    }};
}

/// Names of the code a replica can run: the variants, then the alternatives
/// the tests use (see [`alternatives`]).
pub const CODE_NAMES: [&str; 6] = [
    "buggy",
    "fixed",
    "exercise",
    "process-lock",
    "watch-and-row-lock",
    "script-and-serializable",
];

impl Code {
    fn named(name: &str) -> Option<Code> {
        use alternatives::{process_lock, script_and_serializable, watch_and_row_lock};
        Some(match name {
            "buggy" => code_of!(buggy),
            "fixed" => code_of!(fixed),
            "exercise" => code_of!(exercise),
            "process-lock" => code_of!(process_lock),
            "watch-and-row-lock" => code_of!(watch_and_row_lock),
            "script-and-serializable" => code_of!(script_and_serializable),
            _ => return None,
        })
    }
}

/// The replica process: `--code NAME --replica N --operations N --concurrency N --seed N`
/// (NAME from [`CODE_NAMES`]).
///
/// Prints its [`ReplicaReport`] as one JSON line; problems with the lab
/// itself go to stderr with exit code 1.
pub fn replica_main(args: Vec<String>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(replica_run(&args)) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string(&report).expect("a report serialises")
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> std::result::Result<T, String> {
    let value = args
        .iter()
        .position(|arg| arg == name)
        .and_then(|at| args.get(at + 1))
        .ok_or_else(|| format!("missing {name}"))?;
    value
        .parse()
        .map_err(|_| format!("invalid {name} '{value}'"))
}

async fn replica_run(args: &[String]) -> std::result::Result<ReplicaReport, String> {
    let code_name: String = arg(args, "--code")?;
    let replica_id: usize = arg(args, "--replica")?;
    let operations: usize = arg(args, "--operations")?;
    let concurrency: usize = arg(args, "--concurrency")?;
    let seed: u64 = arg(args, "--seed")?;
    let code = Code::named(&code_name).ok_or_else(|| format!("unknown code '{code_name}'"))?;
    let replica = Arc::new(Replica {
        db: replica::pg_pool(REPLICA_POOL)
            .await
            .map_err(|error| error.to_string())?,
        cache: replica::redis_pool(REPLICA_POOL)
            .await
            .map_err(|error| error.to_string())?,
        notifications: RemoteService::new(REMOTE_LATENCY),
        fraud_check: RemoteService::new(REMOTE_LATENCY),
    });
    let tips = Arc::new(tips(seed, replica_id, operations));
    let workload = Workload {
        requests: operations,
        concurrency,
        max_duration: Duration::from_secs(120),
        hard_limit: Duration::from_secs(120),
    };
    let outcome = {
        let (replica, tips) = (Arc::clone(&replica), Arc::clone(&tips));
        drive("likes", workload, move |index| {
            let (replica, tips) = (Arc::clone(&replica), Arc::clone(&tips));
            async move {
                let liked = (code.record_like)(&replica, POST_ID).await;
                let tipped = (code.credit_wallet)(&replica, WALLET_ID, tips[index]).await;
                Ok::<_, ()>((liked, tipped))
            }
        })
        .await
    };
    let mut report = ReplicaReport {
        replica: replica_id,
        ..ReplicaReport::default()
    };
    for record in &outcome.records {
        let Ok((liked, tipped)) = &record.result else {
            continue;
        };
        match liked {
            Ok(()) => report.likes += 1,
            Err(error) => {
                report.errors += 1;
                report.first_error.get_or_insert_with(|| error.to_string());
            }
        }
        match tipped {
            Ok(()) => {
                report.tips += 1;
                report.tipped_cents += tips[record.index];
            }
            Err(error) => {
                report.errors += 1;
                report.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    report.errors += outcome.unfinished as u64 * 2;
    replica.db.close().await;
    Ok(report)
}

/// What the replicas did and what the stores hold afterwards.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Each replica's report, by replica id (`None` if it printed none).
    pub reports: Vec<Option<ReplicaReport>>,
    /// Replicas that failed, hung, or exited with an error, described.
    pub replica_failures: Vec<String>,
    /// Likes the replicas recorded successfully, together.
    pub expected_likes: i64,
    /// The counter in Redis.
    pub actual_likes: i64,
    /// Tips the replicas credited successfully, together.
    pub expected_tips: i64,
    /// The wallet's tip count in PostgreSQL.
    pub actual_tips: i64,
    /// Cents the replicas credited successfully, together.
    pub expected_cents: i64,
    /// The wallet's balance in PostgreSQL.
    pub actual_cents: i64,
}

/// Runs `plan` with the code called `code` (see [`CODE_NAMES`]) in replica
/// processes against `database` (migrated) and `redis`, and tallies the result.
pub async fn simulate(
    database: &RunDatabase,
    redis: &RunRedis,
    code: &str,
    plan: Plan,
    limit: Duration,
) -> Result<Tally> {
    let specs = (0..plan.replicas)
        .map(|replica_id| ReplicaSpec {
            scenario: INFO.id,
            args: [
                "--code",
                code,
                "--replica",
                &replica_id.to_string(),
                "--operations",
                &plan.operations_per_replica.to_string(),
                "--concurrency",
                &plan.concurrency.to_string(),
                "--seed",
                &plan.seed.to_string(),
            ]
            .iter()
            .map(|arg| (*arg).to_owned())
            .collect(),
            env: vec![
                (replica::PG_URL_ENV.to_owned(), database.url()),
                (replica::REDIS_URL_ENV.to_owned(), redis.url()),
            ],
        })
        .collect();
    let outcomes = replica::run_replicas::<ReplicaReport>(specs, limit).await?;
    let mut tally = Tally::default();
    for (replica_id, outcome) in outcomes.into_iter().enumerate() {
        if outcome.timed_out {
            tally.replica_failures.push(format!(
                "replica {replica_id} hung and was killed after {} s",
                limit.as_secs()
            ));
        } else if outcome.exit_code != Some(0) || outcome.report.is_none() {
            tally.replica_failures.push(format!(
                "replica {replica_id} exited with {:?}: {}",
                outcome.exit_code, outcome.stderr_tail
            ));
        }
        if let Some(report) = &outcome.report {
            tally.expected_likes += report.likes as i64;
            tally.expected_tips += report.tips as i64;
            tally.expected_cents += report.tipped_cents;
        }
        tally.reports.push(outcome.report);
    }
    let mut cache = redis.probe_connection().await?;
    let likes: Option<i64> = cache
        .get(format!("likes:{POST_ID}"))
        .await
        .map_err(HarnessError::redis("reading the like counter"))?;
    tally.actual_likes = likes.unwrap_or(0);
    let mut conn = database.probe_connection().await?;
    (tally.actual_cents, tally.actual_tips) =
        sqlx::query_as("SELECT balance_cents, tips_received FROM wallets WHERE id = $1")
            .bind(WALLET_ID)
            .fetch_one(&mut conn)
            .await
            .map_err(HarnessError::postgres("reading the wallet"))?;
    Ok(tally)
}

static INFO: ScenarioInfo = ScenarioInfo {
    id: "race-condition",
    title: "Race condition",
    summary:
        "Read, await, write: replicas overwrite each other's likes and tips, and updates are lost.",
    services: &[Service::Postgres, Service::Redis],
    signal_metric: "lost_updates",
    key_metrics: &[
        "expected",
        "actual",
        "lost_updates",
        "lost_likes",
        "lost_tips",
        "lost_cents",
        "lock_waits_max",
        "errors",
    ],
    readme: include_str!("../README.md"),
};

/// The race-condition scenario.
pub struct RaceCondition;

/// The scenario, for the CLI's list.
pub static SCENARIO: RaceCondition = RaceCondition;

impl Scenario for RaceCondition {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(run(ctx))
    }
}

async fn run(ctx: &RunContext) -> Result<Verdict> {
    let database = ctx.database(None).await?;
    database.migrate(&BASE_MIGRATIONS, &[]).await?;
    let redis = ctx.redis().await?;
    let plan = standard_plan(ctx.seed());
    let (commits_before, rollbacks_before) = database.transaction_counts().await?;

    let lock_waits = {
        let database = database.clone();
        sample_every(Duration::from_millis(10), move || {
            let database = database.clone();
            async move { database.lock_waits().await.unwrap_or(0) }
        })
    };
    let limit = Duration::from_secs(60).min(ctx.remaining());
    let tally = {
        let _step = debuglab_harness::progress::step(format!(
            "{} replicas × {} likes, {} at a time each",
            plan.replicas, plan.operations_per_replica, plan.concurrency
        ));
        simulate(&database, &redis, ctx.variant().id(), plan, limit).await?
    };
    let lock_waits_max = lock_waits
        .stop()
        .await
        .iter()
        .map(|sample| sample.value)
        .max()
        .unwrap_or(0);
    let (commits_after, rollbacks_after) = database.transaction_counts().await?;

    let lost_likes = tally.expected_likes - tally.actual_likes;
    let lost_tips = tally.expected_tips - tally.actual_tips;
    let lost_cents = tally.expected_cents - tally.actual_cents;
    // An update is one increment: a like counted, or a tip credited.
    let expected = tally.expected_likes + tally.expected_tips;
    let actual = tally.actual_likes + tally.actual_tips;
    let errors: u64 = tally
        .reports
        .iter()
        .flatten()
        .map(|report| report.errors)
        .sum();
    ctx.metric("replicas", plan.replicas as f64);
    ctx.metric("concurrency_per_replica", plan.concurrency as f64);
    ctx.metric("expected", expected as f64);
    ctx.metric("actual", actual as f64);
    ctx.metric("lost_updates", (expected - actual) as f64);
    ctx.metric("expected_likes", tally.expected_likes as f64);
    ctx.metric("actual_likes", tally.actual_likes as f64);
    ctx.metric("lost_likes", lost_likes as f64);
    ctx.metric("expected_tips", tally.expected_tips as f64);
    ctx.metric("actual_tips", tally.actual_tips as f64);
    ctx.metric("lost_tips", lost_tips as f64);
    ctx.metric("expected_cents", tally.expected_cents as f64);
    ctx.metric("actual_cents", tally.actual_cents as f64);
    ctx.metric("lost_cents", lost_cents as f64);
    ctx.metric("errors", errors as f64);
    ctx.metric("replica_failures", tally.replica_failures.len() as f64);
    ctx.metric("lock_waits_max", lock_waits_max as f64);
    ctx.metric(
        "transactions_rolled_back",
        (rollbacks_after - rollbacks_before) as f64,
    );

    ctx.evidence(format!(
        "{} replica processes × {} likes with tips, {} at a time each (seed {}); the notification and fraud-check calls take {} ms",
        plan.replicas,
        plan.operations_per_replica,
        plan.concurrency,
        ctx.seed(),
        REMOTE_LATENCY.as_millis()
    ));
    ctx.evidence(format!(
        "Redis GET likes:{POST_ID} = {} after {} successful likes: {lost_likes} lost",
        tally.actual_likes, tally.expected_likes
    ));
    ctx.evidence(format!(
        "PostgreSQL wallet {WALLET_ID}: tips_received = {} after {} successful tips ({lost_tips} lost), balance_cents = {} for {} cents tipped ({lost_cents} cents lost)",
        tally.actual_tips, tally.expected_tips, tally.actual_cents, tally.expected_cents
    ));
    for (replica_id, report) in tally.reports.iter().enumerate() {
        match report {
            Some(report) => ctx.evidence(format!(
                "replica {replica_id}: {} likes, {} tips ({} cents), {} errors{}",
                report.likes,
                report.tips,
                report.tipped_cents,
                report.errors,
                report
                    .first_error
                    .as_ref()
                    .map(|error| format!(", first: {error}"))
                    .unwrap_or_default()
            )),
            None => ctx.evidence(format!("replica {replica_id}: no report")),
        }
    }
    ctx.evidence(format!(
        "PostgreSQL during the run: up to {lock_waits_max} lock requests waiting (pg_locks), {} transactions committed, {} rolled back (pg_stat_database)",
        commits_after - commits_before,
        rollbacks_after - rollbacks_before
    ));
    for failure in &tally.replica_failures {
        ctx.evidence(failure.clone());
    }
    if tally
        .replica_failures
        .iter()
        .any(|failure| failure.contains("hung"))
    {
        ctx.metric("timed_out", 1.0);
    }

    let planned = (plan.replicas * plan.operations_per_replica) as i64;
    let mut problems = Vec::new();
    if lost_likes != 0 {
        problems.push(format!(
            "{lost_likes} of {} likes were lost (expected {}, actual {})",
            tally.expected_likes, tally.expected_likes, tally.actual_likes
        ));
    }
    if lost_tips != 0 || lost_cents != 0 {
        problems.push(format!(
            "{lost_tips} of {} tips were lost (expected {}, actual {}; {lost_cents} cents missing)",
            tally.expected_tips, tally.expected_tips, tally.actual_tips
        ));
    }
    if errors > 0 {
        problems.push(format!("{errors} operations failed"));
    }
    if !tally.replica_failures.is_empty() {
        problems.push(format!("{} replicas failed", tally.replica_failures.len()));
    }
    if tally.expected_likes != planned || tally.expected_tips != planned {
        problems.push(format!(
            "{} likes and {} tips of {planned} each were done",
            tally.expected_likes, tally.expected_tips
        ));
    }
    Ok(Verdict::from_problems(&problems, || {
        format!(
            "No update lost: {} likes and {} tips ({} cents) from {} replicas, {} at a time each, all counted exactly once.",
            tally.actual_likes, tally.actual_tips, tally.actual_cents, plan.replicas, plan.concurrency
        )
    }))
}
