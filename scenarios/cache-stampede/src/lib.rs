//! # Cache stampede: everyone recomputes at once
//!
//! A shop's home page shows its best sellers: the ten products with the most
//! revenue, added up from every order line in PostgreSQL. Adding them up
//! takes the database a while, so the storefront keeps the report in Redis
//! for a short time (its TTL) and serves it from there. The storefront runs
//! as several replica processes behind a load balancer, sharing nothing but
//! PostgreSQL and Redis.
//!
//! Between spikes the home page is fast. But every time the cached report
//! expires, the database's CPU jumps to 100%, every connection of every
//! replica's pool is busy with the same query, and the home page stalls for
//! everyone at once; then it is fast again, until the next expiry. (In the
//! lab time runs fast: the TTL is 200 ms rather than a minute.)
//!
//! ## The contract
//!
//! Whatever the code looks like, a run of four replica processes, twelve
//! shoppers each, must still (checked in [`verdict`] from evidence the
//! variant cannot forge):
//!
//! - answer every request with the report, without failing or hanging —
//!   requests that arrive while it is being worked out included;
//! - serve the report as the query computes it from the order lines, and
//!   follow the data: new sales are committed during the run, and every
//!   request that begins later after that commit than the TTL, twice the
//!   slowest request of the run and [`FRESHNESS_SLACK`] must see them (time
//!   for a computation begun before the commit to finish, and for the next
//!   one); so must a storefront the run starts after the traffic, once the
//!   TTL has passed since the last replica stopped;
//! - cost the database at most [`MAX_COMPUTATIONS_PER_EXPIRY`] computations
//!   of the report per expiry on average, whatever the number of shoppers
//!   and replicas — computations counted by PostgreSQL itself (the shared
//!   blocks `pg_stat_statements` records for the run's database, one
//!   computation's worth each, whatever SQL the variant sends), expiries as
//!   many as fit in the traffic at one TTL plus one computation's time each
//!   (its mean, by `pg_stat_statements`' clock: on a busy machine, fewer);
//! - not compute the report again while a computation of it runs or soon
//!   after one ended, while its report is fresh: at most
//!   [`MAX_COMPUTATIONS_PER_WAVE`] computations per wave on average, by
//!   PostgreSQL's own log, which says when each computation began and ended
//!   whichever replica ran it (where the server log can be read);
//! - not block its threads, nor change the pools it was given.
//!
//! Which shopper saw what is recorded by the scenario's side of each replica
//! process, never by the variant. The run is laid out in [`workload`] (the
//! replicas, their shoppers and the sales committed meanwhile), [`replica`]
//! (one replica process), [`probes`] (what is watched, read and recorded)
//! and [`verdict`] (the judgement, a pure function).

pub mod buggy;
pub mod fixed;
pub mod probes;
pub mod replica;
pub mod verdict;
pub mod workload;

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::process::ExitCode;
use std::time::Duration;

use debuglab_harness::postgres::{DatabaseTemplate, PgConnection, PgPool};
use debuglab_harness::{
    HarnessError, Result, RunContext, Scenario, ScenarioInfo, Service, Sources, Variant, Verdict,
};
pub use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use sqlx::Executor;

pub use verdict::{FRESHNESS_SLACK, MAX_COMPUTATIONS_PER_EXPIRY, MAX_COMPUTATIONS_PER_WAVE};
pub use workload::{standard_plan, Plan, CONFIG};

/// One line of the best-sellers report.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::FromRow)]
pub struct TopSeller {
    /// The product.
    pub product_id: i64,
    /// Its name.
    pub name: String,
    /// Units sold.
    pub units: i64,
    /// Revenue, in cents.
    pub revenue_cents: i64,
}

/// The report: the best sellers, most revenue first.
pub type BestSellers = Vec<TopSeller>;

/// Products in the report.
pub const TOP_N: i64 = 10;

/// The report's query: every order line, added up per product.
pub const BEST_SELLERS_SQL: &str = "SELECT p.id AS product_id, p.name,
        sum(l.quantity)::bigint AS units,
        sum(l.quantity * l.price_cents)::bigint AS revenue_cents
 FROM order_lines l JOIN products p ON p.id = l.product_id
 GROUP BY p.id, p.name
 ORDER BY revenue_cents DESC, p.id
 LIMIT $1";

/// Computes the best sellers from the order lines: the expensive part.
pub async fn query_best_sellers<'e>(
    db: impl sqlx::PgExecutor<'e>,
) -> std::result::Result<BestSellers, sqlx::Error> {
    sqlx::query_as(BEST_SELLERS_SQL)
        .bind(TOP_N)
        .fetch_all(db)
        .await
}

/// A report's fingerprint, the same in every process of one build: how a
/// replica tells which report an answer is without carrying it around.
pub fn fingerprint(report: &BestSellers) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    report.hash(&mut hasher);
    hasher.finish()
}

/// The Redis key the storefront keeps the report under.
pub const REPORT_KEY: &str = "report:best-sellers";

/// How long the report may be served from the cache: the app's
/// configuration, handed to the storefront like its pools.
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    /// The report's time to live.
    pub ttl: Duration,
}

/// Why a request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// No Redis connection could be had.
    #[error("cache pool: {0}")]
    CachePool(#[from] deadpool_redis::PoolError),
    /// A Redis command failed.
    #[error("cache: {0}")]
    Cache(#[from] deadpool_redis::redis::RedisError),
    /// The cached report could not be read or written.
    #[error("cached report: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The storefront gave up (a variant's own reason).
    #[error("{0}")]
    Unavailable(String),
}

/// What every variant's `Storefront` offers.
pub trait StorefrontApi: Send + Sync + Sized + 'static {
    /// The storefront, on the harness's pools and the app's cache configuration.
    fn new(db: PgPool, cache: deadpool_redis::Pool, config: CacheConfig) -> Self;
    /// The best-sellers report, as the home page shows it.
    fn best_sellers(
        &self,
    ) -> impl Future<Output = std::result::Result<BestSellers, ServiceError>> + Send;
}

/// A variant's replica process, as a plain function pointer: serves the
/// shoppers of [`replica::ReplicaArgs`] with the variant's `Storefront`.
pub type Serve = fn(replica::ReplicaArgs) -> BoxFuture<'static, replica::ServeResult>;

/// A variant's `Storefront` asked once, on the given pools: what the run
/// itself does after the traffic, to check that the report follows the data.
pub type Ask = fn(
    PgPool,
    deadpool_redis::Pool,
    CacheConfig,
) -> BoxFuture<'static, std::result::Result<BestSellers, ServiceError>>;

/// The code a replica runs: a variant's `Storefront`, under a name that
/// tells a replica process which code to run.
#[derive(Clone, Copy)]
pub struct Code {
    /// The module's name (`buggy`, `fixed`, `exercise`, a test's candidate).
    pub name: &'static str,
    /// Serves the shoppers with the module's `Storefront`.
    pub serve: Serve,
    /// Asks a new `Storefront` of the module once.
    pub ask: Ask,
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Code({})", self.name)
    }
}

/// The [`Code`] of a module that has a `Storefront` implementing
/// [`StorefrontApi`], named after the module: `storefront_of!(fixed)`. The
/// exercise's binary and the tests use it for code that is not in this library.
#[macro_export]
macro_rules! storefront_of {
    ($code:ident) => {
        $crate::Code {
            name: ::std::stringify!($code),
            serve: $crate::replica::serve::<$code::Storefront> as $crate::Serve,
            ask: $crate::ask_once::<$code::Storefront> as $crate::Ask,
        }
    };
}

/// Builds the storefront `S` on the given pools and asks it for the report
/// once; [`storefront_of!`] makes it an [`Ask`].
pub fn ask_once<S: StorefrontApi>(
    db: PgPool,
    cache: deadpool_redis::Pool,
    config: CacheConfig,
) -> BoxFuture<'static, std::result::Result<BestSellers, ServiceError>> {
    Box::pin(async move { S::new(db, cache, config).best_sellers().await })
}

/// Products in the catalogue; ids run from 1 to `PRODUCTS`.
pub const PRODUCTS: i64 = 2_000;

/// Order lines in the seeded history.
pub const ORDER_LINES: i64 = 40_000;

/// The sales, seeded once per process and copied for each run.
pub static SALES: DatabaseTemplate = DatabaseTemplate {
    name: "cache_stampede_sales",
    description: "seeding 40,000 order lines",
    seed: seed_sales,
};

fn seed_sales(conn: &mut PgConnection) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        BASE_MIGRATIONS
            .run_direct(&mut *conn)
            .await
            .map_err(|error| HarnessError::Setup {
                scenario: INFO.id.to_owned(),
                detail: format!("base migration failed: {error}"),
            })?;
        conn.execute(
            format!(
                "INSERT INTO products (id, name)
                 SELECT g, 'product ' || g FROM generate_series(1::bigint, {PRODUCTS}::bigint) AS g;
                 INSERT INTO order_lines (order_id, product_id, quantity, price_cents)
                 SELECT g / 3, (g * 7919) % {PRODUCTS} + 1, g % 5 + 1, ((g * 7919) % {PRODUCTS}) * 37 % 5000 + 500
                 FROM generate_series(1::bigint, {ORDER_LINES}::bigint) AS g;
                 ANALYZE;"
            )
            .as_str(),
        )
        .await
        .map_err(HarnessError::postgres("seeding the sales"))?;
        Ok(())
    })
}

/// The sales' schema (`migrations/`).
pub static BASE_MIGRATIONS: Migrator = sqlx::migrate!();

/// The scenario's id (`debuglab run cache-stampede`).
pub const SCENARIO_ID: &str = "cache-stampede";

static INFO: ScenarioInfo = ScenarioInfo {
    id: SCENARIO_ID,
    title: "Cache stampede",
    summary: "Every time the cached best-sellers report expires, the database's CPU spikes, every connection runs the same query and the home page stalls for everyone at once.",
    services: &[Service::Postgres, Service::Redis],
    // The symptom at its clearest: the computations in one burst of the
    // database's work (the verdict counts per expiry, which a busy machine
    // cannot sway; a stampede's bursts run longer than a TTL and a
    // computation, so per expiry understates it).
    signal_metric: "computations_per_burst",
    key_metrics: &[
        "computations_per_expiry",
        "computations_per_wave",
        "computations_per_burst",
        "computations",
        "expiries",
        "computation_ms",
        "most_computations_at_once",
        "keyspace_misses",
        "latency_p99_ms",
        "latency_max_ms",
        "stale_answers",
        "wrong_answers",
        "failed_requests",
    ],
    live_gauges: &["computations", "running_now", "keyspace_misses"],
    hints: include_str!("../HINTS.md"),
    solution: include_str!("../SOLUTION.md"),
    sources: Sources {
        buggy: include_str!("buggy.rs"),
        fixed: include_str!("fixed.rs"),
    },
};

/// The cache-stampede scenario, running its buggy and fixed code, or a
/// candidate's (the learner's exercise, a test's wrong fix) as the exercise.
pub struct CacheStampede {
    candidate: Option<Code>,
}

/// The scenario, for the CLI's list.
pub static SCENARIO: CacheStampede = CacheStampede { candidate: None };

impl CacheStampede {
    /// The scenario with `code` as the code its exercise variant runs.
    pub const fn with_candidate(code: Code) -> CacheStampede {
        CacheStampede {
            candidate: Some(code),
        }
    }

    /// The code a run of `variant` has its replicas run.
    pub fn code(&self, variant: Variant) -> Result<Code> {
        variant.pick(
            INFO.id,
            storefront_of!(buggy),
            storefront_of!(fixed),
            self.candidate,
        )
    }

    /// The code called `name` that this program can run in a replica: the
    /// buggy and fixed code, and this scenario's candidate.
    pub fn code_named(&self, name: &str) -> Option<Code> {
        [storefront_of!(buggy), storefront_of!(fixed)]
            .into_iter()
            .chain(self.candidate)
            .find(|code| code.name == name)
    }
}

impl Scenario for CacheStampede {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(async move {
            let code = self.code(ctx.variant())?;
            let figures = workload::run_replicas(ctx, code).await?;
            Ok(verdict::verdict(&figures))
        })
    }

    fn replica_main(&self, args: Vec<String>) -> Option<ExitCode> {
        Some(replica::main(|name| self.code_named(name), args))
    }
}
