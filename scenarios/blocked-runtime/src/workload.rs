//! The traffic: page views looking up sessions, first alone, then while
//! people log in, two at a time; every request runs on the service's own
//! runtime (the variant's worker count), driven and timed from the run's
//! runtime, which the service cannot block.

use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::guard::{Limits, ServiceRuntime};
use debuglab_harness::workload::{Workload, WorkloadOutcome};
use debuglab_harness::{PoolSettings, Result, RunContext};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::probes::{self, Endpoints, LoginRecord};
use crate::verdict::Figures;
use crate::{data, session, Code, Credentials, LoginError, Pool, POLL_BOUND};

/// The Redis pool the service gets.
pub const POOL: PoolSettings = PoolSettings {
    max_connections: 8,
    acquire_timeout: Duration::from_secs(10),
};

/// Page views looking up their session, four at a time, each user pausing
/// [`PAGE_GAP`] between pages.
pub const fn lookups(requests: usize, max_duration: Duration) -> Workload {
    Workload {
        requests,
        concurrency: 4,
        max_duration,
        hard_limit: Duration::from_secs(15),
        // A live run keeps the page views coming while the learner looks.
        live_rate: 100,
    }
}

/// The page views alone: the lookup's own latency.
pub const LOOKUPS_ALONE: Workload = lookups(120, Duration::from_millis(800));

/// The page views while people log in.
pub const LOOKUPS_UNDER_LOGINS: Workload = lookups(400, Duration::from_millis(1500));

/// How long a reader looks at a page before the next one.
pub const PAGE_GAP: Duration = Duration::from_millis(8);

/// People logging in at the same moment.
pub const LOGINS_AT_ONCE: usize = 2;

/// Logins in one run at the most (a login that does no work would
/// otherwise run thousands).
pub const MAX_LOGINS: usize = 400;

/// Login attempts in one run at the least: people go on logging in after
/// the page views end until this many have been tried, so that the logins
/// the verdict counts against do not depend on how fast this machine hashes.
pub const MIN_LOGINS: usize = 12;

/// How long one login may take before it counts as hung.
pub const LOGIN_LIMIT: Duration = Duration::from_secs(5);

/// How the harness watches the service's workers: a poll that computes or
/// sleeps for [`POLL_BOUND`] is long; one still running after two seconds
/// is stuck.
pub const SERVICE_LIMITS: Limits = Limits {
    blocked_poll: POLL_BOUND,
    hogging_poll: POLL_BOUND,
    stuck: Duration::from_secs(2),
    stalled: Duration::from_secs(3),
};

/// The service: its runtime (as the variant configures it) and its pool.
#[derive(Clone)]
pub struct Service {
    /// The runtime the endpoints run on.
    pub runtime: ServiceRuntime,
    /// The service's Redis pool, opened on that runtime.
    pub redis: Pool,
    /// The variant's code.
    pub code: Code,
    /// The endpoints' task monitors.
    pub endpoints: Endpoints,
}

impl Service {
    /// Runs `request` on the service's runtime, watched and instrumented
    /// by `monitor`, and waits for it from the caller's.
    pub async fn call<T: Send + 'static>(
        &self,
        monitor: &tokio_metrics::TaskMonitor,
        request: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        self.runtime.call(monitor.instrument(request)).await
    }
}

/// Runs the traffic against `code` and returns the figures the verdict is
/// made of (also recorded on `ctx`).
pub async fn run_service(ctx: &RunContext, code: Code) -> Result<Figures> {
    let redis = ctx.redis().await?;
    data::open_service(&redis).await?;
    let service = start_service(ctx, &redis, code).await?;
    let check_cpu = probes::calibrate().await;
    let returning = returning_users(&service).await;
    let alone = if ctx.is_live() {
        None
    } else {
        let before = service.runtime.monitor().workers_held();
        let lookups = drive_lookups(ctx, &service, "page views alone", LOOKUPS_ALONE).await;
        Some((
            lookups,
            service.runtime.monitor().workers_held().since(&before),
        ))
    };
    let watch = probes::Watch::start(ctx, &service);
    let (stop_logins, logins) = start_logins(&service);
    let under_logins = drive_lookups(
        ctx,
        &service,
        "page views while people log in",
        LOOKUPS_UNDER_LOGINS,
    )
    .await;
    let _ = stop_logins.send(true);
    let logins = logins.await.unwrap_or_default();
    let watched = watch.stop(&service).await;
    let sessions = probes::check_sessions(&redis, returning.iter().chain(&logins)).await?;
    let driven = probes::Driven {
        alone: alone.as_ref().map(|(lookups, held)| (lookups, *held)),
        under_logins: &under_logins,
        returning: &returning,
        logins: &logins,
    };
    let figures = probes::figures(code, &driven, sessions, check_cpu, &watched);
    probes::record(ctx, &figures, &watched);
    probes::record_plots(ctx, &driven, &figures);
    drop(service);
    Ok(figures)
}

/// The service's runtime with the variant's worker threads, watched by the
/// harness, and its pool opened on it (so that its connections' I/O runs
/// there, as in the service).
async fn start_service(
    ctx: &RunContext,
    redis: &debuglab_harness::redis::RunRedis,
    code: Code,
) -> Result<Service> {
    let id = ctx.info().id;
    let runtime = ServiceRuntime::new(id, code.worker_threads, SERVICE_LIMITS)?;
    runtime.monitor().count_held_workers();
    let opening = redis.clone();
    let pool = runtime
        .set_up(id, "opening the service's pool", async move {
            opening.pool(POOL).await
        })
        .await?;
    Ok(Service {
        runtime,
        redis: pool,
        code,
        endpoints: Endpoints::new(),
    })
}

/// What one page view got: the token it asked about, the answer, and how
/// long the lookup took (the pause after it left out).
pub type LookupOutcome = WorkloadOutcome<(usize, Option<Option<String>>, Duration), LoginError>;

/// Page views of `shape`, each asking for one session: live ones, and now
/// and then one that has expired.
async fn drive_lookups(
    ctx: &RunContext,
    service: &Service,
    label: &str,
    shape: Workload,
) -> LookupOutcome {
    let service = service.clone();
    ctx.drive(label, shape, move |index| {
        let service = service.clone();
        async move {
            let (session_index, token) = lookup_token(index);
            let redis = service.redis.clone();
            let started = Instant::now();
            let answer = service
                .call(&service.endpoints.lookup, async move {
                    session(&redis, token).await
                })
                .await;
            let took = started.elapsed();
            tokio::time::sleep(PAGE_GAP).await;
            match answer {
                Some(Err(error)) => Err(error),
                Some(Ok(user)) => Ok((session_index, Some(user), took)),
                None => Ok((session_index, None, took)),
            }
        }
    })
    .await
}

/// The session page view `index` asks about: one of the live sessions, and
/// every tenth one past them (expired, unknown to Redis).
pub fn lookup_token(index: usize) -> (usize, String) {
    let session_index = if index % 10 == 9 {
        data::SESSIONS + index
    } else {
        (index * 7) % data::SESSIONS
    };
    (session_index, data::session_token(session_index))
}

/// What login attempt `index` types: mostly the right password, every
/// fifth a wrong one, every seventh a user who does not exist.
pub fn login_attempt(index: usize) -> Credentials {
    let user = index % data::USERS;
    match index {
        i if i % 7 == 6 => Credentials {
            username: format!("nobody{index}"),
            password: data::password(user),
        },
        i if i % 5 == 4 => Credentials {
            username: data::username(user),
            password: format!("{} typo", data::password(user)),
        },
        _ => Credentials {
            username: data::username(user),
            password: data::password(user),
        },
    }
}

/// Starts [`LOGINS_AT_ONCE`] people logging in, one attempt after another,
/// until told to stop and [`MIN_LOGINS`] have been tried (or [`MAX_LOGINS`]
/// have been).
fn start_logins(
    service: &Service,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<Vec<LoginRecord>>,
) {
    let (stop, stopped) = watch::channel(false);
    let service = service.clone();
    let task = tokio::spawn(async move {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let people = (0..LOGINS_AT_ONCE)
            .map(|_| log_in_until(service.clone(), Arc::clone(&next), stopped.clone()));
        futures::future::join_all(people)
            .await
            .into_iter()
            .flatten()
            .collect()
    });
    (stop, task)
}

/// One person logging in again and again until `stopped` (and the
/// attempts reach [`MIN_LOGINS`]).
async fn log_in_until(
    service: Service,
    next: Arc<std::sync::atomic::AtomicUsize>,
    stopped: watch::Receiver<bool>,
) -> Vec<LoginRecord> {
    let mut records = Vec::new();
    loop {
        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if index >= MAX_LOGINS || (index >= MIN_LOGINS && *stopped.borrow()) {
            break;
        }
        records.push(log_in(&service, login_attempt(index)).await);
    }
    records
}

/// One login with `credentials`, waited for [`LOGIN_LIMIT`] at most.
async fn log_in(service: &Service, credentials: Credentials) -> LoginRecord {
    let (redis, login, asked) = (
        service.redis.clone(),
        service.endpoints.login.clone(),
        credentials.clone(),
    );
    let code_login = service.code.login;
    let call = service.call(&login, async move { code_login(&redis, asked).await });
    let answer = tokio::time::timeout(LOGIN_LIMIT, call).await.ok().flatten();
    LoginRecord {
        credentials,
        answer,
    }
}

/// Every user logs in once with the right password before the traffic, as
/// the day before: during the traffic, a right password is always one the
/// service has checked already, so a login that remembers answers instead
/// of checking them shows however few logins the run makes.
async fn returning_users(service: &Service) -> Vec<LoginRecord> {
    let mut records = Vec::new();
    for user in 0..data::USERS {
        let credentials = Credentials {
            username: data::username(user),
            password: data::password(user),
        };
        records.push(log_in(service, credentials).await);
    }
    records
}
