//! What an engineer looks at in PostgreSQL: `pg_stat_statements`,
//! `pg_stat_activity`, the slow-query log and `EXPLAIN (ANALYZE, BUFFERS)`.
//!
//! Every probe runs on a probe connection of its own, so it never borrows a
//! connection from the pool under test and never shows up in its own figures.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, Row};

use super::{PgConnection, PgPool, Plan, RunDatabase};
use crate::error::{HarnessError, Result};

/// One row of `pg_stat_statements` for the run's database.
#[derive(Clone, Debug)]
pub struct StatementStats {
    /// The normalised statement text (`$1` for parameters and constants).
    pub query: String,
    /// How many times it ran.
    pub calls: i64,
    /// Mean execution time in milliseconds.
    pub mean_ms: f64,
    /// Total execution time in milliseconds.
    pub total_ms: f64,
    /// Rows returned or affected, in total.
    pub rows: i64,
    /// Shared buffers found in cache, in total.
    pub shared_blocks_hit: i64,
    /// Shared buffers read from disk (or the OS cache), in total.
    pub shared_blocks_read: i64,
}

impl std::fmt::Display for StatementStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pg_stat_statements: {} | calls {}, mean {:.2} ms, total {:.0} ms, rows {}, shared blocks hit {} read {}",
            one_line(&self.query, 160),
            self.calls,
            self.mean_ms,
            self.total_ms,
            self.rows,
            self.shared_blocks_hit,
            self.shared_blocks_read
        )
    }
}

/// The work of every statement run in a database, from `pg_stat_statements`
/// ([`RunDatabase::statement_totals`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StatementTotals {
    /// Distinct normalised statements.
    pub statements: i64,
    /// Statements executed.
    pub calls: i64,
    /// Rows they returned or affected.
    pub rows: i64,
    /// Shared buffers they touched (hit in cache or read): pages of tables
    /// and indexes, the same on any machine for the same data and plan.
    pub shared_blocks: i64,
    /// Their execution time, in milliseconds.
    pub total_ms: f64,
}

/// The `pg_stat_activity` condition that picks the run's own connections:
/// client backends on the caller's database, less the harness's probes
/// (`debuglab-probe`, one of which may be reading at the same moment) and
/// the connection that asks.
pub const RUN_CONNECTIONS: &str = "datname = current_database() AND pid <> pg_backend_pid()
     AND backend_type = 'client backend' AND application_name <> 'debuglab-probe'";

/// One backend connected to the run's database, from `pg_stat_activity`.
#[derive(Clone, Debug)]
pub struct ActivityRow {
    /// Backend process id.
    pub pid: i32,
    /// `active`, `idle`, `idle in transaction`, ...
    pub state: Option<String>,
    /// What the backend waits for (`Lock/transactionid`, `Client/ClientRead`, ...).
    pub wait_event: Option<String>,
    /// How long its transaction has been open, in milliseconds.
    pub transaction_ms: Option<f64>,
    /// How long it has been in its current state, in milliseconds.
    pub state_ms: Option<f64>,
    /// The last (or current) statement.
    pub query: String,
}

impl std::fmt::Display for ActivityRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} {}",
            self.pid,
            self.state.as_deref().unwrap_or("?")
        )?;
        if let Some(ms) = self.state_ms {
            write!(f, " for {ms:.0} ms")?;
        }
        if let Some(ms) = self.transaction_ms {
            write!(f, " (transaction open {ms:.0} ms)")?;
        }
        if let Some(wait) = &self.wait_event {
            write!(f, ", waiting on {wait}")?;
        }
        write!(f, ": {}", one_line(&self.query, 120))
    }
}

/// A statement's plan as `auto_explain` logged it, with when it ended.
#[derive(Clone, Debug)]
pub struct LoggedPlan {
    /// When the statement ended: when the server logged its plan.
    pub ended: SystemTime,
    /// The plan, its rows and buffers measured ([`Plan::duration_ms`] is the
    /// statement's time).
    pub plan: Plan,
}

impl LoggedPlan {
    /// When the statement began: its end less its duration.
    pub fn began(&self) -> SystemTime {
        let took = Duration::from_secs_f64(self.plan.duration_ms.unwrap_or(0.0).max(0.0) / 1000.0);
        self.ended.checked_sub(took).unwrap_or(self.ended)
    }
}

/// A position in the server log; entries after it belong to what came later.
#[derive(Clone, Copy, Debug)]
pub struct LogMark(i64);

/// One entry of the server's JSON log that concerns the run's database.
#[derive(Clone, Debug, Deserialize)]
pub struct LogEntry {
    /// When, as the server wrote it.
    pub timestamp: String,
    /// `LOG`, `ERROR`, ...
    pub error_severity: String,
    /// The message (`duration: 61.2 ms  execute …` for slow statements).
    pub message: String,
    /// Extra detail, such as the statement's parameters.
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    dbname: Option<String>,
    #[serde(default)]
    application_name: Option<String>,
}

impl LogEntry {
    /// When the server wrote the entry (`2026-12-07 10:06:44.123 UTC`), read
    /// as UTC, the time zone of the servers the harness starts.
    pub fn logged_at(&self) -> Option<SystemTime> {
        let (local, _zone) = self.timestamp.rsplit_once(' ')?;
        let at = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f").ok()?;
        let since_epoch = at.and_utc().timestamp_micros();
        let since_epoch = Duration::from_micros(u64::try_from(since_epoch).ok()?);
        Some(SystemTime::UNIX_EPOCH + since_epoch)
    }

    /// The statement duration in milliseconds, for `duration: …` entries.
    pub fn duration_ms(&self) -> Option<f64> {
        let rest = self.message.strip_prefix("duration: ")?;
        rest.split_whitespace().next()?.parse().ok()
    }

    /// The entry as one log line, as `log_line_prefix` would show it.
    pub fn as_log_line(&self) -> String {
        let mut line = format!(
            "{} {}:  {}",
            self.timestamp,
            self.error_severity,
            one_line(&self.message, 200)
        );
        if let Some(detail) = &self.detail {
            line.push_str(&format!("  [{}]", one_line(detail, 80)));
        }
        line
    }
}

/// The statements whose calls grew from `before` to `after`, most calls first:
/// the plannable ones (a server that counts utility statements counts
/// `BEGIN` too, which has no plan).
fn statements_run_between(
    before: &BTreeMap<String, i64>,
    after: &BTreeMap<String, i64>,
) -> Vec<String> {
    const PLANNABLE: [&str; 6] = ["select", "with", "insert", "update", "delete", "values"];
    let mut ran: Vec<(&String, i64)> = after
        .iter()
        .map(|(query, calls)| (query, calls - before.get(query).copied().unwrap_or(0)))
        .filter(|(query, grew)| {
            let first = query.split_whitespace().next().unwrap_or_default();
            *grew > 0
                && PLANNABLE
                    .iter()
                    .any(|word| first.eq_ignore_ascii_case(word))
        })
        .collect();
    ran.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ran.into_iter().map(|(query, _)| query.clone()).collect()
}

/// How many parameters a normalised statement has: its highest `$n`.
fn parameter_count(query: &str) -> usize {
    let bytes = query.as_bytes();
    let mut highest = 0;
    for (at, _) in query.match_indices('$') {
        let glued = at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        let digits: String = query[at + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let (false, Ok(number)) = (glued, digits.parse::<usize>()) {
            highest = highest.max(number);
        }
    }
    highest
}

/// `text` on one line, whitespace collapsed, cut to `max` characters.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= max {
        collapsed
    } else {
        let cut: String = collapsed.chars().take(max).collect();
        format!("{cut}…")
    }
}

impl StatementTotals {
    /// [`RunDatabase::statement_totals`] on a connection the caller keeps
    /// (a probe connection, for samplers), on a server that loads
    /// `pg_stat_statements` ([`RunDatabase::has_statement_stats`]).
    pub async fn read(conn: &mut PgConnection) -> Result<StatementTotals> {
        let row = sqlx::query(
            "SELECT count(*) AS statements,
                    coalesce(sum(calls), 0)::bigint AS calls,
                    coalesce(sum(rows), 0)::bigint AS rows,
                    coalesce(sum(shared_blks_hit + shared_blks_read), 0)::bigint AS shared_blocks,
                    coalesce(sum(total_exec_time), 0)::float8 AS total_ms
             FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(conn)
        .await
        .map_err(HarnessError::postgres("reading pg_stat_statements"))?;
        Ok(StatementTotals {
            statements: row.get("statements"),
            calls: row.get("calls"),
            rows: row.get("rows"),
            shared_blocks: row.get("shared_blocks"),
            total_ms: row.get("total_ms"),
        })
    }
}

impl ActivityRow {
    /// Every other client backend connected to `conn`'s database, longest in
    /// its state first (on a connection the caller keeps, for samplers).
    pub async fn read(conn: &mut PgConnection) -> Result<Vec<ActivityRow>> {
        let rows = sqlx::query(&format!(
            "SELECT pid, state,
                    CASE WHEN wait_event IS NULL THEN NULL ELSE wait_event_type || '/' || wait_event END AS wait_event,
                    (EXTRACT(EPOCH FROM now() - xact_start) * 1000)::float8 AS transaction_ms,
                    (EXTRACT(EPOCH FROM now() - state_change) * 1000)::float8 AS state_ms,
                    query
             FROM pg_stat_activity
             WHERE {RUN_CONNECTIONS}
             ORDER BY state_change"
        ))
        .fetch_all(conn)
        .await
        .map_err(HarnessError::postgres("reading pg_stat_activity"))?;
        Ok(rows
            .into_iter()
            .map(|row| ActivityRow {
                pid: row.get("pid"),
                state: row.get("state"),
                wait_event: row.get("wait_event"),
                transaction_ms: row.get("transaction_ms"),
                state_ms: row.get("state_ms"),
                query: row.get("query"),
            })
            .collect())
    }
}

/// How many lock requests in `conn`'s database are waiting right now
/// (`pg_locks`), on a connection the caller keeps.
pub async fn lock_waits_on(conn: &mut PgConnection) -> Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
         WHERE NOT l.granted AND a.datname = current_database()",
    )
    .fetch_one(conn)
    .await
    .map_err(HarnessError::postgres("reading pg_locks"))
}

impl RunDatabase {
    /// Whether `pg_stat_statements` is loaded on this server.
    pub fn has_statement_stats(&self) -> bool {
        self.inner.server.capabilities.pg_stat_statements
    }

    /// Whether the server log can be read (container servers: yes).
    pub fn has_server_log(&self) -> bool {
        self.inner.server.capabilities.json_log.is_ok()
    }

    /// Why the server log cannot be read here, to say so in a report (the
    /// slow-query log, real calls' plans and deadlock reports come from it);
    /// `None` when it can.
    pub fn server_log_unavailable(&self) -> Option<&str> {
        self.inner
            .server
            .capabilities
            .json_log
            .as_ref()
            .err()
            .map(String::as_str)
    }

    /// Forgets the statistics `pg_stat_statements` holds for this database.
    pub async fn reset_statement_stats(&self) -> Result<()> {
        if !self.has_statement_stats() {
            return Ok(());
        }
        let mut conn = self.probe_connection().await?;
        sqlx::query(
            "SELECT pg_stat_statements_reset(0::oid, (SELECT oid FROM pg_database WHERE datname = current_database()), 0::bigint)",
        )
        .execute(&mut conn)
        .await
        .map_err(HarnessError::postgres("resetting pg_stat_statements"))?;
        Ok(())
    }

    /// The statements that took the most time in this database, most first.
    ///
    /// Empty when `pg_stat_statements` is not loaded.
    pub async fn statement_stats(&self, limit: i64) -> Result<Vec<StatementStats>> {
        if !self.has_statement_stats() {
            return Ok(Vec::new());
        }
        let mut conn = self.probe_connection().await?;
        let rows = sqlx::query(
            "SELECT query, calls, mean_exec_time, total_exec_time, rows, shared_blks_hit, shared_blks_read
             FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY total_exec_time DESC
             LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut conn)
        .await
        .map_err(HarnessError::postgres("reading pg_stat_statements"))?;
        Ok(rows
            .into_iter()
            .map(|row| StatementStats {
                query: row.get("query"),
                calls: row.get("calls"),
                mean_ms: row.get("mean_exec_time"),
                total_ms: row.get("total_exec_time"),
                rows: row.get("rows"),
                shared_blocks_hit: row.get("shared_blks_hit"),
                shared_blocks_read: row.get("shared_blks_read"),
            })
            .collect())
    }

    /// Totals over every statement run in this database since the last
    /// [`RunDatabase::reset_statement_stats`] — the harness's own probes
    /// left out — straight from `pg_stat_statements`: the server's count of
    /// the work done, whatever SQL the variant wrote.
    ///
    /// All zero when `pg_stat_statements` is not loaded.
    pub async fn statement_totals(&self) -> Result<StatementTotals> {
        if !self.has_statement_stats() {
            return Ok(StatementTotals::default());
        }
        let mut conn = self.probe_connection().await?;
        StatementTotals::read(&mut conn).await
    }

    /// Every other backend connected to this database, longest in its state first.
    pub async fn activity(&self) -> Result<Vec<ActivityRow>> {
        let mut conn = self.probe_connection().await?;
        ActivityRow::read(&mut conn).await
    }

    /// How many lock requests in this database are waiting right now (`pg_locks`).
    pub async fn lock_waits(&self) -> Result<i64> {
        let mut conn = self.probe_connection().await?;
        lock_waits_on(&mut conn).await
    }

    /// Ends every connection to this database but the harness's probes, and
    /// waits (at most `limit`) until they are gone: a backend reports the
    /// last of its statistics (`pg_stat_database`) as it exits. For after a
    /// run's pools have closed — a pool may leave a connection behind that
    /// was being returned as it closed.
    ///
    /// Returns whether they were all gone in time.
    pub async fn end_backends(&self, limit: Duration) -> Result<bool> {
        let mut conn = self.probe_connection().await?;
        sqlx::query(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {RUN_CONNECTIONS}"
        ))
        .execute(&mut conn)
        .await
        .map_err(HarnessError::postgres("ending the run's connections"))?;
        let started = tokio::time::Instant::now();
        loop {
            let left: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE {RUN_CONNECTIONS}"
            ))
            .fetch_one(&mut conn)
            .await
            .map_err(HarnessError::postgres("reading pg_stat_activity"))?;
            if left == 0 {
                return Ok(true);
            }
            if started.elapsed() > limit {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Makes PostgreSQL look for a deadlock after a lock has been waited on
    /// for `timeout` (`deadlock_timeout`, one second by default) in
    /// connections opened afterwards: a run of a few seconds sees every
    /// deadlock resolved, not a handful of one-second stalls.
    pub async fn detect_deadlocks_after(&self, timeout: Duration) -> Result<()> {
        let mut conn = self.probe_connection().await?;
        conn.execute(
            format!(
                r#"ALTER DATABASE "{}" SET deadlock_timeout = '{}ms'"#,
                self.name(),
                timeout.as_millis()
            )
            .as_str(),
        )
        .await
        .map_err(HarnessError::postgres("setting deadlock_timeout"))?;
        Ok(())
    }

    /// Transactions committed and rolled back in this database so far
    /// (`pg_stat_database`; updated when transactions end, so read it after the work).
    pub async fn transaction_counts(&self) -> Result<(i64, i64)> {
        let mut conn = self.probe_connection().await?;
        sqlx::query_as("SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()")
            .fetch_one(&mut conn)
            .await
            .map_err(HarnessError::postgres("reading pg_stat_database"))
    }

    /// Deadlocks PostgreSQL has detected in this database so far
    /// (`pg_stat_database.deadlocks`): counted by the server, whatever the
    /// clients did with the errors.
    ///
    /// A backend reports its count when it next flushes its statistics (at
    /// most once a second while busy, and always when it exits), so read it
    /// after the run's connections have closed.
    pub async fn deadlocks(&self) -> Result<i64> {
        let mut conn = self.probe_connection().await?;
        sqlx::query_scalar(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(HarnessError::postgres("reading pg_stat_database"))
    }

    /// The definitions of the indexes on `table` (`CREATE INDEX … ON …`), by name.
    pub async fn index_definitions(&self, table: &str) -> Result<Vec<String>> {
        let mut conn = self.probe_connection().await?;
        sqlx::query_scalar(
            "SELECT indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY indexname",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await
        .map_err(HarnessError::postgres("reading pg_indexes"))
    }

    /// The current end of the server log, to read what comes after it.
    ///
    /// `None` when the log cannot be read on this server.
    pub async fn log_mark(&self) -> Result<Option<LogMark>> {
        let Ok(path) = &self.inner.server.capabilities.json_log else {
            return Ok(None);
        };
        let mut conn = self.probe_connection().await?;
        let size: i64 = sqlx::query_scalar("SELECT size FROM pg_stat_file($1)")
            .bind(path)
            .fetch_one(&mut conn)
            .await
            .map_err(HarnessError::postgres("reading the server log's size"))?;
        Ok(Some(LogMark(size)))
    }

    /// The log entries about this database written since `mark`.
    pub async fn log_since(&self, mark: LogMark) -> Result<Vec<LogEntry>> {
        let Ok(path) = &self.inner.server.capabilities.json_log else {
            return Ok(Vec::new());
        };
        let mut conn = self.probe_connection().await?;
        // pg_read_file reads whole characters; read bytes and decode leniently
        // instead, since a line may be half-written at the end.
        let bytes: Vec<u8> = sqlx::query_scalar(
            "SELECT pg_read_binary_file($1, $2, greatest((SELECT size FROM pg_stat_file($1)) - $2, 0))",
        )
        .bind(path)
        .bind(mark.0)
        .fetch_one(&mut conn)
        .await
        .map_err(HarnessError::postgres("reading the server log"))?;
        let text = String::from_utf8_lossy(&bytes);
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str::<LogEntry>(line).ok())
            .filter(|entry| entry.dbname.as_deref() == Some(self.name()))
            .filter(|entry| entry.application_name.as_deref() != Some("debuglab-probe"))
            .collect())
    }

    /// The plans logged since `mark` by connections that
    /// [`RunDatabase::log_plans_of_later_connections`] covers (or a session
    /// that loaded `auto_explain`), oldest first.
    ///
    /// The logging collector writes a moment after a statement ends, so the
    /// log is read again until `complete` says the plans hold what the
    /// caller awaits, for `limit` at most (then what is there is returned).
    pub async fn logged_plans_since(
        &self,
        mark: LogMark,
        limit: Duration,
        complete: impl Fn(&[LoggedPlan]) -> bool,
    ) -> Result<Vec<LoggedPlan>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let plans: Vec<LoggedPlan> = self
                .log_since(mark)
                .await?
                .iter()
                .filter_map(|entry| {
                    Some(LoggedPlan {
                        ended: entry.logged_at()?,
                        plan: Plan::from_auto_explain(&entry.message)?,
                    })
                })
                .collect();
            if complete(&plans) || tokio::time::Instant::now() >= deadline {
                return Ok(plans);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `call` on a one-connection pool and returns what `call` returned
    /// with the plans of the statements it ran.
    ///
    /// Where the server log can be read, these are the real plans of the real
    /// code: `auto_explain` logs every plan with `ANALYZE` and `BUFFERS`.
    /// Elsewhere (a server named by URL, see [`RunDatabase::server_log_unavailable`])
    /// they are the generic plans of the statements `pg_stat_statements` saw
    /// the call run, planned again from their normalised text
    /// ([`Plan::is_analyzed`] is false: the planner's estimates, no rows read,
    /// no buffers). Empty when the server has neither.
    pub async fn capture_plans<F, Fut, T>(&self, call: F) -> Result<(T, Vec<Plan>)>
    where
        F: FnOnce(PgPool) -> Fut,
        Fut: Future<Output = T>,
    {
        if self.has_server_log() {
            self.auto_explain_plans(call).await
        } else {
            self.generic_plans_of(call).await
        }
    }

    async fn auto_explain_plans<F, Fut, T>(&self, call: F) -> Result<(T, Vec<Plan>)>
    where
        F: FnOnce(PgPool) -> Fut,
        Fut: Future<Output = T>,
    {
        let mark = self.log_mark().await?;
        let pool = self
            .explain_pool(
                "LOAD 'auto_explain';
                 SET auto_explain.log_min_duration = 0;
                 SET auto_explain.log_analyze = on;
                 SET auto_explain.log_buffers = on;
                 SET auto_explain.log_format = 'json';
                 SET log_min_duration_statement = -1;",
            )
            .await?;
        let output = call(pool.clone()).await;
        pool.close().await;
        let Some(mark) = mark else {
            return Ok((output, Vec::new()));
        };
        let logged = self
            .logged_plans_since(mark, Duration::from_secs(5), |plans| !plans.is_empty())
            .await?;
        Ok((
            output,
            logged.into_iter().map(|logged| logged.plan).collect(),
        ))
    }

    /// The generic plans of the statements `call` ran, found by what
    /// `pg_stat_statements` counted meanwhile (the harness's probes count
    /// nothing, and a run captures plans once its traffic has ended).
    async fn generic_plans_of<F, Fut, T>(&self, call: F) -> Result<(T, Vec<Plan>)>
    where
        F: FnOnce(PgPool) -> Fut,
        Fut: Future<Output = T>,
    {
        let pool = self.explain_pool("").await?;
        let before = self.statement_calls().await?;
        let output = call(pool.clone()).await;
        pool.close().await;
        if !self.has_statement_stats() {
            return Ok((output, Vec::new()));
        }
        let after = self.statement_calls().await?;
        let mut plans = Vec::new();
        for query in statements_run_between(&before, &after) {
            match self.generic_plan(&query).await {
                Ok(plan) => plans.push(plan),
                Err(error) => tracing::debug!("no generic plan for {query}: {error}"),
            }
        }
        Ok((output, plans))
    }

    /// A one-connection pool for a captured call, each connection set up with `setup`.
    async fn explain_pool(&self, setup: &'static str) -> Result<PgPool> {
        let mut pool = PgPoolOptions::new().max_connections(1);
        if !setup.is_empty() {
            pool = pool.after_connect(move |conn, _meta| {
                Box::pin(async move {
                    conn.execute(setup).await?;
                    Ok(())
                })
            });
        }
        // The name in the start-up message: a SET would be counted as a
        // statement where utility statements are.
        pool.connect_with(
            self.inner
                .options
                .clone()
                .application_name("debuglab-explain"),
        )
        .await
        .map_err(HarnessError::postgres(
            "opening a connection for a captured call",
        ))
    }

    /// Calls so far of each statement `pg_stat_statements` keeps for this
    /// database, by normalised text; empty without it.
    async fn statement_calls(&self) -> Result<BTreeMap<String, i64>> {
        if !self.has_statement_stats() {
            return Ok(BTreeMap::new());
        }
        let mut conn = self.probe_connection().await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT query, sum(calls)::bigint FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             GROUP BY query",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(HarnessError::postgres("reading pg_stat_statements"))?;
        Ok(rows.into_iter().collect())
    }

    /// The generic plan of a normalised statement (`$1`… for its parameters
    /// and constants), which has no values to run with: `EXPLAIN
    /// (GENERIC_PLAN)` from PostgreSQL 16 on; before, the statement is
    /// prepared and its forced generic plan explained with every parameter
    /// NULL (EXPLAIN without ANALYZE runs nothing, so the NULLs only fill the
    /// slots).
    async fn generic_plan(&self, query: &str) -> Result<Plan> {
        let mut conn = self.probe_connection().await?;
        // Plain text without arguments goes by the simple protocol: `$1` must
        // reach the server as text, not as a parameter of the EXPLAIN itself.
        let explain = if self.inner.server.capabilities.server_version_num >= 160_000 {
            format!("EXPLAIN (GENERIC_PLAN, FORMAT JSON) {query}")
        } else {
            let prepare = format!(
                "SET plan_cache_mode = force_generic_plan; PREPARE debuglab_generic AS {query}"
            );
            conn.execute(prepare.as_str())
                .await
                .map_err(HarnessError::postgres("preparing a statement to explain"))?;
            match parameter_count(query) {
                0 => "EXPLAIN (FORMAT JSON) EXECUTE debuglab_generic".to_owned(),
                count => format!(
                    "EXPLAIN (FORMAT JSON) EXECUTE debuglab_generic({})",
                    vec!["NULL"; count].join(", ")
                ),
            }
        };
        let row = conn
            .fetch_one(explain.as_str())
            .await
            .map_err(HarnessError::postgres("explaining a statement"))?;
        let json: serde_json::Value = row
            .try_get(0)
            .map_err(HarnessError::postgres("reading a plan"))?;
        Plan::from_explain_json(&json).ok_or_else(|| HarnessError::Setup {
            scenario: self.name().to_owned(),
            detail: "EXPLAIN returned a plan the harness cannot read".to_owned(),
        })
    }

    /// `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of `sql` with one `bigint` parameter.
    pub async fn explain_analyze(&self, sql: &str, param: i64) -> Result<Plan> {
        let mut conn = self.probe_connection().await?;
        let json: serde_json::Value =
            sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"))
                .bind(param)
                .fetch_one(&mut conn)
                .await
                .map_err(HarnessError::postgres("running EXPLAIN ANALYZE"))?;
        Plan::from_explain_json(&json).ok_or_else(|| HarnessError::Setup {
            scenario: self.name().to_owned(),
            detail: "EXPLAIN returned a plan the harness cannot read".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_counted_by_the_highest_placeholder() {
        assert_eq!(parameter_count("SELECT 1"), 0);
        assert_eq!(
            parameter_count(
                "SELECT * FROM orders WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2"
            ),
            2
        );
        assert_eq!(parameter_count("SELECT $3, $1 + $12"), 12);
        // Not placeholders: part of a name, or a dollar quote's tag.
        assert_eq!(parameter_count("SELECT price$1 FROM t"), 0);
        assert_eq!(parameter_count("SELECT $$a$$"), 0);
    }

    fn entry(timestamp: &str, message: &str) -> LogEntry {
        LogEntry {
            timestamp: timestamp.to_owned(),
            error_severity: "LOG".to_owned(),
            message: message.to_owned(),
            detail: None,
            dbname: None,
            application_name: None,
        }
    }

    #[test]
    fn a_log_entry_tells_when_it_was_written_and_a_plan_when_it_began() {
        let logged = entry("2026-12-07 10:06:44.123 UTC", "");
        let at = logged.logged_at().expect("a timestamp");
        let since_epoch = at.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(since_epoch.as_millis(), 1_796_638_004_123);
        assert_eq!(entry("yesterday", "").logged_at(), None);
        let message = r#"duration: 30.5 ms  plan:
{"Query Text": "SELECT 1", "Plan": {"Node Type": "Result", "Actual Rows": 1, "Actual Loops": 1, "Shared Hit Blocks": 350}}"#;
        let plan = LoggedPlan {
            ended: at,
            plan: Plan::from_auto_explain(message).expect("a plan"),
        };
        assert_eq!(plan.plan.root.shared_hit_blocks, Some(350));
        assert_eq!(
            at.duration_since(plan.began()).unwrap(),
            Duration::from_micros(30_500)
        );
    }

    #[test]
    fn only_plannable_statements_that_ran_are_explained() {
        let before = BTreeMap::from([
            ("SELECT a FROM t WHERE id = $1".to_owned(), 5),
            ("SELECT b FROM t".to_owned(), 2),
        ]);
        let after = BTreeMap::from([
            ("SELECT a FROM t WHERE id = $1".to_owned(), 6),
            ("SELECT b FROM t".to_owned(), 2),
            ("BEGIN".to_owned(), 1),
            ("with x as (select 1) select * from x".to_owned(), 3),
        ]);
        assert_eq!(
            statements_run_between(&before, &after),
            [
                "with x as (select 1) select * from x",
                "SELECT a FROM t WHERE id = $1"
            ]
        );
    }
}
