//! The traffic: order-history pages for random customers, four at a time,
//! first pages of twenty orders, then pages of a hundred, on a pool of four
//! connections that the harness builds behind a network a millisecond long.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::postgres::{RunDatabase, StatementTotals};
use debuglab_harness::workload::{Workload, WorkloadOutcome};
use debuglab_harness::{PoolSettings, Result, RunContext};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::probes::{self, Watch};
use crate::verdict::{Figures, PageFigures, Requests};
use crate::{data, Code, OrderView, PgPool, BASE_MIGRATIONS};

/// The pool the endpoint gets: as in production, a handful of connections.
pub const POOL: PoolSettings = PoolSettings {
    max_connections: 4,
    acquire_timeout: Duration::from_secs(10),
};

/// What every message from the service to PostgreSQL waits on its way: the
/// database is in another zone. A statement's round trip costs it once.
pub const ROUND_TRIP_DELAY: Duration = Duration::from_millis(1);

/// The two page sizes the shop offers, in the order the traffic asks for them.
pub const PAGE_SIZES: [i64; 2] = [20, 100];

/// The traffic for one page size: `requests` pages, four at a time.
///
/// Issuing stops after a second and a half, whatever the variant: enough
/// pages for the symptom, and a bounded run on any machine.
pub const fn workload(requests: usize) -> Workload {
    Workload {
        requests,
        concurrency: 4,
        max_duration: Duration::from_millis(1500),
        hard_limit: Duration::from_secs(30),
        // A live run asks for a few big pages a second, for as long as the learner looks.
        live_rate: 4,
    }
}

/// Pages asked for at each size: the small pages are the everyday traffic.
pub const REQUESTS: [usize; 2] = [16, 8];

/// Customers who get a new order and a renamed product during the freshness check.
pub const FRESHNESS_CHECKS: usize = 3;

/// Customer ids for the traffic: real customers, and now and then an unknown one.
pub fn random_customer_ids(seed: u64, count: usize) -> Vec<i64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| rng.random_range(1..=data::CUSTOMERS + 1))
        .collect()
}

/// What one request returned: whose page, and the page.
pub type PageOutcome = WorkloadOutcome<(i64, Vec<OrderView>), sqlx::Error>;

/// Runs the traffic against `code`, checks its answers, counts the
/// database's statements per page size, and returns the figures the verdict
/// is made of (also recorded on `ctx`).
pub async fn run_pages(ctx: &RunContext, code: Code) -> Result<Figures> {
    let database = ctx.database(Some(&data::SHOP_TEMPLATE)).await?;
    database.migrate(&BASE_MIGRATIONS, &[]).await?;
    let pool = database.pool_with_latency(POOL, ROUND_TRIP_DELAY).await?;
    // From here on, every statement PostgreSQL counts is the variant's.
    database.reset_statement_stats().await?;
    let watch = Watch::start(ctx, &database);
    let mut figures = Figures {
        statement_stats: database.has_statement_stats(),
        ..Figures::default()
    };
    let mut answered = BTreeSet::new();
    // A live run keeps asking for the big pages until the learner stops it.
    let phases = if ctx.is_live() { 1..2 } else { 0..2 };
    for phase in phases {
        let before = totals(&database).await?;
        let outcome = drive_pages(ctx, &pool, code, phase).await;
        let after = totals(&database).await?;
        tally(
            PAGE_SIZES[phase],
            &outcome,
            &mut figures.requests,
            &mut answered,
        );
        figures
            .pages
            .push(page_figures(PAGE_SIZES[phase], &outcome, before, after));
    }
    let top = database.statement_stats(3).await?;
    let watched = watch.stop().await;
    let customers: Vec<i64> = answered.into_iter().take(FRESHNESS_CHECKS).collect();
    figures.freshness = probes::freshness(ctx, &database, &pool, code, &customers).await?;
    pool.close().await;
    probes::record(ctx, &figures, &watched, &top);
    Ok(figures)
}

/// The server's totals so far, if it keeps them.
async fn totals(database: &RunDatabase) -> Result<Option<StatementTotals>> {
    if !database.has_statement_stats() {
        return Ok(None);
    }
    database.statement_totals().await.map(Some)
}

/// Drives the pages of phase `phase` (its size from [`PAGE_SIZES`]).
async fn drive_pages(ctx: &RunContext, pool: &PgPool, code: Code, phase: usize) -> PageOutcome {
    let page_size = PAGE_SIZES[phase];
    let customers = Arc::new(random_customer_ids(
        ctx.seed().wrapping_add(phase as u64),
        REQUESTS[phase],
    ));
    let pool = pool.clone();
    let label = format!("pages of {page_size} orders");
    ctx.drive(&label, workload(REQUESTS[phase]), move |index| {
        let pool = pool.clone();
        // A live run's indexes grow past the list: go round it again.
        let customer_id = customers[index % customers.len()];
        async move {
            (code.order_page)(&pool, customer_id, page_size)
                .await
                .map(|page| (customer_id, page))
        }
    })
    .await
}

/// Adds what the clients saw of pages of `page_size` to `requests`:
/// failures, hangs, wrong pages; and the real customers answered right to
/// `answered`.
fn tally(
    page_size: i64,
    outcome: &PageOutcome,
    requests: &mut Requests,
    answered: &mut BTreeSet<i64>,
) {
    requests.finished += outcome.records.len();
    requests.failed += outcome.errors();
    requests.unfinished += outcome.unfinished;
    for record in &outcome.records {
        match &record.result {
            Ok((customer_id, page)) => {
                let expected = data::reference_page(*customer_id, page_size);
                if *page != expected {
                    requests.wrong_answers += 1;
                    requests
                        .first_wrong
                        .get_or_insert_with(|| describe_difference(*customer_id, page, &expected));
                } else if (1..=data::CUSTOMERS).contains(customer_id) {
                    answered.insert(*customer_id);
                }
            }
            Err(error) => {
                requests
                    .first_error
                    .get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// The figures of one page size: latency from the clients, statements and
/// rows from the server (the difference of its totals around the phase),
/// and the rows the reference says the answered pages show.
fn page_figures(
    page_size: i64,
    outcome: &PageOutcome,
    before: Option<StatementTotals>,
    after: Option<StatementTotals>,
) -> PageFigures {
    let latencies = outcome.latencies();
    let answered: Vec<i64> = outcome
        .records
        .iter()
        .filter_map(|record| {
            record
                .result
                .as_ref()
                .ok()
                .map(|(customer_id, _)| *customer_id)
        })
        .collect();
    let rows_shown = answered
        .iter()
        .map(|customer_id| {
            let page = data::reference_page(*customer_id, page_size);
            page.len() + page.iter().map(|order| order.items.len()).sum::<usize>()
        })
        .sum();
    let work = before.zip(after).map(|(before, after)| {
        (
            after.calls - before.calls,
            after.rows - before.rows,
            after.total_ms - before.total_ms,
        )
    });
    PageFigures {
        page_size,
        answered: answered.len(),
        rows_shown,
        statements: work.map(|(calls, _, _)| calls),
        rows: work.map(|(_, rows, _)| rows),
        db_ms: work.map_or(0.0, |(_, _, ms)| ms),
        p50_ms: latencies.p50_ms().unwrap_or(0.0),
        p95_ms: latencies.p95_ms().unwrap_or(0.0),
    }
}

/// `got` next to `expected`, by order id and line items.
pub fn describe_difference(customer_id: i64, got: &[OrderView], expected: &[OrderView]) -> String {
    if got.len() != expected.len() {
        return format!(
            "customer {customer_id}: got {} orders, expected {}",
            got.len(),
            expected.len()
        );
    }
    let differs = got
        .iter()
        .zip(expected)
        .find(|(got, expected)| got != expected);
    match differs {
        Some((got, expected)) if got.id != expected.id => format!(
            "customer {customer_id}: order {} where order {} belongs",
            got.id, expected.id
        ),
        Some((got, expected)) => format!(
            "customer {customer_id}, order {}: got {} line items [{}], expected {} [{}]",
            got.id,
            got.items.len(),
            describe_items(got),
            expected.items.len(),
            describe_items(expected)
        ),
        None => format!("customer {customer_id}: the same orders, in another form"),
    }
}

fn describe_items(order: &OrderView) -> String {
    order
        .items
        .iter()
        .map(|item| format!("{}× {}", item.quantity, item.product_name))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_are_replayable_and_in_range() {
        let ids = random_customer_ids(7, 100);
        assert_eq!(ids, random_customer_ids(7, 100));
        assert!(ids.iter().all(|id| (1..=data::CUSTOMERS + 1).contains(id)));
    }

    #[test]
    fn differences_name_the_order_and_its_items() {
        let expected = data::reference_page(3, 2);
        let mut got = expected.clone();
        got[1].items.pop();
        let line = describe_difference(3, &got, &expected);
        assert!(
            line.starts_with(&format!("customer 3, order {}: got", expected[1].id)),
            "{line}"
        );
        assert_eq!(
            describe_difference(3, &got[..1], &expected),
            "customer 3: got 1 orders, expected 2"
        );
    }
}
