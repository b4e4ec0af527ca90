//! Driving many requests at a fixed concurrency, with a time limit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::guard::watched;
use crate::progress;
use crate::stats::Latencies;

/// The shape of a workload: how many requests, how many at once, for how long.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Requests to issue in total.
    pub requests: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// No new request starts after this long; requests in flight may finish.
    pub max_duration: Duration,
    /// Requests still in flight this long after the start are cancelled and
    /// counted as unfinished: the service hung.
    pub hard_limit: Duration,
    /// In a live run (`debuglab run --live`), requests start at most this
    /// many times a second, for as long as the learner watches: enough to
    /// keep the symptom visible without exhausting the machine.
    pub live_rate: u32,
}

/// Why a workload stopped issuing requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Every planned request was issued.
    AllIssued,
    /// [`Workload::max_duration`] ran out first.
    TimeLimit(Duration),
    /// [`Workload::hard_limit`] was reached with requests still in flight.
    HardLimit(Duration),
    /// Someone asked the workload to stop (the run's watch, or Ctrl-C in a live run).
    Stopped(String),
}

tokio::task_local! {
    static CURRENT_REQUEST: RequestClock;
}

/// Which request of a workload the current task is serving, and when that
/// workload began: services a variant calls (a payment provider, the
/// harness's pools) use it to place what they saw on the request's timeline.
#[derive(Clone, Copy, Debug)]
pub struct RequestClock {
    /// The request's index.
    pub index: usize,
    workload_began: Instant,
}

impl RequestClock {
    /// The request this task serves, if it serves one of a workload's
    /// (work the variant moved into a task of its own has none).
    pub fn current() -> Option<RequestClock> {
        CURRENT_REQUEST.try_with(|clock| *clock).ok()
    }

    /// Now, as time since the workload began.
    pub fn now(&self) -> Duration {
        self.workload_began.elapsed()
    }
}

/// One finished request.
#[derive(Debug)]
pub struct RequestRecord<T, E> {
    /// Which request (0-based, in issue order).
    pub index: usize,
    /// When it started, since the workload began.
    pub started: Duration,
    /// How long it took, from start to answer or error.
    pub latency: Duration,
    /// What it returned.
    pub result: Result<T, E>,
}

/// What happened to a workload.
#[derive(Debug)]
pub struct WorkloadOutcome<T, E> {
    /// Every request that finished, in the order they finished.
    pub records: Vec<RequestRecord<T, E>>,
    /// Requests the workload planned.
    pub planned: usize,
    /// Requests it started.
    pub issued: usize,
    /// Requests cancelled at the hard limit or at a stop.
    pub unfinished: usize,
    /// Whether the hard limit was reached.
    pub cut_off: bool,
    /// Why issuing ended.
    pub ended: Ended,
    /// Wall-clock time of the workload.
    pub elapsed: Duration,
}

impl<T, E> WorkloadOutcome<T, E> {
    /// Latencies of all finished requests, failed ones included.
    pub fn latencies(&self) -> Latencies {
        Latencies::new(self.records.iter().map(|record| record.latency))
    }

    /// How many finished requests failed.
    pub fn errors(&self) -> usize {
        self.records
            .iter()
            .filter(|record| record.result.is_err())
            .count()
    }

    /// Finished requests per second.
    pub fn throughput(&self) -> f64 {
        self.records.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Why fewer requests finished than were planned, as a sentence; `None` if all did.
    pub fn shortfall(&self) -> Option<String> {
        shortfall(self.planned, self.issued, self.records.len(), &self.ended)
    }
}

/// The sentence [`WorkloadOutcome::shortfall`] gives, from the figures alone.
pub fn shortfall(planned: usize, issued: usize, finished: usize, ended: &Ended) -> Option<String> {
    if finished >= planned {
        return None;
    }
    let why = match ended {
        Ended::AllIssued => format!(
            "{} requests were still running when the run ended",
            issued - finished
        ),
        Ended::TimeLimit(limit) => format!(
            "the workload's time limit of {} s ran out before every request could start",
            limit.as_secs_f64()
        ),
        Ended::HardLimit(limit) => format!(
            "{} requests were still running at the workload's hard limit of {} s and were cut off",
            issued - finished,
            limit.as_secs_f64()
        ),
        Ended::Stopped(reason) => format!("the workload was stopped: {reason}"),
    };
    Some(format!(
        "stopped after {finished} of {planned} requests: {why}"
    ))
}

/// Runs `request(i)` for `i` in `0..workload.requests`, `workload.concurrency` at a time.
///
/// Each request is its own task, watched (see [`crate::guard`]), so a request
/// that blocks its thread or never completes cannot stop the clock: at
/// `workload.hard_limit` everything still in flight is aborted and counted in
/// [`WorkloadOutcome::unfinished`]. On a guarded runtime, the workload also
/// stops early when the runtime's watch asks it to.
pub async fn drive<F, Fut, T, E>(
    label: &str,
    workload: Workload,
    request: F,
) -> WorkloadOutcome<T, E>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    drive_paced(label, workload, None, request).await
}

/// [`drive`], starting requests at least `pace` apart when given.
pub(crate) async fn drive_paced<F, Fut, T, E>(
    label: &str,
    workload: Workload,
    pace: Option<Duration>,
    request: F,
) -> WorkloadOutcome<T, E>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let _step = progress::step(format!(
        "{label}: {} requests, {} at a time",
        workload.requests, workload.concurrency
    ));
    let stop = crate::guard::Monitor::current().map(|monitor| monitor.stopped());
    let mut driver = Driver::new(workload, pace, request);
    let ended = driver.run(stop).await;
    driver.finish(ended)
}

/// The state of one [`drive`]: requests in flight and those done.
struct Driver<F, T, E> {
    workload: Workload,
    pace: Option<Duration>,
    request: Arc<F>,
    started: Instant,
    in_flight: JoinSet<RequestRecord<T, E>>,
    next: usize,
    records: Vec<RequestRecord<T, E>>,
}

impl<F, Fut, T, E> Driver<F, T, E>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    fn new(workload: Workload, pace: Option<Duration>, request: F) -> Self {
        Driver {
            workload,
            pace,
            request: Arc::new(request),
            started: Instant::now(),
            in_flight: JoinSet::new(),
            next: 0,
            records: Vec::with_capacity(workload.requests.min(100_000)),
        }
    }

    fn spawn_next(&mut self) {
        let request = Arc::clone(&self.request);
        let (index, workload_began) = (self.next, self.started);
        self.in_flight.spawn(watched(async move {
            let begun = Instant::now();
            let clock = RequestClock {
                index,
                workload_began,
            };
            let result = CURRENT_REQUEST.scope(clock, request(index)).await;
            RequestRecord {
                index,
                started: begun - workload_began,
                latency: begun.elapsed(),
                result,
            }
        }));
        self.next += 1;
    }

    /// When the next request may start: now, or a pace after the last one.
    fn next_start(&self) -> Instant {
        match self.pace {
            Some(pace) => self.started + pace * self.next as u32,
            None => self.started,
        }
    }

    fn may_issue(&self) -> bool {
        self.next < self.workload.requests
            && self.in_flight.len() < self.workload.concurrency.max(1)
    }

    async fn run(&mut self, stop: Option<impl Future<Output = String>>) -> Ended {
        let stop_issuing = self.started + self.workload.max_duration;
        let hard_limit = self.started + self.workload.hard_limit;
        let stop = async move {
            match stop {
                Some(stop) => stop.await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(stop);
        loop {
            let now = Instant::now();
            // Every request that may start now starts now: a timer would
            // round up to the next millisecond, a cap on the request rate.
            while self.may_issue() && now < stop_issuing && self.next_start() <= now {
                self.spawn_next();
            }
            // Still able to issue after that: the pace holds the next one back.
            let paced = self.may_issue() && now < stop_issuing;
            if !paced && self.in_flight.is_empty() {
                return if self.next >= self.workload.requests {
                    Ended::AllIssued
                } else {
                    Ended::TimeLimit(self.workload.max_duration)
                };
            }
            tokio::select! {
                reason = &mut stop => return Ended::Stopped(reason),
                _ = tokio::time::sleep_until(hard_limit) => return Ended::HardLimit(self.workload.hard_limit),
                _ = tokio::time::sleep_until(self.next_start()), if paced => {}
                joined = self.in_flight.join_next(), if !self.in_flight.is_empty() => match joined {
                    Some(Ok(record)) => self.records.push(record),
                    Some(Err(error)) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    _ => {}
                },
            }
        }
    }

    fn finish(mut self, ended: Ended) -> WorkloadOutcome<T, E> {
        // Requests that finished while the workload was stopping still count.
        while let Some(joined) = self.in_flight.try_join_next() {
            if let Ok(record) = joined {
                self.records.push(record);
            }
        }
        let unfinished = self.in_flight.len();
        self.in_flight.abort_all();
        WorkloadOutcome {
            planned: self.workload.requests,
            issued: self.next,
            cut_off: matches!(ended, Ended::HardLimit(_)),
            records: self.records,
            unfinished,
            ended,
            elapsed: self.started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(requests: usize, concurrency: usize) -> Workload {
        Workload {
            requests,
            concurrency,
            max_duration: Duration::from_secs(60),
            hard_limit: Duration::from_secs(120),
            live_rate: 10,
        }
    }

    #[tokio::test]
    async fn runs_every_request_once() {
        let outcome = drive("test", workload(50, 4), |i| async move { Ok::<_, ()>(i) }).await;
        let mut seen: Vec<usize> = outcome
            .records
            .iter()
            .map(|r| *r.result.as_ref().unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert_eq!(
            (outcome.unfinished, outcome.cut_off, outcome.errors()),
            (0, false, 0)
        );
    }

    #[tokio::test]
    async fn never_exceeds_the_concurrency() {
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (counter, max) = (Arc::clone(&in_flight), Arc::clone(&peak));
        drive("test", workload(40, 3), move |_| {
            let (counter, max) = (Arc::clone(&counter), Arc::clone(&max));
            async move {
                let now = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                max.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::task::yield_now().await;
                counter.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, ()>(())
            }
        })
        .await;
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 3);
    }

    #[tokio::test(start_paused = true)]
    async fn cuts_off_requests_that_hang() {
        let limits = Workload {
            hard_limit: Duration::from_secs(5),
            ..workload(10, 2)
        };
        let outcome = drive("test", limits, |i| async move {
            if i == 1 {
                std::future::pending::<()>().await;
            }
            Ok::<_, ()>(i)
        })
        .await;
        assert!(outcome.cut_off);
        assert_eq!(outcome.unfinished, 1);
        assert_eq!(outcome.records.len(), 9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_time_limit_is_the_reason_given_for_a_shortfall() {
        let limits = Workload {
            max_duration: Duration::from_secs(1),
            ..workload(10, 1)
        };
        let outcome = drive("test", limits, |_| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, ()>(())
        })
        .await;
        // Started at 0, 300, 600 and 900 ms; none after the limit.
        assert_eq!((outcome.issued, outcome.records.len()), (4, 4));
        assert_eq!(outcome.ended, Ended::TimeLimit(Duration::from_secs(1)));
        assert_eq!(
            outcome.shortfall().unwrap(),
            "stopped after 4 of 10 requests: the workload's time limit of 1 s ran out before every request could start"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unpaced_requests_start_without_waiting_for_a_timer() {
        // 5,000 requests that answer at once. On the paused clock, waiting for
        // a timer per request (rounded up to a millisecond) would take 5 s.
        let outcome = drive(
            "test",
            workload(5_000, 8),
            |i| async move { Ok::<_, ()>(i) },
        )
        .await;
        assert_eq!(outcome.records.len(), 5_000);
        assert_eq!(outcome.elapsed, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn paced_requests_start_a_pace_apart() {
        let outcome = drive_paced(
            "test",
            workload(5, 5),
            Some(Duration::from_millis(100)),
            |_| async { Ok::<_, ()>(Instant::now()) },
        )
        .await;
        let mut starts: Vec<Instant> = outcome
            .records
            .iter()
            .map(|record| *record.result.as_ref().unwrap())
            .collect();
        starts.sort();
        let gaps: Vec<u128> = starts
            .windows(2)
            .map(|pair| (pair[1] - pair[0]).as_millis())
            .collect();
        assert_eq!(gaps, vec![100, 100, 100, 100]);
    }

    #[test]
    fn shortfalls_name_their_reason() {
        assert_eq!(shortfall(10, 10, 10, &Ended::AllIssued), None);
        assert_eq!(
            shortfall(10, 10, 7, &Ended::HardLimit(Duration::from_secs(30))).unwrap(),
            "stopped after 7 of 10 requests: 3 requests were still running at the workload's hard limit of 30 s and were cut off"
        );
        assert_eq!(
            shortfall(400, 23, 20, &Ended::Stopped("interrupted".into())).unwrap(),
            "stopped after 20 of 400 requests: the workload was stopped: interrupted"
        );
    }

    #[test]
    fn a_workload_on_a_guarded_runtime_stops_when_asked() {
        let guarded =
            crate::guard::GuardedRuntime::new(2, crate::guard::Limits::default()).unwrap();
        let monitor = Arc::clone(guarded.monitor());
        let outcome = guarded
            .block_on(async move {
                // One at a time: the first ten finish before the eleventh asks to stop.
                drive("test", workload(100, 1), move |index| {
                    let monitor = Arc::clone(&monitor);
                    async move {
                        if index >= 10 {
                            monitor.request_stop("enough");
                            std::future::pending::<()>().await;
                        }
                        Ok::<_, ()>(index)
                    }
                })
                .await
            })
            .unwrap();
        assert_eq!(outcome.ended, Ended::Stopped("enough".to_owned()));
        assert_eq!(outcome.records.len(), 10);
        assert!(
            outcome.issued < 100 && outcome.unfinished >= 1,
            "{outcome:?}"
        );
        assert!(outcome
            .shortfall()
            .unwrap()
            .starts_with("stopped after 10 of 100 requests: the workload was stopped: enough"));
    }
}
