//! One replica process: builds its pools and remote services, drives its
//! share of the likes and tips through the variant's code on a guarded
//! runtime, counts what succeeded, and prints its [`ReplicaReport`] as its
//! last line of output.
//!
//! The counting is the scenario's side of the process: the variant only
//! receives a [`Replica`] and returns `Ok` or an error; the tips it credits
//! are chosen here ([`crate::tip_cents`]), and the remote services keep their
//! own counts of their calls.
//!
//! While it works, a replica also keeps its counts in the Redis key
//! `debuglab:done:<replica>` (`likes tips cents`), which only it writes: a
//! live run reads them for its gauges.

use std::process::ExitCode;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use deadpool_redis::redis;
use debuglab_harness::guard::Blocking;
use debuglab_harness::replica as harness_replica;
use debuglab_harness::workload::{drive, WorkloadOutcome};
use debuglab_harness::PoolSettings;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::workload::{Plan, REMOTE_LATENCY, REPLICA_POOL};
use crate::{tip_cents, Code, RemoteService, Replica, POST_ID, WALLET_ID};

/// The prefix of the keys where replicas keep their counts (`debuglab:done:<replica>`).
pub const DONE_KEY_PREFIX: &str = "debuglab:done:";

/// The pool for the replica's own bookkeeping, apart from the variant's.
const BOOKS_POOL: PoolSettings = PoolSettings {
    max_connections: 1,
    acquire_timeout: Duration::from_secs(10),
};

/// How often a replica writes its counts to Redis while it works.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

/// What a replica reports when it is done (its last line of output, as JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// Which replica.
    pub replica: usize,
    /// Likes recorded successfully.
    pub likes: u64,
    /// Tips credited successfully.
    pub tips: u64,
    /// The sum of those tips, in cents.
    pub tipped_cents: i64,
    /// Likes that returned an error.
    pub failed_likes: u64,
    /// Tips that returned an error.
    pub failed_tips: u64,
    /// Likes cut off midway when the workload was stopped (each operation
    /// still running counts here and in `tips_cut_off`: the stores may hold
    /// its like and tip, or not).
    pub likes_cut_off: u64,
    /// Tips cut off midway.
    pub tips_cut_off: u64,
    /// The cents of those tips.
    pub cents_cut_off: i64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Calls the notification service answered, by its own count.
    pub notification_calls: u64,
    /// Calls the fraud check answered, by its own count.
    pub fraud_check_calls: u64,
    /// Why fewer operations finished than were planned, if they did.
    pub shortfall: Option<String>,
    /// What the replica's guard saw of blocked threads.
    pub blocking: Blocking,
    /// Pools whose settings changed during the work (their problem lines).
    pub pool_problems: Vec<String>,
}

/// What one operation did: its like's and its tip's results.
type Operation = (
    std::result::Result<(), String>,
    std::result::Result<(), String>,
);

/// The operations, as the scenario's side of the replica counts them.
#[derive(Clone, Debug, Default)]
struct Count {
    likes: u64,
    tips: u64,
    cents: i64,
    failed_likes: u64,
    failed_tips: u64,
    cut_off: u64,
    cents_cut_off: i64,
    first_error: Option<String>,
}

/// What a replica's work came to.
struct Served {
    count: Count,
    shortfall: Option<String>,
}

/// A replica's arguments (see [`Plan::replica_args`]).
#[derive(Clone, Debug, clap::Parser)]
#[command(
    no_binary_name = true,
    about = "A replica of the race-condition service (started by debuglab, not by hand)"
)]
struct Args {
    /// The code to run (buggy, fixed, exercise, or a test's candidate).
    #[arg(long)]
    code: String,
    /// This replica's number, from 0.
    #[arg(long)]
    replica: usize,
    /// Operations to drive.
    #[arg(long)]
    operations: u64,
    /// Operations in flight at once.
    #[arg(long)]
    concurrency: usize,
    /// Seed of the operations' random choices.
    #[arg(long)]
    seed: u64,
    /// Operations a second at the most (0: as fast as they go).
    #[arg(long)]
    rate: u32,
}

impl Args {
    /// The plan this replica drives its share of.
    fn plan(&self) -> Plan {
        Plan {
            replicas: 1,
            concurrency: self.concurrency,
            operations_per_replica: self.operations,
            seed: self.seed,
            rate: self.rate,
        }
    }
}

/// The value of `--code` in a replica's arguments: the code it is asked to run.
pub fn code_name(args: &[String]) -> Option<String> {
    <Args as clap::Parser>::try_parse_from(args)
        .ok()
        .map(|args| args.code)
}

/// The replica process: `--code NAME --replica N --operations N
/// --concurrency N --seed N --rate N`, NAME resolved by `resolve`.
///
/// Prints its [`ReplicaReport`] as one JSON line; problems with the lab
/// itself (bad arguments, unknown code, pools that cannot be built) go to
/// stderr with a non-zero exit code.
pub fn main(resolve: impl Fn(&str) -> Option<Code>, args: Vec<String>) -> ExitCode {
    let args = match <Args as clap::Parser>::try_parse_from(&args) {
        Ok(args) => args,
        Err(error) => {
            // clap's message up to its usage block, on one line.
            let message = error.to_string();
            let line: Vec<&str> = message
                .lines()
                .map(str::trim)
                .take_while(|line| !line.is_empty())
                .collect();
            eprintln!(
                "{} (replicas are started by debuglab, not by hand)",
                line.join(" ")
            );
            return ExitCode::from(2);
        }
    };
    let Some(code) = resolve(&args.code) else {
        eprintln!("error: this program cannot run the code '{}'", args.code);
        return ExitCode::from(2);
    };
    let (notifications, notification_book) = RemoteService::new(REMOTE_LATENCY);
    let (fraud_check, fraud_check_book) = RemoteService::new(REMOTE_LATENCY);
    let work = serve(code, args.clone(), (notifications, fraud_check));
    let (served, blocking) = match harness_replica::run_guarded(work) {
        Ok(done) => done,
        Err(error) => {
            eprintln!("error: cannot start the replica's runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let Served { count, shortfall } = match served {
        Some(Ok(served)) => served,
        Some(Err(error)) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
        None => Served {
            count: Count::default(),
            shortfall: Some(
                "was abandoned: its threads were blocked and did not come back".to_owned(),
            ),
        },
    };
    let report = ReplicaReport {
        replica: args.replica,
        likes: count.likes,
        tips: count.tips,
        tipped_cents: count.cents,
        failed_likes: count.failed_likes,
        failed_tips: count.failed_tips,
        likes_cut_off: count.cut_off,
        tips_cut_off: count.cut_off,
        cents_cut_off: count.cents_cut_off,
        first_error: count.first_error,
        notification_calls: notification_book.calls(),
        fraud_check_calls: fraud_check_book.calls(),
        shortfall,
        blocking,
        pool_problems: harness_replica::pool_problems(),
    };
    println!(
        "{}",
        serde_json::to_string(&report).expect("a report serialises")
    );
    ExitCode::SUCCESS
}

/// Builds the replica and drives its operations; returns what they came
/// to, or why the replica could not start.
async fn serve(
    code: Code,
    args: Args,
    (notifications, fraud_check): (RemoteService, RemoteService),
) -> std::result::Result<Served, String> {
    let replica = Arc::new(Replica {
        db: harness_replica::pg_pool(REPLICA_POOL)
            .await
            .map_err(|error| error.to_string())?,
        cache: harness_replica::redis_pool(REPLICA_POOL)
            .await
            .map_err(|error| error.to_string())?,
        notifications,
        fraud_check,
    });
    let books = harness_replica::redis_pool(BOOKS_POOL)
        .await
        .map_err(|error| error.to_string())?;
    let (done, ledger) = Ledger::start(books, format!("{DONE_KEY_PREFIX}{}", args.replica));
    let (plan, seed, id) = (args.plan(), args.seed, args.replica);
    let started = Instant::now();
    let outcome = {
        let replica = Arc::clone(&replica);
        drive("likes and tips", plan.replica_workload(), move |index| {
            let (replica, done) = (Arc::clone(&replica), done.clone());
            async move {
                if let Some(start) = plan.start_of(id, index as u64) {
                    tokio::time::sleep_until(started + start).await;
                }
                let cents = tip_cents(seed, id, index as u64);
                let liked = (code.record_like)(&replica, POST_ID)
                    .await
                    .map_err(|error| error.to_string());
                let tipped = (code.credit_wallet)(&replica, WALLET_ID, cents)
                    .await
                    .map_err(|error| error.to_string());
                let _ = done.send((liked.is_ok(), tipped.is_ok(), cents));
                Ok::<Operation, ()>((liked, tipped))
            }
        })
        .await
    };
    ledger.stop().await;
    replica.db.close().await;
    Ok(Served {
        count: count(&outcome, seed, id),
        shortfall: outcome.shortfall(),
    })
}

/// Counts the operations that finished, and those cut off midway (the
/// stores may or may not hold their like and tip).
fn count(outcome: &WorkloadOutcome<Operation, ()>, seed: u64, id: usize) -> Count {
    let mut count = Count::default();
    let mut finished = vec![false; outcome.issued];
    for record in &outcome.records {
        finished[record.index] = true;
        let Ok((liked, tipped)) = &record.result else {
            continue;
        };
        match liked {
            Ok(()) => count.likes += 1,
            Err(error) => {
                count.failed_likes += 1;
                count.first_error.get_or_insert_with(|| error.clone());
            }
        }
        match tipped {
            Ok(()) => {
                count.tips += 1;
                count.cents += tip_cents(seed, id, record.index as u64);
            }
            Err(error) => {
                count.failed_tips += 1;
                count.first_error.get_or_insert_with(|| error.clone());
            }
        }
    }
    for (index, _) in finished
        .iter()
        .enumerate()
        .filter(|(_, finished)| !**finished)
    {
        count.cut_off += 1;
        count.cents_cut_off += tip_cents(seed, id, index as u64);
    }
    count
}

/// The replica's counts so far, kept in its own Redis key for a live run's
/// gauges: operations report to it through a channel, which never makes
/// them wait for a lock.
struct Ledger {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// One finished operation: whether its like and its tip succeeded, and the tip.
type Finished = (bool, bool, i64);

impl Ledger {
    fn start(books: deadpool_redis::Pool, key: String) -> (mpsc::Sender<Finished>, Ledger) {
        let (done, finished) = mpsc::channel::<Finished>();
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut totals = (0u64, 0u64, 0i64);
            let mut ticks = tokio::time::interval(PUBLISH_EVERY);
            loop {
                let last = tokio::select! {
                    _ = &mut stopped => true,
                    _ = ticks.tick() => false,
                };
                for (liked, tipped, cents) in finished.try_iter() {
                    totals.0 += u64::from(liked);
                    totals.1 += u64::from(tipped);
                    totals.2 += if tipped { cents } else { 0 };
                }
                publish(&books, &key, totals).await;
                if last {
                    break;
                }
            }
        });
        (done, Ledger { stop, task })
    }

    /// Publishes the final counts and stops.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Writes the counts (`likes tips cents`) to the replica's own key: only
/// this replica writes it, so a plain `SET` of the totals is enough.
async fn publish(books: &deadpool_redis::Pool, key: &str, (likes, tips, cents): (u64, u64, i64)) {
    if let Ok(mut conn) = books.get().await {
        // Bookkeeping for a live run's gauges only: a failure costs a gauge, not the run.
        let _: redis::RedisResult<()> = redis::cmd("SET")
            .arg(key)
            .arg(format!("{likes} {tips} {cents}"))
            .query_async(&mut *conn)
            .await;
    }
}
