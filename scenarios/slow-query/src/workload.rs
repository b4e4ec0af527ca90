//! The traffic: order-history requests for random users, four at a time, on
//! a pool of four connections that the harness builds (its size is fixed
//! here, not in the variant), against a copy of the seeded million orders.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::plot;
use debuglab_harness::workload::{Workload, WorkloadOutcome};
use debuglab_harness::{PoolSettings, Result, RunContext};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::probes::{self, Watch};
use crate::verdict::{Figures, Requests};
use crate::{data, Code, Order, BASE_MIGRATIONS};

/// The pool the endpoint gets: as in production, a handful of connections.
pub const POOL: PoolSettings = PoolSettings {
    max_connections: 4,
    acquire_timeout: Duration::from_secs(10),
};

/// The traffic: a few hundred requests for random users, four at a time.
///
/// Issuing stops after three seconds: enough for the slow endpoint to show
/// its symptom without keeping two cores busy for long.
pub const WORKLOAD: Workload = Workload {
    requests: 400,
    concurrency: 4,
    max_duration: Duration::from_secs(3),
    hard_limit: Duration::from_secs(30),
    // A live run: each slow request keeps two or three server processes busy
    // for tens of milliseconds, so three a second leave most of two cores
    // free for 15 minutes, and the dashboard still moves.
    live_rate: 3,
};

/// Statements slower than this are written to the server log
/// (`log_min_duration_statement`), as a production server would be set up.
pub const SLOW_LOG_THRESHOLD: Duration = Duration::from_millis(10);

/// Users who get a new order during the freshness check.
pub const FRESHNESS_CHECKS: usize = 10;

/// User ids for the traffic: real users, and now and then one who has no orders.
pub fn random_user_ids(seed: u64, count: usize) -> Vec<i64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| rng.random_range(0..=data::USERS + 1))
        .collect()
}

/// Runs the traffic against `code`, checks its answers, measures the
/// database's work, and returns the figures the verdict is made of (also
/// recorded on `ctx`).
pub async fn run_history(ctx: &RunContext, code: Code) -> Result<Figures> {
    let database = ctx.database(Some(&data::ORDERS_TEMPLATE)).await?;
    {
        let _step = debuglab_harness::progress::step("applying migrations");
        database.migrate(&BASE_MIGRATIONS, code.migrations).await?;
    }
    database
        .log_statements_slower_than(SLOW_LOG_THRESHOLD)
        .await?;
    let pool = database.pool(POOL).await?;
    // From here on, every statement PostgreSQL counts is the variant's.
    database.reset_statement_stats().await?;
    let log_mark = database.log_mark().await?;
    let watch = Watch::start(ctx, &database);
    let user_ids = Arc::new(random_user_ids(ctx.seed(), WORKLOAD.requests));
    let outcome = {
        let (pool, user_ids) = (pool.clone(), Arc::clone(&user_ids));
        ctx.drive("order history requests", WORKLOAD, move |index| {
            let pool = pool.clone();
            // A live run's indexes grow past the list: go round it again.
            let user_id = user_ids[index % user_ids.len()];
            async move {
                (code.recent_orders)(&pool, user_id)
                    .await
                    .map(|orders| (user_id, orders))
            }
        })
        .await
    };
    // Read before anything else queries the database on the variant's behalf.
    let work = probes::database_work(&database).await?;
    let watched = watch.stop().await;
    let requests = tally(&outcome);
    let answered = users_answered(&outcome);
    // The plan first, on the table as the traffic saw it; then new orders.
    let sample_user = unread_user(ctx.seed(), &answered);
    let plan = probes::capture_plan(ctx, &database, code, sample_user).await?;
    let freshness = probes::freshness(ctx, &database, &pool, code, &answered).await?;
    pool.close().await;
    let dashboard = probes::dashboard(&database, log_mark).await?;
    let figures = Figures {
        requests,
        work,
        freshness,
        plan: plan.as_ref().map(|(figures, _)| figures.clone()),
    };
    probes::record(
        ctx,
        &figures,
        &watched,
        &dashboard,
        plan.as_ref(),
        sample_user,
    );
    probes::record_plots(ctx, plot::latencies(&outcome), &figures);
    Ok(figures)
}

/// What the clients saw: failures, hangs, wrong answers, latency.
fn tally(outcome: &WorkloadOutcome<(i64, Vec<Order>), sqlx::Error>) -> Requests {
    let latencies = outcome.latencies();
    let mut requests = Requests {
        finished: outcome.records.len(),
        failed: outcome.errors(),
        unfinished: outcome.unfinished,
        p50_ms: latencies.p50_ms().unwrap_or(0.0),
        p95_ms: latencies.p95_ms().unwrap_or(0.0),
        ..Requests::default()
    };
    for record in &outcome.records {
        match &record.result {
            Ok((user_id, orders)) => {
                let expected = data::reference_recent_orders(*user_id);
                if *orders != expected {
                    requests.wrong_answers += 1;
                    requests
                        .first_wrong
                        .get_or_insert_with(|| describe_difference(*user_id, orders, &expected));
                }
            }
            Err(error) => {
                requests
                    .first_error
                    .get_or_insert_with(|| error.to_string());
            }
        }
    }
    requests
}

/// The real users the endpoint answered, a few of them: a cache of answers,
/// if there is one, holds theirs.
fn users_answered(outcome: &WorkloadOutcome<(i64, Vec<Order>), sqlx::Error>) -> Vec<i64> {
    outcome
        .records
        .iter()
        .filter_map(|record| record.result.as_ref().ok().map(|(user_id, _)| *user_id))
        .filter(|user_id| (1..=data::USERS).contains(user_id))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(FRESHNESS_CHECKS)
        .collect()
}

/// A user the traffic did not ask for, so that the captured plan is the
/// query's, not a cache's.
fn unread_user(seed: u64, answered: &[i64]) -> i64 {
    let start = (seed % data::USERS as u64) as i64;
    (0..data::USERS)
        .map(|offset| (start + offset) % data::USERS + 1)
        .find(|user_id| !answered.contains(user_id))
        .unwrap_or(1)
}

/// `got` next to `expected`, by order id.
pub fn describe_difference(user_id: i64, got: &[Order], expected: &[Order]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unread_user_was_not_asked_for() {
        let answered = [5, 6, 7];
        assert_eq!(unread_user(4, &answered), 8);
        assert_eq!(unread_user(0, &answered), 1);
        assert!((1..=data::USERS).contains(&unread_user(u64::MAX, &answered)));
    }

    #[test]
    fn user_ids_are_replayable_and_in_range() {
        let ids = random_user_ids(7, 400);
        assert_eq!(ids, random_user_ids(7, 400));
        assert!(ids.iter().all(|id| (0..=data::USERS + 1).contains(id)));
    }
}
