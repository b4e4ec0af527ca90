//! # Race condition: likes and tips go missing
//!
//! A social app runs its API as several replicas behind a load balancer:
//! separate processes that share nothing but PostgreSQL and Redis. When a
//! post is liked, the replica that handles it counts the like in Redis
//! (`likes:1`), tells the author (the notification service, a millisecond
//! away), credits the author's wallet with a small tip in PostgreSQL, and has
//! the fraud-check service approve that tip (a millisecond away too).
//!
//! Every request succeeds, no error is logged — yet the like counter and the
//! wallet end far below the number of likes and tips the replicas handled.
//!
//! ## The contract
//!
//! Whatever the code looks like, after a run of two replica processes (checked
//! in [`verdict`] from evidence the variant cannot forge):
//!
//! - every like the replicas handled successfully is counted in `likes:1`
//!   exactly once — no like missing, none counted twice;
//! - every tip handled successfully is in wallet 1 exactly once:
//!   `tips_received` counts it and `balance_cents` holds its cents, to the
//!   cent;
//! - "handled successfully" is counted by the scenario's side of each replica
//!   process (which chose the tips), never by the variant;
//! - the notification service is called exactly once per like and the fraud
//!   check exactly once per tip, as those services count their calls
//!   ([`RemoteService`]);
//! - no operation fails, every planned operation is done, and no replica
//!   blocks its threads or changes the pools it was given.
//!
//! The run is laid out in [`workload`] (the replicas and their load),
//! [`replica`] (one replica process), [`probes`] (what is read from the
//! stores and recorded) and [`verdict`] (the judgement, a pure function).

pub mod buggy;
pub mod fixed;
pub mod probes;
pub mod replica;
pub mod verdict;
pub mod workload;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::postgres::PgPool;
use debuglab_harness::{
    Result, RunContext, Scenario, ScenarioInfo, Service, Sources, Variant, Verdict,
};
pub use futures::future::BoxFuture;
use sqlx::migrate::Migrator;

pub use workload::{standard_plan, tip_cents, Plan, REMOTE_LATENCY, REPLICA_POOL};

/// One replica's dependencies, built by the scenario inside the replica process.
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
///
/// It keeps its own books of the calls it answers ([`CallBook`]), so that a
/// run can check that every operation called it exactly once; the variant
/// gets the service, never the books.
pub struct RemoteService {
    latency: Duration,
    answered: Arc<AtomicU64>,
}

/// A remote service's books: the calls it answered.
pub struct CallBook {
    answered: Arc<AtomicU64>,
}

impl RemoteService {
    /// A service that answers after `latency`, and its books.
    pub fn new(latency: Duration) -> (RemoteService, CallBook) {
        let answered = Arc::new(AtomicU64::new(0));
        let book = CallBook {
            answered: Arc::clone(&answered),
        };
        (RemoteService { latency, answered }, book)
    }

    /// Tells the author of `post_id` about a new like.
    pub async fn notify_author(&self, _post_id: i64) {
        tokio::time::sleep(self.latency).await;
        self.answered.fetch_add(1, Ordering::Relaxed);
    }

    /// Approves a tip of `amount_cents` to `wallet_id`.
    pub async fn approve(&self, _wallet_id: i64, _amount_cents: i64) {
        tokio::time::sleep(self.latency).await;
        self.answered.fetch_add(1, Ordering::Relaxed);
    }
}

impl CallBook {
    /// Calls the service has answered so far.
    pub fn calls(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

/// The post everybody likes.
pub const POST_ID: i64 = 1;
/// The wallet of post 1's author (seeded by the migration).
pub const WALLET_ID: i64 = 1;

/// The wallet schema and the author's wallet (`migrations/`).
pub static BASE_MIGRATIONS: Migrator = sqlx::migrate!();

/// A variant's `record_like`, as a plain function pointer.
pub type RecordLike =
    for<'r> fn(&'r Replica, i64) -> BoxFuture<'r, std::result::Result<(), ReplicaError>>;

/// A variant's `credit_wallet`, as a plain function pointer.
pub type CreditWallet =
    for<'r> fn(&'r Replica, i64, i64) -> BoxFuture<'r, std::result::Result<(), ReplicaError>>;

/// The code a replica runs: a variant's two operations, under a name that
/// tells a replica process which code to run.
#[derive(Clone, Copy)]
pub struct Code {
    /// The module's name (`buggy`, `fixed`, `exercise`, a test's candidate).
    pub name: &'static str,
    /// Counts one like of a post.
    pub record_like: RecordLike,
    /// Credits a tip to a wallet.
    pub credit_wallet: CreditWallet,
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Code({})", self.name)
    }
}

/// The [`Code`] of a module that has `record_like(&Replica, i64)` and
/// `credit_wallet(&Replica, i64, i64)`, named after the module:
/// `code_of!(fixed)`. The exercise's binary and the tests use it for code
/// that is not in this library.
#[macro_export]
macro_rules! code_of {
    ($code:ident) => {{
        fn record_like<'r>(
            replica: &'r $crate::Replica,
            post_id: i64,
        ) -> $crate::BoxFuture<'r, ::std::result::Result<(), $crate::ReplicaError>> {
            ::std::boxed::Box::pin($code::record_like(replica, post_id))
        }
        fn credit_wallet<'r>(
            replica: &'r $crate::Replica,
            wallet_id: i64,
            amount_cents: i64,
        ) -> $crate::BoxFuture<'r, ::std::result::Result<(), $crate::ReplicaError>> {
            ::std::boxed::Box::pin($code::credit_wallet(replica, wallet_id, amount_cents))
        }
        $crate::Code {
            name: ::std::stringify!($code),
            record_like: record_like as $crate::RecordLike,
            credit_wallet: credit_wallet as $crate::CreditWallet,
        }
    }};
}

/// The scenario's id (`debuglab run race-condition`).
pub const SCENARIO_ID: &str = "race-condition";

static INFO: ScenarioInfo = ScenarioInfo {
    id: SCENARIO_ID,
    title: "Race condition",
    summary: "Likes and tips go missing: the like counter and the author's wallet end far below what the replicas handled, though no request failed.",
    services: &[Service::Postgres, Service::Redis],
    signal_metric: "missing_updates",
    key_metrics: &[
        "missing_updates",
        "likes_done",
        "likes_counted",
        "tips_done",
        "tips_counted",
        "missing_cents",
        "failed_operations",
        "notification_calls",
        "fraud_check_calls",
    ],
    live_gauges: &["likes_done", "likes_missing", "tips_missing", "cents_missing"],
    hints: include_str!("../HINTS.md"),
    solution: include_str!("../SOLUTION.md"),
    sources: Sources {
        buggy: include_str!("buggy.rs"),
        fixed: include_str!("fixed.rs"),
    },
};

/// The race-condition scenario, running its buggy and fixed code, or a
/// candidate's (the learner's exercise, a test's wrong fix) as the exercise.
pub struct RaceCondition {
    candidate: Option<Code>,
}

/// The scenario, for the CLI's list.
pub static SCENARIO: RaceCondition = RaceCondition { candidate: None };

impl RaceCondition {
    /// The scenario with `code` as the code its exercise variant runs.
    pub const fn with_candidate(code: Code) -> RaceCondition {
        RaceCondition {
            candidate: Some(code),
        }
    }

    /// The code a run of `variant` has its replicas run.
    pub fn code(&self, variant: Variant) -> Result<Code> {
        variant.pick(INFO.id, code_of!(buggy), code_of!(fixed), self.candidate)
    }

    /// The code called `name` that this program can run in a replica: the
    /// buggy and fixed code, and this scenario's candidate.
    pub fn code_named(&self, name: &str) -> Option<Code> {
        [code_of!(buggy), code_of!(fixed)]
            .into_iter()
            .chain(self.candidate)
            .find(|code| code.name == name)
    }
}

impl Scenario for RaceCondition {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(async move {
            let code = self.code(ctx.variant())?;
            let figures = workload::run_replicas(ctx, code.name).await?;
            Ok(verdict::verdict(&figures))
        })
    }

    fn replica_main(&self, args: Vec<String>) -> Option<ExitCode> {
        Some(replica::main(|name| self.code_named(name), args))
    }
}
