//! Running one variant of one scenario: resources, budget, findings, report.
//!
//! A run's lifecycle:
//!
//! 1. [`run`] waits for the process's turn ([`take_turn`]), then starts a
//!    [`GuardedRuntime`] of the run's own, watched from outside;
//! 2. the scenario's [`Scenario::run`] runs there with a [`RunContext`]: it
//!    takes databases and pools from the context, drives its workload
//!    ([`RunContext::drive`]), records metrics and evidence, and returns its
//!    verdict;
//! 3. the supervisor (on the caller's runtime, which the variant cannot
//!    block) waits for it within the budget — or, once the watch saw a thread
//!    blocked, for a short grace — and abandons it otherwise;
//! 4. the harness adds its own checks (blocked threads, pools changed from
//!    inside), releases or keeps the run's databases, and writes the [`Report`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{HarnessError, Result};
use crate::guard::{GuardedRuntime, Limits, Monitor};
use crate::investigate::{Kept, KeptDatabase, KeptRedis};
use crate::plot::{Plot, Points};
use crate::pools::PoolRegistry;
use crate::postgres::{DatabaseTemplate, RunDatabase};
use crate::redis::RunRedis;
use crate::report::Report;
use crate::scenario::{Scenario, ScenarioInfo, Variant, Verdict};
use crate::service::env_setting;
use crate::workload::{drive_paced, Workload, WorkloadOutcome};

/// The default time budget of a whole run, set-up included.
pub const DEFAULT_RUN_BUDGET: Duration = Duration::from_secs(120);

/// The default time a live run keeps its workload going (`debuglab run --live`).
pub const DEFAULT_LIVE_BUDGET: Duration = Duration::from_secs(15 * 60);

/// Worker threads of a run's runtime: as many as a small service gets.
pub const RUN_WORKERS: usize = 2;

/// How long a run may take to wrap up once its watch saw a blocked thread.
const GRACE_AFTER_BLOCKING: Duration = Duration::from_secs(10);

/// How a run is set up.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run is cut off (and reported as `timed_out`) after this long.
    pub budget: Duration,
    /// Seed for the workload's random choices; random when `None`.
    pub seed: Option<u64>,
    /// Leave the run's databases and the containers in place for
    /// investigation ([`Kept`] says where), instead of removing them.
    pub keep: bool,
    /// Keep the workload going for this long (a live run) instead of
    /// running it once; `None` for an ordinary run.
    pub live: Option<Duration>,
}

impl RunOptions {
    /// Options from the environment: `DEBUGLAB_RUN_BUDGET_SECS` and `DEBUGLAB_SEED`.
    pub fn from_env() -> Result<Self> {
        Ok(RunOptions {
            budget: parse_env_u64("DEBUGLAB_RUN_BUDGET_SECS")?
                .map_or(DEFAULT_RUN_BUDGET, Duration::from_secs),
            seed: parse_env_u64("DEBUGLAB_SEED")?,
            ..RunOptions::default()
        })
    }
}

fn parse_env_u64(var: &'static str) -> Result<Option<u64>> {
    env_setting(var)
        .map(|value| {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| HarnessError::InvalidSetting {
                    var,
                    detail: format!("expected a whole number, got '{value}'"),
                })
        })
        .transpose()
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            budget: DEFAULT_RUN_BUDGET,
            seed: None,
            keep: false,
            live: None,
        }
    }
}

/// Everything a scenario's run gets from the harness, and where it records what it found.
///
/// Resources taken from the context (databases, Redis databases) are released
/// by the harness when the run ends, however it ends.
pub struct RunContext {
    info: &'static ScenarioInfo,
    variant: Variant,
    seed: u64,
    deadline: Instant,
    live: Option<Duration>,
    monitor: Arc<Monitor>,
    findings: Mutex<Findings>,
    databases: Mutex<Vec<RunDatabase>>,
    redis_databases: Mutex<Vec<RunRedis>>,
    pools: Arc<PoolRegistry>,
    progress: Arc<LiveProgress>,
}

#[derive(Default)]
struct Findings {
    metrics: BTreeMap<String, f64>,
    evidence: Vec<String>,
    series: BTreeMap<String, Points>,
    plots: Vec<Plot>,
}

/// What a live run shows while it goes: requests so far and the scenario's gauges.
#[derive(Default)]
pub struct LiveProgress {
    finished: AtomicUsize,
    failed: AtomicUsize,
    gauges: Mutex<BTreeMap<String, f64>>,
    workload_started: watch::Sender<bool>,
}

impl LiveProgress {
    /// Requests finished so far, and how many of them failed.
    pub fn requests(&self) -> (usize, usize) {
        (
            self.finished.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// The latest value of every gauge.
    pub fn gauges(&self) -> BTreeMap<String, f64> {
        lock(&self.gauges).clone()
    }

    /// Sets the gauge `name` (see [`RunContext::gauge`]).
    pub fn gauge(&self, name: &str, value: f64) {
        lock(&self.gauges).insert(name.to_owned(), value);
    }

    /// Counts requests done outside [`RunContext::drive`] (by replica
    /// processes, say): `finished` more, `failed` of them failed.
    pub fn count_requests(&self, finished: usize, failed: usize) {
        self.finished.fetch_add(finished, Ordering::Relaxed);
        self.failed.fetch_add(failed, Ordering::Relaxed);
    }

    /// Says the workload has started (done by [`RunContext::drive`]; call
    /// it when the work is driven another way), so a live run shows its
    /// investigation commands.
    pub fn mark_workload_started(&self) {
        self.workload_started.send_replace(true);
    }

    /// Resolves once the run's workload has started.
    pub async fn workload_started(&self) {
        let mut started = self.workload_started.subscribe();
        let _ = started.wait_for(|started| *started).await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RunContext {
    fn new(
        info: &'static ScenarioInfo,
        variant: Variant,
        options: &RunOptions,
        monitor: Arc<Monitor>,
    ) -> Self {
        let seed = options
            .seed
            .unwrap_or_else(|| u64::from(rand::random::<u32>()));
        let findings = Findings {
            metrics: BTreeMap::from([("timed_out".to_owned(), 0.0)]),
            ..Findings::default()
        };
        RunContext {
            info,
            variant,
            seed,
            deadline: Instant::now() + options.budget,
            live: options.live,
            monitor,
            findings: Mutex::new(findings),
            databases: Mutex::new(Vec::new()),
            redis_databases: Mutex::new(Vec::new()),
            pools: Arc::new(PoolRegistry::default()),
            progress: Arc::new(LiveProgress::default()),
        }
    }

    /// The scenario being run.
    pub fn info(&self) -> &'static ScenarioInfo {
        self.info
    }

    /// Which copy of the service code to run.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Seed for the workload's random choices (reported, so a run can be replayed).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether this is a live run: the workload keeps going until stopped.
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// How long a live run keeps its workload going; `None` for an ordinary run.
    pub fn live_budget(&self) -> Option<Duration> {
        self.live
    }

    /// Time left in the run's budget.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Records a measured figure (replacing an earlier value of the same name).
    pub fn metric(&self, name: &str, value: f64) {
        lock(&self.findings).metrics.insert(name.to_owned(), value);
    }

    /// Records one piece of evidence; it is redacted before it reaches the report.
    pub fn evidence(&self, line: impl Into<String>) {
        lock(&self.findings).evidence.push(line.into());
    }

    /// Records a figure followed over the run as `[x, y]` points (replacing
    /// an earlier series of the same name); [`RunContext::plot`] draws it.
    pub fn series(&self, name: &str, points: impl IntoIterator<Item = [f64; 2]>) {
        let points = points.into_iter().collect();
        lock(&self.findings).series.insert(name.to_owned(), points);
    }

    /// Says how to draw some of the run's series (replacing an earlier plot
    /// with the same id). A plot may name a series that was never recorded
    /// (a phase the run did not reach): it is drawn without it.
    pub fn plot(&self, plot: Plot) {
        let mut findings = lock(&self.findings);
        findings.plots.retain(|existing| existing.id != plot.id);
        findings.plots.push(plot);
    }

    /// Sets a gauge: a figure that changes while the workload runs (pool
    /// waiters, listeners), shown by a live run's status line.
    /// From a sampler, which outlives this borrow: `ctx.progress().gauge(…)`.
    pub fn gauge(&self, name: &str, value: f64) {
        self.progress.gauge(name, value);
    }

    /// Adds what the watch of a replica process saw (see
    /// [`crate::replica::run_guarded`]): it counts as this run's.
    pub fn add_blocking(&self, blocking: &crate::guard::Blocking) {
        self.monitor.merge(blocking);
    }

    /// What a live run's status line shows.
    pub fn progress(&self) -> &Arc<LiveProgress> {
        &self.progress
    }

    /// Every connection the run's pools have handed to its workload's
    /// requests so far, with when (for request timelines).
    pub fn checkouts(&self) -> Vec<crate::pools::Checkout> {
        self.pools.checkouts().all()
    }

    /// A fresh PostgreSQL database for this run, copied from `template` when given.
    ///
    /// Pools built from it ([`RunDatabase::pool`]) are read back when the run ends.
    pub async fn database(
        &self,
        template: Option<&'static DatabaseTemplate>,
    ) -> Result<RunDatabase> {
        let server = crate::postgres::server().await?;
        let label = format!("{}_{}", self.info.id, self.variant);
        let database = server
            .create_database(&label, template)
            .await?
            .with_registry(Arc::clone(&self.pools));
        lock(&self.databases).push(database.clone());
        Ok(database)
    }

    /// A Redis database of this run's own (an index nobody else uses meanwhile).
    ///
    /// Pools built from it ([`RunRedis::pool`]) are read back when the run ends.
    pub async fn redis(&self) -> Result<RunRedis> {
        let server = crate::redis::server().await?;
        let redis = server
            .lease_database()
            .await?
            .with_registry(Arc::clone(&self.pools));
        lock(&self.redis_databases).push(redis.clone());
        Ok(redis)
    }

    /// Runs `future` for at most `limit` (and never past the run's budget).
    ///
    /// A future that does not finish in time is dropped, `timed_out` is set to 1
    /// and the hang is recorded as evidence; `None` is returned.
    pub async fn within<F: Future>(
        &self,
        phase: &str,
        limit: Duration,
        future: F,
    ) -> Option<F::Output> {
        let limit = limit.min(self.remaining());
        match tokio::time::timeout(limit, future).await {
            Ok(output) => Some(output),
            Err(_) => {
                self.metric("timed_out", 1.0);
                self.evidence(format!(
                    "{phase} did not finish within {:.1} s and was cut off: the service hung",
                    limit.as_secs_f64()
                ));
                None
            }
        }
    }

    /// Drives `workload` with [`crate::workload::drive`] and records its
    /// shape: `requests_planned`, `requests_finished`, `requests_failed`,
    /// `requests_unfinished`, and — when fewer requests finished than were
    /// planned — a line of evidence that says why.
    ///
    /// In a live run the workload keeps going, at most
    /// [`Workload::live_rate`] requests a second, until the run is stopped:
    /// `index` then grows past `workload.requests`, so `request` must accept
    /// any index (`index % n` into a list, or a value derived from the index).
    pub async fn drive<F, Fut, T, E>(
        &self,
        label: &str,
        workload: Workload,
        request: F,
    ) -> WorkloadOutcome<T, E>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        self.drive_with_pace(label, workload, None, request).await
    }

    /// [`RunContext::drive`] with requests arriving `pace` apart whether or
    /// not earlier ones have answered (up to `workload.concurrency` in
    /// flight): callers who do not wait for each other, at a steady rate.
    /// A live run keeps the slower of `pace` and its live rate.
    pub async fn drive_paced<F, Fut, T, E>(
        &self,
        label: &str,
        workload: Workload,
        pace: Duration,
        request: F,
    ) -> WorkloadOutcome<T, E>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        self.drive_with_pace(label, workload, Some(pace), request)
            .await
    }

    async fn drive_with_pace<F, Fut, T, E>(
        &self,
        label: &str,
        workload: Workload,
        pace: Option<Duration>,
        request: F,
    ) -> WorkloadOutcome<T, E>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let (shape, pace) = match self.live {
            Some(budget) => {
                let live_pace = Duration::from_secs(1) / workload.live_rate.max(1);
                (
                    Workload {
                        requests: usize::MAX,
                        max_duration: budget,
                        hard_limit: budget + Duration::from_secs(30),
                        ..workload
                    },
                    Some(pace.map_or(live_pace, |pace| pace.max(live_pace))),
                )
            }
            None => (workload, pace),
        };
        self.progress.mark_workload_started();
        let progress = Arc::clone(&self.progress);
        let outcome = drive_paced(label, shape, pace, move |index| {
            let (future, progress) = (request(index), Arc::clone(&progress));
            async move {
                let result = future.await;
                progress.finished.fetch_add(1, Ordering::Relaxed);
                if result.is_err() {
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                }
                result
            }
        })
        .await;
        self.record_workload(workload, &outcome);
        outcome
    }

    fn record_workload<T, E>(&self, workload: Workload, outcome: &WorkloadOutcome<T, E>) {
        self.metric("requests_planned", workload.requests as f64);
        self.metric("requests_finished", outcome.records.len() as f64);
        self.metric("requests_failed", outcome.errors() as f64);
        self.metric("requests_unfinished", outcome.unfinished as f64);
        if outcome.cut_off {
            self.metric("timed_out", 1.0);
        }
        if self.live.is_none() {
            if let Some(shortfall) = outcome.shortfall() {
                self.evidence(shortfall);
            }
        }
    }

    async fn release_resources(&self) {
        self.pools.clear();
        let databases = std::mem::take(&mut *lock(&self.databases));
        for database in databases {
            database.drop_database().await;
        }
        let redis_databases = std::mem::take(&mut *lock(&self.redis_databases));
        for redis in redis_databases {
            redis.release().await;
        }
    }

    /// Where this run's databases are, for investigating them (`--keep`, `--live`).
    pub async fn kept(&self) -> Kept {
        let databases = lock(&self.databases).clone();
        let redis_databases = lock(&self.redis_databases).clone();
        let mut kept = Kept::default();
        if !databases.is_empty() {
            let server = crate::postgres::server().await.ok();
            let container_id = server
                .and_then(|server| server.container_id())
                .map(str::to_owned);
            kept.postgres = databases
                .iter()
                .map(|database| KeptDatabase {
                    container_id: container_id.clone(),
                    name: database.name().to_owned(),
                })
                .collect();
        }
        if !redis_databases.is_empty() {
            let server = crate::redis::server().await.ok();
            let container_id = server
                .and_then(|server| server.container_id())
                .map(str::to_owned);
            kept.redis = redis_databases
                .iter()
                .map(|redis| KeptRedis {
                    container_id: container_id.clone(),
                    db: redis.db(),
                })
                .collect();
        }
        kept
    }

    /// The report: `verdict`, then every metric and piece of evidence, redacted.
    fn report(&self, verdict: Verdict, duration: Duration) -> Report {
        let findings = std::mem::take(&mut *lock(&self.findings));
        let redact = crate::redact::redact;
        Report {
            scenario: self.info.id.to_owned(),
            variant: self.variant,
            healthy: verdict.healthy,
            duration_ms: duration.as_millis() as u64,
            summary: redact(&verdict.summary),
            metrics: findings.metrics,
            evidence: findings.evidence.iter().map(|line| redact(line)).collect(),
            series: findings.series,
            plots: findings.plots,
        }
    }
}

/// Runs in one process take turns: one run's load must never show up in
/// another run's timings, and a machine with two cores has no room for both.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for this process's turn to use the services exclusively.
///
/// [`run`] takes it; tests that use a database outside a run (property tests)
/// take it too, through [`crate::testing`].
pub async fn take_turn() -> tokio::sync::MutexGuard<'static, ()> {
    TURN.lock().await
}

/// Runs `variant` of `scenario` within `options.budget` and reports what happened.
///
/// A hang is not an error: the run is cut off, `timed_out` is 1, and the
/// report says so; a variant that blocks its threads is stopped and judged
/// unhealthy. Errors are reserved for problems with the lab itself (Docker
/// unreachable, an image missing, a failing seed).
pub async fn run(
    scenario: &'static dyn Scenario,
    variant: Variant,
    options: &RunOptions,
) -> Result<Report> {
    run_and_keep(scenario, variant, options)
        .await
        .map(|(report, _)| report)
}

/// [`run`], also saying what was left in place when `options.keep` is set
/// (nothing otherwise).
pub async fn run_and_keep(
    scenario: &'static dyn Scenario,
    variant: Variant,
    options: &RunOptions,
) -> Result<(Report, Kept)> {
    run_observed(scenario, variant, options, |_| {}).await
}

/// [`run_and_keep`], handing the run's context to `observe` as soon as it
/// exists (a live run's status line follows it).
pub async fn run_observed(
    scenario: &'static dyn Scenario,
    variant: Variant,
    options: &RunOptions,
    observe: impl FnOnce(Arc<RunContext>),
) -> Result<(Report, Kept)> {
    let info = scenario.info();
    let _turn = take_turn().await;
    let started = Instant::now();
    let guarded = GuardedRuntime::new(RUN_WORKERS, Limits::default()).map_err(|error| {
        HarnessError::Setup {
            scenario: info.id.to_owned(),
            detail: format!("cannot start the run's runtime: {error}"),
        }
    })?;
    let ctx = Arc::new(RunContext::new(
        info,
        variant,
        options,
        Arc::clone(guarded.monitor()),
    ));
    observe(Arc::clone(&ctx));
    tracing::info!(scenario = info.id, %variant, seed = ctx.seed, "run started");
    let task = {
        let ctx = Arc::clone(&ctx);
        guarded.spawn(async move { scenario.run(&ctx).await })
    };
    let ended = supervise(task, guarded.monitor(), options.budget).await;
    let pool_problems = ctx.pools.problems();
    // The variant's tasks stop here; blocked threads are left to end on their own.
    drop(guarded);
    let kept = finish_resources(&ctx, options.keep).await;
    let verdict = match ended {
        Ended::Finished(result) => result?,
        ended => ended.verdict(&ctx, options.budget),
    };
    let mut harness_problems = ctx.monitor.blocking().problems();
    harness_problems.extend(pool_problems);
    record_blocking(&ctx);
    let verdict = verdict.after_harness_checks(&harness_problems);
    let report = ctx.report(verdict, started.elapsed());
    tracing::info!(scenario = info.id, %variant, healthy = report.healthy, duration_ms = report.duration_ms, "run finished");
    Ok((report, kept))
}

/// How a run's task ended, as its supervisor saw it.
enum Ended {
    /// It returned (a verdict, or an error of the lab itself).
    Finished(Result<Verdict>),
    /// It panicked, with this message.
    Panicked(String),
    /// It was still running at the end of its budget.
    OverBudget,
    /// It was still running a grace period after its watch saw a blocked thread.
    Abandoned,
}

impl Ended {
    /// The verdict of a run that did not return one itself.
    fn verdict(self, ctx: &RunContext, budget: Duration) -> Verdict {
        let summary = match self {
            Ended::Finished(_) => unreachable!("a finished run has its own verdict"),
            Ended::Panicked(message) => {
                ctx.evidence(format!("the run panicked: {message}"));
                format!("The service panicked: {message}.")
            }
            Ended::OverBudget => {
                ctx.metric("timed_out", 1.0);
                let budget = budget.as_secs_f64();
                ctx.evidence(format!(
                    "the run did not finish within its {budget:.0} s budget and was cut off"
                ));
                format!("The run hung and was cut off after {budget:.0} s.")
            }
            Ended::Abandoned => {
                ctx.metric("timed_out", 1.0);
                ctx.evidence(format!(
                    "the run was abandoned {} s after its workload was stopped: its threads did not come back",
                    GRACE_AFTER_BLOCKING.as_secs()
                ));
                "The run was abandoned.".to_owned()
            }
        };
        Verdict {
            healthy: false,
            summary,
        }
    }
}

/// Waits for the run's task on the caller's runtime, which the variant
/// cannot block: until it ends, its budget runs out, or a grace period after
/// its watch tripped.
async fn supervise(
    task: tokio::task::JoinHandle<Result<Verdict>>,
    monitor: &Monitor,
    budget: Duration,
) -> Ended {
    let tripped = monitor.stopped();
    let gave_up = async move {
        tripped.await;
        tokio::time::sleep(GRACE_AFTER_BLOCKING).await;
    };
    tokio::select! {
        joined = task => match joined {
            Ok(result) => Ended::Finished(result),
            Err(error) if error.is_panic() => Ended::Panicked(panic_message(error.into_panic())),
            Err(_) => Ended::Abandoned,
        },
        _ = tokio::time::sleep(budget) => Ended::OverBudget,
        _ = gave_up => Ended::Abandoned,
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// Keeps the run's databases (`keep`) or releases them, within a bound.
async fn finish_resources(ctx: &RunContext, keep: bool) -> Kept {
    if keep {
        crate::session::keep_containers();
        return ctx.kept().await;
    }
    // Releasing is bounded too: a wedged server must not hang the process.
    if tokio::time::timeout(Duration::from_secs(30), ctx.release_resources())
        .await
        .is_err()
    {
        tracing::warn!(
            "releasing the run's databases took over 30 s; leaving them to the container's removal"
        );
    }
    Kept::default()
}

/// The watch's figures as metrics, and as evidence when the blocking was clear.
fn record_blocking(ctx: &RunContext) {
    let blocking = ctx.monitor.blocking();
    ctx.metric("blocked_polls", blocking.blocked_polls as f64);
    ctx.metric(
        "longest_blocked_poll_ms",
        blocking.longest_blocked_ms.round(),
    );
    ctx.metric("hogging_polls", blocking.hogging_polls as f64);
    ctx.metric(
        "longest_hogging_poll_ms",
        blocking.longest_hogging_ms.round(),
    );
    if blocking.is_clear() {
        ctx.evidence(format!(
            "the run's watch (outside the runtime): {} polls slept off the CPU (longest {:.0} ms), {} computed without yielding (longest {:.0} ms){}",
            blocking.blocked_polls,
            blocking.longest_blocked_ms,
            blocking.hogging_polls,
            blocking.longest_hogging_ms,
            blocking
                .stuck
                .as_ref()
                .map(|stuck| format!("; {stuck}"))
                .unwrap_or_default()
        ));
    }
}
