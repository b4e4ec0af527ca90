//! One replica process: builds its pools and the variant's `Storefront`,
//! lets its shoppers ask for the best sellers over and over from a common
//! start until a common end, records what each answer was and how long it
//! took, and prints its [`ReplicaReport`] as its last line of output.
//!
//! The recording is the scenario's side of the process: the variant only
//! answers `best_sellers()`; each answer is recorded by its fingerprint, and
//! the run tells which report it is (the one before the new sales, the one
//! after, or neither) from the reports it computed on its own connection.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_redis::redis;
use debuglab_harness::guard::Blocking;
use debuglab_harness::replica as harness_replica;
use debuglab_harness::workload::{drive, Workload};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::workload::{DB_POOL, REDIS_POOL};
use crate::{fingerprint, CacheConfig, Code, StorefrontApi};

/// How long past the end of the traffic a request may still be waiting
/// before it is cut off and counted as hung.
pub const HANG_GRACE: Duration = Duration::from_secs(2);

/// Which report an answer was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// The report as it was before the new sales.
    Before,
    /// The report with the new sales.
    After,
    /// Some other report: not what the query computes.
    Wrong,
    /// An error instead of a report.
    Failed,
}

/// One answered request, as the run judges it: when it began (ms after the
/// traffic's start), how long it took (ms), and what it got.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answered(pub f64, pub f64, pub Answer);

/// One answered request, as a replica records it: when it began (ms after
/// the traffic's start), how long it took (ms), and the [`fingerprint`] of
/// the report it got (`None`: an error).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response(pub f64, pub f64, pub Option<u64>);

impl Response {
    /// How long it took, in ms.
    pub fn latency_ms(&self) -> f64 {
        self.1
    }

    /// The request judged against the reports `before` and `after` the new sales.
    pub fn judged(&self, before: u64, after: u64) -> Answered {
        let answer = match self.2 {
            None => Answer::Failed,
            Some(print) if print == after => Answer::After,
            Some(print) if print == before => Answer::Before,
            Some(_) => Answer::Wrong,
        };
        Answered(self.0, self.1, answer)
    }
}

impl Answered {
    /// When the request began, in ms after the traffic's start.
    pub fn at_ms(&self) -> f64 {
        self.0
    }

    /// How long it took, in ms.
    pub fn latency_ms(&self) -> f64 {
        self.1
    }

    /// What it got.
    pub fn answer(&self) -> Answer {
        self.2
    }
}

/// A replica's arguments (see [`crate::Plan::replica_args`]).
#[derive(Clone, Debug, clap::Parser)]
#[command(
    no_binary_name = true,
    about = "A replica of the cache-stampede storefront (started by debuglab, not by hand)"
)]
pub struct ReplicaArgs {
    /// The code to run (buggy, fixed, exercise, or a test's candidate).
    #[arg(long)]
    pub code: String,
    /// This replica's number, from 0.
    #[arg(long)]
    pub replica: usize,
    /// Shoppers asking for the report, each one request at a time.
    #[arg(long)]
    pub clients: usize,
    /// When the traffic starts, in ms since the Unix epoch (shared by every replica).
    #[arg(long)]
    pub start_unix_ms: u64,
    /// How long the traffic lasts, in ms.
    #[arg(long)]
    pub serve_ms: u64,
    /// A shopper's pause between two requests, on average, in ms.
    #[arg(long)]
    pub think_ms: u64,
    /// The report's TTL, in ms (the app's configuration).
    #[arg(long)]
    pub ttl_ms: u64,
    /// Seed of the pauses.
    #[arg(long)]
    pub seed: u64,
    /// Start when the run says go (see [`READY_KEY`]) rather than at `--start-unix-ms`.
    #[arg(long)]
    pub barrier: bool,
}

/// Where a replica says it is ready (`RPUSH`): the run waits for all of them.
pub const READY_KEY: &str = "debuglab:ready";
/// Where the run says go (`RPUSH`, one token per replica; a replica `BLPOP`s one).
pub const GO_KEY: &str = "debuglab:go";
/// How long a replica waits for go before it starts on its own.
pub const BARRIER_LIMIT: Duration = Duration::from_secs(15);

/// The replica's own connection for the barrier, apart from the variant's pools.
const BARRIER_POOL: debuglab_harness::PoolSettings = debuglab_harness::PoolSettings {
    max_connections: 1,
    acquire_timeout: Duration::from_secs(10),
};

/// What a replica's shoppers came to.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Served {
    /// Every answered request.
    pub responses: Vec<Response>,
    /// The first error a shopper got, if any.
    pub first_error: Option<String>,
    /// Requests still waiting at the cut-off (one per shopper at most).
    pub hung: usize,
    /// When the replica's storefront was ready, in ms after the traffic's
    /// start (negative: before it, as it should be).
    pub ready_ms: f64,
}

/// What a replica reports when it is done (its last line of output, as JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// Which replica.
    pub replica: usize,
    /// What its shoppers came to.
    pub served: Served,
    /// Why it stopped short, if it did (its threads were blocked, say).
    pub shortfall: Option<String>,
    /// What the replica's guard saw of blocked threads.
    pub blocking: Blocking,
    /// Pools whose settings changed during the work (their problem lines).
    pub pool_problems: Vec<String>,
}

/// The value of `--code` in a replica's arguments: the code it is asked to run.
pub fn code_name(args: &[String]) -> Option<String> {
    <ReplicaArgs as clap::Parser>::try_parse_from(args)
        .ok()
        .map(|args| args.code)
}

/// The replica process: `--code NAME …` (see [`ReplicaArgs`]), NAME resolved
/// by `resolve`.
///
/// Prints its [`ReplicaReport`] as one JSON line; problems with the lab
/// itself (bad arguments, unknown code, pools that cannot be built) go to
/// stderr with a non-zero exit code.
pub fn main(resolve: impl Fn(&str) -> Option<Code>, args: Vec<String>) -> ExitCode {
    let args = match <ReplicaArgs as clap::Parser>::try_parse_from(&args) {
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
    let replica = args.replica;
    let (served, blocking) = match harness_replica::run_guarded((code.serve)(args)) {
        Ok(done) => done,
        Err(error) => {
            eprintln!("error: cannot start the replica's runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let (served, shortfall) = match served {
        Some(Ok(served)) => served,
        Some(Err(error)) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
        None => (
            Served::default(),
            Some("was abandoned: its threads were blocked and did not come back".to_owned()),
        ),
    };
    let report = ReplicaReport {
        replica,
        served,
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

/// What [`serve`] returns: what the shoppers came to and why they stopped
/// short, if they did; or why the replica could not start.
pub type ServeResult = std::result::Result<(Served, Option<String>), String>;

/// Builds the pools and the storefront `S`, and lets the shoppers of
/// `args` ask it for the best sellers until the traffic's end.
pub fn serve<S: StorefrontApi>(
    args: ReplicaArgs,
) -> futures::future::BoxFuture<'static, ServeResult> {
    Box::pin(async move {
        let db = harness_replica::pg_pool(DB_POOL)
            .await
            .map_err(|error| error.to_string())?;
        let cache = harness_replica::redis_pool(REDIS_POOL)
            .await
            .map_err(|error| error.to_string())?;
        let config = CacheConfig {
            ttl: Duration::from_millis(args.ttl_ms),
        };
        let storefront = Arc::new(S::new(db.clone(), cache, config));
        let ready = Instant::now();
        let (start, late) = if args.barrier {
            wait_for_go(args.replica).await?
        } else {
            (traffic_start(args.start_unix_ms), None)
        };
        let (mut served, shortfall) = shop(storefront, &args, start).await;
        served.ready_ms = round_tenth(millis_between(start, ready));
        db.close().await;
        Ok((served, late.or(shortfall)))
    })
}

/// Says this replica is ready and waits for the run's go: the traffic's
/// start, and why it started without it, if it did.
async fn wait_for_go(replica: usize) -> std::result::Result<(Instant, Option<String>), String> {
    let barrier = harness_replica::redis_pool(BARRIER_POOL)
        .await
        .map_err(|error| error.to_string())?;
    let mut conn = barrier.get().await.map_err(|error| error.to_string())?;
    let since = Instant::now();
    let said: redis::RedisResult<bool> = async {
        let _: i64 = redis::cmd("RPUSH")
            .arg(READY_KEY)
            .arg(replica)
            .query_async(&mut *conn)
            .await?;
        // Short blocking pops, so that the loop keeps to the barrier's own limit.
        while since.elapsed() < BARRIER_LIMIT {
            let go: Option<(String, String)> = redis::cmd("BLPOP")
                .arg(GO_KEY)
                .arg(0.1)
                .query_async(&mut *conn)
                .await?;
            if go.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }
    .await;
    let late = match said {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "started without the run's go, after waiting {} s",
            BARRIER_LIMIT.as_secs()
        )),
        Err(error) => return Err(format!("the start barrier failed: {error}")),
    };
    Ok((Instant::now(), late))
}

/// `to - from` in ms, negative when `to` is earlier.
fn millis_between(from: Instant, to: Instant) -> f64 {
    match to.checked_duration_since(from) {
        Some(after) => after.as_secs_f64() * 1000.0,
        None => -(from - to).as_secs_f64() * 1000.0,
    }
}

/// The shoppers' clock: the traffic's start as an [`Instant`] of this process.
fn traffic_start(start_unix_ms: u64) -> Instant {
    let start = UNIX_EPOCH + Duration::from_millis(start_unix_ms);
    let now = (Instant::now(), SystemTime::now());
    match start.duration_since(now.1) {
        Ok(ahead) => now.0 + ahead,
        Err(behind) => now.0.checked_sub(behind.duration()).unwrap_or(now.0),
    }
}

/// Runs every shopper of this replica; their answers are kept as they come,
/// so that a shopper cut off midway loses only its last request.
async fn shop<S: StorefrontApi>(
    storefront: Arc<S>,
    args: &ReplicaArgs,
    start: Instant,
) -> (Served, Option<String>) {
    let end = start + Duration::from_millis(args.serve_ms);
    let book = Arc::new(Mutex::new(Served::default()));
    let workload = Workload {
        requests: args.clients,
        concurrency: args.clients,
        max_duration: Duration::from_secs(1),
        hard_limit: end.saturating_duration_since(Instant::now()) + HANG_GRACE,
        live_rate: 0,
    };
    let outcome = {
        let (book, args) = (Arc::clone(&book), args.clone());
        drive("shoppers", workload, move |client| {
            let shopper = Shopper {
                client,
                start,
                end,
                args: args.clone(),
            };
            shopper.shop(Arc::clone(&storefront), Arc::clone(&book))
        })
        .await
    };
    let mut served = std::mem::take(&mut *lock(&book));
    // Shoppers cancelled when the workload was stopped did not hang: the
    // stop, said as the shortfall, is why they did not finish.
    let shortfall = match outcome.ended {
        debuglab_harness::workload::Ended::Stopped(why) => {
            Some(format!("the workload was stopped: {why}"))
        }
        _ => {
            served.hung = outcome.unfinished;
            None
        }
    };
    (served, shortfall)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One shopper: asks for the report, pauses, asks again, until the end.
struct Shopper {
    client: usize,
    start: Instant,
    end: Instant,
    args: ReplicaArgs,
}

impl Shopper {
    async fn shop<S: StorefrontApi>(
        self,
        storefront: Arc<S>,
        book: Arc<Mutex<Served>>,
    ) -> std::result::Result<(), ()> {
        let think = Duration::from_millis(self.args.think_ms);
        // Shoppers arrive spread over one pause, not in step.
        let clients = self.args.clients.max(1) as u32;
        tokio::time::sleep_until(self.start + think * self.client as u32 / clients).await;
        let mut request = 0u64;
        while Instant::now() < self.end {
            let began = Instant::now();
            let answer = storefront.best_sellers().await;
            let latency = began.elapsed();
            let at = began.saturating_duration_since(self.start);
            let response = Response(
                round_tenth(at.as_secs_f64() * 1000.0),
                round_tenth(latency.as_secs_f64() * 1000.0),
                answer.as_ref().ok().map(fingerprint),
            );
            {
                let mut book = lock(&book);
                book.responses.push(response);
                if let Err(error) = &answer {
                    book.first_error.get_or_insert_with(|| error.to_string());
                }
            }
            // A pause of 0.5 to 1.5 times the average, different for each request.
            let spread = mix(self.args.seed, self.args.replica, self.client, request) % 1000;
            tokio::time::sleep(think / 2 + think * spread as u32 / 1000).await;
            request += 1;
        }
        Ok(())
    }
}

fn round_tenth(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// A well-mixed number for request `request` of shopper `client` of
/// replica `replica` (SplitMix64).
fn mix(seed: u64, replica: usize, client: usize, request: u64) -> u64 {
    let mut x = seed
        ^ (replica as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ (client as u64).wrapping_mul(0x8CB9_2BA7_2F3D_8DD7)
        ^ request.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
