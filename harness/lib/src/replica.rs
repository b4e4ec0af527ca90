//! Replicas: copies of a service running as separate OS processes that share
//! nothing but the servers, as two instances behind a load balancer do.
//!
//! A scenario that needs replicas provides a `replica_main`; binaries that run
//! scenarios expose it (the CLI as `debuglab __replica <scenario> …`, a
//! scenario's tests through its own small binary) and tell the harness how to
//! start it with [`set_program`]. The run side starts replicas with
//! [`run_replicas`]; each replica reads its connection URLs from the
//! environment ([`PG_URL_ENV`], [`REDIS_URL_ENV`]) — never from its arguments,
//! which any user can see in `ps` — builds its pools with [`pg_pool`] and
//! [`redis_pool`], runs its work with [`run_guarded`] (watched like a run),
//! and prints one JSON line as its last line of output, with what its watch
//! saw and its [`pool_problems`], for the run to judge.

use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::error::{HarnessError, Result};
use crate::guard::{Blocking, GuardedRuntime, Limits};
use crate::pools::PoolRegistry;
use crate::PoolSettings;

/// The variable that tells a replica which scenario it belongs to.
pub const SCENARIO_ENV: &str = "DEBUGLAB_REPLICA_SCENARIO";
/// The variable that passes a replica its PostgreSQL database URL.
pub const PG_URL_ENV: &str = "DEBUGLAB_REPLICA_PG_URL";
/// The variable that passes a replica its Redis database URL.
pub const REDIS_URL_ENV: &str = "DEBUGLAB_REPLICA_REDIS_URL";

struct Program {
    path: PathBuf,
    leading_args: Vec<String>,
}

static PROGRAM: OnceLock<Program> = OnceLock::new();

/// Sets how replicas are started: `path` with `leading_args` before each
/// replica's own arguments. The first call wins.
pub fn set_program(path: impl Into<PathBuf>, leading_args: &[&str]) {
    let _ = PROGRAM.set(Program {
        path: path.into(),
        leading_args: leading_args.iter().map(|arg| (*arg).to_owned()).collect(),
    });
}

/// One replica to start.
#[derive(Clone, Debug)]
pub struct ReplicaSpec {
    /// The scenario's id (passed as [`SCENARIO_ENV`]).
    pub scenario: &'static str,
    /// Its arguments (after the program's leading ones).
    pub args: Vec<String>,
    /// Extra environment, such as [`PG_URL_ENV`].
    pub env: Vec<(String, String)>,
}

/// What became of one replica.
#[derive(Debug)]
pub struct ReplicaOutcome<R> {
    /// The replica's last line of output, parsed; `None` if it printed none.
    pub report: Option<R>,
    /// Its exit code (`None` if killed).
    pub exit_code: Option<i32>,
    /// Whether it was killed at the time limit.
    pub timed_out: bool,
    /// The end of its stderr, for evidence when it failed.
    pub stderr_tail: String,
}

/// Starts every replica at once and waits for them all, killing any still
/// running after `limit`.
pub async fn run_replicas<R: DeserializeOwned>(
    specs: Vec<ReplicaSpec>,
    limit: Duration,
) -> Result<Vec<ReplicaOutcome<R>>> {
    let program = PROGRAM.get().ok_or_else(|| HarnessError::Setup {
        scenario: "replicas".to_owned(),
        detail: "this program cannot start replicas (no replica program was set with replica::set_program)".to_owned(),
    })?;
    let mut children = Vec::new();
    for spec in specs {
        let mut command = Command::new(&program.path);
        command
            .args(&program.leading_args)
            .args(&spec.args)
            .env(SCENARIO_ENV, spec.scenario)
            .envs(spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|error| HarnessError::Setup {
            scenario: "replicas".to_owned(),
            detail: format!("could not start {}: {error}", program.path.display()),
        })?;
        children.push(child);
    }
    let waits = children.into_iter().map(|mut child| async move {
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let finished = tokio::time::timeout(limit, async {
            let (_, _, status) = tokio::join!(
                stdout.read_to_end(&mut out),
                stderr.read_to_end(&mut err),
                child.wait()
            );
            status
        })
        .await;
        let (exit_code, timed_out) = match finished {
            Ok(Ok(status)) => (status.code(), false),
            Ok(Err(_)) => (None, false),
            Err(_) => {
                let _ = child.kill().await;
                (None, true)
            }
        };
        let out = String::from_utf8_lossy(&out);
        let report = out
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .and_then(|line| serde_json::from_str(line).ok());
        let err = crate::redact::redact(&String::from_utf8_lossy(&err));
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        ReplicaOutcome {
            report,
            exit_code,
            timed_out,
            stderr_tail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        }
    });
    Ok(futures::future::join_all(waits).await)
}

fn required_env(var: &'static str) -> Result<String> {
    std::env::var(var).map_err(|_| HarnessError::InvalidSetting {
        var,
        detail: "not set; replicas are started by debuglab, not by hand".to_owned(),
    })
}

/// The pools this replica process built, read back by [`pool_problems`].
static POOLS: std::sync::LazyLock<PoolRegistry> = std::sync::LazyLock::new(PoolRegistry::default);

/// In a replica: the problem lines of pools whose size or timeout changed
/// since [`pg_pool`] or [`redis_pool`] built them (see [`crate::pools`]).
pub fn pool_problems() -> Vec<String> {
    POOLS.problems()
}

/// How long a replica's work may take to wrap up once its watch saw a blocked thread.
const GRACE_AFTER_BLOCKING: Duration = Duration::from_secs(5);

/// In a replica: runs `work` on a [`GuardedRuntime`] like a run's, and
/// returns its output (`None` if it had to be abandoned: its threads were
/// blocked and did not come back) with what the watch saw. Report the
/// [`Blocking`] to the run, which adds it with [`crate::RunContext::add_blocking`].
pub fn run_guarded<F>(work: F) -> std::io::Result<(Option<F::Output>, Blocking)>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let guarded = GuardedRuntime::new(crate::run::RUN_WORKERS, Limits::default())?;
    let (done, finished) = std::sync::mpsc::channel();
    guarded.spawn(async move {
        let _ = done.send(work.await);
    });
    let mut tripped_at = None;
    let output = loop {
        match finished.recv_timeout(Duration::from_millis(50)) {
            Ok(output) => break Some(output),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if guarded.monitor().stop_reason().is_some() {
            let since = *tripped_at.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= GRACE_AFTER_BLOCKING {
                break None;
            }
        }
    };
    Ok((output, guarded.monitor().blocking()))
}

/// In a replica: the pool to its run's PostgreSQL database, warm.
pub async fn pg_pool(settings: PoolSettings) -> Result<sqlx::PgPool> {
    let url = required_env(PG_URL_ENV)?;
    let options = sqlx::postgres::PgConnectOptions::from_str(&url).map_err(|error| {
        HarnessError::InvalidSetting {
            var: PG_URL_ENV,
            detail: crate::redact::redact(&error.to_string()),
        }
    })?;
    let pool = crate::postgres::open_pool(options, settings, None).await?;
    POOLS.register_postgres(&pool, settings);
    Ok(pool)
}

/// In a replica: the pool to its run's Redis database, warm.
pub async fn redis_pool(settings: PoolSettings) -> Result<deadpool_redis::Pool> {
    let url = required_env(REDIS_URL_ENV)?;
    let info = deadpool_redis::redis::IntoConnectionInfo::into_connection_info(url.as_str())
        .map_err(|error| HarnessError::InvalidSetting {
            var: REDIS_URL_ENV,
            detail: crate::redact::redact(&error.to_string()),
        })?;
    let pool =
        crate::redis::open_pool(deadpool_redis::ConnectionInfo::from(info), settings, None).await?;
    POOLS.register_redis(&pool, settings);
    Ok(pool)
}
