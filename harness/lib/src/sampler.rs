//! Sampling a figure at a fixed interval while a workload runs (pool sizes,
//! heap bytes, connected clients), to show how it moved rather than where it
//! ended.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// One sampled value and when it was taken, since sampling began.
#[derive(Clone, Debug)]
pub struct Sample<T> {
    /// Time since the sampler started.
    pub at: Duration,
    /// The value.
    pub value: T,
}

/// A running sampler; [`Sampler::stop`] ends it and returns what it saw.
pub struct Sampler<T> {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Vec<Sample<T>>>,
}

/// Calls `probe` now and then every `interval` until stopped.
///
/// A probe that takes longer than the interval delays the next sample rather
/// than piling up calls.
pub fn sample_every<T, F, Fut>(interval: Duration, mut probe: F) -> Sampler<T>
where
    T: Send + 'static,
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send,
{
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut samples = Vec::new();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = ticks.tick() => {
                    let value = probe().await;
                    samples.push(Sample { at: started.elapsed(), value });
                }
            }
        }
        samples
    });
    Sampler {
        stop: Some(stop),
        task,
    }
}

impl<T> Sampler<T> {
    /// Stops sampling and returns every sample, oldest first.
    pub async fn stop(mut self) -> Vec<Sample<T>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap_or_default()
    }
}

impl<T> Drop for Sampler<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn samples_at_the_interval_until_stopped() {
        let counter = Arc::new(AtomicUsize::new(0));
        let probe_counter = Arc::clone(&counter);
        let sampler = sample_every(Duration::from_millis(100), move || {
            let counter = Arc::clone(&probe_counter);
            async move { counter.fetch_add(1, Ordering::SeqCst) }
        });
        tokio::time::sleep(Duration::from_millis(450)).await;
        let samples = sampler.stop().await;
        let values: Vec<usize> = samples.iter().map(|sample| sample.value).collect();
        assert_eq!(values, vec![0, 1, 2, 3, 4]);
        assert_eq!(samples[4].at, Duration::from_millis(400));
    }
}
