//! What the run measures: PostgreSQL's own count of the work the requests
//! did (`pg_stat_statements`), a new order placed behind the endpoint's back
//! (freshness), the plan of one real call (`auto_explain`), and what a
//! production dashboard would show (top statements, the slow-query log, the
//! table's indexes); and the metrics and evidence it records.

use std::time::Duration;

use debuglab_harness::plot::{millis, Points};
use debuglab_harness::postgres::{
    LogEntry, LogMark, Plan, RunDatabase, StatementStats, StatementTotals,
};
use debuglab_harness::report::grouped;
use debuglab_harness::sampler::{sample_every, Sample, Sampler};
use debuglab_harness::{HarnessError, Plot, PlotKind, Result, RunContext};

use crate::verdict::{
    DatabaseWork, Figures, Freshness, PlanFigures, RowsRead, BUFFERS_PER_REQUEST_BOUND,
};
use crate::workload::{describe_difference, POOL, SLOW_LOG_THRESHOLD, WORKLOAD};
use crate::{data, Code, Order, PgPool};

/// The table whose reads the run explains.
const TABLE: &str = "orders";

/// How long the checks after the traffic may take before the service counts as hung.
const CHECK_LIMIT: Duration = Duration::from_secs(20);

/// The server's view at one moment: its statement totals and active backends.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerSample {
    totals: StatementTotals,
    active: usize,
}

/// The sampler that watches the traffic (and feeds a live run's gauges).
pub struct Watch {
    server: Sampler<ServerSample>,
}

/// What the sampler saw.
pub struct Watched {
    samples: Vec<Sample<ServerSample>>,
}

impl Watch {
    /// Samples `pg_stat_statements` and `pg_stat_activity` every half second;
    /// the latest values are also the live run's gauges.
    pub fn start(ctx: &RunContext, database: &RunDatabase) -> Watch {
        let (database, progress) = (database.clone(), std::sync::Arc::clone(ctx.progress()));
        let server = sample_every(Duration::from_millis(500), move || {
            let (database, progress) = (database.clone(), std::sync::Arc::clone(&progress));
            async move {
                let sample = ServerSample {
                    totals: database.statement_totals().await.unwrap_or_default(),
                    active: database.activity().await.map_or(0, |rows| {
                        rows.iter()
                            .filter(|row| row.state.as_deref() == Some("active"))
                            .count()
                    }),
                };
                let calls = sample.totals.calls.max(1) as f64;
                progress.gauge(
                    "buffers_per_query",
                    (sample.totals.shared_blocks as f64 / calls).round(),
                );
                progress.gauge(
                    "ms_per_query",
                    (sample.totals.total_ms / calls * 100.0).round() / 100.0,
                );
                progress.gauge("active_queries", sample.active as f64);
                sample
            }
        });
        Watch { server }
    }

    /// Stops sampling.
    pub async fn stop(self) -> Watched {
        Watched {
            samples: self.server.stop().await,
        }
    }
}

impl Watched {
    /// The most statements PostgreSQL was running at once for the run's database.
    pub fn active_max(&self) -> usize {
        self.samples
            .iter()
            .map(|sample| sample.value.active)
            .max()
            .unwrap_or(0)
    }
}

/// The work of the variant's statements since the reset, from the server's
/// statistics; `None` when the server keeps none.
pub async fn database_work(database: &RunDatabase) -> Result<Option<DatabaseWork>> {
    if !database.has_statement_stats() {
        return Ok(None);
    }
    let totals = database.statement_totals().await?;
    Ok(Some(DatabaseWork {
        statements: totals.calls,
        shared_blocks: totals.shared_blocks,
        rows: totals.rows,
        total_ms: totals.total_ms,
    }))
}

/// Places a new order for each of `users` (on a connection of the harness's
/// own, behind the endpoint's back) and asks the endpoint again: the new
/// order must be on top.
pub async fn freshness(
    ctx: &RunContext,
    database: &RunDatabase,
    pool: &PgPool,
    code: Code,
    users: &[i64],
) -> Result<Freshness> {
    let check = async {
        let mut probe = database.probe_connection().await?;
        let mut freshness = Freshness {
            checked: users.len(),
            ..Freshness::default()
        };
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
                freshness.stale += 1;
                freshness.first_stale.get_or_insert_with(|| match &answer {
                    Ok(orders) => describe_difference(user_id, orders, &expected),
                    Err(error) => format!("user {user_id}: {error}"),
                });
            }
        }
        Ok::<_, HarnessError>(freshness)
    };
    match ctx.within("the freshness check", CHECK_LIMIT, check).await {
        Some(result) => result,
        None => Ok(Freshness {
            checked: users.len(),
            stale: users.len(),
            first_stale: Some("the endpoint did not answer".to_owned()),
        }),
    }
}

/// The plans of one real call for `user_id`, captured with `auto_explain`
/// (where the server log cannot be read: the generic plans of the
/// statements it ran), and what they say about `orders`; `None` when the
/// call read no `orders`.
pub async fn capture_plan(
    ctx: &RunContext,
    database: &RunDatabase,
    code: Code,
    user_id: i64,
) -> Result<Option<(PlanFigures, Vec<Plan>)>> {
    let capture = database
        .capture_plans(move |pool| async move { (code.recent_orders)(&pool, user_id).await });
    let Some(captured) = ctx.within("capturing the plan", CHECK_LIMIT, capture).await else {
        return Ok(None);
    };
    let (answer, plans) = captured?;
    let returned = answer.map_or(0, |orders| orders.len());
    Ok(plan_figures(&plans, returned).map(|figures| (figures, plans)))
}

/// What `plans` say about the reads of `orders`.
pub fn plan_figures(plans: &[Plan], rows_returned: usize) -> Option<PlanFigures> {
    let reading: Vec<&Plan> = plans
        .iter()
        .filter(|plan| !plan.scans_of(TABLE).is_empty())
        .collect();
    if reading.is_empty() {
        return None;
    }
    let mut figures = PlanFigures {
        rows_returned,
        ..PlanFigures::default()
    };
    // Rows are known only where every plan was measured as it ran.
    let mut rows = reading
        .iter()
        .all(|plan| plan.is_analyzed())
        .then(RowsRead::default);
    for plan in &reading {
        for scan in plan.scans_of(TABLE) {
            if let Some(rows) = rows.as_mut() {
                let loops = scan.loops.unwrap_or(1.0);
                let removed = scan.rows_removed_by_filter.unwrap_or(0.0) * loops;
                rows.read += scan.actual_rows.unwrap_or(0.0) * loops + removed;
                rows.removed += removed;
            }
            figures.through_index |= scan.is_index_scan();
            if !figures.scans.contains(&scan.label()) {
                figures.scans.push(scan.label());
            }
        }
        figures.sorts |= plan
            .nodes()
            .iter()
            .any(|node| node.node_type.ends_with("Sort"));
    }
    figures.rows = rows;
    figures.shared_blocks = plans
        .iter()
        .filter_map(Plan::shared_blocks)
        .reduce(|a, b| a + b);
    Some(figures)
}

/// What a production dashboard shows: the top statements, the slow-query
/// log, the table's indexes.
pub struct Dashboard {
    top: Vec<StatementStats>,
    slow: Vec<LogEntry>,
    indexes: Vec<String>,
    /// Why the server log (slow-query lines, real calls' plans) cannot be read here.
    log_unavailable: Option<String>,
}

/// Reads the dashboard, with the slow-query log written since `mark`.
pub async fn dashboard(database: &RunDatabase, mark: Option<LogMark>) -> Result<Dashboard> {
    let slow = match mark {
        Some(mark) => database
            .log_since(mark)
            .await?
            .into_iter()
            .filter(|entry| entry.duration_ms().is_some() && !entry.message.contains("plan:"))
            .collect(),
        None => Vec::new(),
    };
    Ok(Dashboard {
        top: database.statement_stats(3).await?,
        slow,
        indexes: database.index_definitions(TABLE).await?,
        log_unavailable: database.server_log_unavailable().map(str::to_owned),
    })
}

/// `CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)` as
/// `orders_pkey: unique btree (id)`.
fn index_summary(definition: &str) -> String {
    let (head, tail) = definition.split_once(" ON ").unwrap_or((definition, ""));
    let name = head.rsplit(' ').next().unwrap_or(head);
    let unique = if head.contains(" UNIQUE ") {
        "unique "
    } else {
        ""
    };
    let how = tail.split_once(" USING ").map_or(tail, |(_, how)| how);
    format!("{name}: {unique}{how}")
}

/// Records the metrics and the evidence of a run.
pub fn record(
    ctx: &RunContext,
    figures: &Figures,
    watched: &Watched,
    dashboard: &Dashboard,
    plan: Option<&(PlanFigures, Vec<Plan>)>,
    sample_user: i64,
) {
    let requests = &figures.requests;
    let answered = requests.answered().max(1) as f64;
    let mut metrics = vec![
        ("p50_ms", requests.p50_ms),
        ("p95_ms", requests.p95_ms),
        ("wrong_answers", requests.wrong_answers as f64),
        ("stale_answers", figures.freshness.stale as f64),
        ("active_queries_max", watched.active_max() as f64),
    ];
    if dashboard.log_unavailable.is_none() {
        metrics.push(("slow_log_lines", dashboard.slow.len() as f64));
    }
    if let Some(buffers) = figures.buffers_per_request() {
        metrics.push(("buffers_per_request", buffers.round()));
    }
    if let Some(work) = &figures.work {
        metrics.push((
            "queries_per_request",
            (work.statements as f64 / answered * 100.0).round() / 100.0,
        ));
        metrics.push((
            "db_ms_per_request",
            (work.total_ms / answered * 100.0).round() / 100.0,
        ));
    }
    if let Some((plan, plans)) = plan {
        let seq_scans: usize = plans.iter().map(|plan| plan.seq_scans_on(TABLE)).sum();
        metrics.push(("seq_scans_on_orders", seq_scans as f64));
        if let Some(rows) = plan.rows {
            metrics.push(("plan_rows_read", rows.read.round()));
            metrics.push(("rows_removed_by_filter", rows.removed.round()));
        }
    }
    for (name, value) in metrics {
        ctx.metric(name, value);
    }
    record_traffic(ctx, figures);
    record_dashboard(ctx, dashboard);
    record_plan(ctx, plan, sample_user, dashboard.log_unavailable.as_deref());
    record_answers(ctx, figures);
}

/// The pictures of a run: how long requests took, and the database's work per request.
pub fn record_plots(ctx: &RunContext, latencies_ms: Points, figures: &Figures) {
    ctx.series("request_latency_ms", latencies_ms);
    ctx.plot(
        Plot::new(
            "latency",
            PlotKind::Histogram,
            "How long order-history requests took",
        )
        .x("latency", "ms")
        .log_x()
        .line("request_latency_ms", "requests")
        .bound(
            millis(SLOW_LOG_THRESHOLD),
            "the slow-query log's threshold: 10 ms",
        ),
    );
    let mut work = Vec::new();
    if let Some(buffers) = figures.buffers_per_request() {
        work.push([0.0, buffers.max(1.0)]);
    }
    if let Some(plan) = &figures.plan {
        // A generic plan (a server without its log) measured no rows.
        if let Some(rows) = &plan.rows {
            work.push([1.0, rows.read.max(1.0)]);
        }
        work.push([2.0, (plan.rows_returned as f64).max(1.0)]);
    }
    ctx.series("work_per_request", work);
    ctx.plot(
        Plot::new(
            "work",
            PlotKind::Bars,
            "The database's work for one request",
        )
        .x("what PostgreSQL counted", "")
        .y("count", "")
        .log_y()
        .categories([
            "shared buffers touched",
            "rows the plan read",
            "rows returned",
        ])
        .line("work_per_request", "per request")
        .bound(BUFFERS_PER_REQUEST_BOUND, "bound on buffers: 40 a request"),
    );
}

fn record_traffic(ctx: &RunContext, figures: &Figures) {
    let requests = &figures.requests;
    ctx.evidence(format!(
        "{} order-history requests for random users, {} at a time (seed {}), on a pool of {}: {} answered, {} failed; latency p50 {:.2} ms, p95 {:.2} ms",
        requests.finished, WORKLOAD.concurrency, ctx.seed(), POOL.max_connections,
        requests.answered(), requests.failed, requests.p50_ms, requests.p95_ms
    ));
    match &figures.work {
        Some(work) => {
            let answered = requests.answered().max(1) as f64;
            ctx.evidence(format!(
                "PostgreSQL's count for those requests (pg_stat_statements): {} statements, {} rows, {} shared buffers touched, {:.0} ms executing — {:.2} statements and {} shared buffers per request (bound {BUFFERS_PER_REQUEST_BOUND:.0})",
                work.statements, work.rows, grouped(work.shared_blocks as f64), work.total_ms,
                work.statements as f64 / answered, grouped((work.shared_blocks as f64 / answered).round())
            ));
        }
        None => ctx.evidence("this server keeps no pg_stat_statements: the work per request comes from the captured plan"),
    }
}

fn record_dashboard(ctx: &RunContext, dashboard: &Dashboard) {
    for stats in &dashboard.top {
        ctx.evidence(stats.to_string());
    }
    if let Some(why) = &dashboard.log_unavailable {
        ctx.evidence(format!(
            "slow-query log: unavailable, the server log cannot be read here: {why} (pg_stat_statements above ranks the statements by time instead)"
        ));
    }
    for entry in dashboard.slow.iter().take(3) {
        ctx.evidence(format!("slow-query log: {}", entry.as_log_line()));
    }
    if dashboard.slow.len() > 3 {
        ctx.evidence(format!(
            "slow-query log: … and {} more lines over {} ms",
            dashboard.slow.len() - 3,
            SLOW_LOG_THRESHOLD.as_millis()
        ));
    }
    let indexes: Vec<String> = dashboard
        .indexes
        .iter()
        .map(|definition| index_summary(definition))
        .collect();
    ctx.evidence(format!("indexes on orders: {}", indexes.join("; ")));
}

fn record_plan(
    ctx: &RunContext,
    plan: Option<&(PlanFigures, Vec<Plan>)>,
    sample_user: i64,
    log_unavailable: Option<&str>,
) {
    let Some((figures, plans)) = plan else {
        ctx.evidence(format!(
            "no plan reading orders was captured for user {sample_user}: the call ran no statement on the table{}",
            if log_unavailable.is_some() { " that pg_stat_statements recorded" } else { "" }
        ));
        return;
    };
    let source = match figures.rows {
        Some(_) => format!("EXPLAIN (ANALYZE, BUFFERS) of the endpoint's call for user {sample_user} (auto_explain)"),
        None => format!("EXPLAIN (generic plan: estimates, nothing run) of the statement the endpoint's call for user {sample_user} ran, as pg_stat_statements recorded it"),
    };
    for plan in plans
        .iter()
        .filter(|plan| !plan.scans_of(TABLE).is_empty())
        .take(3)
    {
        ctx.evidence(format!("{source}: {}", plan.evidence_line()));
    }
    match (figures.rows, log_unavailable) {
        (Some(rows), _) => ctx.evidence(format!(
            "rows of orders the call read: {} ({} thrown away by a filter), to return {}",
            grouped(rows.read.round()),
            grouped(rows.removed.round()),
            figures.rows_returned
        )),
        (None, Some(why)) => ctx.evidence(format!(
            "the plan of the real call (auto_explain), with the rows it read and its buffers, is unavailable: the server log cannot be read here: {why}"
        )),
        (None, None) => {}
    }
}

fn record_answers(ctx: &RunContext, figures: &Figures) {
    let (requests, freshness) = (&figures.requests, &figures.freshness);
    if let Some(error) = &requests.first_error {
        ctx.evidence(format!(
            "{} requests failed; the first: {error}",
            requests.failed
        ));
    }
    if let Some(wrong) = &requests.first_wrong {
        ctx.evidence(format!(
            "{} answers differ from the reference; the first: {wrong}",
            requests.wrong_answers
        ));
    }
    match &freshness.first_stale {
        Some(stale) => ctx.evidence(format!(
            "{} of {} users did not see the order they had just placed; the first: {stale}",
            freshness.stale, freshness.checked
        )),
        None if freshness.checked == 0 => {
            ctx.evidence("no user was answered, so none could be asked again after a new order")
        }
        None => ctx.evidence(format!(
            "a new order for each of {} users showed at once, on top of their history",
            freshness.checked
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_definitions_are_summarised() {
        assert_eq!(
            index_summary("CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)"),
            "orders_pkey: unique btree (id)"
        );
        assert_eq!(
            index_summary("CREATE UNIQUE INDEX orders_code ON public.orders USING hash (status)"),
            "orders_code: unique hash (status)"
        );
    }

    fn plan(json: &str) -> Plan {
        Plan::from_auto_explain(&format!("duration: 1.0 ms  plan:\n{json}")).unwrap()
    }

    #[test]
    fn a_sequential_scan_reads_the_table() {
        let plans = [plan(
            r#"{"Plan": {"Node Type": "Limit", "Actual Rows": 10, "Actual Loops": 1,
                "Shared Hit Blocks": 8334, "Shared Read Blocks": 0,
                "Plans": [{"Node Type": "Gather Merge", "Plans": [{"Node Type": "Sort", "Actual Loops": 3,
                  "Plans": [{"Node Type": "Seq Scan", "Parallel Aware": true, "Relation Name": "orders",
                    "Actual Rows": 33, "Actual Loops": 3, "Rows Removed by Filter": 333300}]}]}]}}"#,
        )];
        let figures = plan_figures(&plans, 10).unwrap();
        assert_eq!(
            figures.scans,
            vec!["Parallel Seq Scan on orders".to_owned()]
        );
        assert!(figures.sorts && !figures.through_index);
        assert_eq!(
            figures.rows,
            Some(RowsRead {
                read: 999_999.0,
                removed: 999_900.0
            })
        );
        assert_eq!(figures.shared_blocks, Some(8334));
    }

    #[test]
    fn a_generic_plan_names_its_scans_and_claims_no_rows() {
        // Planned only: no actual rows, loops or buffers.
        let plans = [plan(
            r#"{"Plan": {"Node Type": "Limit", "Plan Rows": 10,
                "Plans": [{"Node Type": "Sort", "Plan Rows": 100,
                  "Plans": [{"Node Type": "Seq Scan", "Relation Name": "orders", "Plan Rows": 100}]}]}}"#,
        )];
        let figures = plan_figures(&plans, 10).unwrap();
        assert_eq!(figures.scans, vec!["Seq Scan on orders".to_owned()]);
        assert!(figures.sorts);
        assert_eq!((figures.rows, figures.shared_blocks), (None, None));
    }

    #[test]
    fn plans_that_do_not_read_orders_say_nothing() {
        let plans = [plan(r#"{"Plan": {"Node Type": "Result"}}"#)];
        assert_eq!(plan_figures(&plans, 0), None);
    }
}
