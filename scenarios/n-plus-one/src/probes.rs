//! What the run measures: PostgreSQL's own count of the statements the
//! pages ran (`pg_stat_statements`, sampled while the traffic goes and
//! totalled per page size), a new order and a renamed product placed behind
//! the endpoint's back (freshness), and what a production dashboard would
//! show (the top statements); and the metrics and evidence it records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use debuglab_harness::postgres::{PgConnection, RunDatabase, StatementStats, StatementTotals};
use debuglab_harness::report::grouped;
use debuglab_harness::sampler::{sample_every, Sample, Sampler};
use debuglab_harness::{HarnessError, Plot, PlotKind, Result, RunContext};
use futures::future::join_all;

use crate::verdict::{Figures, Freshness, PageFigures, STATEMENTS_PER_PAGE_BOUND};
use crate::workload::{describe_difference, workload, POOL, REQUESTS, ROUND_TRIP_DELAY};
use crate::{data, Code, LineItem, OrderView, PgPool, PAGE_SIZES};

/// How long the checks after the traffic may take before the service counts as hung.
const CHECK_LIMIT: Duration = Duration::from_secs(20);

/// How often the server's statement totals are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// The sampler that watches the server's statement totals (and feeds a live
/// run's gauges).
pub struct Watch {
    totals: Sampler<StatementTotals>,
}

/// What the sampler saw.
pub struct Watched {
    samples: Vec<Sample<StatementTotals>>,
}

impl Watch {
    /// Samples `pg_stat_statements` every quarter of a second; the latest
    /// rates are also the live run's gauges.
    pub fn start(ctx: &RunContext, database: &RunDatabase) -> Watch {
        let (database, progress) = (database.clone(), Arc::clone(ctx.progress()));
        let previous = Arc::new(Mutex::new(StatementTotals::default()));
        let totals = sample_every(SAMPLE_EVERY, move || {
            let (database, progress) = (database.clone(), Arc::clone(&progress));
            let previous = Arc::clone(&previous);
            async move {
                let totals = database.statement_totals().await.unwrap_or_default();
                let last = std::mem::replace(&mut *lock(&previous), totals);
                let calls = (totals.calls - last.calls).max(0) as f64;
                let (finished, _) = progress.requests();
                progress.gauge(
                    "statements_per_page",
                    (totals.calls as f64 / finished.max(1) as f64 * 10.0).round() / 10.0,
                );
                progress.gauge(
                    "statements_per_second",
                    (calls / SAMPLE_EVERY.as_secs_f64()).round(),
                );
                progress.gauge(
                    "ms_per_statement",
                    ((totals.total_ms - last.total_ms) / calls.max(1.0) * 1000.0).round() / 1000.0,
                );
                totals
            }
        });
        Watch { totals }
    }

    /// Stops sampling.
    pub async fn stop(self) -> Watched {
        Watched {
            samples: self.totals.stop().await,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watched {
    /// The most statements PostgreSQL ran in one second, between two samples.
    pub fn statements_per_second_max(&self) -> f64 {
        self.samples
            .windows(2)
            .map(|pair| {
                let seconds = (pair[1].at - pair[0].at).as_secs_f64().max(1e-3);
                (pair[1].value.calls - pair[0].value.calls).max(0) as f64 / seconds
            })
            .fold(0.0, f64::max)
    }
}

/// For each of `customers` (on a connection of the harness's own, behind the
/// endpoint's back): places a new order and renames the product on their
/// newest order; then asks the endpoint again for their pages of the smaller
/// size, all at once.
pub async fn freshness(
    ctx: &RunContext,
    database: &RunDatabase,
    pool: &PgPool,
    code: Code,
    customers: &[i64],
) -> Result<Freshness> {
    let page_size = PAGE_SIZES[0];
    let check = async {
        let mut probe = database.probe_connection().await?;
        let mut renamed = HashMap::new();
        let mut freshness = Freshness {
            checked: customers.len(),
            ..Freshness::default()
        };
        let mut placed = Vec::with_capacity(customers.len());
        for &customer_id in customers {
            placed.push(change_the_shop(&mut probe, customer_id, &mut renamed).await?);
        }
        // Then every page at once, as customers would come back.
        let answers = join_all(
            customers
                .iter()
                .map(|&customer_id| (code.order_page)(pool, customer_id, page_size)),
        )
        .await;
        for ((&customer_id, placed), answer) in customers.iter().zip(placed).zip(answers) {
            let mut expected = vec![placed];
            expected.extend(data::reference_page(customer_id, page_size - 1));
            rename_in(&mut expected, &renamed);
            if answer.as_ref().ok() != Some(&expected) {
                freshness.stale += 1;
                freshness.first_stale.get_or_insert_with(|| match &answer {
                    Ok(page) => describe_difference(customer_id, page, &expected),
                    Err(error) => format!("customer {customer_id}: {error}"),
                });
            }
        }
        Ok::<_, HarnessError>(freshness)
    };
    match ctx.within("the freshness check", CHECK_LIMIT, check).await {
        Some(result) => result,
        None => Ok(Freshness {
            checked: customers.len(),
            stale: customers.len(),
            first_stale: Some("the endpoint did not answer".to_owned()),
        }),
    }
}

/// Renames the first product of `customer_id`'s newest order (adding to
/// `renamed`) and places a new order of two lines; returns the new order.
async fn change_the_shop(
    probe: &mut PgConnection,
    customer_id: i64,
    renamed: &mut HashMap<i64, String>,
) -> Result<OrderView> {
    let newest = data::reference_page(customer_id, 1);
    let product_id = newest[0].items[0].product_id;
    let current = renamed
        .get(&product_id)
        .cloned()
        .unwrap_or_else(|| data::product_name(product_id));
    let name = format!("{current} (new edition)");
    sqlx::query("UPDATE products SET name = $2 WHERE id = $1")
        .bind(product_id)
        .bind(&name)
        .execute(&mut *probe)
        .await
        .map_err(HarnessError::postgres("renaming a product"))?;
    renamed.insert(product_id, name);
    let items: Vec<LineItem> = [(customer_id * 13, 1), (customer_id * 29 + 1, 2)]
        .into_iter()
        .enumerate()
        .map(|(line, (seed, quantity))| {
            let product_id = seed % data::PRODUCTS + 1;
            LineItem {
                line_no: line as i32 + 1,
                product_id,
                product_name: data::product_name(product_id),
                quantity,
                unit_price_cents: data::product_price(product_id),
            }
        })
        .collect();
    place_order(probe, customer_id, items).await
}

/// Inserts an order of `items` for `customer_id`, placed now.
async fn place_order(
    probe: &mut PgConnection,
    customer_id: i64,
    items: Vec<LineItem>,
) -> Result<OrderView> {
    let total_cents = data::total_of(&items);
    let (id, placed_at) = sqlx::query_as(
        "INSERT INTO orders (customer_id, status, total_cents, placed_at)
         VALUES ($1, 'pending', $2, now()) RETURNING id, placed_at",
    )
    .bind(customer_id)
    .bind(total_cents)
    .fetch_one(&mut *probe)
    .await
    .map_err(HarnessError::postgres("placing a new order"))?;
    for item in &items {
        sqlx::query(
            "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price_cents)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(item.line_no)
        .bind(item.product_id)
        .bind(item.quantity)
        .bind(item.unit_price_cents)
        .execute(&mut *probe)
        .await
        .map_err(HarnessError::postgres("placing a new order's items"))?;
    }
    Ok(OrderView {
        id,
        placed_at,
        status: "pending".to_owned(),
        total_cents,
        items,
    })
}

/// The products' new names, wherever `orders` show them.
fn rename_in(orders: &mut [OrderView], renamed: &HashMap<i64, String>) {
    for item in orders.iter_mut().flat_map(|order| order.items.iter_mut()) {
        if let Some(name) = renamed.get(&item.product_id) {
            item.product_name.clone_from(name);
        }
    }
}

/// Records the metrics and the evidence of a run.
pub fn record(ctx: &RunContext, figures: &Figures, watched: &Watched, top: &[StatementStats]) {
    record_requests(ctx, figures);
    ctx.metric("wrong_answers", figures.requests.wrong_answers as f64);
    ctx.metric("stale_answers", figures.freshness.stale as f64);
    ctx.metric(
        "round_trip_delay_ms",
        ROUND_TRIP_DELAY.as_secs_f64() * 1000.0,
    );
    ctx.metric(
        "statements_per_second_max",
        watched.statements_per_second_max().round(),
    );
    for page in &figures.pages {
        record_page(ctx, page, page == figures.largest_page().unwrap_or(page));
    }
    record_growth(ctx, &figures.pages);
    record_plots(ctx, &figures.pages);
    for stats in top {
        ctx.evidence(stats.to_string());
    }
    record_answers(ctx, figures);
}

/// The pictures of a run: statements and latency per page, by page size.
fn record_plots(ctx: &RunContext, pages: &[PageFigures]) {
    let by_size = |pick: fn(&PageFigures) -> Option<f64>| -> Vec<[f64; 2]> {
        pages
            .iter()
            .enumerate()
            .filter_map(|(index, page)| pick(page).map(|value| [index as f64, value]))
            .collect()
    };
    let sizes: Vec<String> = pages
        .iter()
        .map(|page| format!("a page of {} orders", page.page_size))
        .collect();
    ctx.series(
        "statements_per_page",
        by_size(PageFigures::statements_per_page),
    );
    ctx.plot(
        Plot::new(
            "statements",
            PlotKind::Bars,
            "Statements PostgreSQL ran for one page",
        )
        .x("", "")
        .y("statements per page (pg_stat_statements)", "")
        .categories(&sizes)
        .line("statements_per_page", "statements per page")
        .bound(
            STATEMENTS_PER_PAGE_BOUND,
            "bound: 3 a page, whatever its size",
        ),
    );
    ctx.series("p50_ms", by_size(|page| Some(page.p50_ms)));
    ctx.series("p95_ms", by_size(|page| Some(page.p95_ms)));
    ctx.plot(
        Plot::new("latency", PlotKind::Bars, "How long a page took")
            .x("", "")
            .y("latency", "ms")
            .categories(&sizes)
            .line("p50_ms", "p50")
            .line("p95_ms", "p95"),
    );
}

/// The requests of every page size together (each phase's drive recorded its own).
fn record_requests(ctx: &RunContext, figures: &Figures) {
    let planned: usize = figures
        .pages
        .iter()
        .filter_map(|page| PAGE_SIZES.iter().position(|size| *size == page.page_size))
        .map(|phase| REQUESTS[phase])
        .sum();
    let requests = &figures.requests;
    if !ctx.is_live() {
        ctx.metric("requests_planned", planned as f64);
    }
    ctx.metric("requests_finished", requests.finished as f64);
    ctx.metric("requests_failed", requests.failed as f64);
    ctx.metric("requests_unfinished", requests.unfinished as f64);
}

/// The metrics of one page size (`…_page_<size>`); the largest size's are
/// also the run's headline figures.
fn record_page(ctx: &RunContext, page: &PageFigures, largest: bool) {
    let size = page.page_size;
    let answered = page.answered.max(1) as f64;
    let round = |value: f64| (value * 100.0).round() / 100.0;
    let mut metrics = vec![
        (format!("p50_ms_page_{size}"), round(page.p50_ms)),
        (format!("p95_ms_page_{size}"), round(page.p95_ms)),
    ];
    if let (Some(statements), Some(rows)) = (page.statements_per_page(), page.rows) {
        metrics.push((format!("statements_per_page_{size}"), round(statements)));
        metrics.push((
            format!("rows_per_page_{size}"),
            (rows as f64 / answered).round(),
        ));
        metrics.push((
            format!("db_ms_per_page_{size}"),
            round(page.db_ms / answered),
        ));
        if largest {
            metrics.push(("statements_per_page".to_owned(), round(statements)));
            metrics.push(("rows_per_page".to_owned(), (rows as f64 / answered).round()));
            metrics.push(("db_ms_per_page".to_owned(), round(page.db_ms / answered)));
        }
    }
    for (name, value) in metrics {
        ctx.metric(&name, value);
    }
    let traffic = workload(0);
    ctx.evidence(format!(
        "{} pages of {size} orders for random customers, {} at a time (seed {}), on a pool of {} \
             behind a network that holds each message to PostgreSQL for {} ms: latency p50 {:.1} ms, \
             p95 {:.1} ms",
        page.answered, traffic.concurrency, ctx.seed(), POOL.max_connections,
        ROUND_TRIP_DELAY.as_millis(), page.p50_ms, page.p95_ms
    ));
    if let (Some(statements), Some(rows)) = (page.statements, page.rows) {
        ctx.evidence(format!(
            "PostgreSQL's count for those pages (pg_stat_statements): {} statements, {:.1} per page \
             (bound {STATEMENTS_PER_PAGE_BOUND:.0}); {} rows returned for {} shown; {:.1} ms \
             executing per page, of a p50 of {:.1} ms",
            grouped(statements as f64), page.statements_per_page().unwrap_or(0.0),
            grouped(rows as f64), grouped(page.rows_shown as f64), page.db_ms / answered, page.p50_ms
        ));
    }
}

/// How latency and statements grow from the smallest page to the largest.
fn record_growth(ctx: &RunContext, pages: &[PageFigures]) {
    let (Some(small), Some(big)) = (
        pages.iter().min_by_key(|page| page.page_size),
        pages.iter().max_by_key(|page| page.page_size),
    ) else {
        return;
    };
    if small.page_size == big.page_size || small.p50_ms <= 0.0 {
        return;
    }
    ctx.evidence(format!(
        "a page of {} orders took {:.1}x as long as a page of {} (p50 {:.1} ms against {:.1} ms), \
             for {:.0}x the orders",
        big.page_size,
        big.p50_ms / small.p50_ms,
        small.page_size,
        big.p50_ms,
        small.p50_ms,
        big.page_size as f64 / small.page_size as f64
    ));
}

fn record_answers(ctx: &RunContext, figures: &Figures) {
    let (requests, freshness) = (&figures.requests, &figures.freshness);
    if !figures.statement_stats {
        ctx.evidence("this server keeps no pg_stat_statements: statements cannot be counted");
    }
    if let Some(error) = &requests.first_error {
        ctx.evidence(format!(
            "{} requests failed; the first: {error}",
            requests.failed
        ));
    }
    if let Some(wrong) = &requests.first_wrong {
        ctx.evidence(format!(
            "{} pages differ from the reference; the first: {wrong}",
            requests.wrong_answers
        ));
    }
    match &freshness.first_stale {
        Some(stale) => ctx.evidence(format!(
            "{} of {} customers did not see the order they had just placed or a product's new \
             name; the first: {stale}",
            freshness.stale, freshness.checked
        )),
        None if freshness.checked == 0 => {
            ctx.evidence("no customer was answered, so none could be asked again after a change")
        }
        None => ctx.evidence(format!(
            "a new order and a renamed product for each of {} customers showed at once",
            freshness.checked
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_reach_every_line_of_the_product() {
        let mut page = data::reference_page(7, 20);
        let product_id = page[0].items[0].product_id;
        let renamed = HashMap::from([(product_id, "Renamed".to_owned())]);
        rename_in(&mut page, &renamed);
        let lines = page.iter().flat_map(|order| &order.items);
        assert!(lines
            .filter(|item| item.product_id == product_id)
            .all(|item| item.product_name == "Renamed"));
        assert_eq!(page[0].items[0].product_name, "Renamed");
    }
}
