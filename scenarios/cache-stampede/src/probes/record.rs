//! The metrics, evidence and plots of a run.

use debuglab_harness::plot::Points;
use debuglab_harness::postgres::{RunDatabase, StatementTotals};
use debuglab_harness::redis::{RunRedis, Ttl};
use debuglab_harness::report::grouped;
use debuglab_harness::{Plot, PlotKind, RunContext};

use super::{percentile, Expected, Watched};
use crate::replica::{Answer, Answered, Response};
use crate::verdict::{Figures, Freshness, Seen, MAX_COMPUTATIONS_PER_EXPIRY, WAVE_GAP};
use crate::workload::{Plan, ReplicaRun, DB_POOL};

/// The width of the windows latencies and answers are grouped in, in ms.
const WINDOW_MS: f64 = 50.0;

/// Keys of the run's Redis database listed in the evidence at most.
const KEYS_LISTED: usize = 5;

/// Records the metrics, the evidence and the plots of a run.
pub fn record(
    ctx: &RunContext,
    plan: &Plan,
    figures: &Figures,
    answered: &[Answered],
    watched: &Watched,
    runs: &[ReplicaRun],
) {
    record_metrics(ctx, figures, answered, watched);
    ctx.evidence(format!(
        "{} replica processes × {} shoppers, each asking for the best sellers every {}–{} ms for {:.1} s (seed {}); the report's TTL is {} ms",
        plan.replicas,
        plan.clients,
        plan.think.as_millis() / 2,
        plan.think.as_millis() * 3 / 2,
        figures.traffic_ms / 1000.0,
        plan.seed,
        plan.ttl.as_millis()
    ));
    record_replicas(ctx, runs);
    let per_period = watched.per_period(figures.ttl_ms, figures.traffic_ms);
    ctx.evidence(format!(
        "computations finished in each {:.0} ms TTL period (pg_stat_statements, every {} ms): {}",
        figures.ttl_ms,
        super::LOOK_EVERY.as_millis(),
        per_period
            .iter()
            .map(|n| format!("{n:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    ctx.evidence(format!(
        "pg_stat_activity, every {} ms: up to {} backends of the run's database at work at once, running a statement rather than waiting for a lock ({} replicas × {} connections in their pools), in {} bursts of work between quiet spells",
        super::LOOK_EVERY.as_millis(),
        watched.peak_concurrent(),
        plan.replicas,
        DB_POOL.max_connections,
        figures.computations.bursts
    ));
    let (hits, misses) = watched.keyspace();
    ctx.evidence(format!(
        "Redis INFO stats during the traffic: keyspace_misses +{}, keyspace_hits +{}",
        grouped(misses as f64),
        grouped(hits as f64)
    ));
    if let Some(freshness) = &figures.freshness {
        ctx.evidence(format!(
            "new sales committed {:.0} ms into the traffic; the report without them was last served to a request that began {}; every report from {:.0} ms on must show them (TTL + twice the slowest request, {:.0} ms, + {} ms): {} of {} did not",
            freshness.changed_at_ms,
            freshness
                .old_served_for_ms
                .map_or("before the commit".to_owned(), |ms| format!("{ms:.0} ms after the commit")),
            freshness.deadline_ms,
            freshness.slowest_ms,
            crate::FRESHNESS_SLACK.as_millis(),
            freshness.stale,
            freshness.checked,
        ));
    }
    record_server_series(ctx, plan, figures, watched, &per_period);
    record_answer_series(ctx, figures, answered);
}

/// One line of evidence per replica process: its requests and latencies.
fn record_replicas(ctx: &RunContext, runs: &[ReplicaRun]) {
    for (index, run) in runs {
        let Some(report) = run
            .as_ref()
            .ok()
            .and_then(|outcome| outcome.report.as_ref())
        else {
            continue;
        };
        let responses = &report.served.responses;
        let latencies: Vec<f64> = responses.iter().map(Response::latency_ms).collect();
        let failed = responses
            .iter()
            .filter(|response| response.2.is_none())
            .count();
        let ready = report.served.ready_ms;
        ctx.evidence(format!(
            "replica {} (ready {:.0} ms {} the traffic began): {} requests, {failed} failed; median {:.1} ms, p99 {:.0} ms, slowest {:.0} ms",
            index.map_or("?".to_owned(), |index| index.to_string()),
            ready.abs(),
            if ready <= 0.0 { "before" } else { "after" },
            latencies.len(),
            percentile(&latencies, 50.0).unwrap_or(0.0),
            percentile(&latencies, 99.0).unwrap_or(0.0),
            percentile(&latencies, 100.0).unwrap_or(0.0),
        ));
    }
}

/// The most computations the timeline draws, row by row.
const TIMELINE_ROWS: usize = 120;

/// Records which computations ran at the same time, by the server log, or
/// why that is unknown.
pub fn record_waves(ctx: &RunContext, figures: &Figures, logged: &super::Logged) {
    let computations = match logged {
        Ok(computations) => computations,
        Err(why) => {
            ctx.evidence(format!(
                "which computations ran at the same time is unknown: {why}; computations per expiry judge alone"
            ));
            return;
        }
    };
    let Some(at_once) = &figures.computations.at_once else {
        return;
    };
    ctx.metric(
        "computations_per_wave",
        (at_once.per_wave() * 100.0).round() / 100.0,
    );
    ctx.metric("waves_of_computations", at_once.waves as f64);
    ctx.metric("most_computations_at_once", at_once.most as f64);
    ctx.evidence(format!(
        "PostgreSQL's log (auto_explain, each statement's end and duration): {} computations of the report in {} (each begun while another ran or less than {:.0} ms after the first ended), up to {} at one moment",
        at_once.computations,
        crate::verdict::waves(at_once.waves),
        WAVE_GAP * figures.ttl_ms,
        at_once.most
    ));
    let step = computations.len().div_ceil(TIMELINE_ROWS).max(1);
    ctx.series(
        "computation_timeline",
        computations.iter().step_by(step).copied(),
    );
    let title = match step {
        1 => "Each computation of the report, start to end".to_owned(),
        _ => format!("One in {step} computations of the report, start to end"),
    };
    ctx.plot(
        Plot::new("computation_timeline", PlotKind::Timeline, &title)
            .x("time since the traffic began (PostgreSQL's log)", "ms")
            .y("computation", "")
            .line("computation_timeline", "computing the report"),
    );
}

/// Records what a storefront started after the traffic got.
pub fn record_after_traffic(ctx: &RunContext, freshness: &Freshness) {
    ctx.metric(
        "stale_after_traffic",
        f64::from(u8::from(freshness.after_traffic != Seen::Fresh)),
    );
    ctx.evidence(format!(
        "a storefront started after the traffic, once the TTL had passed since the last replica stopped ({:.0} ms after the commit), got {}",
        freshness.after_traffic_ms,
        match &freshness.after_traffic {
            Seen::Fresh => "the report with the new sales".to_owned(),
            Seen::Stale => "the report without the new sales".to_owned(),
            Seen::Wrong => "a report that is neither".to_owned(),
            Seen::Failed(error) => format!("no report: {error}"),
        }
    ));
}

fn record_metrics(ctx: &RunContext, figures: &Figures, answered: &[Answered], watched: &Watched) {
    let (requests, computations) = (&figures.requests, &figures.computations);
    ctx.metric("computations", computations.computations);
    ctx.metric("expiries", (computations.expiries * 100.0).round() / 100.0);
    ctx.metric("computation_ms", computations.mean_ms.round());
    ctx.metric("bursts_of_work", computations.bursts as f64);
    let per_burst = match computations.bursts {
        0 => 0.0,
        bursts => computations.computations / bursts as f64,
    };
    ctx.metric(
        "computations_per_burst",
        (per_burst * 100.0).round() / 100.0,
    );
    ctx.metric(
        "computations_per_expiry",
        (computations.per_expiry() * 100.0).round() / 100.0,
    );
    ctx.metric(
        "peak_concurrent_computations",
        computations.peak_concurrent as f64,
    );
    ctx.metric("replicas", figures.replicas as f64);
    ctx.metric("shoppers_per_replica", figures.clients as f64);
    ctx.metric("ttl_ms", figures.ttl_ms);
    ctx.metric("traffic_ms", figures.traffic_ms.round());
    ctx.metric("answered_requests", requests.answered as f64);
    ctx.metric("failed_requests", requests.failed as f64);
    ctx.metric("wrong_answers", requests.wrong as f64);
    ctx.metric("hung_requests", requests.hung as f64);
    ctx.metric("replica_failures", figures.replica_failures.len() as f64);
    let (hits, misses) = watched.keyspace();
    ctx.metric("keyspace_misses", misses as f64);
    ctx.metric("keyspace_hits", hits as f64);
    let latencies: Vec<f64> = answered.iter().map(Answered::latency_ms).collect();
    for (name, p) in [
        ("latency_p50_ms", 50.0),
        ("latency_p99_ms", 99.0),
        ("latency_max_ms", 100.0),
    ] {
        ctx.metric(name, percentile(&latencies, p).unwrap_or(0.0));
    }
    if let Some(freshness) = &figures.freshness {
        ctx.metric("stale_answers", freshness.stale as f64);
        ctx.metric("freshness_checked_answers", freshness.checked as f64);
        ctx.metric("sales_committed_at_ms", freshness.changed_at_ms.round());
        if let Some(ms) = freshness.old_served_for_ms {
            ctx.metric("old_report_served_for_ms", ms.round());
        }
    }
}

/// The series of the server's work, as its statistics and Redis saw it.
fn record_server_series(
    ctx: &RunContext,
    plan: &Plan,
    figures: &Figures,
    watched: &Watched,
    per_period: &[f64],
) {
    let ttl = figures.ttl_ms;
    ctx.series(
        "computations_per_period",
        per_period.iter().enumerate().map(|(i, n)| [i as f64, *n]),
    );
    ctx.plot(
        Plot::new(
            "computations_per_expiry",
            PlotKind::Bars,
            "Computations of the report in each TTL period",
        )
        .x("TTL period since the traffic began", "")
        .y("computations (pg_stat_statements)", "computations")
        .line("computations_per_period", "computations finished")
        .bound(MAX_COMPUTATIONS_PER_EXPIRY, "bound: 2 per expiry")
        .categories(
            (0..per_period.len())
                .map(|i| format!("{:.0}–{:.0} ms", i as f64 * ttl, (i + 1) as f64 * ttl)),
        ),
    );
    let looks = watched.looks.iter().filter(|look| look.at_ms >= 0.0);
    let baseline = watched.baseline;
    ctx.series(
        "computations_so_far",
        looks
            .clone()
            .map(|look| [look.at_ms, (look.computations - baseline).max(0.0)]),
    );
    ctx.plot(
        Plot::new(
            "computations",
            PlotKind::Line,
            "Computations of the report so far",
        )
        .x("time since the traffic began", "ms")
        .y("computations (pg_stat_statements)", "computations")
        .line("computations_so_far", "computations")
        .bound(figures.computations.expiries, "one per expiry"),
    );
    record_activity_series(ctx, plan, watched);
}

/// The series of the backends at work and of Redis' misses, look by look.
fn record_activity_series(ctx: &RunContext, plan: &Plan, watched: &Watched) {
    let looks = watched.looks.iter().filter(|look| look.at_ms >= 0.0);
    ctx.series(
        "running_backends",
        looks.clone().map(|look| [look.at_ms, look.running as f64]),
    );
    ctx.plot(
        Plot::new(
            "running_at_once",
            PlotKind::Line,
            "Backends running in the run's database",
        )
        .x("time since the traffic began", "ms")
        .y("backends running (pg_stat_activity)", "backends")
        .line("running_backends", "running")
        .bound(1.0, "one computation at a time")
        .bound(
            (plan.replicas as u32 * DB_POOL.max_connections) as f64,
            "every pool connection",
        ),
    );
    let misses: Points = looks
        .clone()
        .zip(looks.skip(1))
        .map(|(before, after)| [after.at_ms, (after.misses - before.misses) as f64])
        .collect();
    ctx.series("keyspace_misses", misses);
    ctx.plot(
        Plot::new("keyspace_misses", PlotKind::Line, "Redis keyspace misses")
            .x("time since the traffic began", "ms")
            .y(
                &format!(
                    "misses per {} ms (INFO stats)",
                    super::LOOK_EVERY.as_millis()
                ),
                "misses",
            )
            .line("keyspace_misses", "keyspace misses"),
    );
}

/// The series of what the shoppers got: latency and fresh reports, by the
/// time their requests began.
fn record_answer_series(ctx: &RunContext, figures: &Figures, answered: &[Answered]) {
    let windows = windows(answered, figures.traffic_ms);
    ctx.series(
        "latency_slowest",
        windows.iter().map(|w| [w.from_ms, w.slowest_ms]),
    );
    ctx.series(
        "latency_median",
        windows.iter().map(|w| [w.from_ms, w.median_ms]),
    );
    ctx.plot(
        Plot::new(
            "latency",
            PlotKind::Line,
            "Latency of the home page's report around each expiry",
        )
        .x("time the request began", "ms")
        .y(&format!("latency per {WINDOW_MS:.0} ms of requests"), "ms")
        .log_y()
        .line("latency_slowest", "slowest")
        .line("latency_median", "median"),
    );
    if let Some(freshness) = &figures.freshness {
        ctx.series(
            "answers_with_new_sales",
            windows
                .iter()
                .filter_map(|w| Some([w.from_ms, w.fresh_share?])),
        );
        ctx.plot(
            Plot::new("freshness", PlotKind::Line, "Reports showing the new sales")
                .x("time the request began", "ms")
                .y("share of reports with the new sales", "%")
                .line("answers_with_new_sales", "with the new sales")
                .bound(100.0, &format!("all, from {:.0} ms", freshness.deadline_ms)),
        );
    }
}

/// Requests that began in one window of [`WINDOW_MS`].
struct Window {
    from_ms: f64,
    slowest_ms: f64,
    median_ms: f64,
    /// The share of reports with the new sales, in %.
    fresh_share: Option<f64>,
}

fn windows(answered: &[Answered], traffic_ms: f64) -> Vec<Window> {
    let count = (traffic_ms / WINDOW_MS).ceil() as usize;
    let mut grouped: Vec<Vec<&Answered>> = vec![Vec::new(); count];
    for answer in answered {
        let index = (answer.at_ms() / WINDOW_MS).floor().max(0.0) as usize;
        if let Some(window) = grouped.get_mut(index) {
            window.push(answer);
        }
    }
    grouped
        .iter()
        .enumerate()
        .filter(|(_, window)| !window.is_empty())
        .map(|(index, window)| {
            let latencies: Vec<f64> = window.iter().map(|a| a.latency_ms()).collect();
            let reports: Vec<&&Answered> = window
                .iter()
                .filter(|a| matches!(a.answer(), Answer::Before | Answer::After))
                .collect();
            let fresh = reports
                .iter()
                .filter(|a| a.answer() == Answer::After)
                .count();
            Window {
                from_ms: index as f64 * WINDOW_MS,
                slowest_ms: percentile(&latencies, 100.0).unwrap_or(0.0),
                median_ms: percentile(&latencies, 50.0).unwrap_or(0.0),
                fresh_share: (!reports.is_empty())
                    .then(|| 100.0 * fresh as f64 / reports.len() as f64),
            }
        })
        .collect()
}

/// Records what the servers hold after the traffic: what one computation
/// costs and the statements PostgreSQL counted, and the keys in Redis.
pub async fn record_stores(
    ctx: &RunContext,
    database: &RunDatabase,
    redis: &RunRedis,
    expected: &Expected,
    totals: StatementTotals,
) {
    ctx.metric("blocks_per_computation", expected.blocks as f64);
    ctx.evidence(format!(
        "PostgreSQL (pg_stat_statements): {} statements executed, {} shared blocks touched in the run's database, the run's own request before the traffic included; one computation of the report touches {} ({})",
        grouped(totals.calls as f64),
        grouped(totals.shared_blocks as f64),
        grouped(expected.blocks as f64),
        expected.plan
    ));
    if let Ok(statements) = database.statement_stats(2).await {
        for statement in statements {
            ctx.evidence(statement.to_string());
        }
    }
    ctx.evidence(format!(
        "best seller before the new sales: {}; with them: {}",
        expected.leaders.0, expected.leaders.1
    ));
    if let Ok(keys) = redis.key_ttls("*", KEYS_LISTED).await {
        let listed: Vec<String> = keys
            .into_iter()
            .map(|(key, ttl)| format!("{key} ({})", ttl_words(ttl)))
            .collect();
        ctx.evidence(format!(
            "Redis keys after the traffic: {}",
            if listed.is_empty() {
                "none".to_owned()
            } else {
                listed.join(", ")
            }
        ));
    }
}

/// A `PTTL` in words, sentinels included.
pub(super) fn ttl_words(ttl: Ttl) -> String {
    match ttl {
        Ttl::Never => "never expires".to_owned(),
        Ttl::Gone => "gone".to_owned(),
        Ttl::Expires(left) => format!("expires in {} ms", left.as_millis()),
    }
}
