//! The pools a run built for its variant, read back when the run ends.
//!
//! The harness sizes every pool a variant gets; the variant only receives
//! it. Some pools can still be changed from inside (deadpool's `resize`), so
//! at the end of a run the harness reads their settings back from the pools
//! themselves — not from anything the variant reports — and a pool that no
//! longer has the harness's size or timeout makes the run unhealthy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::workload::RequestClock;
use crate::{PoolSettings, Service};

/// A pool the harness built, with the settings it was built with.
enum BuiltPool {
    Postgres(sqlx::PgPool, PoolSettings),
    Redis(deadpool_redis::Pool, PoolSettings),
}

/// Settings read back from a pool at the end of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadBack {
    /// Which store the pool connects to: `PostgreSQL` or `Redis`.
    pub store: &'static str,
    /// The size the harness gave it.
    pub built_size: u32,
    /// The size it has now.
    pub size: u32,
    /// The acquire (wait) timeout the harness gave it.
    pub built_timeout: Duration,
    /// The acquire (wait) timeout it has now (`None`: none at all).
    pub timeout: Option<Duration>,
}

impl ReadBack {
    /// The problem line for a pool whose settings changed, if they did.
    pub fn problem(&self) -> Option<String> {
        let store = self.store;
        if self.size > self.built_size {
            return Some(format!(
                "the {store} pool was resized from {} to {} connections during the run: a bigger \
                 pool only moves the cliff to a higher load, and the {store} server has a \
                 connection limit shared by every replica",
                self.built_size, self.size
            ));
        }
        if self.size < self.built_size {
            return Some(format!(
                "the {store} pool was resized from {} to {} connections during the run: the \
                 pool's size is the service's configuration, sized for all its endpoints, not \
                 one handler's to change",
                self.built_size, self.size
            ));
        }
        if self.timeout != Some(self.built_timeout) {
            let now = self.timeout.map_or_else(
                || "none".to_owned(),
                |timeout| format!("{} ms", timeout.as_millis()),
            );
            return Some(format!(
                "the {store} pool's wait timeout was changed from {} ms to {now}: waiting longer \
                 for a connection hides a shortage instead of removing it",
                self.built_timeout.as_millis()
            ));
        }
        None
    }
}

/// Every pool built for one run.
#[derive(Default)]
pub struct PoolRegistry {
    pools: Mutex<Vec<BuiltPool>>,
    checkouts: Arc<CheckoutLog>,
}

/// A connection handed to a request of the run's workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkout {
    /// The request's index.
    pub request: usize,
    /// When, since the workload began.
    pub at: Duration,
    /// From which store's pool.
    pub store: Service,
}

/// The connections a run's pools handed to its workload's requests, as the
/// pools saw it (their checkout hooks run in the requesting task): a
/// request's timeline shows how long it waited for its first.
#[derive(Debug, Default)]
pub struct CheckoutLog(Mutex<Vec<Checkout>>);

impl CheckoutLog {
    /// Records a checkout from `store`'s pool, if the current task serves a request.
    pub fn record(&self, store: Service) {
        if let Some(clock) = RequestClock::current() {
            let checkout = Checkout {
                request: clock.index,
                at: clock.now(),
                store,
            };
            self.0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(checkout);
        }
    }

    /// Every checkout so far, in the order they happened.
    pub fn all(&self) -> Vec<Checkout> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl PoolRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<BuiltPool>> {
        self.pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Where the run's pools record their checkouts.
    pub fn checkouts(&self) -> &Arc<CheckoutLog> {
        &self.checkouts
    }

    /// Remembers a PostgreSQL pool built with `settings`.
    pub fn register_postgres(&self, pool: &sqlx::PgPool, settings: PoolSettings) {
        self.lock()
            .push(BuiltPool::Postgres(pool.clone(), settings));
    }

    /// Remembers a Redis pool built with `settings`.
    pub fn register_redis(&self, pool: &deadpool_redis::Pool, settings: PoolSettings) {
        self.lock().push(BuiltPool::Redis(pool.clone(), settings));
    }

    /// Every pool's settings, read back now.
    pub fn read_back(&self) -> Vec<ReadBack> {
        self.lock()
            .iter()
            .map(|built| match built {
                BuiltPool::Postgres(pool, settings) => ReadBack {
                    store: "PostgreSQL",
                    built_size: settings.max_connections,
                    size: pool.options().get_max_connections(),
                    built_timeout: settings.acquire_timeout,
                    timeout: Some(pool.options().get_acquire_timeout()),
                },
                BuiltPool::Redis(pool, settings) => ReadBack {
                    store: "Redis",
                    built_size: settings.max_connections,
                    size: pool.status().max_size as u32,
                    built_timeout: settings.acquire_timeout,
                    timeout: pool.timeouts().wait,
                },
            })
            .collect()
    }

    /// The problem lines of every changed pool.
    pub fn problems(&self) -> Vec<String> {
        self.read_back()
            .iter()
            .filter_map(ReadBack::problem)
            .collect()
    }

    /// Forgets every pool (so that their connections can close).
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(size: u32, timeout: Option<u64>) -> ReadBack {
        ReadBack {
            store: "Redis",
            built_size: 5,
            size,
            built_timeout: Duration::from_secs(1),
            timeout: timeout.map(Duration::from_millis),
        }
    }

    #[test]
    fn an_unchanged_pool_is_no_problem() {
        assert_eq!(read_back(5, Some(1000)).problem(), None);
    }

    #[test]
    fn a_resized_pool_is_named_with_both_sizes() {
        let problem = read_back(50, Some(1000)).problem().unwrap();
        assert!(
            problem.starts_with("the Redis pool was resized from 5 to 50 connections"),
            "{problem}"
        );
        assert!(problem.contains("only moves the cliff"), "{problem}");
    }

    #[test]
    fn a_shrunk_pool_is_named_too() {
        let problem = read_back(1, Some(1000)).problem().unwrap();
        assert!(
            problem.starts_with("the Redis pool was resized from 5 to 1 connections"),
            "{problem}"
        );
        assert!(problem.contains("not one handler's to change"), "{problem}");
    }

    #[test]
    fn a_longer_or_missing_timeout_is_a_problem() {
        let problem = read_back(5, Some(30_000)).problem().unwrap();
        assert!(
            problem.contains("changed from 1000 ms to 30000 ms"),
            "{problem}"
        );
        let problem = read_back(5, None).problem().unwrap();
        assert!(
            problem.contains("changed from 1000 ms to none"),
            "{problem}"
        );
    }
}
