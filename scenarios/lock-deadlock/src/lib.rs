//! # Lock deadlock: transfers fail with `deadlock detected`
//!
//! A small bank's payment service moves money between its customers'
//! accounts. The endpoint behind it is `transfer(pool, Transfer { id, from,
//! to, amount_cents })`: in one transaction it takes the amount from one
//! account, has the fraud check look at the debit (a few milliseconds away),
//! gives the amount to the other account, and writes the transfer to the
//! `transfers` ledger. It refuses a transfer larger than the balance (the
//! `accounts` table will not go below zero) and one to or from an account
//! that does not exist.
//!
//! Most days it works. On busy days, when the same few accounts pay each
//! other back and forth — a marketplace and its sellers — transfers fail now
//! and then with `deadlock detected`, customers retry by hand or call
//! support, and support refunds what they believe went missing.
//!
//! ## The contract
//!
//! Whatever the code looks like, the endpoint must (checked in [`verdict`]
//! from evidence the variant cannot forge):
//!
//! - apply every transfer that has the funds and names two real accounts: no
//!   transfer fails — PostgreSQL's own count of the deadlocks it detected in
//!   the run's database (`pg_stat_database.deadlocks`) stays at zero, so a
//!   deadlock cannot be hidden from the verdict by catching its error;
//! - refuse, with the matching [`TransferError`], every transfer that must be
//!   refused (more than the balance, an unknown account), and leave no trace
//!   of it: no ledger row, no balance changed;
//! - apply every accepted transfer exactly once: one ledger row for each, and
//!   every account's balance equals its opening balance plus the ledger's
//!   credits minus its debits; the sum of all balances never changes;
//! - keep transfers between unrelated accounts running side by side: in
//!   most moments of the run, two transfers or more are open in the database
//!   at once (`pg_stat_activity`). The service runs as several instances
//!   sharing the database, so making one process take turns is no cure, and
//!   it stops the whole bank for every transfer.
//!
//! Latency is reported as the symptom, never judged.
//!
//! The run is laid out in [`data`] (the accounts), [`workload`] (the
//! traffic), [`probes`] (what is measured and recorded) and [`verdict`] (the
//! judgement, a pure function).

pub mod buggy;
pub mod data;
pub mod fixed;
pub mod probes;
pub mod verdict;
pub mod workload;

use std::time::Duration;

pub use debuglab_harness::postgres::PgPool;
use debuglab_harness::postgres::RunDatabase;
use debuglab_harness::{
    Result, RunContext, Scenario, ScenarioInfo, Service, Sources, Variant, Verdict,
};
pub use futures::future::BoxFuture;
use sqlx::migrate::Migrator;

pub use workload::{POOL, WORKLOAD};

/// One transfer, as the client asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The transfer's id, chosen by the client: the ledger's key.
    pub id: i64,
    /// The account the money leaves.
    pub from: i64,
    /// The account the money goes to.
    pub to: i64,
    /// How much, in cents (more than zero).
    pub amount_cents: i64,
}

/// Why a transfer was not applied.
///
/// The first two are refusals the bank owes its customers; `Database` is a
/// failure.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The amount is more than the balance of the account it leaves.
    #[error("insufficient funds")]
    InsufficientFunds,
    /// No account has this id.
    #[error("no account {0}")]
    UnknownAccount(i64),
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(sqlx::Error),
}

impl TransferError {
    /// Whether this is a refusal (not a failure).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, TransferError::Database(_))
    }
}

impl From<sqlx::Error> for TransferError {
    /// `accounts` refuses a negative balance (`CHECK (balance >= 0)`): a
    /// debit over the balance is a refusal; everything else a failure.
    fn from(error: sqlx::Error) -> Self {
        let check_violation = error
            .as_database_error()
            .and_then(|error| error.code())
            .is_some_and(|code| code == "23514");
        if check_violation {
            TransferError::InsufficientFunds
        } else {
            TransferError::Database(error)
        }
    }
}

/// How long the fraud check takes to look at a debit: another service, a
/// few milliseconds away.
pub const FRAUD_CHECK_LATENCY: Duration = Duration::from_millis(5);

/// The fraud check: looks at a debit before the money moves on.
pub async fn fraud_check(_transfer: &Transfer) {
    tokio::time::sleep(FRAUD_CHECK_LATENCY).await;
}

/// The accounts and the ledger (`migrations/`); the accounts' rows are
/// written by [`data::open_accounts`].
pub static BASE_MIGRATIONS: Migrator = sqlx::migrate!();

/// A variant's `transfer`, as a plain function pointer.
pub type TransferFn =
    for<'p> fn(&'p PgPool, Transfer) -> BoxFuture<'p, std::result::Result<(), TransferError>>;

/// The code of one variant: its endpoint.
#[derive(Clone, Copy)]
pub struct Code {
    /// The endpoint.
    pub transfer: TransferFn,
}

/// The [`Code`] of a module that has `transfer(&PgPool, Transfer)`:
/// `code_of!(fixed)`. The exercise's binary and the tests use it for code
/// that is not in this library.
#[macro_export]
macro_rules! code_of {
    ($code:ident) => {{
        fn transfer(
            pool: &$crate::PgPool,
            transfer: $crate::Transfer,
        ) -> $crate::BoxFuture<'_, ::std::result::Result<(), $crate::TransferError>> {
            ::std::boxed::Box::pin($code::transfer(pool, transfer))
        }
        $crate::Code {
            transfer: transfer as $crate::TransferFn,
        }
    }};
}

static INFO: ScenarioInfo = ScenarioInfo {
    id: "lock-deadlock",
    title: "Lock deadlock",
    summary: "Money transfers between a few busy accounts fail now and then with `deadlock detected`; customers retry by hand and support refunds what looks lost.",
    services: &[Service::Postgres],
    signal_metric: "deadlocks",
    key_metrics: &[
        "deadlocks",
        "deadlock_errors",
        "transfers_failed",
        "lock_waiters_max",
        "open_transfers_median",
        "money_drift_cents",
        "ledger_mismatches",
        "transfers_applied",
        "transfers_refused",
        "p95_ms",
    ],
    live_gauges: &["deadlocks", "deadlock_errors", "lock_waiters", "open_transfers"],
    hints: include_str!("../HINTS.md"),
    solution: include_str!("../SOLUTION.md"),
    sources: Sources {
        buggy: include_str!("buggy.rs"),
        fixed: include_str!("fixed.rs"),
    },
};

/// The lock-deadlock scenario, running its buggy and fixed code, or a
/// candidate's (the learner's exercise, a test's wrong fix) as the exercise.
pub struct LockDeadlock {
    candidate: Option<Code>,
}

/// The scenario, for the CLI's list.
pub static SCENARIO: LockDeadlock = LockDeadlock { candidate: None };

impl LockDeadlock {
    /// The scenario with `code` as what its exercise variant runs.
    pub const fn with_candidate(code: Code) -> LockDeadlock {
        LockDeadlock {
            candidate: Some(code),
        }
    }

    /// The code a run of `variant` uses.
    pub fn code(&self, variant: Variant) -> Result<Code> {
        variant.pick(INFO.id, code_of!(buggy), code_of!(fixed), self.candidate)
    }

    /// Creates the schema in `database`, opens the accounts, and returns
    /// `variant`'s endpoint, for tests that call it directly.
    pub async fn prepare(&self, database: &RunDatabase, variant: Variant) -> Result<TransferFn> {
        let code = self.code(variant)?;
        database.migrate(&BASE_MIGRATIONS, &[]).await?;
        data::open_accounts(database).await?;
        Ok(code.transfer)
    }
}

impl Scenario for LockDeadlock {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(async move {
            let code = self.code(ctx.variant())?;
            let figures = workload::run_transfers(ctx, code).await?;
            Ok(verdict::verdict(&figures))
        })
    }
}
