//! The verdict: a pure function of the run's figures.
//!
//! Each problem line says what was seen and, where a lazy change could have
//! made the figures look healthy, why that is not a fix. Deadlocks are
//! counted by PostgreSQL itself, balances and the ledger read from the
//! database, and concurrency seen in `pg_stat_activity`, so no variant can
//! make them look better than they are; latency is in the figures as the
//! symptom a customer sees, but no check depends on it.

use debuglab_harness::scenario;
use debuglab_harness::Verdict;

use crate::probes::cents;

/// Transfers that must, at most moments, be open in the database at once.
///
/// Transfers between unrelated accounts have no reason to wait for each
/// other; eight clients with six accounts keep several open even when
/// transfers on the same account queue up. One at a time means the service
/// took turns.
pub const OPEN_TRANSFERS_MEDIAN_MIN: f64 = 2.0;

/// Looks at the database a run needs before its concurrency is judged.
pub const MOMENTS_MIN: usize = 10;

/// What a run measured, everything the verdict looks at.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// What the clients were told.
    pub transfers: Transfers,
    /// Deadlocks PostgreSQL detected in the run's database (`pg_stat_database`).
    pub deadlocks: i64,
    /// The books after the run.
    pub books: Books,
    /// The database while the transfers ran.
    pub moments: Moments,
}

/// What the clients were told, against what each transfer must get.
#[derive(Clone, Debug, Default)]
pub struct Transfers {
    /// Transfers answered (applied, refused or failed).
    pub finished: usize,
    /// Transfers still running when the workload ended.
    pub unfinished: usize,
    /// Transfers applied, as they must be.
    pub applied: usize,
    /// Transfers refused with the reason they must be.
    pub refused: usize,
    /// Transfers that failed with a database error.
    pub failed: usize,
    /// Of those, PostgreSQL's `deadlock detected` (SQLSTATE 40P01).
    pub deadlock_errors: usize,
    /// Transfers applied that must be refused, refused that must be
    /// applied, or refused for the wrong reason.
    pub wrong_answers: usize,
    /// The first failure, described.
    pub first_failure: Option<String>,
    /// The first wrong answer, described.
    pub first_wrong: Option<String>,
}

/// The books after the run, read from the database.
#[derive(Clone, Debug, Default)]
pub struct Books {
    /// The sum of every balance, in cents.
    pub money_cents: i64,
    /// Rows in the ledger.
    pub ledger_rows: usize,
    /// From the first ledger row to the last, by the server's clock (shown, not judged).
    pub ledger_span_ms: f64,
    /// Accounts whose balance is not their opening balance plus the
    /// ledger's credits minus its debits.
    pub unbalanced_accounts: usize,
    /// Transfers whose client was told they were applied, missing from the ledger.
    pub missing: usize,
    /// Ledger rows for transfers whose client was told they failed or were refused.
    pub extra: usize,
    /// Ledger rows unlike the transfer the client asked for.
    pub altered: usize,
    /// The first of these, described.
    pub first_problem: Option<String>,
}

impl Books {
    /// Everything in the books that should not be there.
    pub fn mismatches(&self) -> usize {
        self.unbalanced_accounts + self.missing + self.extra + self.altered
    }
}

/// The database while the transfers ran, looked at every few milliseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Moments {
    /// How many looks.
    pub samples: usize,
    /// Transfers open in the database at once (`pg_stat_activity`), the median look.
    pub open_transfers_median: f64,
    /// The most open at once.
    pub open_transfers_max: i64,
    /// The most lock requests waiting at once (`pg_locks`).
    pub lock_waiters_max: i64,
    /// The sum of all balances minus the opening total, farthest from zero.
    pub money_drift_max_cents: i64,
}

/// The money the bank held when it opened: every balance summed.
const OPENING_TOTAL: i64 = crate::data::TOTAL_CENTS;

/// Judges a run by its figures.
pub fn verdict(figures: &Figures) -> Verdict {
    let mut problems = transfer_problems(&figures.transfers);
    problems.extend(deadlock_problems(figures));
    problems.extend(money_problems(&figures.books, &figures.moments));
    problems.extend(ledger_problems(&figures.books));
    problems.extend(concurrency_problems(&figures.moments));
    Verdict::from_problems(&problems, || healthy_summary(figures))
}

fn transfer_problems(transfers: &Transfers) -> Vec<String> {
    let mut problems = scenario::request_problems(transfers.finished, 0, transfers.unfinished);
    if transfers.failed > 0 {
        problems.push(format!(
            "{} of {} transfers failed ({} with `deadlock detected`); the first: {} — a customer \
             whose transfer fails tries again by hand or calls support",
            transfers.failed,
            transfers.finished,
            transfers.deadlock_errors,
            transfers.first_failure.as_deref().unwrap_or("?")
        ));
    }
    if transfers.wrong_answers > 0 {
        problems.push(format!(
            "{} transfers got the wrong answer; the first: {} — a transfer with the funds between \
             two real accounts must be applied, any other refused with its reason",
            transfers.wrong_answers,
            transfers.first_wrong.as_deref().unwrap_or("?")
        ));
    }
    problems
}

fn deadlock_problems(figures: &Figures) -> Vec<String> {
    if figures.deadlocks <= 0 {
        return Vec::new();
    }
    let mut line = format!(
        "PostgreSQL detected {} deadlocks in the run's database (pg_stat_database, counted by the \
         server whatever the client did with the error)",
        figures.deadlocks
    );
    if figures.transfers.deadlock_errors == 0 {
        line.push_str(
            ", yet no client was told of one: the errors were caught and the transfers tried \
             again — retrying hides a deadlock from the customer, it does not remove it: every \
             retry first waits for the server to find the deadlock, then redoes the work",
        );
    }
    vec![line]
}

fn money_problems(books: &Books, moments: &Moments) -> Vec<String> {
    let mut problems = Vec::new();
    let drift = books.money_cents - OPENING_TOTAL;
    if drift != 0 {
        problems.push(format!(
            "the balances sum to {} after the run, {} from the {} the bank opened with: money was \
             {} — a transfer must move all of its amount or none of it",
            cents(books.money_cents),
            cents(drift.abs()),
            cents(OPENING_TOTAL),
            if drift < 0 { "destroyed" } else { "created" }
        ));
    }
    if moments.money_drift_max_cents != 0 {
        problems.push(format!(
            "while the transfers ran, the balances summed to {} off the opening total at one \
             moment: a debit was visible without its credit — money in flight between two \
             transactions is missing from the books meanwhile, and for good when the second fails",
            cents(moments.money_drift_max_cents.abs())
        ));
    }
    problems
}

fn ledger_problems(books: &Books) -> Vec<String> {
    if books.mismatches() == 0 {
        return Vec::new();
    }
    vec![format!(
        "the books do not add up: {} accounts off their opening balance plus the ledger, {} applied \
         transfers missing from the ledger, {} ledger rows for transfers not applied, {} unlike the \
         transfer asked for; the first: {} — every accepted transfer must be applied exactly once, \
         and a refused or failed one leave no trace",
        books.unbalanced_accounts,
        books.missing,
        books.extra,
        books.altered,
        books.first_problem.as_deref().unwrap_or("?")
    )]
}

fn concurrency_problems(moments: &Moments) -> Vec<String> {
    if moments.samples < MOMENTS_MIN || moments.open_transfers_median >= OPEN_TRANSFERS_MEDIAN_MIN {
        return Vec::new();
    }
    vec![format!(
        "at most moments only {:.0} transfer was open in the database (pg_stat_activity, median of \
         {} looks; bound {OPEN_TRANSFERS_MEDIAN_MIN:.0}): the transfers took turns — the service \
         runs as several instances sharing the database, so taking turns inside one process is no \
         cure, and it makes every transfer wait for all the others",
        moments.open_transfers_median, moments.samples
    )]
}

fn healthy_summary(figures: &Figures) -> String {
    let (transfers, moments) = (&figures.transfers, &figures.moments);
    format!(
        "All {} transfers were answered as they must be ({} applied, {} refused), PostgreSQL \
         detected no deadlock, the books add up to the cent, and transfers ran side by side \
         (median {:.0} open at once, up to {} locks waiting).",
        transfers.finished,
        transfers.applied,
        transfers.refused,
        moments.open_transfers_median,
        moments.lock_waiters_max
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A healthy run: 380 transfers applied, 20 refused, eight open at once.
    fn healthy() -> Figures {
        Figures {
            transfers: Transfers {
                finished: 400,
                applied: 380,
                refused: 20,
                ..Transfers::default()
            },
            deadlocks: 0,
            books: Books {
                money_cents: OPENING_TOTAL,
                ledger_rows: 380,
                ..Books::default()
            },
            moments: Moments {
                samples: 75,
                open_transfers_median: 7.0,
                open_transfers_max: 8,
                lock_waiters_max: 5,
                money_drift_max_cents: 0,
            },
        }
    }

    fn problems(figures: &Figures) -> String {
        let verdict = verdict(figures);
        assert!(!verdict.healthy, "expected unhealthy: {}", verdict.summary);
        verdict.summary
    }

    /// The buggy run: transfers aborted by the server's deadlock detection.
    fn deadlocked() -> Figures {
        let mut figures = healthy();
        figures.transfers.applied = 250;
        figures.transfers.failed = 130;
        figures.transfers.deadlock_errors = 130;
        figures.transfers.first_failure =
            Some("transfer 3 (2 → 5, 12.00): database: deadlock detected".to_owned());
        figures.deadlocks = 130;
        figures
    }

    #[test]
    fn a_healthy_run_says_what_held() {
        let verdict = verdict(&healthy());
        assert!(verdict.healthy, "{}", verdict.summary);
        assert_eq!(
            verdict.summary,
            "All 400 transfers were answered as they must be (380 applied, 20 refused), PostgreSQL \
             detected no deadlock, the books add up to the cent, and transfers ran side by side \
             (median 7 open at once, up to 5 locks waiting)."
        );
    }

    #[test]
    fn deadlocked_transfers_are_failures_counted_by_the_server() {
        let text = problems(&deadlocked());
        assert!(
            text.contains(
                "130 of 400 transfers failed (130 with `deadlock detected`); the first: transfer 3"
            ),
            "{text}"
        );
        assert!(
            text.contains("PostgreSQL detected 130 deadlocks in the run's database"),
            "{text}"
        );
        assert!(!text.contains("retrying"), "{text}");
    }

    #[test]
    fn retrying_hides_the_deadlocks_from_the_clients_not_from_the_server() {
        let mut figures = healthy();
        figures.deadlocks = 1;
        let text = problems(&figures);
        assert!(text.contains("PostgreSQL detected 1 deadlocks"), "{text}");
        assert!(
            text.contains("retrying hides a deadlock from the customer, it does not remove it"),
            "{text}"
        );
    }

    #[test]
    fn money_in_flight_is_caught_during_and_after_the_run() {
        let mut figures = healthy();
        figures.moments.money_drift_max_cents = -2_500;
        let text = problems(&figures);
        assert!(
            text.contains("summed to 25.00 off the opening total at one moment"),
            "{text}"
        );
        assert!(!text.contains("after the run"), "{text}");
        figures.books.money_cents = OPENING_TOTAL - 12_345;
        let text = problems(&figures);
        assert!(
            text.contains("balances sum to 59,876.55 after the run, 123.45 from the 60,000.00 the bank opened with: money was destroyed"),
            "{text}"
        );
    }

    #[test]
    fn a_ledger_that_disagrees_is_named() {
        let mut figures = healthy();
        figures.books.extra = 2;
        figures.books.first_problem =
            Some("transfer 40 is in the ledger, but its client was told it failed".to_owned());
        let text = problems(&figures);
        assert!(
            text.contains("2 ledger rows for transfers not applied"),
            "{text}"
        );
        assert!(
            text.contains("the first: transfer 40 is in the ledger"),
            "{text}"
        );
        assert!(text.contains("applied exactly once"), "{text}");
    }

    #[test]
    fn wrong_answers_are_named() {
        let mut figures = healthy();
        figures.transfers.wrong_answers = 3;
        figures.transfers.first_wrong =
            Some("transfer 20 (1 → 7, 5.00): applied, expected refused: no account 7".to_owned());
        let text = problems(&figures);
        assert!(
            text.contains("3 transfers got the wrong answer; the first: transfer 20"),
            "{text}"
        );
    }

    #[test]
    fn taking_turns_is_not_a_fix_and_its_bound_has_an_edge() {
        let mut figures = healthy();
        figures.moments.open_transfers_median = 1.0;
        let text = problems(&figures);
        assert!(
            text.contains("only 1 transfer was open in the database"),
            "{text}"
        );
        assert!(
            text.contains("taking turns inside one process is no cure"),
            "{text}"
        );
        figures.moments.open_transfers_median = OPEN_TRANSFERS_MEDIAN_MIN;
        assert!(verdict(&figures).healthy);
        // Too few looks to say.
        figures.moments.open_transfers_median = 0.0;
        figures.moments.samples = MOMENTS_MIN - 1;
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn hung_and_missing_runs_are_named() {
        let mut figures = healthy();
        figures.transfers.unfinished = 8;
        assert!(problems(&figures).contains("8 requests hung"));
        let mut figures = healthy();
        figures.transfers.finished = 0;
        assert!(problems(&figures).starts_with("No request finished"));
    }
}
