//! The traffic: transfers back and forth between a few busy accounts, eight
//! at a time, with now and then one that must be refused; and the tally of
//! what each client was told.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::workload::{Workload, WorkloadOutcome};
use debuglab_harness::{PoolSettings, Result, RunContext};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::{self, Books, Refusal};
use crate::probes::{self, Watch};
use crate::verdict::{Figures, Transfers};
use crate::{Code, PgPool, Transfer, TransferError, BASE_MIGRATIONS};

/// The pool the endpoint gets: as in production, one connection per
/// transfer in flight.
pub const POOL: PoolSettings = PoolSettings {
    max_connections: 8,
    acquire_timeout: Duration::from_secs(10),
};

/// How long PostgreSQL lets a lock wait before it looks for a deadlock
/// (`deadlock_timeout`; one second by default): short, so that a run of a
/// second and a half sees many of them resolved rather than a few stalls.
pub const DEADLOCK_TIMEOUT: Duration = Duration::from_millis(50);

/// The largest ordinary transfer, in cents. With at most [`WORKLOAD`]'s
/// requests, no account can be drained whatever order they run in, so
/// whether a transfer must be applied or refused never depends on timing.
pub const MAX_AMOUNT_CENTS: i64 = data::OPENING_BALANCE_CENTS / WORKLOAD.requests as i64;

/// Every `REFUSAL_EVERY`-th transfer must be refused (funds, or an unknown account).
pub const REFUSAL_EVERY: usize = 20;

/// The traffic: eight transfers in flight, for at most a second and a half.
pub const WORKLOAD: Workload = Workload {
    requests: 300,
    concurrency: 8,
    max_duration: Duration::from_millis(1500),
    hard_limit: Duration::from_secs(20),
    // A live run sends a few transfers a second, for as long as the learner looks.
    live_rate: 20,
};

/// The `index`-th transfer of a run seeded with `seed`: between two
/// distinct accounts, in either direction; every [`REFUSAL_EVERY`]-th one
/// over any balance or naming an unknown account. Its id is `index + 1`.
pub fn transfer_for(seed: u64, index: usize) -> Transfer {
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let from = rng.random_range(1..=data::ACCOUNTS);
    let to = (from + rng.random_range(1..data::ACCOUNTS) - 1) % data::ACCOUNTS + 1;
    let mut transfer = Transfer {
        id: index as i64 + 1,
        from,
        to,
        amount_cents: rng.random_range(100..=MAX_AMOUNT_CENTS),
    };
    let unknown = data::ACCOUNTS + 1;
    if index % REFUSAL_EVERY == REFUSAL_EVERY - 1 {
        match (index / REFUSAL_EVERY) % 3 {
            0 => transfer.amount_cents = data::TOTAL_CENTS + 1,
            1 => transfer.from = unknown,
            _ => transfer.to = unknown,
        }
    }
    transfer
}

/// What the endpoint must answer to `transfer`: `Ok` when it has the funds
/// and names two real accounts, else the refusal. (No ordinary transfer can
/// find its account drained; see [`MAX_AMOUNT_CENTS`].)
pub fn expected(transfer: &Transfer) -> std::result::Result<(), Refusal> {
    Books::opening().apply(transfer)
}

/// What one request returned: the transfer asked for, and the endpoint's answer.
pub type TransferOutcome =
    WorkloadOutcome<(Transfer, std::result::Result<(), TransferError>), Infallible>;

/// Runs the traffic against `code`, checks every answer and the books, and
/// returns the figures the verdict is made of (also recorded on `ctx`).
pub async fn run_transfers(ctx: &RunContext, code: Code) -> Result<Figures> {
    let database = ctx.database(None).await?;
    database.migrate(&BASE_MIGRATIONS, &[]).await?;
    data::open_accounts(&database).await?;
    database.detect_deadlocks_after(DEADLOCK_TIMEOUT).await?;
    let before = probes::ServerCounts::read(&database).await?;
    let log = database.log_mark().await?;
    let pool = database.pool(POOL).await?;
    let deadlock_errors = Arc::new(AtomicUsize::new(0));
    let watch = Watch::start(ctx, &database, Arc::clone(&deadlock_errors));
    let outcome = drive_transfers(ctx, &pool, code, deadlock_errors).await;
    let watched = watch.stop().await;
    pool.close().await;
    let transfers = tally(ctx.seed(), &outcome);
    let server = probes::server_evidence(&database, before, log).await?;
    let books = probes::check_books(&database, ctx.seed(), &outcome).await?;
    let figures = Figures {
        transfers,
        deadlocks: server.deadlocks,
        books,
        moments: watched.moments(),
    };
    probes::record(ctx, &figures, &outcome, &watched, &server);
    Ok(figures)
}

/// Drives [`WORKLOAD`]: each request asks for its transfer and counts the
/// `deadlock detected` errors it is told of (the live gauge).
async fn drive_transfers(
    ctx: &RunContext,
    pool: &PgPool,
    code: Code,
    deadlock_errors: Arc<AtomicUsize>,
) -> TransferOutcome {
    let (pool, seed) = (pool.clone(), ctx.seed());
    ctx.drive("transfers", WORKLOAD, move |index| {
        let (pool, deadlock_errors) = (pool.clone(), Arc::clone(&deadlock_errors));
        let transfer = transfer_for(seed, index);
        async move {
            let answer = (code.transfer)(&pool, transfer).await;
            if answer.as_ref().is_err_and(is_deadlock) {
                deadlock_errors.fetch_add(1, Ordering::Relaxed);
            }
            Ok((transfer, answer))
        }
    })
    .await
}

/// Whether `error` is PostgreSQL's `deadlock detected` (SQLSTATE 40P01).
pub fn is_deadlock(error: &TransferError) -> bool {
    match error {
        TransferError::Database(error) => error
            .as_database_error()
            .and_then(|error| error.code())
            .is_some_and(|code| code == "40P01"),
        _ => false,
    }
}

/// What the clients were told, against what each transfer must get.
pub fn tally(seed: u64, outcome: &TransferOutcome) -> Transfers {
    let mut transfers = Transfers {
        finished: outcome.records.len(),
        unfinished: outcome.unfinished,
        ..Transfers::default()
    };
    for (transfer, answer) in outcome
        .records
        .iter()
        .filter_map(|record| record.result.as_ref().ok())
    {
        debug_assert_eq!(transfer_for(seed, transfer.id as usize - 1), *transfer);
        match (expected(transfer), answer) {
            (Ok(()), Ok(())) => transfers.applied += 1,
            (Err(refusal), Err(error)) if refusal.matches(error) => transfers.refused += 1,
            (_, Err(error)) if !error.is_refusal() => {
                transfers.failed += 1;
                if is_deadlock(error) {
                    transfers.deadlock_errors += 1;
                }
                transfers
                    .first_failure
                    .get_or_insert_with(|| format!("{}: {error}", describe(transfer)));
            }
            (expected, got) => {
                transfers.wrong_answers += 1;
                transfers.first_wrong.get_or_insert_with(|| {
                    let want = expected.map_or_else(
                        |refusal| format!("refused: {refusal}"),
                        |()| "applied".to_owned(),
                    );
                    let got = got.as_ref().map_or_else(
                        |error| format!("refused: {error}"),
                        |()| "applied".to_owned(),
                    );
                    format!("{}: {got}, expected {want}", describe(transfer))
                });
            }
        }
    }
    transfers
}

/// `transfer 17 (3 → 5, 12.34)`.
pub fn describe(transfer: &Transfer) -> String {
    format!(
        "transfer {} ({} → {}, {}.{:02})",
        transfer.id,
        transfer.from,
        transfer.to,
        transfer.amount_cents / 100,
        transfer.amount_cents % 100
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_replayable_and_between_two_accounts() {
        for index in 0..1000 {
            let transfer = transfer_for(7, index);
            assert_eq!(transfer, transfer_for(7, index));
            assert_eq!(transfer.id, index as i64 + 1);
            assert_ne!(transfer.from, transfer.to, "{transfer:?}");
            assert!(transfer.amount_cents > 0);
        }
    }

    #[test]
    fn traffic_goes_both_ways_and_some_must_be_refused() {
        let transfers: Vec<Transfer> = (0..WORKLOAD.requests)
            .map(|index| transfer_for(3, index))
            .collect();
        let both_ways = transfers
            .iter()
            .any(|a| transfers.iter().any(|b| a.from == b.to && a.to == b.from));
        assert!(both_ways);
        let refusals: Vec<Refusal> = transfers.iter().filter_map(|t| expected(t).err()).collect();
        assert_eq!(refusals.len(), WORKLOAD.requests / REFUSAL_EVERY);
        assert!(refusals.contains(&Refusal::InsufficientFunds));
        assert!(refusals.contains(&Refusal::UnknownAccount(data::ACCOUNTS + 1)));
    }

    #[test]
    fn no_account_can_be_drained_by_the_traffic() {
        // Even if every ordinary transfer left the same account.
        let ordinary: i64 = (0..WORKLOAD.requests)
            .map(|index| transfer_for(11, index))
            .filter(|transfer| expected(transfer).is_ok())
            .map(|transfer| transfer.amount_cents)
            .sum();
        assert!(ordinary <= data::OPENING_BALANCE_CENTS, "{ordinary}");
    }
}
