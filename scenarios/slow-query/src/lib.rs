//! # Slow query: a million rows read to return ten
//!
//! A shop's order-history endpoint shows a user's ten most recent orders:
//!
//! ```sql
//! SELECT * FROM orders WHERE user_id = $1 ORDER BY created_at DESC LIMIT 10
//! ```
//!
//! It was fast when the shop was new. With a million orders it takes tens of
//! milliseconds per call, p95 latency is over its objective, and the database
//! CPU is busy — because nothing lets PostgreSQL find one user's orders without
//! reading all of them: `EXPLAIN` shows a Seq Scan on `orders`.
//!
//! The variants differ only in their schema migrations ([`buggy::MIGRATIONS`],
//! [`fixed::MIGRATIONS`]); the query is the same in both.
//!
//! A run copies the seeded database, applies the variant's migrations, sends
//! a few hundred requests for random users at a fixed concurrency, checks
//! every answer against [`data::reference_recent_orders`], checks that a new
//! order shows up at once (so caching answers cannot pass), captures the
//! real plan with `auto_explain`, and reads `pg_stat_statements` and the
//! slow-query log.

pub mod buggy;
pub mod data;
pub mod exercise;
pub mod fixed;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use debuglab_harness::postgres::{Migration, PgPool, Plan, RunDatabase};
use debuglab_harness::report::format_number;
use debuglab_harness::workload::{drive, Workload};
use debuglab_harness::{
    HarnessError, PoolSettings, Result, RunContext, Scenario, ScenarioInfo, Service, Variant,
    Verdict,
};
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::migrate::Migrator;

/// One order, as the endpoint returns it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Order {
    /// The order's id.
    pub id: i64,
    /// Who placed it.
    pub user_id: i64,
    /// `pending`, `paid`, `shipped`, `delivered` or `refunded`.
    pub status: String,
    /// The total, in cents.
    pub total_cents: i64,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
}

/// The base schema every variant starts from (`migrations/`).
pub static BASE_MIGRATIONS: Migrator = sqlx::migrate!();

/// The pool the endpoint gets: as in production, a handful of connections.
pub const POOL: PoolSettings = PoolSettings {
    max_connections: 4,
    acquire_timeout: Duration::from_secs(10),
};

/// The traffic: a few hundred requests for random users, four at a time.
pub const WORKLOAD: Workload = Workload {
    requests: 400,
    concurrency: 4,
    max_duration: Duration::from_secs(3),
    hard_limit: Duration::from_secs(30),
};

/// The objective: 95% of requests answer within this many milliseconds.
pub const P95_OBJECTIVE_MS: f64 = 10.0;

/// Statements slower than this are written to the server log
/// (`log_min_duration_statement`), as a production server would be set up.
const SLOW_LOG_THRESHOLD: Duration = Duration::from_millis(10);

/// Users who get a new order during the freshness check.
const FRESHNESS_CHECKS: usize = 10;

/// The table whose plan the verdict looks at.
const TABLE: &str = "orders";

static INFO: ScenarioInfo = ScenarioInfo {
    id: "slow-query",
    title: "Slow query",
    summary: "Order history reads a million rows to return ten: a Seq Scan where an index belongs.",
    services: &[Service::Postgres],
    signal_metric: "p50_ms",
    key_metrics: &[
        "p50_ms",
        "p95_ms",
        "seq_scans_on_orders",
        "rows_removed_by_filter",
        "statement_mean_ms",
        "slow_log_lines",
        "wrong_answers",
        "stale_answers",
    ],
    readme: include_str!("../README.md"),
};

/// The slow-query scenario.
pub struct SlowQuery;

/// The scenario, for the CLI's list.
pub static SCENARIO: SlowQuery = SlowQuery;

impl Scenario for SlowQuery {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(run(ctx))
    }
}

/// The code of one variant, as plain function pointers.
#[derive(Clone, Copy)]
struct Code {
    migrations: &'static [Migration],
    recent_orders: for<'p> fn(&'p PgPool, i64) -> BoxFuture<'p, sqlx::Result<Vec<Order>>>,
}

macro_rules! code_of {
    ($variant:ident) => {{
        fn recent_orders(pool: &PgPool, user_id: i64) -> BoxFuture<'_, sqlx::Result<Vec<Order>>> {
            Box::pin($variant::recent_orders(pool, user_id))
        }
        Code {
            migrations: $variant::MIGRATIONS,
            recent_orders,
        }
    }};
}

impl Code {
    fn of(variant: Variant) -> Code {
        match variant {
            Variant::Buggy => code_of!(buggy),
            Variant::Fixed => code_of!(fixed),
            Variant::Exercise => code_of!(exercise),
        }
    }
}

/// Applies `variant`'s migrations to `database` (a copy of [`data::ORDERS_TEMPLATE`])
/// and returns its `recent_orders`, for tests that call the endpoint directly.
pub async fn prepare(
    database: &RunDatabase,
    variant: Variant,
) -> Result<for<'p> fn(&'p PgPool, i64) -> BoxFuture<'p, sqlx::Result<Vec<Order>>>> {
    let code = Code::of(variant);
    database.migrate(&BASE_MIGRATIONS, code.migrations).await?;
    Ok(code.recent_orders)
}

/// User ids for the workload: mostly real users, a few that have no orders.
fn random_user_ids(seed: u64, count: usize) -> Vec<i64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| rng.random_range(0..=data::USERS + 1))
        .collect()
}

async fn run(ctx: &RunContext) -> Result<Verdict> {
    let code = Code::of(ctx.variant());
    let database = ctx.database(Some(&data::ORDERS_TEMPLATE)).await?;
    {
        let _step = debuglab_harness::progress::step("applying migrations");
        database.migrate(&BASE_MIGRATIONS, code.migrations).await?;
    }
    database
        .log_statements_slower_than(SLOW_LOG_THRESHOLD)
        .await?;
    let pool = database
        .pool(POOL)
        .await
        .map_err(|error| setup_error(error.to_string()))?;
    database.reset_statement_stats().await?;
    let log_mark = database.log_mark().await?;

    // Observe: the endpoint under its usual traffic.
    let user_ids = Arc::new(random_user_ids(ctx.seed(), WORKLOAD.requests));
    let outcome = {
        let (pool, user_ids) = (pool.clone(), Arc::clone(&user_ids));
        drive("order history requests", WORKLOAD, move |index| {
            let pool = pool.clone();
            let user_id = user_ids[index];
            async move {
                (code.recent_orders)(&pool, user_id)
                    .await
                    .map(|orders| (user_id, orders))
            }
        })
        .await
    };
    let latencies = outcome.latencies();
    let mut wrong_answers = 0;
    let mut first_wrong = None;
    let mut first_error = None;
    for record in &outcome.records {
        match &record.result {
            Ok((user_id, orders)) => {
                let expected = data::reference_recent_orders(*user_id);
                if *orders != expected {
                    wrong_answers += 1;
                    first_wrong
                        .get_or_insert_with(|| describe_difference(*user_id, orders, &expected));
                }
            }
            Err(error) => {
                first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    let p50 = latencies.p50_ms().unwrap_or(0.0);
    let p95 = latencies.p95_ms().unwrap_or(0.0);
    ctx.metric("requests", outcome.records.len() as f64);
    ctx.metric("errors", outcome.errors() as f64);
    ctx.metric("unfinished", outcome.unfinished as f64);
    ctx.metric("wrong_answers", wrong_answers as f64);
    ctx.metric("p50_ms", p50);
    ctx.metric("p95_ms", p95);
    ctx.metric("max_ms", latencies.max_ms().unwrap_or(0.0));
    ctx.metric("throughput_rps", outcome.throughput());
    ctx.evidence(format!(
        "latency over {} requests ({} at a time, random users, seed {}): p50 {p50:.2} ms, p95 {p95:.2} ms, max {:.2} ms; objective p95 <= {P95_OBJECTIVE_MS} ms",
        outcome.records.len(),
        WORKLOAD.concurrency,
        ctx.seed(),
        latencies.max_ms().unwrap_or(0.0),
    ));
    if outcome.cut_off {
        ctx.metric("timed_out", 1.0);
        ctx.evidence(format!(
            "{} requests were still running after {} s and were cut off",
            outcome.unfinished,
            WORKLOAD.hard_limit.as_secs()
        ));
    }
    if let Some(error) = &first_error {
        ctx.evidence(format!(
            "{} requests failed; the first: {error}",
            outcome.errors()
        ));
    }
    if let Some(wrong) = &first_wrong {
        ctx.evidence(format!(
            "{wrong_answers} answers differ from the reference; the first: {wrong}"
        ));
    }

    // A cache in front of the query would answer from memory: a new order must show at once.
    let read_users: Vec<i64> = outcome
        .records
        .iter()
        .filter_map(|record| record.result.as_ref().ok().map(|(user_id, _)| *user_id))
        .filter(|user_id| (1..=data::USERS).contains(user_id))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(FRESHNESS_CHECKS)
        .collect();
    let stale_answers = match ctx
        .within(
            "the freshness check",
            Duration::from_secs(20),
            freshness_check(&database, &pool, code, &read_users),
        )
        .await
    {
        Some(result) => {
            let (stale, first_stale) = result?;
            if let Some(stale_example) = first_stale {
                ctx.evidence(format!(
                    "{stale} of {} users did not see the order they had just placed; the first: {stale_example}",
                    read_users.len()
                ));
            }
            stale
        }
        None => read_users.len(),
    };
    ctx.metric("stale_answers", stale_answers as f64);

    // Hypothesis and evidence: the plan of the query the variant really ran.
    let sample_user = read_users.first().copied().unwrap_or(1);
    let (_, plans) = database
        .capture_plans(move |pool| async move { (code.recent_orders)(&pool, sample_user).await })
        .await?;
    let mut plan = plans
        .into_iter()
        .find(|plan| !plan.scans_of(TABLE).is_empty());
    if plan.is_none() && !database.has_server_log() {
        // A server named by URL may not let the harness read its log.
        let sql = "SELECT * FROM orders WHERE user_id = $1 ORDER BY created_at DESC LIMIT 10";
        plan = Some(database.explain_analyze(sql, sample_user).await?);
    }
    let reads_through_index = plan.as_ref().is_some_and(reads_orders_through_index);
    match &plan {
        Some(plan) => {
            ctx.metric("seq_scans_on_orders", plan.seq_scans_on(TABLE) as f64);
            ctx.metric("rows_removed_by_filter", plan.rows_removed_by_filter());
            ctx.evidence(format!(
                "EXPLAIN (ANALYZE, BUFFERS) for user {sample_user}: {}",
                plan.evidence_line()
            ));
        }
        None => ctx
            .evidence("no plan reading orders was captured: recent_orders did not query the table"),
    }
    let indexes = database.index_definitions(TABLE).await?;
    ctx.evidence(format!("indexes on orders: {}", indexes.join("; ")));

    // What a production dashboard would show.
    for stats in database.statement_stats(3).await? {
        if stats.query.contains(TABLE) && stats.calls > 0 {
            ctx.metric("statement_mean_ms", stats.mean_ms);
        }
        ctx.evidence(stats.to_string());
    }
    if let Some(mark) = log_mark {
        let slow: Vec<_> = database
            .log_since(mark)
            .await?
            .into_iter()
            .filter(|entry| entry.duration_ms().is_some() && !entry.message.contains("plan:"))
            .collect();
        ctx.metric("slow_log_lines", slow.len() as f64);
        for entry in slow.iter().take(3) {
            ctx.evidence(format!("slow-query log: {}", entry.as_log_line()));
        }
        if slow.len() > 3 {
            ctx.evidence(format!(
                "slow-query log: … and {} more lines over {} ms",
                slow.len() - 3,
                SLOW_LOG_THRESHOLD.as_millis()
            ));
        }
    }
    pool.close().await;

    Ok(verdict(Judged {
        p95,
        requests: outcome.records.len(),
        errors: outcome.errors() + outcome.unfinished,
        wrong_answers,
        stale_answers,
        plan: plan.as_ref(),
        reads_through_index,
    }))
}

fn setup_error(detail: String) -> HarnessError {
    HarnessError::Setup {
        scenario: INFO.id.to_owned(),
        detail,
    }
}

/// Places a new order for each of `users` and checks the endpoint shows it on top.
///
/// Returns how many answers were stale, and the first one described.
async fn freshness_check(
    database: &RunDatabase,
    pool: &PgPool,
    code: Code,
    users: &[i64],
) -> Result<(usize, Option<String>)> {
    let mut probe = database.probe_connection().await?;
    let mut stale = 0;
    let mut first_stale = None;
    for &user_id in users {
        let placed: Order = sqlx::query_as(
            "INSERT INTO orders (user_id, status, total_cents, created_at)
             VALUES ($1, 'pending', 4200, now()) RETURNING *",
        )
        .bind(user_id)
        .fetch_one(&mut probe)
        .await
        .map_err(HarnessError::postgres("placing a new order"))?;
        let mut expected = vec![placed];
        expected.extend(data::reference_recent_orders(user_id).into_iter().take(9));
        let answer = (code.recent_orders)(pool, user_id).await;
        if answer.as_ref().ok() != Some(&expected) {
            stale += 1;
            first_stale.get_or_insert_with(|| match &answer {
                Ok(orders) => describe_difference(user_id, orders, &expected),
                Err(error) => format!("user {user_id}: {error}"),
            });
        }
    }
    Ok((stale, first_stale))
}

fn describe_difference(user_id: i64, got: &[Order], expected: &[Order]) -> String {
    let ids = |orders: &[Order]| {
        orders
            .iter()
            .map(|order| order.id.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "user {user_id}: got {} orders [{}], expected {} [{}]",
        got.len(),
        ids(got),
        expected.len(),
        ids(expected)
    )
}

fn reads_orders_through_index(plan: &Plan) -> bool {
    let scans = plan.scans_of(TABLE);
    !scans.is_empty() && scans.iter().all(|node| node.is_index_scan())
}

/// The figures the verdict is made of.
struct Judged<'a> {
    p95: f64,
    requests: usize,
    errors: usize,
    wrong_answers: usize,
    stale_answers: usize,
    plan: Option<&'a Plan>,
    reads_through_index: bool,
}

fn verdict(judged: Judged<'_>) -> Verdict {
    let mut problems = Vec::new();
    if judged.requests == 0 {
        problems.push("no request finished".to_owned());
    }
    if judged.p95 > P95_OBJECTIVE_MS {
        problems.push(format!(
            "the p95 latency {:.1} ms is over the {P95_OBJECTIVE_MS} ms objective",
            judged.p95
        ));
    }
    match judged.plan {
        Some(plan) if !judged.reads_through_index => problems.push(format!(
            "the plan reads orders with {} ({} rows read and thrown away)",
            plan.scans_of(TABLE)
                .iter()
                .map(|node| node.label())
                .collect::<Vec<_>>()
                .join(", "),
            format_number(plan.rows_removed_by_filter())
        )),
        Some(_) => {}
        None => problems.push("the query plan could not be captured".to_owned()),
    }
    if judged.errors > 0 {
        problems.push(format!("{} requests failed or hung", judged.errors));
    }
    if judged.wrong_answers > 0 {
        problems.push(format!(
            "{} answers differ from the reference",
            judged.wrong_answers
        ));
    }
    if judged.stale_answers > 0 {
        problems.push(format!(
            "{} answers missed an order just placed",
            judged.stale_answers
        ));
    }
    Verdict::from_problems(&problems, || {
        let index = judged
            .plan
            .map(|plan| {
                plan.scans_of(TABLE)
                    .iter()
                    .map(|node| node.label())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        format!(
            "p95 latency {:.2} ms is within the {P95_OBJECTIVE_MS} ms objective; orders are read by {index}; all {} answers matched the reference.",
            judged.p95, judged.requests
        )
    })
}
