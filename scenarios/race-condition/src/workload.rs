//! The load: two replica processes, each handling 600 likes with a tip, 16 at
//! a time, against the same PostgreSQL database and Redis database; the run
//! starts them, waits for their reports and reads the stores.
//!
//! The run drives *replica processes* with [`RunContext::drive`] (so the
//! harness's `requests_*` figures count replica processes); each replica
//! drives its own operations (see [`crate::replica`]). In a live run the
//! replicas work in batches of [`LIVE_BATCH`] at [`LIVE_RATE`] operations a
//! second each, one batch after another, until the run is stopped.

use std::time::Duration;

use debuglab_harness::guard::Monitor;
use debuglab_harness::postgres::RunDatabase;
use debuglab_harness::redis::RunRedis;
use debuglab_harness::replica::{self as harness_replica, ReplicaOutcome, ReplicaSpec};
use debuglab_harness::workload::{Workload, WorkloadOutcome};
use debuglab_harness::{HarnessError, PoolSettings, Result, RunContext};

use crate::probes::{self, StoreSampler};
use crate::replica::ReplicaReport;
use crate::verdict::{Calls, Done, Figures};
use crate::BASE_MIGRATIONS;

/// Replica processes that run at once.
pub const REPLICAS: usize = 2;
/// Operations (a like and its tip) each replica runs at once.
pub const CONCURRENCY: usize = 16;
/// Operations each replica runs in an ordinary run.
pub const OPERATIONS_PER_REPLICA: u64 = 600;
/// How long the notification and fraud-check services take to answer.
pub const REMOTE_LATENCY: Duration = Duration::from_millis(1);
/// Each replica's pools, PostgreSQL and Redis alike.
pub const REPLICA_POOL: PoolSettings = PoolSettings {
    max_connections: 8,
    acquire_timeout: Duration::from_secs(10),
};
/// In a live run, operations a second each replica starts: enough for the
/// counts to drift visibly, little enough to run for 15 minutes.
pub const LIVE_RATE: u32 = 100;
/// In a live run, how long one replica process works before the next takes over.
pub const LIVE_BATCH: Duration = Duration::from_secs(10);
/// The most tips are worth, in cents (they are 1 to this).
pub const MAX_TIP_CENTS: i64 = 100;

/// The run's workload: its "requests" are replica processes, all started at
/// once (in a live run, a new batch at most once a second).
pub const WORKLOAD: Workload = Workload {
    requests: REPLICAS,
    concurrency: REPLICAS,
    max_duration: Duration::from_secs(100),
    hard_limit: Duration::from_secs(105),
    live_rate: 1,
};

/// How long one replica process may run before it is killed: its own
/// workload ends before (see [`Plan::replica_workload`]).
const REPLICA_LIMIT: Duration = Duration::from_secs(95);

/// How a run spreads its work over the replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Replica processes.
    pub replicas: usize,
    /// Operations each replica runs at once.
    pub concurrency: usize,
    /// Operations (a like with its tip) per replica.
    pub operations_per_replica: u64,
    /// Seed for the tip amounts.
    pub seed: u64,
    /// Operations a second each replica starts; 0 for as fast as it can.
    pub rate: u32,
}

/// The scenario's load: 2 replicas × 600 likes with tips, 16 at a time each.
pub fn standard_plan(seed: u64) -> Plan {
    Plan {
        replicas: REPLICAS,
        concurrency: CONCURRENCY,
        operations_per_replica: OPERATIONS_PER_REPLICA,
        seed,
        rate: 0,
    }
}

/// A live run's load: batches of [`LIVE_BATCH`] at [`LIVE_RATE`] a second.
pub fn live_plan(seed: u64) -> Plan {
    Plan {
        operations_per_replica: u64::from(LIVE_RATE) * LIVE_BATCH.as_secs(),
        rate: LIVE_RATE,
        ..standard_plan(seed)
    }
}

impl Plan {
    /// Operations planned over every replica.
    pub fn operations(&self) -> u64 {
        self.replicas as u64 * self.operations_per_replica
    }

    /// The arguments of replica process `replica` running the code called `code`.
    pub fn replica_args(&self, code: &str, replica: usize) -> Vec<String> {
        [
            ("--code", code.to_owned()),
            ("--replica", replica.to_string()),
            ("--operations", self.operations_per_replica.to_string()),
            ("--concurrency", self.concurrency.to_string()),
            ("--seed", self.seed.to_string()),
            ("--rate", self.rate.to_string()),
        ]
        .into_iter()
        .flat_map(|(name, value)| [name.to_owned(), value])
        .collect()
    }

    /// The workload one replica drives: its operations, and time to do them
    /// (at its rate, if it has one) with a wide margin — fixes that take
    /// turns across the replicas are slower, and the machine may be busy;
    /// a correct fix must not fail for want of time.
    pub fn replica_workload(&self) -> Workload {
        let paced = match self.rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs(self.operations_per_replica) / rate,
        };
        Workload {
            requests: usize::try_from(self.operations_per_replica).unwrap_or(usize::MAX),
            concurrency: self.concurrency,
            max_duration: paced + Duration::from_secs(75),
            hard_limit: paced + Duration::from_secs(85),
            live_rate: self.rate,
        }
    }
}

/// The tip, in cents (1 to [`MAX_TIP_CENTS`]), of operation `index` of replica `replica`.
///
/// Chosen by the scenario, never by the variant: the run knows every cent
/// that should be in the wallet.
pub fn tip_cents(seed: u64, replica: usize, index: u64) -> i64 {
    (mix(seed, replica, index) % MAX_TIP_CENTS as u64) as i64 + 1
}

impl Plan {
    /// When operation `index` of replica `replica` starts, after the
    /// replica's start, in a paced replica (`None` if it is not paced): in
    /// its slot of `1 / rate`, at a random point of it — real traffic does
    /// not arrive in step, and two replicas in step would never meet.
    pub fn start_of(&self, replica: usize, index: u64) -> Option<Duration> {
        let slot = Duration::from_secs(1).checked_div(self.rate)?;
        let within = (mix(self.seed ^ 0x5EED, replica, index) % 1000) as u32;
        Some(slot * u32::try_from(index).unwrap_or(u32::MAX) + slot * within / 1000)
    }
}

/// A well-mixed number for operation `index` of replica `replica`
/// (SplitMix64), so that any index — live runs go on — has its own.
fn mix(seed: u64, replica: usize, index: u64) -> u64 {
    let mut x = seed
        ^ (replica as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// How to start replica process `replica` of `plan` against the run's stores.
fn spec(code: &str, replica: usize, plan: &Plan, urls: &(String, String)) -> ReplicaSpec {
    ReplicaSpec {
        scenario: crate::SCENARIO_ID,
        args: plan.replica_args(code, replica),
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

/// Runs the replicas with the code called `code`, reads the stores, and
/// returns the figures the verdict is made of (also recorded on `ctx`).
pub async fn run_replicas(ctx: &RunContext, code: &'static str) -> Result<Figures> {
    let database = ctx.database(None).await?;
    database.migrate(&BASE_MIGRATIONS, &[]).await?;
    let redis = ctx.redis().await?;
    let plan = if ctx.is_live() {
        live_plan(ctx.seed())
    } else {
        standard_plan(ctx.seed())
    };
    let limit = if ctx.is_live() {
        LIVE_BATCH + REPLICA_LIMIT
    } else {
        REPLICA_LIMIT.min(ctx.remaining())
    };
    let transactions_before = database.transaction_counts().await?;
    let sampler = StoreSampler::start(ctx, &database, &redis);
    // In a live run, what a replica's guard saw joins the run's at once, so
    // that a replica that blocked its threads stops the batches; otherwise
    // it joins once every replica has reported.
    let monitor = ctx.is_live().then(Monitor::current).flatten();
    let urls = (database.url(), redis.url());
    let outcome = {
        let monitor = monitor.clone();
        ctx.drive("replica processes", WORKLOAD, move |index| {
            let (spec, monitor) = (spec(code, index, &plan, &urls), monitor.clone());
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
    let sampled = sampler.stop().await;
    let stores = probes::read_stores(&database, &redis).await?;
    let mut figures = tally(&plan, ctx.is_live(), &runs, limit);
    figures.stores = stores;
    probes::record(ctx, &plan, &figures, &runs, &sampled);
    probes::record_plots(ctx, &figures, &sampled);
    probes::record_database(ctx, &database, transactions_before).await;
    Ok(figures)
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

/// Adds up what the replicas reported: the operations their scenario side
/// counted, the remote services' own counts, and every failure.
pub fn tally(plan: &Plan, live: bool, runs: &[ReplicaRun], limit: Duration) -> Figures {
    let mut figures = Figures {
        replicas: plan.replicas,
        concurrency: plan.concurrency,
        planned: (!live).then(|| plan.operations()),
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
        if let Some(failure) = failure_of(&name, outcome, limit) {
            figures.replica_failures.push(failure);
        }
        if let Some(report) = &outcome.report {
            add_report(&mut figures, report);
        }
    }
    figures.pool_problems.sort();
    figures.pool_problems.dedup();
    figures
}

/// Why a replica process counts as failed, if it does.
fn failure_of(
    name: &str,
    outcome: &ReplicaOutcome<ReplicaReport>,
    limit: Duration,
) -> Option<String> {
    let stderr = match outcome.stderr_tail.trim() {
        "" => String::new(),
        tail => format!(": {tail}"),
    };
    if outcome.timed_out {
        Some(format!(
            "{name} was still running after {} s and was killed{stderr}",
            limit.as_secs()
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
    let done: &mut Done = &mut figures.done;
    done.likes += report.likes;
    done.tips += report.tips;
    done.cents += report.tipped_cents;
    done.failed_likes += report.failed_likes;
    done.failed_tips += report.failed_tips;
    done.likes_cut_off += report.likes_cut_off;
    done.tips_cut_off += report.tips_cut_off;
    done.cents_cut_off += report.cents_cut_off;
    if done.first_error.is_none() {
        done.first_error.clone_from(&report.first_error);
    }
    let calls: &mut Calls = &mut figures.calls;
    calls.notifications += report.notification_calls;
    calls.fraud_checks += report.fraud_check_calls;
    figures.shortfalls.extend(report.shortfall.iter().cloned());
    figures
        .pool_problems
        .extend(report.pool_problems.iter().cloned());
}

/// Runs `plan` with the code called `code` in replica processes, all at
/// once, against `database` (migrated) and `redis`, outside a scenario run
/// (the property tests use it); returns the figures and the replica runs.
pub async fn simulate(
    database: &RunDatabase,
    redis: &RunRedis,
    code: &str,
    plan: Plan,
    limit: Duration,
) -> Result<(Figures, Vec<ReplicaRun>)> {
    let urls = (database.url(), redis.url());
    let specs = (0..plan.replicas)
        .map(|replica| spec(code, replica, &plan, &urls))
        .collect();
    let outcomes = harness_replica::run_replicas::<ReplicaReport>(specs, limit).await?;
    let runs: Vec<ReplicaRun> = outcomes
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| (Some(index), Ok(outcome)))
        .collect();
    let mut figures = tally(&plan, false, &runs, limit);
    figures.stores = probes::read_stores(database, redis).await?;
    Ok((figures, runs))
}
