//! The load: four replica processes of the storefront, twelve shoppers
//! each, asking for the best sellers every 20 ms or so for a second, while
//! the report's 200 ms TTL runs out four or five times; 0.2 s in, new sales
//! are committed behind the storefront's back.
//!
//! The run drives *replica processes* with [`RunContext::drive`] (so the
//! harness's `requests_*` figures count replica processes); each replica
//! drives its own shoppers (see [`crate::replica`]). In a live run the
//! replicas serve in batches of [`LIVE_BATCH`], one after another, until
//! the run is stopped, and no sales are committed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use debuglab_harness::guard::Monitor;
use debuglab_harness::postgres::{LogMark, RunDatabase, StatementTotals};
use debuglab_harness::redis::RunRedis;
use debuglab_harness::replica::{self as harness_replica, ReplicaOutcome, ReplicaSpec};
use debuglab_harness::workload::{Workload, WorkloadOutcome};
use debuglab_harness::{HarnessError, PoolSettings, Result, RunContext};

use crate::probes::{self, Asker, Expected, Watch};
use crate::replica::{Answer, Answered, ReplicaReport};
#[cfg(test)]
use crate::verdict::Seen;
use crate::verdict::{
    expiries, Computations, Figures, Freshness, Requests, FRESHNESS_SLACK, WAVE_GAP,
};
use crate::{CacheConfig, Code, SALES};

/// Replica processes serving at once.
pub const REPLICAS: usize = 4;
/// Shoppers per replica, each one request at a time.
pub const CLIENTS: usize = 12;
/// A shopper's pause between requests, on average.
pub const THINK: Duration = Duration::from_millis(20);
/// The storefront's configuration: the report's TTL.
pub const CONFIG: CacheConfig = CacheConfig {
    ttl: Duration::from_millis(200),
};
/// How long the traffic lasts in an ordinary run: five TTLs.
pub const TRAFFIC: Duration = Duration::from_millis(1000);
/// When the new sales are committed, after the traffic's start.
pub const SALES_AT: Duration = Duration::from_millis(200);
/// Time for the replica processes to start and open their pools before the
/// traffic (one that starts late serves the rest of it).
pub const STARTUP: Duration = Duration::from_millis(350);
/// In a live run, how long one replica process serves before the next takes over.
pub const LIVE_BATCH: Duration = Duration::from_secs(10);
/// Each replica's PostgreSQL pool.
pub const DB_POOL: PoolSettings = PoolSettings {
    max_connections: 4,
    acquire_timeout: Duration::from_secs(10),
};
/// Each replica's Redis pool: one connection per shopper.
pub const REDIS_POOL: PoolSettings = PoolSettings {
    max_connections: CLIENTS as u32,
    acquire_timeout: Duration::from_secs(10),
};

/// The run's workload: its "requests" are replica processes, all started at
/// once (in a live run, a new one at most once a second).
pub const WORKLOAD: Workload = Workload {
    requests: REPLICAS,
    concurrency: REPLICAS,
    max_duration: Duration::from_secs(60),
    hard_limit: Duration::from_secs(65),
    live_rate: 1,
};

/// How long one replica process may run before it is killed.
const REPLICA_LIMIT: Duration = Duration::from_secs(30);

/// How a run's traffic is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Replica processes.
    pub replicas: usize,
    /// Shoppers per replica.
    pub clients: usize,
    /// A shopper's average pause between requests.
    pub think: Duration,
    /// The report's TTL.
    pub ttl: Duration,
    /// How long each replica serves.
    pub traffic: Duration,
    /// When the new sales are committed after the traffic's start (`None`: never).
    pub sales_at: Option<Duration>,
    /// Seed of the shoppers' pauses.
    pub seed: u64,
    /// Whether the replicas start together when the run says go (or each
    /// on its own, [`STARTUP`] after it was started: a live run's batches).
    pub barrier: bool,
}

/// The scenario's load: 4 replicas × 12 shoppers for 1 s, sales at 0.2 s.
pub fn standard_plan(seed: u64) -> Plan {
    Plan {
        replicas: REPLICAS,
        clients: CLIENTS,
        think: THINK,
        ttl: CONFIG.ttl,
        traffic: TRAFFIC,
        sales_at: Some(SALES_AT),
        seed,
        barrier: true,
    }
}

/// A live run's load: batches of [`LIVE_BATCH`], no sales.
pub fn live_plan(seed: u64) -> Plan {
    Plan {
        traffic: LIVE_BATCH,
        sales_at: None,
        barrier: false,
        ..standard_plan(seed)
    }
}

impl Plan {
    /// The arguments of replica process `replica` running the code called
    /// `code`, its traffic starting at `start`.
    pub fn replica_args(&self, code: &str, replica: usize, start: SystemTime) -> Vec<String> {
        let start_ms = start
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        [
            ("--code", code.to_owned()),
            ("--replica", replica.to_string()),
            ("--clients", self.clients.to_string()),
            ("--start-unix-ms", start_ms.to_string()),
            ("--serve-ms", self.traffic.as_millis().to_string()),
            ("--think-ms", self.think.as_millis().to_string()),
            ("--ttl-ms", self.ttl.as_millis().to_string()),
            ("--seed", self.seed.to_string()),
        ]
        .into_iter()
        .flat_map(|(name, value)| [name.to_owned(), value])
        .chain(self.barrier.then(|| "--barrier".to_owned()))
        .collect()
    }
}

/// How to start replica process `replica` against the run's stores.
fn spec(args: Vec<String>, urls: &(String, String)) -> ReplicaSpec {
    ReplicaSpec {
        scenario: crate::SCENARIO_ID,
        args,
        env: vec![
            (harness_replica::PG_URL_ENV.to_owned(), urls.0.clone()),
            (harness_replica::REDIS_URL_ENV.to_owned(), urls.1.clone()),
        ],
    }
}

/// What became of one replica process, by its index (`None` for one cut
/// off before it reported, whose index the workload does not say).
pub type ReplicaRun = (
    Option<usize>,
    std::result::Result<ReplicaOutcome<ReplicaReport>, String>,
);

/// Runs the replicas with `code`, commits new sales meanwhile, reads the
/// servers' statistics, checks the report follows the data, and returns the
/// figures the verdict is made of (also recorded on `ctx`).
pub async fn run_replicas(ctx: &RunContext, code: Code) -> Result<Figures> {
    let (database, redis) = tokio::try_join!(ctx.database(Some(&SALES)), ctx.redis())?;
    require_statement_stats(ctx, &database)?;
    let plan = if ctx.is_live() {
        live_plan(ctx.seed())
    } else {
        standard_plan(ctx.seed())
    };
    let urls = (database.url(), redis.url());
    // Before the replicas connect: their statements' plans, with when each
    // ran, go to the server log.
    let plans_logged = database.log_plans_of_later_connections().await;
    // The replicas start up while the run works out what to expect of them.
    let (runs, conducted) = tokio::join!(
        drive_replicas(ctx, code.name, &plan, urls),
        conduct(ctx, &database, &redis, &plan, code),
    );
    let Conducted {
        expected,
        asker,
        start,
        watch,
        at_start,
        log_mark,
        changed_at_ms,
    } = conducted?;
    let stopped = Instant::now();
    // The watch first (it would see the next probe at work), then
    // PostgreSQL's count (before the check after the traffic computes).
    let mut watched = watch.stop(start).await;
    let totals = database.statement_totals().await?;
    let answered = answers(&runs, &expected);
    let mut figures = tally(&plan, &runs, &answered);
    figures.traffic_ms = match ctx.is_live() {
        true => probes::millis_since(start),
        false => plan.traffic.as_secs_f64() * 1000.0,
    };
    // In computations since the statistics were reset, as the watch counts.
    let blocks = expected.blocks.max(1) as f64;
    let (since_reset, before) = (
        totals.shared_blocks as f64 / blocks,
        at_start.shared_blocks as f64 / blocks,
    );
    watched.baseline = before;
    let mean_ms = probes::computation_ms(&database, expected.blocks).await?;
    let computations = (since_reset - before).round();
    let log = plans_logged.and_then(|()| log_mark.ok_or_else(|| "no log mark".to_owned()));
    let counted = computations as usize;
    let logged =
        probes::logged_computations(&database, log, start, expected.blocks, counted).await?;
    figures.computations = Computations {
        computations,
        mean_ms,
        expiries: expiries(figures.traffic_ms, figures.ttl_ms, mean_ms),
        bursts: watched.bursts(since_reset),
        peak_concurrent: watched.peak_concurrent(),
        at_once: logged
            .as_deref()
            .ok()
            .map(|logged| probes::at_once(logged, WAVE_GAP * figures.ttl_ms)),
    };
    figures.freshness = changed_at_ms.map(|at| freshness(&answered, at, plan.ttl));
    probes::record(ctx, &plan, &figures, &answered, &watched, &runs);
    probes::record_waves(ctx, &figures, &logged);
    probes::record_stores(ctx, &database, &redis, &expected, totals).await;
    if let Some(fresh) = &mut figures.freshness {
        // Once the TTL has passed since the last replica stopped, no report
        // it stored may be served any more.
        tokio::time::sleep_until(stopped + plan.ttl + AFTER_TRAFFIC_MARGIN).await;
        fresh.after_traffic_ms = probes::millis_since(start) - fresh.changed_at_ms;
        fresh.after_traffic = asker.ask(ctx, &expected).await;
        probes::record_after_traffic(ctx, fresh);
    }
    asker.close().await;
    Ok(figures)
}

/// The run counts computations with `pg_stat_statements`: a server without
/// it cannot run the scenario.
fn require_statement_stats(ctx: &RunContext, database: &RunDatabase) -> Result<()> {
    if database.has_statement_stats() {
        return Ok(());
    }
    Err(HarnessError::Setup {
        scenario: ctx.info().id.to_owned(),
        detail: "this PostgreSQL server does not load pg_stat_statements, which the run needs to count the report's computations".to_owned(),
    })
}

/// What the run's conductor set going: the reports it expects, its own
/// storefront, the traffic's start, the watch, the run database's statement
/// totals at the start, and when the new sales were committed (ms after the
/// start), if they were.
struct Conducted {
    expected: Expected,
    asker: Asker,
    start: SystemTime,
    watch: Watch,
    at_start: StatementTotals,
    log_mark: Option<LogMark>,
    changed_at_ms: Option<f64>,
}

/// The run's side of the traffic: works out the reports to expect, waits
/// until every replica is ready, starts watching, puts the report in the
/// cache as a storefront that has been up for a while would have, says go,
/// and commits the new sales on time.
async fn conduct(
    ctx: &RunContext,
    database: &RunDatabase,
    redis: &RunRedis,
    plan: &Plan,
    code: Code,
) -> Result<Conducted> {
    let (expected, asker, sales_conn) = tokio::try_join!(
        probes::expected_reports(database),
        Asker::new(database, redis, code.ask, plan.ttl),
        database.probe_connection(),
    )?;
    let ready = async {
        match plan.barrier {
            true => probes::wait_until_ready(redis, plan.replicas, READY_LIMIT).await,
            false => Ok(plan.replicas),
        }
    };
    let (ready, watch) =
        tokio::try_join!(ready, Watch::start(ctx, database, redis, expected.blocks))?;
    if ready < plan.replicas {
        ctx.evidence(format!(
            "only {ready} of {} replica processes were ready after {} s; the traffic started without the others",
            plan.replicas,
            READY_LIMIT.as_secs()
        ));
    }
    database.reset_statement_stats().await?;
    // Right before the start, so that the report is in the cache when it comes.
    let warmed = asker.ask(ctx, &expected).await;
    // Before the new sales, the report without them is the right one.
    if warmed != crate::verdict::Seen::Stale {
        ctx.evidence(format!(
            "the report asked for before the traffic, to have it in the cache, was not the database's: {warmed:?}"
        ));
    }
    let (at_start, log_mark) = tokio::try_join!(database.statement_totals(), database.log_mark())?;
    let start = match plan.barrier {
        true => SystemTime::now(),
        false => SystemTime::now() + STARTUP,
    };
    if plan.barrier {
        probes::say_go(redis, plan.replicas).await?;
    }
    let changed_at_ms = match plan.sales_at {
        Some(at) => Some(probes::commit_new_sales(sales_conn, start, at).await?),
        None => None,
    };
    Ok(Conducted {
        expected,
        asker,
        start,
        watch,
        at_start,
        log_mark,
        changed_at_ms,
    })
}

/// How long the run waits for every replica to be ready.
pub const READY_LIMIT: Duration = Duration::from_secs(10);

/// How long past the TTL after the last replica stopped the run asks a new storefront.
pub const AFTER_TRAFFIC_MARGIN: Duration = Duration::from_millis(50);

/// Every answer of every replica, judged against the `expected` reports.
fn answers(runs: &[ReplicaRun], expected: &Expected) -> Vec<Answered> {
    runs.iter()
        .filter_map(|(_, run)| run.as_ref().ok()?.report.as_ref())
        .flat_map(|report| report.served.responses.iter())
        .map(|response| response.judged(expected.before, expected.after))
        .collect()
}

/// Starts the replica processes (all at once; in a live run one batch after
/// another) and waits for their reports.
async fn drive_replicas(
    ctx: &RunContext,
    code: &'static str,
    plan: &Plan,
    urls: (String, String),
) -> Vec<ReplicaRun> {
    let live = ctx.is_live();
    // In a live run, what a replica's guard saw joins the run's at once, so
    // that a replica that blocked its threads stops the batches; otherwise
    // it joins once every replica has reported.
    let monitor = live.then(Monitor::current).flatten();
    let limit = if live {
        LIVE_BATCH + REPLICA_LIMIT
    } else {
        REPLICA_LIMIT.min(ctx.remaining())
    };
    let plan = *plan;
    let outcome = {
        let monitor = monitor.clone();
        ctx.drive("replica processes", WORKLOAD, move |index| {
            // Without the barrier (a live run's batches), a replica starts on its own.
            let start = SystemTime::now() + STARTUP;
            let args = plan.replica_args(code, index % plan.replicas, start);
            let (spec, monitor) = (spec(args, &urls), monitor.clone());
            async move {
                let mut outcomes =
                    harness_replica::run_replicas::<ReplicaReport>(vec![spec], limit).await?;
                let outcome = outcomes.pop().ok_or_else(|| HarnessError::Setup {
                    scenario: crate::SCENARIO_ID.to_owned(),
                    detail: "a replica process left no outcome".to_owned(),
                })?;
                if let (Some(monitor), Some(report)) = (&monitor, &outcome.report) {
                    monitor.merge(&report.blocking);
                }
                Ok::<_, HarnessError>(outcome)
            }
        })
        .await
    };
    let runs = replica_runs(outcome);
    if monitor.is_none() {
        for report in runs
            .iter()
            .filter_map(|(_, run)| run.as_ref().ok()?.report.as_ref())
        {
            ctx.add_blocking(&report.blocking);
        }
    }
    runs
}

/// The replica processes that ended, by index, and one entry for each that
/// was cut off before it reported.
fn replica_runs(
    outcome: WorkloadOutcome<ReplicaOutcome<ReplicaReport>, HarnessError>,
) -> Vec<ReplicaRun> {
    let mut runs: Vec<ReplicaRun> = outcome
        .records
        .into_iter()
        .map(|record| {
            (
                Some(record.index),
                record.result.map_err(|error| error.to_string()),
            )
        })
        .collect();
    runs.sort_by_key(|(index, _)| *index);
    let cut_off = "was stopped before it reported, with the run's workload".to_owned();
    runs.extend((0..outcome.unfinished).map(|_| (None, Err(cut_off.clone()))));
    runs
}

/// Adds up what the replicas reported — their shoppers' `answered`
/// requests, judged — and every failure.
pub fn tally(plan: &Plan, runs: &[ReplicaRun], answered: &[Answered]) -> Figures {
    let mut figures = Figures {
        replicas: plan.replicas,
        clients: plan.clients,
        ttl_ms: plan.ttl.as_secs_f64() * 1000.0,
        ..Figures::default()
    };
    for (index, run) in runs {
        let name = match index {
            None => "a replica process".to_owned(),
            Some(index) => format!("replica process {index}"),
        };
        let outcome = match run {
            Ok(outcome) => outcome,
            Err(error) if index.is_none() => {
                figures.replica_failures.push(format!("{name} {error}"));
                continue;
            }
            Err(error) => {
                figures
                    .replica_failures
                    .push(format!("{name} failed: {error}"));
                continue;
            }
        };
        if let Some(failure) = failure_of(&name, outcome) {
            figures.replica_failures.push(failure);
        }
        if let Some(report) = &outcome.report {
            add_report(&mut figures, report);
        }
    }
    let requests = &mut figures.requests;
    requests.answered = answered.len() as u64;
    for answered in answered {
        match answered.answer() {
            Answer::Failed => requests.failed += 1,
            Answer::Wrong => requests.wrong += 1,
            Answer::Before | Answer::After => {}
        }
    }
    figures.pool_problems.sort();
    figures.pool_problems.dedup();
    figures
}

/// Why a replica process counts as failed, if it does.
fn failure_of(name: &str, outcome: &ReplicaOutcome<ReplicaReport>) -> Option<String> {
    let stderr = match outcome.stderr_tail.trim() {
        "" => String::new(),
        tail => format!(": {tail}"),
    };
    if outcome.timed_out {
        Some(format!(
            "{name} was still running after {} s and was killed{stderr}",
            REPLICA_LIMIT.as_secs()
        ))
    } else if outcome.report.is_none() {
        let code = outcome
            .exit_code
            .map_or("a signal".to_owned(), |code| format!("code {code}"));
        Some(format!(
            "{name} exited with {code} before it reported{stderr}"
        ))
    } else if outcome.exit_code != Some(0) {
        Some(format!(
            "{name} exited with {:?}{stderr}",
            outcome.exit_code
        ))
    } else {
        None
    }
}

fn add_report(figures: &mut Figures, report: &ReplicaReport) {
    let requests: &mut Requests = &mut figures.requests;
    let served = &report.served;
    requests.hung += served.hung as u64;
    if requests.first_error.is_none() {
        requests.first_error.clone_from(&served.first_error);
    }
    figures.shortfalls.extend(report.shortfall.iter().cloned());
    figures
        .pool_problems
        .extend(report.pool_problems.iter().cloned());
}

/// Runs `plan` with the code called `code` in replica processes, all at
/// once, against `database` (copied from [`SALES`]) and `redis`, outside a
/// scenario run (the property tests use it): the figures of the requests and
/// of PostgreSQL's computations; no sales are committed.
pub async fn simulate(
    database: &RunDatabase,
    redis: &RunRedis,
    code: &str,
    plan: Plan,
    limit: Duration,
) -> Result<Figures> {
    let expected = probes::expected_reports(database).await?;
    database.reset_statement_stats().await?;
    let plan = Plan {
        barrier: false,
        ..plan
    };
    let start = SystemTime::now() + STARTUP;
    let urls = (database.url(), redis.url());
    let specs = (0..plan.replicas)
        .map(|replica| spec(plan.replica_args(code, replica, start), &urls))
        .collect();
    let outcomes = harness_replica::run_replicas::<ReplicaReport>(specs, limit).await?;
    let runs: Vec<ReplicaRun> = outcomes
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| (Some(index), Ok(outcome)))
        .collect();
    let totals = database.statement_totals().await?;
    let mean_ms = probes::computation_ms(database, expected.blocks).await?;
    let mut figures = tally(&plan, &runs, &answers(&runs, &expected));
    figures.traffic_ms = plan.traffic.as_secs_f64() * 1000.0;
    figures.computations = Computations {
        computations: (totals.shared_blocks as f64 / expected.blocks.max(1) as f64).round(),
        mean_ms,
        // Not warmed: the first fill is one more.
        expiries: 1.0 + expiries(figures.traffic_ms, figures.ttl_ms, mean_ms),
        bursts: 0,
        peak_concurrent: 0,
        at_once: None,
    };
    Ok(figures)
}

/// How the answers followed the new sales committed `changed_at_ms` after
/// the traffic's start: every report to a request that began from the
/// commit + `ttl` + twice the slowest request + [`FRESHNESS_SLACK`] on must
/// have them. (The check after the traffic is filled in by the run.)
pub fn freshness(answered: &[Answered], changed_at_ms: f64, ttl: Duration) -> Freshness {
    let slowest_ms = answered
        .iter()
        .map(Answered::latency_ms)
        .fold(0.0, f64::max);
    let deadline_ms =
        changed_at_ms + (ttl + FRESHNESS_SLACK).as_secs_f64() * 1000.0 + 2.0 * slowest_ms;
    let mut freshness = Freshness {
        changed_at_ms,
        slowest_ms,
        deadline_ms,
        ..Freshness::default()
    };
    let reports = answered
        .iter()
        .filter(|answered| matches!(answered.answer(), Answer::Before | Answer::After));
    for answered in reports {
        let old = answered.answer() == Answer::Before;
        if old && answered.at_ms() >= changed_at_ms {
            let after = answered.at_ms() - changed_at_ms;
            freshness.old_served_for_ms = Some(
                freshness
                    .old_served_for_ms
                    .map_or(after, |ms| ms.max(after)),
            );
        }
        if answered.at_ms() >= deadline_ms {
            freshness.checked += 1;
            freshness.stale += u64::from(old);
        }
    }
    freshness
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(at_ms: f64, answer: Answer) -> Answered {
        Answered(at_ms, 1.0, answer)
    }

    #[test]
    fn freshness_checks_reports_from_the_deadline_on() {
        let ttl = Duration::from_millis(250);
        let answers = [
            Answered(60.0, 40.0, Answer::Before),
            answered(350.0, Answer::Before),
            answered(640.0, Answer::Before),
            answered(700.0, Answer::After),
            answered(799.9, Answer::Before),
            answered(800.0, Answer::After),
            answered(900.0, Answer::Failed),
            answered(950.0, Answer::Wrong),
            answered(1_000.0, Answer::After),
        ];
        // The commit + 250 ms TTL + 250 ms + twice the slowest request (40 ms).
        let answers = answers.map(|a| Answered(a.at_ms() + 80.0, a.1, a.answer()));
        let fresh = freshness(&answers, 300.0, ttl);
        assert_eq!((fresh.slowest_ms, fresh.deadline_ms), (40.0, 880.0));
        assert_eq!((fresh.checked, fresh.stale), (2, 0));
        assert_eq!(fresh.old_served_for_ms, Some(579.9));
        let mut late = answers.to_vec();
        late.push(answered(1_200.0, Answer::Before));
        let stale = freshness(&late, 300.0, ttl);
        assert_eq!((stale.checked, stale.stale), (3, 1));
        assert_eq!(stale.old_served_for_ms, Some(900.0));
        let none = freshness(&answers[..1], 300.0, ttl);
        assert_eq!((none.checked, none.old_served_for_ms), (0, None));
        assert_eq!(none.after_traffic, Seen::Fresh);
    }

    #[test]
    fn replica_arguments_carry_the_plan_and_the_fingerprints() {
        let plan = standard_plan(7);
        let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let args = plan.replica_args("fixed", 3, start).join(" ");
        assert_eq!(args, "--code fixed --replica 3 --clients 12 --start-unix-ms 1700000000123 --serve-ms 1000 --think-ms 20 --ttl-ms 200 --seed 7 --barrier");
    }
}
