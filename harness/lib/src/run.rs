//! Running one variant of one scenario: resources, budget, findings, report.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{HarnessError, Result};
use crate::postgres::{DatabaseTemplate, RunDatabase};
use crate::redis::RunRedis;
use crate::report::Report;
use crate::scenario::{Scenario, ScenarioInfo, Variant, Verdict};
use crate::service::env_setting;

/// The default time budget of a whole run, set-up included.
pub const DEFAULT_RUN_BUDGET: Duration = Duration::from_secs(120);

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
}

impl RunOptions {
    /// Options from the environment: `DEBUGLAB_RUN_BUDGET_SECS` and `DEBUGLAB_SEED`.
    pub fn from_env() -> Result<Self> {
        let parse = |var: &'static str| -> Result<Option<u64>> {
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
        };
        Ok(RunOptions {
            budget: parse("DEBUGLAB_RUN_BUDGET_SECS")?
                .map_or(DEFAULT_RUN_BUDGET, Duration::from_secs),
            seed: parse("DEBUGLAB_SEED")?,
            keep: false,
        })
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            budget: DEFAULT_RUN_BUDGET,
            seed: None,
            keep: false,
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
    findings: Mutex<Findings>,
    databases: Mutex<Vec<RunDatabase>>,
    redis_databases: Mutex<Vec<RunRedis>>,
}

#[derive(Default)]
struct Findings {
    metrics: BTreeMap<String, f64>,
    evidence: Vec<String>,
}

impl RunContext {
    fn new(info: &'static ScenarioInfo, variant: Variant, options: &RunOptions) -> Self {
        let seed = options
            .seed
            .unwrap_or_else(|| u64::from(rand::random::<u32>()));
        let findings = Findings {
            metrics: BTreeMap::from([("timed_out".to_owned(), 0.0)]),
            evidence: Vec::new(),
        };
        RunContext {
            info,
            variant,
            seed,
            deadline: Instant::now() + options.budget,
            findings: Mutex::new(findings),
            databases: Mutex::new(Vec::new()),
            redis_databases: Mutex::new(Vec::new()),
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

    /// Time left in the run's budget.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Records a measured figure (replacing an earlier value of the same name).
    pub fn metric(&self, name: &str, value: f64) {
        self.lock_findings().metrics.insert(name.to_owned(), value);
    }

    /// Records one piece of evidence; it is redacted before it reaches the report.
    pub fn evidence(&self, line: impl Into<String>) {
        self.lock_findings().evidence.push(line.into());
    }

    fn lock_findings(&self) -> std::sync::MutexGuard<'_, Findings> {
        self.findings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A fresh PostgreSQL database for this run, copied from `template` when given.
    pub async fn database(
        &self,
        template: Option<&'static DatabaseTemplate>,
    ) -> Result<RunDatabase> {
        let server = crate::postgres::server().await?;
        let label = format!("{}_{}", self.info.id, self.variant);
        let database = server.create_database(&label, template).await?;
        self.databases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(database.clone());
        Ok(database)
    }

    /// A Redis database of this run's own (an index nobody else uses meanwhile).
    pub async fn redis(&self) -> Result<RunRedis> {
        let server = crate::redis::server().await?;
        let redis = server.lease_database().await?;
        self.redis_databases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(redis.clone());
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

    async fn release_resources(&self) {
        let databases =
            std::mem::take(&mut *self.databases.lock().unwrap_or_else(|p| p.into_inner()));
        for database in databases {
            database.drop_database().await;
        }
        let redis_databases = std::mem::take(
            &mut *self
                .redis_databases
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for redis in redis_databases {
            redis.release().await;
        }
    }

    async fn kept(&self) -> Kept {
        let mut kept = Kept::default();
        let databases = self
            .databases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !databases.is_empty() {
            let server = crate::postgres::server().await.ok();
            for database in databases {
                kept.postgres.push(KeptDatabase {
                    container_id: server
                        .and_then(|server| server.container_id())
                        .map(str::to_owned),
                    name: database.name().to_owned(),
                });
            }
        }
        let redis_databases = self
            .redis_databases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !redis_databases.is_empty() {
            let server = crate::redis::server().await.ok();
            for redis in redis_databases {
                kept.redis.push(KeptRedis {
                    container_id: server
                        .and_then(|server| server.container_id())
                        .map(str::to_owned),
                    db: redis.db(),
                });
            }
        }
        kept
    }

    fn into_report(self, verdict: Verdict, duration: Duration) -> Report {
        let findings = self
            .findings
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let redact = crate::redact::redact;
        Report {
            scenario: self.info.id.to_owned(),
            variant: self.variant,
            healthy: verdict.healthy,
            duration_ms: duration.as_millis() as u64,
            summary: redact(&verdict.summary),
            metrics: findings.metrics,
            evidence: findings.evidence.iter().map(|line| redact(line)).collect(),
        }
    }
}

/// What a run left in place with [`RunOptions::keep`].
#[derive(Clone, Debug, Default)]
pub struct Kept {
    /// The run's PostgreSQL databases.
    pub postgres: Vec<KeptDatabase>,
    /// The run's Redis databases.
    pub redis: Vec<KeptRedis>,
}

/// A PostgreSQL database left for investigation.
#[derive(Clone, Debug)]
pub struct KeptDatabase {
    /// The container it lives in (`None` for a server named by URL).
    pub container_id: Option<String>,
    /// The database's name.
    pub name: String,
}

/// A Redis database left for investigation.
#[derive(Clone, Debug)]
pub struct KeptRedis {
    /// The container it lives in (`None` for a server named by URL).
    pub container_id: Option<String>,
    /// The database index.
    pub db: i64,
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
/// report says so. Errors are reserved for problems with the lab itself
/// (Docker unreachable, an image missing, a failing seed).
pub async fn run(
    scenario: &dyn Scenario,
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
    scenario: &dyn Scenario,
    variant: Variant,
    options: &RunOptions,
) -> Result<(Report, Kept)> {
    let info = scenario.info();
    let _turn = take_turn().await;
    let started = Instant::now();
    let ctx = RunContext::new(info, variant, options);
    tracing::info!(scenario = info.id, %variant, seed = ctx.seed, "run started");
    let outcome = tokio::time::timeout(options.budget, scenario.run(&ctx)).await;
    let kept = if options.keep {
        crate::session::keep_containers();
        ctx.kept().await
    } else {
        // Releasing is bounded too: a wedged server must not hang the process.
        if tokio::time::timeout(Duration::from_secs(30), ctx.release_resources())
            .await
            .is_err()
        {
            tracing::warn!("releasing the run's databases took over 30 s; leaving them to the container's removal");
        }
        Kept::default()
    };
    let verdict = match outcome {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(error)) => return Err(error),
        Err(_) => {
            let budget = options.budget.as_secs_f64();
            ctx.metric("timed_out", 1.0);
            ctx.evidence(format!(
                "the run did not finish within its {budget:.0} s budget and was cut off"
            ));
            Verdict {
                healthy: false,
                summary: format!("The run hung and was cut off after {budget:.0} s."),
            }
        }
    };
    let report = ctx.into_report(verdict, started.elapsed());
    tracing::info!(scenario = info.id, %variant, healthy = report.healthy, duration_ms = report.duration_ms, "run finished");
    Ok((report, kept))
}
