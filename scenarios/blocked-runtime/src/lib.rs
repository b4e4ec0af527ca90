//! # Blocked runtime: session lookups stall whenever people log in
//!
//! A web shop's auth service answers two endpoints on one Tokio runtime with
//! two worker threads (the service's container has two CPUs):
//!
//! - [`session`], which every page view calls: is this session token
//!   valid, and whose is it? One `GET` on Redis, well under a millisecond;
//! - `login(redis, Credentials)`, which checks a password against the
//!   user's stored Argon2 hash (`users` hash in Redis, PHC strings) and, if
//!   it matches, opens a session (`session:<token>`, one hour).
//!
//! Alone, a session lookup is fast. But every morning, when people log in,
//! page views crawl — the lookups' p99 goes up a hundredfold — though the
//! lookup's own code and Redis never changed.
//!
//! ## The contract
//!
//! Whatever the code looks like, the service must (checked in [`verdict`]
//! from evidence the variant cannot forge):
//!
//! - answer every session lookup right — the user for a live token, none
//!   for an unknown one — and every login right: a session for the right
//!   password, [`LoginError::WrongPassword`] or [`LoginError::UnknownUser`]
//!   otherwise, with the session in Redis for exactly the logins accepted
//!   (a lookup whose reply waits for a worker longer than the Redis
//!   client's response timeout — 500 ms, its default — fails, and counts);
//! - keep checking passwords with the stored Argon2 hash: the CPU time the
//!   process spends per login stays at least half of what one check costs
//!   on this machine, measured by the harness in the same run — a login
//!   that no longer hashes, or remembers answers, is a security hole;
//! - never keep a worker thread of the service's runtime computing inside
//!   one poll: the harness times every poll on the service's workers by
//!   the CPU time it used ([`debuglab_harness::guard`]), and polls of
//!   [`POLL_BOUND`] or more may not be routine (as many as
//!   [`verdict::LONG_POLLS_PER_LOGIN`] per login that had a hash to check);
//! - keep the workers free for the session lookups while people log in:
//!   the harness times how long the service's workers are held by whatever
//!   task they run — on a CPU, or asleep in a blocking call — leaving out
//!   time spent waiting for a busy CPU ([`debuglab_harness::guard::Held`]);
//!   per login that had a hash to check, beyond what the page views need
//!   (at their cost alone, in the same run), that stays under
//!   [`verdict::HELD_SHARE_MAX`] of one check's CPU time.
//!
//! The lookups' latency — their p99 alone and while people log in, and how
//! long they wait for a worker — is the symptom, and the report shows it;
//! it is wall-clock time, which a busy machine stretches, and how many page
//! views fit in the run depends on the machine's speed, so no bound is
//! placed on it. A run makes at least [`workload::MIN_LOGINS`] login
//! attempts, however slow the machine.
//!
//! The run is laid out in [`data`] (users and sessions), [`workload`] (the
//! traffic), [`probes`] (what is measured) and [`verdict`] (the judgement,
//! a pure function).

pub mod buggy;
pub mod data;
pub mod fixed;
pub mod probes;
pub mod verdict;
pub mod workload;

use std::time::Duration;

use argon2::password_hash::PasswordHash;
use argon2::{Argon2, PasswordVerifier};
use deadpool_redis::redis::AsyncCommands;
pub use deadpool_redis::Pool;
use debuglab_harness::{
    Result, RunContext, Scenario, ScenarioInfo, Service, Sources, Variant, Verdict,
};
pub use futures::future::BoxFuture;

pub use verdict::POLL_BOUND;

/// What a user types to log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password, as typed.
    pub password: String,
}

/// Why a login did not open a session.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The password does not match the stored hash.
    #[error("wrong password")]
    WrongPassword,
    /// No user has this name.
    #[error("no such user")]
    UnknownUser,
    /// The stored hash cannot be read.
    #[error("stored hash is not a PHC string: {0}")]
    BadHash(String),
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] deadpool_redis::redis::RedisError),
    /// No Redis connection could be had.
    #[error("redis pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// The task that checked the password did not finish.
    #[error("password check: {0}")]
    Task(String),
}

impl LoginError {
    /// Whether this is an answer the service owes (not a failure).
    pub fn is_refusal(&self) -> bool {
        matches!(self, LoginError::WrongPassword | LoginError::UnknownUser)
    }
}

/// Where users' password hashes are kept: a Redis hash, user name → PHC string.
pub const USERS_KEY: &str = "users";

/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);

/// The Redis key of session `token`.
pub fn session_key(token: &str) -> String {
    format!("session:{token}")
}

/// Checks `password` against `stored`, a PHC string (`$argon2id$v=19$…`).
///
/// Argon2 is slow on purpose — memory-hard, tens of milliseconds of CPU — so
/// that stolen hashes cannot be tried quickly: that cost is the point.
pub fn verify_password(password: &str, stored: &str) -> std::result::Result<(), LoginError> {
    let hash = PasswordHash::new(stored).map_err(|error| LoginError::BadHash(error.to_string()))?;
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .map_err(|_| LoginError::WrongPassword)
}

/// A new session token: 128 random bits, hex.
pub fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The session endpoint: the user session `token` belongs to, if it is live.
///
/// The same in every variant: one `GET`.
pub async fn session(
    redis: &Pool,
    token: String,
) -> std::result::Result<Option<String>, LoginError> {
    let mut conn = redis.get().await?;
    Ok(conn.get(session_key(&token)).await?)
}

/// A variant's `login`, as a plain function pointer.
pub type LoginFn = fn(&Pool, Credentials) -> BoxFuture<'_, std::result::Result<String, LoginError>>;

/// The code of one variant: its login, and the runtime it asks for.
#[derive(Clone, Copy)]
pub struct Code {
    /// The login endpoint.
    pub login: LoginFn,
    /// Worker threads of the service's runtime.
    pub worker_threads: usize,
}

/// The [`Code`] of a module that has `login(&Pool, Credentials)` and
/// `WORKER_THREADS`: `code_of!(fixed)`. The exercise's binary and the tests
/// use it for code that is not in this library.
#[macro_export]
macro_rules! code_of {
    ($code:ident) => {{
        fn login(
            redis: &$crate::Pool,
            credentials: $crate::Credentials,
        ) -> $crate::BoxFuture<'_, ::std::result::Result<String, $crate::LoginError>> {
            ::std::boxed::Box::pin($code::login(redis, credentials))
        }
        $crate::Code {
            login: login as $crate::LoginFn,
            worker_threads: $code::WORKER_THREADS,
        }
    }};
}

static INFO: ScenarioInfo = ScenarioInfo {
    id: "blocked-runtime",
    title: "Blocked runtime",
    summary: "Session lookups stall whenever people log in, though the lookup's own code and Redis never changed.",
    services: &[Service::Redis],
    signal_metric: "service_long_polls",
    key_metrics: &[
        "lookup_p99_ms_alone",
        "lookup_p99_ms_under_logins",
        "lookup_p99_slowdown",
        "lookup_wait_to_poll_ms",
        "service_long_polls",
        "service_longest_poll_ms",
        "service_held_per_login_ms",
        "service_busy_ratio",
        "login_cpu_ms",
        "password_check_cpu_ms",
        "logins",
        "wrong_answers",
    ],
    live_gauges: &["lookup_wait_to_poll_ms", "service_long_polls", "service_busy_ratio"],
    hints: include_str!("../HINTS.md"),
    solution: include_str!("../SOLUTION.md"),
    sources: Sources {
        buggy: include_str!("buggy.rs"),
        fixed: include_str!("fixed.rs"),
    },
};

/// The blocked-runtime scenario, running its buggy and fixed code, or a
/// candidate's (the learner's exercise, a test's wrong fix) as the exercise.
pub struct BlockedRuntime {
    candidate: Option<Code>,
}

/// The scenario, for the CLI's list.
pub static SCENARIO: BlockedRuntime = BlockedRuntime { candidate: None };

impl BlockedRuntime {
    /// The scenario with `code` as what its exercise variant runs.
    pub const fn with_candidate(code: Code) -> BlockedRuntime {
        BlockedRuntime {
            candidate: Some(code),
        }
    }

    /// The code a run of `variant` uses.
    pub fn code(&self, variant: Variant) -> Result<Code> {
        variant.pick(INFO.id, code_of!(buggy), code_of!(fixed), self.candidate)
    }
}

impl Scenario for BlockedRuntime {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(async move {
            let code = self.code(ctx.variant())?;
            let figures = workload::run_service(ctx, code).await?;
            Ok(verdict::verdict(&figures))
        })
    }
}
