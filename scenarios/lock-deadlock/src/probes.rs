//! What the run measures: the database while the transfers run (open
//! transactions, waiting locks, the sum of all balances, every 20 ms, on a
//! connection of the harness's own), PostgreSQL's own count of deadlocks and
//! its log's deadlock reports afterwards, and the books — balances against
//! the ledger, the ledger against what the clients were told; and the
//! metrics and evidence it records.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use debuglab_harness::plot;
use debuglab_harness::postgres::{
    lock_waits_on, ActivityRow, LogEntry, LogMark, PgConnection, RunDatabase, RUN_CONNECTIONS,
};
use debuglab_harness::report::grouped;
use debuglab_harness::sampler::{sample_every, Sample, Sampler};
use debuglab_harness::stats::median;
use debuglab_harness::{HarnessError, Plot, PlotKind, Result, RunContext};

use crate::data::{ACCOUNTS, OPENING_BALANCE_CENTS, TOTAL_CENTS};
use crate::verdict::{Books, Figures, Moments};
use crate::workload::{
    describe, is_deadlock, transfer_for, TransferOutcome, DEADLOCK_TIMEOUT, POOL, WORKLOAD,
};
use crate::Transfer;

/// How often the database is looked at while the transfers run.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// How long the pool's backends may take to exit once ended.
const BACKENDS_EXIT_LIMIT: Duration = Duration::from_secs(5);

/// How long the server log may take to show a deadlock the server counted.
const LOG_LIMIT: Duration = Duration::from_secs(2);

/// The database at one moment of the run.
#[derive(Clone, Debug, Default)]
pub struct Moment {
    /// Transactions open on the endpoint's connections (`pg_stat_activity`).
    pub open_transfers: i64,
    /// Lock requests waiting (`pg_locks`).
    pub lock_waiters: i64,
    /// The sum of every balance, in one snapshot.
    pub money_cents: i64,
    /// The backends, when more locks waited than at any moment before.
    pub busiest: Option<Vec<ActivityRow>>,
}

/// The sampler that watches the database (and feeds a live run's gauges).
pub struct Watch {
    moments: Sampler<Option<Moment>>,
}

/// What the sampler saw.
pub struct Watched {
    moments: Vec<Sample<Moment>>,
}

impl Watch {
    /// Looks at the database every [`SAMPLE_EVERY`] on one connection of its
    /// own; `deadlock_errors` (counted by the requests) is a live gauge.
    pub fn start(
        ctx: &RunContext,
        database: &RunDatabase,
        deadlock_errors: Arc<AtomicUsize>,
    ) -> Watch {
        let (database, progress) = (database.clone(), Arc::clone(ctx.progress()));
        let conn = Arc::new(tokio::sync::Mutex::new(None::<PgConnection>));
        let most_waiters = Arc::new(Mutex::new(0));
        let moments = sample_every(SAMPLE_EVERY, move || {
            let (database, progress, conn) =
                (database.clone(), Arc::clone(&progress), Arc::clone(&conn));
            let (most_waiters, deadlock_errors) =
                (Arc::clone(&most_waiters), Arc::clone(&deadlock_errors));
            async move {
                let mut conn = conn.lock().await;
                if conn.is_none() {
                    *conn = database.probe_connection().await.ok();
                }
                let moment = look(conn.as_mut()?, &most_waiters).await.ok()?;
                progress.gauge("open_transfers", moment.open_transfers as f64);
                progress.gauge("lock_waiters", moment.lock_waiters as f64);
                progress.gauge(
                    "deadlock_errors",
                    deadlock_errors.load(Ordering::Relaxed) as f64,
                );
                Some(moment)
            }
        });
        Watch { moments }
    }

    /// Stops looking.
    pub async fn stop(self) -> Watched {
        let moments = self.moments.stop().await;
        Watched {
            moments: moments
                .into_iter()
                .filter_map(|sample| {
                    sample.value.map(|value| Sample {
                        at: sample.at,
                        value,
                    })
                })
                .collect(),
        }
    }
}

/// One moment; the backends too when more locks wait than ever before.
async fn look(conn: &mut PgConnection, most_waiters: &Mutex<i64>) -> Result<Moment> {
    let (open_transfers, money_cents): (i64, i64) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM pg_stat_activity
                 WHERE {RUN_CONNECTIONS} AND xact_start IS NOT NULL),
                (SELECT coalesce(sum(balance), 0)::bigint FROM accounts)"
    ))
    .fetch_one(&mut *conn)
    .await
    .map_err(HarnessError::postgres("looking at the transfers"))?;
    let lock_waiters = lock_waits_on(conn).await?;
    let record = {
        let mut most = most_waiters.lock().unwrap_or_else(PoisonError::into_inner);
        let record = lock_waiters > *most;
        *most = (*most).max(lock_waiters);
        record
    };
    let busiest = if record {
        Some(ActivityRow::read(conn).await?)
    } else {
        None
    };
    Ok(Moment {
        open_transfers,
        lock_waiters,
        money_cents,
        busiest,
    })
}

impl Watched {
    /// The moments summed up for the verdict.
    pub fn moments(&self) -> Moments {
        let open: Vec<f64> = self
            .moments
            .iter()
            .map(|sample| sample.value.open_transfers as f64)
            .collect();
        Moments {
            samples: self.moments.len(),
            open_transfers_median: median(&open).unwrap_or(0.0),
            open_transfers_max: self
                .moments
                .iter()
                .map(|sample| sample.value.open_transfers)
                .max()
                .unwrap_or(0),
            lock_waiters_max: self
                .moments
                .iter()
                .map(|sample| sample.value.lock_waiters)
                .max()
                .unwrap_or(0),
            money_drift_max_cents: self
                .moments
                .iter()
                .map(|sample| sample.value.money_cents - TOTAL_CENTS)
                .max_by_key(|drift| drift.abs())
                .unwrap_or(0),
        }
    }

    /// The last moment with the most waiting locks, and when it was.
    fn busiest(&self) -> Option<(Duration, &[ActivityRow])> {
        self.moments.iter().rev().find_map(|sample| {
            sample
                .value
                .busiest
                .as_deref()
                .map(|rows| (sample.at, rows))
        })
    }
}

/// The server's counters for the run's database (`pg_stat_database`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerCounts {
    /// Deadlocks detected.
    pub deadlocks: i64,
    /// Transactions rolled back.
    pub rolled_back: i64,
}

impl ServerCounts {
    /// Reads them now.
    pub async fn read(database: &RunDatabase) -> Result<ServerCounts> {
        let deadlocks = database.deadlocks().await?;
        let (_, rolled_back) = database.transaction_counts().await?;
        Ok(ServerCounts {
            deadlocks,
            rolled_back,
        })
    }
}

/// What the server says about the run, once its connections are gone.
#[derive(Clone, Debug, Default)]
pub struct ServerEvidence {
    /// Deadlocks the server detected during the run.
    pub deadlocks: i64,
    /// Transactions it rolled back (deadlock victims, refusals, failures).
    pub rolled_back: i64,
    /// Whether every backend had exited, so that the counts are complete.
    pub complete: bool,
    /// The log's deadlock reports (`None`: the log cannot be read here).
    pub reports: Option<Vec<LogEntry>>,
    /// Why the server log cannot be read here, if it cannot.
    pub log_unavailable: Option<String>,
}

/// The server's counts since `before` and its deadlock reports since `log`,
/// read once the run's backends have exited (each reports the last of its
/// counts as it goes).
pub async fn server_evidence(
    database: &RunDatabase,
    before: ServerCounts,
    log: Option<LogMark>,
) -> Result<ServerEvidence> {
    let complete = database.end_backends(BACKENDS_EXIT_LIMIT).await?;
    let after = ServerCounts::read(database).await?;
    let deadlocks = after.deadlocks - before.deadlocks;
    let reports = match log {
        Some(mark) => Some(deadlock_reports(database, mark, deadlocks).await?),
        None => None,
    };
    Ok(ServerEvidence {
        deadlocks,
        rolled_back: after.rolled_back - before.rolled_back,
        complete,
        reports,
        log_unavailable: database.server_log_unavailable().map(str::to_owned),
    })
}

/// The log's `deadlock detected` entries since `mark`; the logging collector
/// writes a moment after the server counts, so look again (bounded) until
/// there are as many as it counted.
async fn deadlock_reports(
    database: &RunDatabase,
    mark: LogMark,
    counted: i64,
) -> Result<Vec<LogEntry>> {
    let started = tokio::time::Instant::now();
    loop {
        let reports: Vec<LogEntry> = database
            .log_since(mark)
            .await?
            .into_iter()
            .filter(|entry| entry.message.contains("deadlock detected"))
            .collect();
        if reports.len() as i64 >= counted || started.elapsed() > LOG_LIMIT {
            return Ok(reports);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The books after the run: the balances against the ledger, and the
/// ledger against what each client was told.
pub async fn check_books(
    database: &RunDatabase,
    seed: u64,
    outcome: &TransferOutcome,
) -> Result<Books> {
    let mut conn = database.probe_connection().await?;
    let balances: BTreeMap<i64, i64> = sqlx::query_as("SELECT id, balance FROM accounts")
        .fetch_all(&mut conn)
        .await
        .map_err(HarnessError::postgres("reading the balances"))?
        .into_iter()
        .collect();
    let ledger: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, from_account, to_account, amount_cents FROM transfers ORDER BY transfers.id",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(HarnessError::postgres("reading the ledger"))?;
    let span: (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT min(created_at), max(created_at) FROM transfers")
            .fetch_one(&mut conn)
            .await
            .map_err(HarnessError::postgres("reading the ledger's times"))?;
    let ledger: Vec<Transfer> = ledger
        .into_iter()
        .map(|(id, from, to, amount_cents)| Transfer {
            id,
            from,
            to,
            amount_cents,
        })
        .collect();
    let applied: BTreeSet<i64> = outcome
        .records
        .iter()
        .filter_map(|record| record.result.as_ref().ok())
        .filter(|(_, answer)| answer.is_ok())
        .map(|(transfer, _)| transfer.id)
        .collect();
    let answered: BTreeSet<i64> = outcome
        .records
        .iter()
        .filter_map(|r| r.result.as_ref().ok())
        .map(|(t, _)| t.id)
        .collect();
    let mut books = compare_books(seed, &balances, &ledger, &applied, &answered);
    // The server's own clock: how long the applied transfers took to land.
    books.ledger_span_ms = match span {
        (Some(first), Some(last)) => (last - first).num_microseconds().unwrap_or(0) as f64 / 1000.0,
        _ => 0.0,
    };
    Ok(books)
}

/// The comparison [`check_books`] makes, from the figures alone: `applied`
/// are the transfers the clients were told went through, `answered` every
/// transfer whose client got an answer (the others may or may not be in
/// the ledger).
pub fn compare_books(
    seed: u64,
    balances: &BTreeMap<i64, i64>,
    ledger: &[Transfer],
    applied: &BTreeSet<i64>,
    answered: &BTreeSet<i64>,
) -> Books {
    let mut books = Books {
        money_cents: balances.values().sum(),
        ledger_rows: ledger.len(),
        ..Books::default()
    };
    let mut net: BTreeMap<i64, i64> = (1..=ACCOUNTS)
        .map(|id| (id, OPENING_BALANCE_CENTS))
        .collect();
    let note = |books: &mut Books, line: String| {
        books.first_problem.get_or_insert(line);
    };
    for row in ledger {
        *net.entry(row.from).or_default() -= row.amount_cents;
        *net.entry(row.to).or_default() += row.amount_cents;
        let asked = transfer_for(seed, (row.id.max(1) - 1) as usize);
        if asked != *row {
            books.altered += 1;
            note(
                &mut books,
                format!(
                    "the ledger has {}, the client asked for {}",
                    describe(row),
                    describe(&asked)
                ),
            );
        } else if answered.contains(&row.id) && !applied.contains(&row.id) {
            books.extra += 1;
            note(
                &mut books,
                format!(
                    "{} is in the ledger, but its client was told it failed or was refused",
                    describe(row)
                ),
            );
        }
    }
    let in_ledger: BTreeSet<i64> = ledger.iter().map(|row| row.id).collect();
    for id in applied.difference(&in_ledger) {
        books.missing += 1;
        note(
            &mut books,
            format!("transfer {id} was applied, its client was told, and it is not in the ledger"),
        );
    }
    for (id, balance) in balances {
        let expected = net.get(id).copied().unwrap_or(0);
        if *balance != expected {
            books.unbalanced_accounts += 1;
            note(
                &mut books,
                format!(
                    "account {id} holds {}, its opening balance and the ledger say {}",
                    cents(*balance),
                    cents(expected)
                ),
            );
        }
    }
    books
}

/// `354 ledger rows, written over 1,210 ms (292 a second)`.
fn ledger_rows(books: &Books) -> String {
    if books.ledger_span_ms <= 0.0 {
        return books.ledger_rows.to_string();
    }
    format!(
        "{} (written over {} ms by the server's clock, {:.0} a second)",
        books.ledger_rows,
        grouped(books.ledger_span_ms),
        books.ledger_rows as f64 / books.ledger_span_ms * 1000.0
    )
}

/// `1,234.56`.
pub fn cents(amount: i64) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        grouped((amount.abs() / 100) as f64),
        amount.abs() % 100
    )
}

/// Records the metrics and the evidence of a run.
pub fn record(
    ctx: &RunContext,
    figures: &Figures,
    outcome: &TransferOutcome,
    watched: &Watched,
    server: &ServerEvidence,
) {
    record_metrics(ctx, figures, outcome);
    record_traffic(ctx, figures, outcome);
    record_server(ctx, server);
    record_moments(ctx, &figures.moments, watched);
    record_books(ctx, &figures.books);
    record_plots(ctx, outcome, watched);
}

/// The pictures of a run: transfers open and locks waiting, and the
/// deadlock errors the clients got so far, over time.
fn record_plots(ctx: &RunContext, outcome: &TransferOutcome, watched: &Watched) {
    ctx.series(
        "open_transfers",
        plot::sampled(&watched.moments, |m| m.open_transfers as f64),
    );
    ctx.series(
        "lock_waiters",
        plot::sampled(&watched.moments, |m| m.lock_waiters as f64),
    );
    let mut deadlocks: Vec<f64> = outcome
        .records
        .iter()
        .filter(|record| matches!(&record.result, Ok((_, Err(error))) if is_deadlock(error)))
        .map(|record| plot::millis(record.started + record.latency))
        .collect();
    deadlocks.sort_by(f64::total_cmp);
    let end = plot::millis(outcome.elapsed);
    let counted = deadlocks
        .iter()
        .enumerate()
        .map(|(seen, at)| [*at, (seen + 1) as f64]);
    ctx.series(
        "deadlock_errors",
        [[0.0, 0.0]]
            .into_iter()
            .chain(counted)
            .chain([[end, deadlocks.len() as f64]]),
    );
    ctx.plot(
        Plot::new("locks", PlotKind::Line, "Transfers and their locks")
            .x("time since the transfers began", "ms")
            .y("transfers, or lock requests", "")
            .line("open_transfers", "transfers open at once")
            .line("lock_waiters", "lock requests waiting (pg_locks)")
            .line("deadlock_errors", "'deadlock detected' errors so far"),
    );
}

fn record_metrics(ctx: &RunContext, figures: &Figures, outcome: &TransferOutcome) {
    let (transfers, books, moments) = (&figures.transfers, &figures.books, &figures.moments);
    let latencies = outcome.latencies();
    let metrics = [
        ("deadlocks", figures.deadlocks as f64),
        ("deadlock_errors", transfers.deadlock_errors as f64),
        ("transfers_applied", transfers.applied as f64),
        ("transfers_refused", transfers.refused as f64),
        ("transfers_failed", transfers.failed as f64),
        ("wrong_answers", transfers.wrong_answers as f64),
        // Refusals are answers, not failures: the requests that failed are the transfers that did.
        ("requests_failed", transfers.failed as f64),
        (
            "money_drift_cents",
            (books.money_cents - TOTAL_CENTS) as f64,
        ),
        (
            "money_drift_max_cents",
            moments.money_drift_max_cents as f64,
        ),
        ("ledger_mismatches", books.mismatches() as f64),
        ("open_transfers_median", moments.open_transfers_median),
        ("open_transfers_max", moments.open_transfers_max as f64),
        ("lock_waiters_max", moments.lock_waiters_max as f64),
        ("p50_ms", latencies.p50_ms().unwrap_or(0.0)),
        ("p95_ms", latencies.p95_ms().unwrap_or(0.0)),
        (
            "deadlock_timeout_ms",
            DEADLOCK_TIMEOUT.as_secs_f64() * 1000.0,
        ),
    ];
    for (name, value) in metrics {
        ctx.metric(name, (value * 100.0).round() / 100.0);
    }
}

fn record_traffic(ctx: &RunContext, figures: &Figures, outcome: &TransferOutcome) {
    let transfers = &figures.transfers;
    let latencies = outcome.latencies();
    ctx.evidence(format!(
        "{} transfers between {ACCOUNTS} accounts, both ways, {} at a time (seed {}), on a pool of {}: \
         latency p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        transfers.finished,
        WORKLOAD.concurrency,
        ctx.seed(),
        POOL.max_connections,
        latencies.p50_ms().unwrap_or(0.0),
        latencies.p95_ms().unwrap_or(0.0),
        latencies.max_ms().unwrap_or(0.0)
    ));
    ctx.evidence(format!(
        "what the clients were told: {} applied, {} refused as they must be, {} failed ({} with \
         `deadlock detected`, SQLSTATE 40P01), {} wrong answers",
        transfers.applied,
        transfers.refused,
        transfers.failed,
        transfers.deadlock_errors,
        transfers.wrong_answers
    ));
    if let Some(failure) = &transfers.first_failure {
        ctx.evidence(format!("the first failure: {failure}"));
    }
    if let Some(wrong) = &transfers.first_wrong {
        ctx.evidence(format!("the first wrong answer: {wrong}"));
    }
}

fn record_server(ctx: &RunContext, server: &ServerEvidence) {
    ctx.evidence(format!(
        "PostgreSQL's own count for the run's database (pg_stat_database): {} deadlocks detected, {} \
         transactions rolled back (deadlock_timeout {} ms){}",
        server.deadlocks,
        server.rolled_back,
        DEADLOCK_TIMEOUT.as_millis(),
        if server.complete { "" } else { "; some connections had not ended yet, so the counts may be short" }
    ));
    match &server.reports {
        None => ctx.evidence(format!(
            "deadlock reports: unavailable, the server log cannot be read here: {} (the count above is the server's own)",
            server.log_unavailable.as_deref().unwrap_or("no reason given")
        )),
        Some(reports) => {
            // The cycle with the fewest processes reads most easily.
            let simplest = reports.iter().min_by_key(|report| {
                report
                    .detail
                    .as_deref()
                    .map_or(usize::MAX, |d| d.lines().count())
            });
            if let Some(first) = simplest {
                ctx.evidence(format!(
                    "the server log has {} deadlock reports; the simplest, at {}:",
                    reports.len(),
                    first.timestamp
                ));
                ctx.evidence(format!("  {}: {}", first.error_severity, first.message));
                for line in first.detail.iter().flat_map(|detail| detail.lines()) {
                    ctx.evidence(format!("  {}", line.trim()));
                }
            }
        }
    }
}

fn record_moments(ctx: &RunContext, moments: &Moments, watched: &Watched) {
    ctx.evidence(format!(
        "the database every {} ms ({} looks, pg_stat_activity and pg_locks): transfers open at once \
         median {:.0}, at most {}; lock requests waiting at most {}; the balances summed to {} cents \
         off the opening total at most",
        SAMPLE_EVERY.as_millis(),
        moments.samples,
        moments.open_transfers_median,
        moments.open_transfers_max,
        moments.lock_waiters_max,
        grouped(moments.money_drift_max_cents as f64)
    ));
    if let Some((at, rows)) = watched.busiest() {
        ctx.evidence(format!(
            "the backends {} ms into the run, when the most locks waited:",
            at.as_millis()
        ));
        for row in rows.iter().take(POOL.max_connections as usize) {
            ctx.evidence(format!("  {row}"));
        }
    }
}

fn record_books(ctx: &RunContext, books: &Books) {
    ctx.evidence(format!(
        "the books after the run: the balances sum to {} (opened with {}); {} ledger rows; {} \
         accounts off their opening balance plus the ledger, {} applied transfers missing from the \
         ledger, {} rows for transfers not applied, {} rows unlike the transfer asked for",
        cents(books.money_cents),
        cents(TOTAL_CENTS),
        ledger_rows(books),
        books.unbalanced_accounts,
        books.missing,
        books.extra,
        books.altered
    ));
    if let Some(problem) = &books.first_problem {
        ctx.evidence(format!("the first: {problem}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opening() -> BTreeMap<i64, i64> {
        (1..=ACCOUNTS)
            .map(|id| (id, OPENING_BALANCE_CENTS))
            .collect()
    }

    /// The books after `transfers` of seed 5, all applied and in the ledger.
    fn after(indexes: &[usize]) -> (BTreeMap<i64, i64>, Vec<Transfer>, BTreeSet<i64>) {
        let mut balances = opening();
        let ledger: Vec<Transfer> = indexes
            .iter()
            .map(|&index| transfer_for(5, index))
            .collect();
        for row in &ledger {
            *balances.get_mut(&row.from).unwrap() -= row.amount_cents;
            *balances.get_mut(&row.to).unwrap() += row.amount_cents;
        }
        let applied = ledger.iter().map(|row| row.id).collect();
        (balances, ledger, applied)
    }

    #[test]
    fn balanced_books_have_no_mismatch() {
        let (balances, ledger, applied) = after(&[0, 1, 2, 3]);
        let books = compare_books(5, &balances, &ledger, &applied, &applied);
        assert_eq!(books.mismatches(), 0, "{books:?}");
        assert_eq!(books.money_cents, TOTAL_CENTS);
    }

    #[test]
    fn a_debit_without_its_credit_is_found() {
        let (mut balances, ledger, applied) = after(&[0, 1]);
        *balances.get_mut(&ledger[0].from).unwrap() -= 700;
        let books = compare_books(5, &balances, &ledger, &applied, &applied);
        assert_eq!(books.unbalanced_accounts, 1);
        assert_eq!(books.money_cents, TOTAL_CENTS - 700);
        assert!(books
            .first_problem
            .unwrap()
            .starts_with(&format!("account {}", ledger[0].from)));
    }

    #[test]
    fn ledger_rows_are_held_against_the_clients_answers() {
        let (balances, ledger, mut applied) = after(&[0, 1, 2]);
        let answered = applied.clone();
        // The client of transfer 2 was told it failed, yet it is in the ledger;
        // transfer 9 was applied per its client and is not.
        applied.remove(&2);
        applied.insert(9);
        let books = compare_books(5, &balances, &ledger, &applied, &answered);
        assert_eq!((books.extra, books.missing), (1, 1), "{books:?}");
        // A transfer that never got an answer may be in the ledger or not.
        let books = compare_books(
            5,
            &balances,
            &ledger,
            &BTreeSet::from([1]),
            &BTreeSet::from([1]),
        );
        assert_eq!(books.mismatches(), 0, "{books:?}");
    }

    #[test]
    fn amounts_read_as_money() {
        assert_eq!(cents(123_456_789), "1,234,567.89");
        assert_eq!(cents(-5), "-0.05");
    }
}
