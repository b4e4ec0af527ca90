//! How long a runtime's worker threads were held by the tasks they ran.
//!
//! A worker is busy from the moment it wakes to take work until it parks
//! again (Tokio's park hooks). Of that time, what it spent on a CPU or
//! asleep in a blocking call (`std::thread::sleep`, a blocking lock, a
//! thread joined) was taken from every task queued behind it; what it spent
//! waiting for a busy CPU is the machine's, and left out, so a loaded
//! machine adds nothing. Every task counts, not only watched requests: work
//! a request hands to a task of its own on the same runtime is seen too.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::ThreadClocks;

/// How long a runtime's workers were held by what they ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// On a CPU.
    pub on_cpu: Duration,
    /// Asleep in a blocking call: neither on a CPU nor waiting for one.
    /// Zero where the kernel does not say how long a thread waited for a
    /// CPU (no schedstat): then sleeping cannot be told from waiting.
    pub asleep: Duration,
}

impl Held {
    /// On a CPU or asleep.
    pub fn total(&self) -> Duration {
        self.on_cpu + self.asleep
    }

    /// What was held between `earlier` (read from the same monitor) and `self`.
    pub fn since(&self, earlier: &Held) -> Held {
        Held {
            on_cpu: self.on_cpu.saturating_sub(earlier.on_cpu),
            asleep: self.asleep.saturating_sub(earlier.asleep),
        }
    }

    fn add(&mut self, other: Held) {
        self.on_cpu += other.on_cpu;
        self.asleep += other.asleep;
    }
}

/// What a busy period of `wall` held its thread, given the CPU time the
/// thread had and its wait for a CPU meanwhile (`None`: unknown).
fn held_in(wall: Duration, on_cpu: Duration, waiting: Option<Duration>) -> Held {
    Held {
        on_cpu,
        asleep: waiting.map_or(Duration::ZERO, |waiting| {
            wall.saturating_sub(on_cpu).saturating_sub(waiting)
        }),
    }
}

/// A waiting time no clock reports: the kernel does not say.
const UNKNOWN: u64 = u64::MAX;

/// One thread's busy periods: written by the thread itself (its park
/// hooks), read by anyone (a seqlock: the writer makes `sequence` odd while
/// it updates the rest).
pub(super) struct BusyClock {
    /// The thread's id, to read its clocks from another thread.
    tid: libc::pid_t,
    /// Whether the thread is known to be a worker: it parked, or polled a
    /// watched task (Tokio's blocking pool does neither). A worker that
    /// handed its place to another thread (`block_in_place`) stays one.
    worker: AtomicBool,
    sequence: AtomicU64,
    /// When the current busy period began (nanoseconds since the monitor
    /// started, plus one); 0 while parked.
    busy_since: AtomicU64,
    /// The thread's CPU time and wait for a CPU when it began, in nanoseconds.
    cpu_at_start: AtomicU64,
    wait_at_start: AtomicU64,
    /// Held in busy periods that ended, in nanoseconds.
    on_cpu: AtomicU64,
    asleep: AtomicU64,
}

fn nanos(duration: Duration) -> u64 {
    duration.as_nanos() as u64
}

impl BusyClock {
    /// The clock of the calling thread, which is busy from its start
    /// until it first parks.
    pub(super) fn for_this_thread(now: u64) -> BusyClock {
        let clocks = ThreadClocks::now();
        BusyClock {
            // SAFETY: gettid has no preconditions.
            tid: unsafe { libc::gettid() },
            worker: AtomicBool::new(false),
            sequence: AtomicU64::new(0),
            busy_since: AtomicU64::new(now + 1),
            cpu_at_start: AtomicU64::new(nanos(clocks.on_cpu)),
            wait_at_start: AtomicU64::new(clocks.waiting_for_cpu.map_or(UNKNOWN, nanos)),
            on_cpu: AtomicU64::new(0),
            asleep: AtomicU64::new(0),
        }
    }

    /// The thread was seen doing a worker's work.
    pub(super) fn mark_worker(&self) {
        if !self.worker.load(Ordering::Relaxed) {
            self.worker.store(true, Ordering::Relaxed);
        }
    }

    fn write(&self, update: impl FnOnce()) {
        self.sequence.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::Release);
        update();
        self.sequence.fetch_add(1, Ordering::Release);
    }

    /// The thread woke to take work, `now` nanoseconds after the monitor started.
    pub(super) fn woke(&self, now: u64) {
        let clocks = ThreadClocks::now();
        self.write(|| {
            self.busy_since.store(now + 1, Ordering::Relaxed);
            self.cpu_at_start
                .store(nanos(clocks.on_cpu), Ordering::Relaxed);
            self.wait_at_start.store(
                clocks.waiting_for_cpu.map_or(UNKNOWN, nanos),
                Ordering::Relaxed,
            );
        });
    }

    /// The thread is about to park, `now` nanoseconds after the monitor
    /// started; the busy period that ends is added if `counting`.
    pub(super) fn parking(&self, now: u64, counting: bool) {
        self.mark_worker();
        let Some(start) = self.start() else {
            return;
        };
        let period = if counting {
            start.held_until(now, &ThreadClocks::now())
        } else {
            Held::default()
        };
        self.write(|| {
            self.on_cpu
                .fetch_add(nanos(period.on_cpu), Ordering::Relaxed);
            self.asleep
                .fetch_add(nanos(period.asleep), Ordering::Relaxed);
            self.busy_since.store(0, Ordering::Relaxed);
        });
    }

    /// Where the busy period under way began, if one is.
    fn start(&self) -> Option<Start> {
        let since = self.busy_since.load(Ordering::Relaxed);
        (since != 0).then(|| Start {
            at: since - 1,
            cpu: self.cpu_at_start.load(Ordering::Relaxed),
            wait: self.wait_at_start.load(Ordering::Relaxed),
        })
    }

    /// What this thread has been held so far, if it is a worker, `now`
    /// nanoseconds after the monitor started: the busy periods that ended,
    /// and the one under way (its clocks read from `/proc`).
    pub(super) fn held(&self, now: u64) -> Option<Held> {
        if !self.worker.load(Ordering::Relaxed) {
            return None;
        }
        // A consistent read: retried while the thread is updating.
        let (mut held, under_way) = loop {
            let before = self.sequence.load(Ordering::Acquire);
            let ended = Held {
                on_cpu: Duration::from_nanos(self.on_cpu.load(Ordering::Relaxed)),
                asleep: Duration::from_nanos(self.asleep.load(Ordering::Relaxed)),
            };
            let start = self.start();
            fence(Ordering::Acquire);
            if before.is_multiple_of(2) && self.sequence.load(Ordering::Relaxed) == before {
                break (ended, start);
            }
            std::thread::yield_now();
        };
        if let (Some(start), Some(clocks)) = (under_way, thread_clocks(self.tid)) {
            held.add(start.held_until(now, &clocks));
        }
        Some(held)
    }
}

/// Where a busy period began: when (nanoseconds since the monitor
/// started), and the thread's CPU time and wait for a CPU then.
#[derive(Clone, Copy)]
struct Start {
    at: u64,
    cpu: u64,
    wait: u64,
}

impl Start {
    /// What the period held its thread up to `now`, when its clocks read `clocks`.
    fn held_until(&self, now: u64, clocks: &ThreadClocks) -> Held {
        let waiting = clocks
            .waiting_for_cpu
            .filter(|_| self.wait != UNKNOWN)
            .map(|waiting| waiting.saturating_sub(Duration::from_nanos(self.wait)));
        held_in(
            Duration::from_nanos(now.saturating_sub(self.at)),
            clocks.on_cpu.saturating_sub(Duration::from_nanos(self.cpu)),
            waiting,
        )
    }
}

/// Thread `tid` of this process's clocks, from its schedstat.
fn thread_clocks(tid: libc::pid_t) -> Option<ThreadClocks> {
    let file = std::fs::File::open(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    super::read_schedstat(&file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn a_busy_period_holds_its_thread_on_a_cpu_and_asleep_but_not_waiting() {
        // 100 ms busy: 30 on a CPU, 50 waiting for one, 20 asleep.
        assert_eq!(
            held_in(ms(100), ms(30), Some(ms(50))),
            Held {
                on_cpu: ms(30),
                asleep: ms(20)
            }
        );
        // Without schedstat, sleeping cannot be told from waiting: none counted.
        assert_eq!(held_in(ms(100), ms(30), None).asleep, Duration::ZERO);
        // Clocks of slightly different grain never make it negative.
        assert_eq!(held_in(ms(10), ms(8), Some(ms(3))).asleep, Duration::ZERO);
    }

    #[test]
    fn held_since_subtracts_and_totals() {
        let later = Held {
            on_cpu: ms(50),
            asleep: ms(10),
        };
        let earlier = Held {
            on_cpu: ms(20),
            asleep: ms(4),
        };
        assert_eq!(later.since(&earlier).total(), ms(36));
        assert_eq!(earlier.since(&later), Held::default());
    }
}
