//! Driving many requests at a fixed concurrency, with a time limit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

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
}

/// One finished request.
#[derive(Debug)]
pub struct RequestRecord<T, E> {
    /// Which request (0-based, in issue order).
    pub index: usize,
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
    /// Requests cancelled at the hard limit.
    pub unfinished: usize,
    /// Whether the hard limit was reached.
    pub cut_off: bool,
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
}

/// Runs `request(i)` for `i` in `0..workload.requests`, `workload.concurrency` at a time.
///
/// Each request is its own task, so a request that blocks its thread or never
/// completes cannot stop the clock: at `workload.hard_limit` everything still
/// in flight is aborted and counted in [`WorkloadOutcome::unfinished`].
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
    let _step = progress::step(format!(
        "{label}: {} requests, {} at a time",
        workload.requests, workload.concurrency
    ));
    let request = Arc::new(request);
    let started = Instant::now();
    let stop_issuing = started + workload.max_duration;
    let hard_limit = started + workload.hard_limit;
    let mut in_flight = JoinSet::new();
    let mut next = 0;
    let mut records = Vec::with_capacity(workload.requests);

    let spawn = |in_flight: &mut JoinSet<RequestRecord<T, E>>, index: usize| {
        let request = Arc::clone(&request);
        in_flight.spawn(async move {
            let begun = Instant::now();
            let result = request(index).await;
            RequestRecord {
                index,
                latency: begun.elapsed(),
                result,
            }
        });
    };

    while next < workload.requests.min(workload.concurrency.max(1)) {
        spawn(&mut in_flight, next);
        next += 1;
    }
    let mut cut_off = false;
    loop {
        tokio::select! {
            joined = in_flight.join_next() => {
                let Some(joined) = joined else { break };
                match joined {
                    Ok(record) => records.push(record),
                    Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    Err(_) => {}
                }
                if next < workload.requests && Instant::now() < stop_issuing {
                    spawn(&mut in_flight, next);
                    next += 1;
                }
            }
            _ = tokio::time::sleep_until(hard_limit) => {
                cut_off = true;
                break;
            }
        }
    }
    let unfinished = in_flight.len();
    in_flight.abort_all();
    WorkloadOutcome {
        records,
        unfinished,
        cut_off,
        elapsed: started.elapsed(),
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
}
