//! What the run measures: the service's runtime (every poll timed by the
//! harness's watch, by CPU time; `tokio-metrics` for each endpoint and for
//! the workers' busy time), what one password check costs on this machine
//! (calibrated in the same run, in CPU time), the CPU the process spends
//! while people log in, and the sessions Redis holds afterwards; and the
//! metrics and evidence it records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::cpu;
use debuglab_harness::guard::{Blocking, Held};
use debuglab_harness::redis::RunRedis;
use debuglab_harness::report::grouped;
use debuglab_harness::sampler::{sample_every, Sampler};
use debuglab_harness::stats::Latencies;
use debuglab_harness::{Plot, PlotKind, Result, RunContext};
use tokio_metrics::{RuntimeMonitor, TaskMetrics, TaskMonitor};

use crate::verdict::{Cpu, Figures, Logins, Lookups, Polls, Sessions, Workers, HELD_SHARE_MAX};
use crate::workload::{LookupOutcome, Service, LOGINS_AT_ONCE, LOOKUPS_UNDER_LOGINS};
use crate::{data, session_key, verify_password, Code, Credentials, LoginError, POLL_BOUND};

/// Password checks the calibration times; the fastest counts, since
/// anything else running (a cache shared with another core) only adds.
const CALIBRATION_CHECKS: usize = 5;

/// The endpoints' task monitors: a poll of [`POLL_BOUND`] or more is slow.
#[derive(Clone)]
pub struct Endpoints {
    /// Every login.
    pub login: TaskMonitor,
    /// Every session lookup.
    pub lookup: TaskMonitor,
}

impl Endpoints {
    /// Fresh monitors.
    pub fn new() -> Endpoints {
        let monitor = || {
            let mut builder = TaskMonitor::builder();
            builder.with_slow_poll_threshold(POLL_BOUND);
            builder.build()
        };
        Endpoints {
            login: monitor(),
            lookup: monitor(),
        }
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints::new()
    }
}

/// One login attempt and what it got (`None`: it never answered).
#[derive(Debug)]
pub struct LoginRecord {
    /// What was typed.
    pub credentials: Credentials,
    /// The session token, or why not.
    pub answer: Option<std::result::Result<String, LoginError>>,
}

/// CPU time one password check takes on this machine, the fastest of a few,
/// on a thread of the harness's own.
pub async fn calibrate() -> Duration {
    let (answer, measured) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let stored = data::hash(&data::password(0), 0);
        let fastest = (0..CALIBRATION_CHECKS)
            .map(|_| cpu::measure(|| verify_password(&data::password(0), &stored)).0)
            .min()
            .unwrap_or_default();
        let _ = answer.send(fastest);
    });
    measured.await.unwrap_or_default()
}

/// The watch over the service while people log in: the workers' busy time,
/// the process's CPU time, and a live run's gauges.
pub struct Watch {
    runtime: tokio_metrics::RuntimeIntervals,
    cpu_before: Duration,
    held_before: Held,
    gauges: Sampler<()>,
}

/// What the watch saw.
pub struct Watched {
    /// The workers' busy share of the time, per worker (0 to 1).
    pub busy_ratio: f64,
    /// The process's CPU time meanwhile.
    pub cpu: Duration,
    /// How long the service's workers were held meanwhile.
    pub held: Held,
    /// What the harness's watch saw of the service's polls.
    pub blocking: Blocking,
    /// Each endpoint's polls, from its task monitor.
    pub login: TaskMetrics,
    /// The lookups' polls.
    pub lookup: TaskMetrics,
}

impl Watch {
    /// Starts watching `service`.
    pub fn start(ctx: &RunContext, service: &Service) -> Watch {
        let held_before = service.runtime.monitor().workers_held();
        let mut runtime = RuntimeMonitor::new(service.runtime.handle()).intervals();
        // From here on, the next interval is the one people log in during.
        runtime.next();
        let (progress, service) = (Arc::clone(ctx.progress()), service.clone());
        let mut lookups = service.endpoints.lookup.intervals();
        let mut busy = RuntimeMonitor::new(service.runtime.handle()).intervals();
        let gauges = sample_every(Duration::from_millis(250), move || {
            let (lookup, runtime) = (lookups.next(), busy.next());
            let blocking = service.runtime.monitor().blocking();
            progress.gauge(
                "service_long_polls",
                (blocking.blocked_polls + blocking.hogging_polls) as f64,
            );
            if let Some(lookup) = lookup {
                progress.gauge(
                    "lookup_wait_to_poll_ms",
                    round(ms(lookup.mean_first_poll_delay())),
                );
            }
            if let Some(runtime) = runtime {
                progress.gauge(
                    "service_busy_ratio",
                    round(per_worker(runtime.busy_ratio(), runtime.workers_count)),
                );
            }
            async {}
        });
        Watch {
            runtime,
            cpu_before: cpu::process_cpu_time(),
            held_before,
            gauges,
        }
    }

    /// Stops watching.
    pub async fn stop(self, service: &Service) -> Watched {
        let mut intervals = self.runtime;
        let runtime = intervals.next();
        let cpu = cpu::process_cpu_time().saturating_sub(self.cpu_before);
        let held = service
            .runtime
            .monitor()
            .workers_held()
            .since(&self.held_before);
        self.gauges.stop().await;
        Watched {
            busy_ratio: runtime.map_or(0.0, |metrics| {
                per_worker(metrics.busy_ratio(), metrics.workers_count)
            }),
            cpu,
            held,
            blocking: service.runtime.monitor().blocking(),
            login: service.endpoints.login.cumulative(),
            lookup: service.endpoints.lookup.cumulative(),
        }
    }
}

fn per_worker(ratio: f64, workers: usize) -> f64 {
    if ratio.is_finite() {
        ratio / workers.max(1) as f64
    } else {
        0.0
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// For every login that opened a session: whether Redis holds it for the
/// right user; and how many sessions Redis holds beyond those it should.
pub async fn check_sessions(
    redis: &RunRedis,
    logins: impl IntoIterator<Item = &LoginRecord>,
) -> Result<Sessions> {
    let held: BTreeMap<String, String> = redis.key_values("session:*").await?.into_iter().collect();
    let mut sessions = Sessions::default();
    let mut expected = data::SESSIONS;
    for record in logins {
        let Some(Ok(token)) = &record.answer else {
            continue;
        };
        expected += 1;
        if held.get(&session_key(token)) != Some(&record.credentials.username) {
            sessions.missing += 1;
        }
    }
    sessions.extra = held.len().saturating_sub(expected);
    Ok(sessions)
}

/// What a run drove.
pub struct Driven<'a> {
    /// The page views alone, and how long they held the workers (`None`
    /// in a live run).
    pub alone: Option<(&'a LookupOutcome, Held)>,
    /// The page views while people logged in.
    pub under_logins: &'a LookupOutcome,
    /// The returning users' logins, before the page views.
    pub returning: &'a [LoginRecord],
    /// The logins while the page views ran.
    pub logins: &'a [LoginRecord],
}

/// The figures of a run, from what was driven and watched.
pub fn figures(
    code: Code,
    driven: &Driven,
    sessions: Sessions,
    check_cpu: Duration,
    watched: &Watched,
) -> Figures {
    let Driven {
        alone,
        under_logins,
        returning,
        logins,
    } = *driven;
    let logins = tally_logins(logins);
    let cpu = Cpu {
        check_ms: ms(check_cpu),
        per_login_ms: ms(watched.cpu) / logins.hashed.max(1) as f64,
    };
    let lookups_alone = alone.map(|(outcome, _)| tally_lookups(outcome));
    let workers = Workers {
        per_lookup_alone_ms: alone
            .zip(lookups_alone.as_ref())
            .map(|((_, held), lookups)| ms(held.total()) / lookups.finished.max(1) as f64),
        on_cpu_ms: ms(watched.held.on_cpu),
        asleep_ms: ms(watched.held.asleep),
    };
    Figures {
        lookups_alone,
        lookups_under_logins: tally_lookups(under_logins),
        returning: tally_logins(returning),
        logins,
        sessions,
        cpu,
        polls: Polls {
            worker_threads: code.worker_threads,
            blocking: watched.blocking.clone(),
        },
        workers,
        lookup_wait_ms: ms(watched.lookup.mean_first_poll_delay()),
    }
}

/// What the page views were told, against the sessions Redis was given.
pub fn tally_lookups(outcome: &LookupOutcome) -> Lookups {
    let mut lookups = Lookups {
        finished: outcome.records.len(),
        unfinished: outcome.unfinished,
        ..Lookups::default()
    };
    let mut took = Vec::new();
    for record in &outcome.records {
        match &record.result {
            Ok((index, Some(user), latency)) => {
                took.push(*latency);
                let expected = (*index < data::SESSIONS).then(|| data::session_owner(*index));
                if *user != expected {
                    lookups.wrong_answers += 1;
                }
            }
            Ok((_, None, _)) => lookups.unfinished += 1,
            Err(error) => {
                lookups.failed += 1;
                lookups
                    .first_failure
                    .get_or_insert_with(|| error.to_string());
            }
        }
    }
    let latencies = Latencies::new(took);
    lookups.p50_ms = latencies.p50_ms().unwrap_or(0.0);
    lookups.p99_ms = latencies.p99_ms().unwrap_or(0.0);
    lookups
}

/// What the people logging in were told, against what they typed.
pub fn tally_logins(records: &[LoginRecord]) -> Logins {
    let mut logins = Logins::default();
    for record in records {
        let credentials = &record.credentials;
        let known = (0..data::USERS).find(|&user| data::username(user) == credentials.username);
        let right = known.is_some_and(|user| data::password(user) == credentials.password);
        logins.hashed += usize::from(known.is_some());
        match (&record.answer, known, right) {
            (None, _, _) => logins.unfinished += 1,
            (Some(Ok(_)), _, true) => logins.accepted += 1,
            (Some(Err(LoginError::WrongPassword)), Some(_), false) => logins.refused += 1,
            (Some(Err(LoginError::UnknownUser)), None, _) => logins.refused += 1,
            (Some(Err(error)), _, _) if !error.is_refusal() => {
                logins.failed += 1;
                logins
                    .first_failure
                    .get_or_insert_with(|| format!("{}: {error}", credentials.username));
            }
            (Some(answer), _, _) => {
                logins.wrong_answers += 1;
                logins.first_wrong.get_or_insert_with(|| {
                    let got = answer
                        .as_ref()
                        .map_or_else(|error| error.to_string(), |_| "a session".to_owned());
                    format!(
                        "{} with {} password: {got}",
                        credentials.username,
                        if right { "the right" } else { "a wrong" }
                    )
                });
            }
        }
    }
    logins.finished = records.len() - logins.unfinished;
    logins
}

/// Records the metrics and the evidence of a run.
pub fn record(ctx: &RunContext, figures: &Figures, watched: &Watched) {
    record_metrics(ctx, figures, watched);
    record_lookups(ctx, figures);
    record_polls(ctx, figures, watched);
    record_logins(ctx, figures);
}

/// The pictures of a run: how long session lookups took, alone and while
/// people logged in, and how long a login held the service's workers
/// against what one password check costs.
pub fn record_plots(ctx: &RunContext, driven: &Driven<'_>, figures: &Figures) {
    let took = |outcome: &LookupOutcome| -> Vec<[f64; 2]> {
        outcome
            .records
            .iter()
            .filter_map(|record| match &record.result {
                Ok((_, Some(_), took)) => Some([record.index as f64, ms(*took)]),
                _ => None,
            })
            .collect()
    };
    if let Some((alone, _)) = driven.alone {
        ctx.series("lookup_ms_alone", took(alone));
    }
    ctx.series("lookup_ms_under_logins", took(driven.under_logins));
    ctx.plot(
        Plot::new(
            "lookups",
            PlotKind::Histogram,
            "How long a session lookup took",
        )
        .x("latency", "ms")
        .log_x()
        .line("lookup_ms_alone", "page views alone")
        .line("lookup_ms_under_logins", "page views while people log in"),
    );
    let held = figures.held_per_login_ms().unwrap_or(0.0);
    ctx.series("held_per_login_ms", [[0.0, held.max(0.01)]]);
    ctx.series("check_cpu_ms", [[0.0, figures.cpu.check_ms]]);
    ctx.plot(
        Plot::new(
            "held",
            PlotKind::Bars,
            "The service's workers, per login that checked a hash",
        )
        .x("", "")
        .y("time", "ms")
        .categories(["per login"])
        .line(
            "held_per_login_ms",
            "workers held, beyond the page views' need",
        )
        .line("check_cpu_ms", "one password check's CPU time")
        .bound(HELD_SHARE_MAX * figures.cpu.check_ms, "bound: half a check"),
    );
}

fn record_metrics(ctx: &RunContext, figures: &Figures, watched: &Watched) {
    let (under, polls) = (&figures.lookups_under_logins, &figures.polls.blocking);
    let all_logins = figures.logins.with(&figures.returning);
    let mut metrics = vec![
        ("lookup_p50_ms_under_logins", under.p50_ms),
        ("lookup_p99_ms_under_logins", under.p99_ms),
        (
            "lookup_wait_to_poll_ms",
            ms(watched.lookup.mean_first_poll_delay()),
        ),
        (
            "service_long_polls",
            (polls.blocked_polls + polls.hogging_polls) as f64,
        ),
        (
            "service_longest_poll_ms",
            polls.longest_blocked_ms.max(polls.longest_hogging_ms),
        ),
        ("service_busy_ratio", watched.busy_ratio),
        (
            "service_worker_threads",
            figures.polls.worker_threads as f64,
        ),
        ("login_cpu_ms", figures.cpu.per_login_ms),
        ("password_check_cpu_ms", figures.cpu.check_ms),
        ("logins", figures.logins.finished as f64),
        ("logins_accepted", figures.logins.accepted as f64),
        ("logins_hashed", figures.logins.hashed as f64),
        (
            "service_held_per_login_ms",
            figures.held_per_login_ms().unwrap_or(0.0),
        ),
        ("service_held_cpu_ms", figures.workers.on_cpu_ms),
        ("service_held_asleep_ms", figures.workers.asleep_ms),
        (
            "wrong_answers",
            (under.wrong_answers + all_logins.wrong_answers) as f64,
        ),
        ("requests_failed", (under.failed + all_logins.failed) as f64),
    ];
    if let Some(alone) = &figures.lookups_alone {
        metrics.push(("lookup_p50_ms_alone", alone.p50_ms));
        metrics.push(("lookup_p99_ms_alone", alone.p99_ms));
        metrics.push((
            "lookup_p99_slowdown",
            figures.lookup_slowdown().unwrap_or(0.0),
        ));
    }
    if let Some(per_lookup) = figures.workers.per_lookup_alone_ms {
        metrics.push(("service_held_per_lookup_alone_ms", per_lookup));
    }
    for (name, value) in metrics {
        ctx.metric(name, round(value));
    }
}

fn record_lookups(ctx: &RunContext, figures: &Figures) {
    let under = &figures.lookups_under_logins;
    if let Some(alone) = &figures.lookups_alone {
        ctx.evidence(format!(
            "session lookups alone: {} page views, 4 at a time: p50 {:.2} ms, p99 {:.2} ms",
            alone.finished, alone.p50_ms, alone.p99_ms
        ));
    }
    ctx.evidence(format!(
        "session lookups while {LOGINS_AT_ONCE} people at a time log in: {} page views (of {} planned): \
         p50 {:.2} ms, p99 {:.2} ms{}",
        under.finished,
        LOOKUPS_UNDER_LOGINS.requests,
        under.p50_ms,
        under.p99_ms,
        figures
            .lookup_slowdown()
            .map(|slowdown| format!(" — {slowdown:.1}x their p99 alone"))
            .unwrap_or_default()
    ));
    if let Some(failure) = &under.first_failure {
        ctx.evidence(format!(
            "{} session lookups failed; the first: {failure}",
            under.failed
        ));
    }
}

fn record_polls(ctx: &RunContext, figures: &Figures, watched: &Watched) {
    let polls = &figures.polls.blocking;
    ctx.evidence(format!(
        "the service's runtime ({} worker threads): busy {:.0}% of the time while people logged in; \
         the harness's watch timed {} request polls on its workers, {} of them {:.0} ms or longer \
         (the longest {:.1} ms)",
        figures.polls.worker_threads,
        watched.busy_ratio * 100.0,
        grouped(polls.request_polls as f64),
        polls.blocked_polls + polls.hogging_polls,
        ms(POLL_BOUND),
        polls.longest_blocked_ms.max(polls.longest_hogging_ms)
    ));
    if let Some(stuck) = &polls.stuck {
        ctx.evidence(format!("the service's watch: {stuck}"));
    }
    let workers = &figures.workers;
    ctx.evidence(format!(
        "the harness's watch timed the service's workers from waking to parking, leaving out time \
         spent waiting for a busy CPU: while people logged in they were held {:.0} ms computing and \
         {:.0} ms asleep, {:.1} ms per login that had a hash to check ({}) beyond the page views' \
         {}",
        workers.on_cpu_ms,
        workers.asleep_ms,
        figures.held_per_login_ms().unwrap_or(0.0),
        figures.logins.hashed,
        workers.per_lookup_alone_ms.map_or_else(
            || "needs (not measured in a live run)".to_owned(),
            |per_lookup| format!("{per_lookup:.2} ms each, as measured alone")
        )
    ));
    for (name, metrics) in [
        ("login", &watched.login),
        ("session lookup", &watched.lookup),
    ] {
        ctx.evidence(format!(
            "tokio-metrics, {name} tasks: {} polls, mean {:.2} ms; {} polls of {:.0} ms or more (mean \
             {:.1} ms); a new task waited {:.2} ms on average for a worker to poll it first, a woken one {:.2} ms",
            grouped(metrics.total_poll_count as f64),
            ms(metrics.mean_poll_duration()),
            metrics.total_slow_poll_count,
            ms(POLL_BOUND),
            ms(metrics.mean_slow_poll_duration()),
            ms(metrics.mean_first_poll_delay()),
            ms(metrics.mean_scheduled_duration())
        ));
    }
    let longest = [
        ("login", &watched.login),
        ("session lookup", &watched.lookup),
    ]
    .into_iter()
    .max_by(|a, b| a.1.mean_poll_duration().cmp(&b.1.mean_poll_duration()));
    if let Some((name, metrics)) = longest {
        ctx.evidence(format!(
            "the task with the longest polls: {name} (mean poll {:.2} ms)",
            ms(metrics.mean_poll_duration())
        ));
    }
}

fn record_logins(ctx: &RunContext, figures: &Figures) {
    let (logins, cpu, returning) = (&figures.logins, &figures.cpu, &figures.returning);
    ctx.evidence(format!(
        "before the traffic, each of the {} users logged in once with the right password: {} \
         accepted, {} failed, {} wrong, {} hung",
        returning.finished + returning.unfinished,
        returning.accepted,
        returning.failed,
        returning.wrong_answers,
        returning.unfinished
    ));
    ctx.evidence(format!(
        "logins while the page views ran: {} answered ({} accepted, {} refused as they must be, {} failed, {} wrong), {} hung; \
         the process used {:.1} ms of CPU per login that had a hash to check, one password check \
         costs {:.1} ms of CPU on this machine (calibrated in the same run)",
        logins.finished, logins.accepted, logins.refused, logins.failed, logins.wrong_answers,
        logins.unfinished, cpu.per_login_ms, cpu.check_ms
    ));
    for line in [
        &returning.first_failure,
        &logins.first_failure,
        &returning.first_wrong,
        &logins.first_wrong,
    ]
    .into_iter()
    .flatten()
    {
        ctx.evidence(format!("the first: {line}"));
    }
    let sessions = &figures.sessions;
    ctx.evidence(format!(
        "sessions in Redis after the run: {} accepted logins without their session, {} sessions \
         nobody was given",
        sessions.missing, sessions.extra
    ));
}
