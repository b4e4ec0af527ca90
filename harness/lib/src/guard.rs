//! Watching a run from outside the runtime it runs on.
//!
//! A variant may block its thread (`std::thread::sleep`, blocking I/O, a
//! `std::sync::Mutex` held across an `.await`), compute for long inside one
//! poll, spin, or deadlock. On the runtime that runs it, that stops every
//! other task — the timers meant to end the run included. So every run gets a
//! runtime of its own ([`GuardedRuntime`]) and a watchdog thread outside it:
//!
//! - every poll of a [`watched`] future is timed on its worker thread: wall
//!   time, time on a CPU and time waiting for one (the thread's own
//!   `/proc/thread-self/schedstat`). A poll that slept (wall time neither on
//!   a CPU nor waiting for one), or computed for long, *blocked its thread*;
//!   time spent waiting for a busy CPU does not count, so a loaded laptop is
//!   not mistaken for a blocking handler;
//! - the watchdog sees a poll that has not returned after [`Limits::stuck`],
//!   and a runtime that ran no task at all for [`Limits::stalled`];
//! - when the blocking is clear ([`Blocking::is_clear`]) the watch *trips*:
//!   workloads on the runtime stop issuing requests ([`Monitor::stopped`]),
//!   and the run's supervisor gives the run a short grace to finish before it
//!   abandons the runtime (its threads may never come back).
//!
//! What was seen is a [`Blocking`], and [`Blocking::problems`] turns it into
//! the problem lines every verdict gets.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

mod held;
pub use held::Held;

/// When a poll counts as blocking, and when the watch gives up on a runtime.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A poll that slept off the CPU (a voluntary context switch) at least
    /// this long blocked its thread.
    pub blocked_poll: Duration,
    /// A poll that computed on the CPU at least this long hogged its thread.
    pub hogging_poll: Duration,
    /// A poll still running after this long is stuck (deadlock, endless loop).
    pub stuck: Duration,
    /// A runtime that ran no task for this long has every worker blocked.
    pub stalled: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            blocked_poll: Duration::from_millis(20),
            hogging_poll: Duration::from_millis(50),
            stuck: Duration::from_secs(1),
            stalled: Duration::from_secs(2),
        }
    }
}

/// Computing polls it takes — and at least [`CLEAR_SHARE`] of all request
/// polls — for the hogging to be clear. A poll's time on a CPU is mostly its
/// own, but not always: on a virtual machine whose host is busy, a stolen
/// moment may be charged to the thread that was running (one poll of 213 ms
/// was seen in a busy make test), so one is not proof.
const CLEAR_HOGGING_COUNT: u64 = 3;
/// Sleeping polls it takes — and at least [`CLEAR_SHARE`] of all request
/// polls — for the blocking to be clear. A handler that blocks does so on
/// every request; a busy machine puts a thread to sleep now and then too,
/// waiting for a lock (the allocator's, a channel's) whose holder waits for
/// a CPU — a few polls, some for a few hundred milliseconds, so neither a
/// handful nor one long sleep is proof (one that never ends is [`Limits::stuck`]).
const CLEAR_BLOCKED_COUNT: u64 = 10;
const CLEAR_SHARE: f64 = 0.01;

/// What the watch saw of threads being blocked during a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Blocking {
    /// Polls that slept off the CPU for at least [`Limits::blocked_poll`].
    pub blocked_polls: u64,
    /// The longest of them, in milliseconds.
    pub longest_blocked_ms: f64,
    /// Polls that computed for at least [`Limits::hogging_poll`].
    pub hogging_polls: u64,
    /// The longest of them, in milliseconds.
    pub longest_hogging_ms: f64,
    /// A poll that never returned, or a runtime that stopped running tasks, described.
    pub stuck: Option<String>,
    /// Every request poll the watch timed.
    #[serde(default)]
    pub request_polls: u64,
}

impl Blocking {
    /// Whether the blocking is beyond doubt: a stuck poll, a stalled runtime,
    /// or a pattern of computing or sleeping polls.
    pub fn is_clear(&self) -> bool {
        let pattern = |polls: u64, count: u64| {
            polls >= count && polls as f64 >= CLEAR_SHARE * self.request_polls as f64
        };
        self.stuck.is_some()
            || pattern(self.hogging_polls, CLEAR_HOGGING_COUNT)
            || pattern(self.blocked_polls, CLEAR_BLOCKED_COUNT)
    }

    /// Adds what another watch saw (a replica's, say).
    pub fn merge(&mut self, other: &Blocking) {
        self.blocked_polls += other.blocked_polls;
        self.longest_blocked_ms = self.longest_blocked_ms.max(other.longest_blocked_ms);
        self.hogging_polls += other.hogging_polls;
        self.longest_hogging_ms = self.longest_hogging_ms.max(other.longest_hogging_ms);
        self.request_polls += other.request_polls;
        if self.stuck.is_none() {
            self.stuck.clone_from(&other.stuck);
        }
    }

    /// The problem lines for a verdict: empty unless the blocking is clear.
    pub fn problems(&self) -> Vec<String> {
        if !self.is_clear() {
            return Vec::new();
        }
        let why = "while a thread is blocked, no other request on it makes progress, and the \
                   timers meant to end the run do not fire";
        let mut problems = Vec::new();
        if let Some(stuck) = &self.stuck {
            problems.push(format!("{stuck}: {why}"));
        }
        if self.blocked_polls > 0 {
            problems.push(format!(
                "a request blocked its worker thread {} times, up to {:.0} ms at once, sleeping \
                 inside a poll (std::thread::sleep, blocking I/O or a blocking lock in async code)",
                self.blocked_polls, self.longest_blocked_ms
            ));
        }
        if self.hogging_polls > 0 {
            problems.push(format!(
                "a request kept its worker thread busy computing {} times, up to {:.0} ms at once, \
                 without an .await in between",
                self.hogging_polls, self.longest_hogging_ms
            ));
        }
        if self.stuck.is_none() {
            if let Some(first) = problems.first_mut() {
                first.push_str(&format!(": {why}"));
            }
        }
        problems
    }
}

/// One worker thread's state: when its current watched poll began, and
/// how long it was held by what it ran.
struct Slot {
    /// Nanoseconds since the monitor started, plus one; 0 while not in a watched poll.
    entered: AtomicU64,
    /// Its busy periods, when the monitor counts them.
    busy: held::BusyClock,
}

impl Slot {
    fn for_this_thread(monitor: &Monitor) -> Slot {
        Slot {
            entered: AtomicU64::new(0),
            busy: held::BusyClock::for_this_thread(monitor.since_start()),
        }
    }
}

/// The watch over one runtime: what its polls did, and whether to stop.
pub struct Monitor {
    limits: Limits,
    started: Instant,
    slots: Mutex<Vec<Arc<Slot>>>,
    seen: Mutex<Blocking>,
    last_beat: AtomicU64,
    request_polls: AtomicU64,
    stop: watch::Sender<Option<String>>,
    /// Whether the workers' busy periods are counted ([`Monitor::workers_held`]).
    count_held: AtomicBool,
}

thread_local! {
    /// The monitor of the runtime this thread works for, and this thread's slot.
    static CURRENT: RefCell<Option<(Arc<Monitor>, Arc<Slot>)>> = const { RefCell::new(None) };
    /// How deep in watched polls of any kind this thread is (the outermost marks the slot).
    static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// How deep in watched request polls this thread is (only the outermost is timed).
    static REQUEST_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl Monitor {
    fn new(limits: Limits) -> Arc<Monitor> {
        Arc::new(Monitor {
            limits,
            started: Instant::now(),
            slots: Mutex::new(Vec::new()),
            seen: Mutex::new(Blocking::default()),
            last_beat: AtomicU64::new(0),
            request_polls: AtomicU64::new(0),
            stop: watch::Sender::new(None),
            count_held: AtomicBool::new(false),
        })
    }

    /// From now on, counts how long the runtime's worker threads are held
    /// by the tasks they run ([`Monitor::workers_held`]; a worker that has
    /// not parked since it started counts from its start). Off by default:
    /// it reads the thread's clocks each time a worker wakes or parks.
    pub fn count_held_workers(&self) {
        self.count_held.store(true, Ordering::Relaxed);
    }

    /// How long the runtime's worker threads have been held by the tasks
    /// they ran since [`Monitor::count_held_workers`] (see [`Held`]): on a
    /// CPU or asleep, from waking to parking, every task included.
    pub fn workers_held(&self) -> Held {
        if !self.count_held.load(Ordering::Relaxed) {
            return Held::default();
        }
        let now = self.since_start();
        let slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let mut held = Held::default();
        for slot in slots.iter().filter_map(|slot| slot.busy.held(now)) {
            held.on_cpu += slot.on_cpu;
            held.asleep += slot.asleep;
        }
        held
    }

    /// The calling thread, a worker of this runtime, woke to take work.
    fn worker_woke(&self, slot: &Slot) {
        if self.count_held.load(Ordering::Relaxed) {
            slot.busy.woke(self.since_start());
        }
    }

    /// The calling thread, a worker of this runtime, is about to park.
    fn worker_parking(&self, slot: &Slot) {
        let counting = self.count_held.load(Ordering::Relaxed);
        slot.busy.parking(self.since_start(), counting);
    }

    /// The monitor of the guarded runtime this thread belongs to, if any.
    pub fn current() -> Option<Arc<Monitor>> {
        CURRENT.with(|current| {
            current
                .borrow()
                .as_ref()
                .map(|(monitor, _)| Arc::clone(monitor))
        })
    }

    fn since_start(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// What was seen so far.
    pub fn blocking(&self) -> Blocking {
        Blocking {
            request_polls: self.request_polls.load(Ordering::Relaxed),
            ..self.lock_seen().clone()
        }
    }

    fn lock_seen(&self) -> std::sync::MutexGuard<'_, Blocking> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks every workload on this runtime to stop issuing requests, saying why.
    /// The first reason given is kept.
    pub fn request_stop(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.stop.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
    }

    /// Why the workloads were asked to stop, if they were.
    pub fn stop_reason(&self) -> Option<String> {
        self.stop.borrow().clone()
    }

    /// Resolves once a stop is requested, with its reason.
    pub fn stopped(&self) -> impl Future<Output = String> + Send + 'static {
        let mut receiver = self.stop.subscribe();
        async move {
            let reason = receiver
                .wait_for(Option::is_some)
                .await
                .map(|reason| reason.clone().unwrap_or_default());
            match reason {
                Ok(reason) => reason,
                // The monitor is gone: nothing will ever ask to stop.
                Err(_) => std::future::pending().await,
            }
        }
    }

    /// Adds what another watch saw (a replica process's), tripping this one
    /// if the blocking is now clear.
    pub fn merge(&self, other: &Blocking) {
        self.request_polls
            .fetch_add(other.request_polls, Ordering::Relaxed);
        let clear = {
            let mut seen = self.lock_seen();
            seen.merge(other);
            seen.request_polls = self.request_polls.load(Ordering::Relaxed);
            seen.is_clear()
        };
        if clear {
            self.request_stop("a request blocked its worker thread");
        }
    }

    /// Adds what one poll did, and trips the watch if the blocking is now clear.
    fn record(&self, poll: &PollTimes) {
        let sleeping = poll.sleeping();
        let blocked = sleeping >= self.limits.blocked_poll;
        let hogging = poll.on_cpu >= self.limits.hogging_poll;
        if !blocked && !hogging {
            return;
        }
        let clear = {
            let mut seen = self.lock_seen();
            seen.request_polls = self.request_polls.load(Ordering::Relaxed);
            if blocked {
                seen.blocked_polls += 1;
                seen.longest_blocked_ms = seen.longest_blocked_ms.max(millis(sleeping));
            } else {
                seen.hogging_polls += 1;
                seen.longest_hogging_ms = seen.longest_hogging_ms.max(millis(poll.on_cpu));
            }
            seen.is_clear()
        };
        if clear {
            self.request_stop("a request blocked its worker thread");
        }
    }

    fn record_stuck(&self, description: String) {
        let mut seen = self.lock_seen();
        if seen.stuck.is_none() {
            tracing::warn!("{description}");
            seen.stuck = Some(description);
        }
        drop(seen);
        self.request_stop("the runtime's threads were blocked");
    }

    /// One look by the watchdog: stuck polls, and whether the runtime still runs tasks.
    fn inspect(&self) {
        let now = self.since_start();
        let stuck_for = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter_map(|slot| match slot.entered.load(Ordering::Acquire) {
                0 => None,
                entered => Some(now.saturating_sub(entered - 1)),
            })
            .max()
            .map(Duration::from_nanos);
        if let Some(stuck_for) = stuck_for.filter(|stuck| *stuck >= self.limits.stuck) {
            self.record_stuck(format!(
                "a request has not returned from one poll for {:.1} s (deadlock, endless loop or a blocking wait)",
                stuck_for.as_secs_f64()
            ));
        }
        let silent =
            Duration::from_nanos(now.saturating_sub(self.last_beat.load(Ordering::Acquire)));
        if silent >= self.limits.stalled {
            self.record_stuck(format!(
                "the runtime ran no task for {:.1} s: every worker thread was blocked",
                silent.as_secs_f64()
            ));
        }
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Where one poll's wall time went.
#[derive(Clone, Copy, Debug, Default)]
struct PollTimes {
    /// From the poll's start to its end.
    wall: Duration,
    /// Running on a CPU.
    on_cpu: Duration,
    /// Ready to run, waiting for a busy CPU; `None` where the kernel does
    /// not say (no schedstat): then only a poll that gave up its CPU itself
    /// (`voluntary_switches`) can have slept.
    waiting_for_cpu: Option<Duration>,
    /// Times the thread gave up its CPU itself (getrusage), where schedstat is missing.
    voluntary_switches: i64,
}

impl PollTimes {
    /// Wall time spent neither on a CPU nor waiting for one: asleep in a
    /// blocking call, the thread unavailable to every other task.
    fn sleeping(&self) -> Duration {
        let off_cpu = self.wall.saturating_sub(self.on_cpu);
        match self.waiting_for_cpu {
            Some(waiting) => off_cpu.saturating_sub(waiting),
            None if self.voluntary_switches > 0 => off_cpu,
            None => Duration::ZERO,
        }
    }
}

/// The calling thread's clocks so far: on a CPU, waiting for one (if the
/// kernel says), voluntary switches (if it does not).
#[derive(Clone, Copy)]
struct ThreadClocks {
    on_cpu: Duration,
    waiting_for_cpu: Option<Duration>,
    voluntary_switches: i64,
}

thread_local! {
    /// This thread's `/proc/thread-self/schedstat`, opened once (`None` if the kernel has none).
    static SCHEDSTAT: Option<std::fs::File> = std::fs::File::open("/proc/thread-self/schedstat").ok();
}

impl ThreadClocks {
    fn now() -> ThreadClocks {
        SCHEDSTAT
            .with(|file| file.as_ref().and_then(read_schedstat))
            .unwrap_or_else(ThreadClocks::from_getrusage)
    }

    /// `getrusage(RUSAGE_THREAD)`: CPU time and voluntary context switches.
    fn from_getrusage() -> ThreadClocks {
        // SAFETY: getrusage only writes the struct it is given.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
            usage
        };
        let micros = |time: libc::timeval| time.tv_sec as u64 * 1_000_000 + time.tv_usec as u64;
        ThreadClocks {
            on_cpu: Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime)),
            waiting_for_cpu: None,
            voluntary_switches: usage.ru_nvcsw,
        }
    }

    /// The poll between `self` and `later`, which took `wall`.
    fn poll_until(&self, later: &ThreadClocks, wall: Duration) -> PollTimes {
        PollTimes {
            wall,
            on_cpu: later.on_cpu.saturating_sub(self.on_cpu),
            waiting_for_cpu: later
                .waiting_for_cpu
                .zip(self.waiting_for_cpu)
                .map(|(later, earlier)| later.saturating_sub(earlier)),
            voluntary_switches: later.voluntary_switches - self.voluntary_switches,
        }
    }
}

/// `schedstat`'s first two fields: nanoseconds on a CPU, nanoseconds waiting for one.
fn read_schedstat(file: &std::fs::File) -> Option<ThreadClocks> {
    use std::os::unix::fs::FileExt;
    let mut buffer = [0u8; 96];
    let length = file.read_at(&mut buffer, 0).ok()?;
    let text = std::str::from_utf8(&buffer[..length]).ok()?;
    let mut fields = text
        .split_whitespace()
        .map(|field| field.parse::<u64>().ok());
    Some(ThreadClocks {
        on_cpu: Duration::from_nanos(fields.next()??),
        waiting_for_cpu: Some(Duration::from_nanos(fields.next()??)),
        voluntary_switches: 0,
    })
}

/// A future whose polls are watched when it runs on a guarded runtime.
pub struct Watched<F> {
    inner: Pin<Box<F>>,
    /// A request's polls are also timed and classified; other work (a
    /// run's own set-up and analysis, which may compute for a while) is
    /// only watched for polls that never return.
    request: bool,
}

/// Wraps a request's `future` so that the watch of the runtime polling it
/// times every poll and sees one that never returns.
///
/// On a thread that belongs to no guarded runtime, it is polled as it is.
pub fn watched<F: Future>(future: F) -> Watched<F> {
    Watched {
        inner: Box::pin(future),
        request: true,
    }
}

/// Wraps other work (not a request) so that the watch sees a poll of it
/// that never returns; its polls are not classified.
pub fn watched_for_hangs<F: Future>(future: F) -> Watched<F> {
    Watched {
        inner: Box::pin(future),
        request: false,
    }
}

/// Increments a thread-local depth for as long as it lives; says whether it was the outermost.
struct Deeper(&'static std::thread::LocalKey<std::cell::Cell<u32>>, bool);

impl Deeper {
    fn enter(depth: &'static std::thread::LocalKey<std::cell::Cell<u32>>) -> Deeper {
        let outermost = depth.with(|depth| {
            let before = depth.get();
            depth.set(before + 1);
            before == 0
        });
        Deeper(depth, outermost)
    }
}

impl Drop for Deeper {
    fn drop(&mut self) {
        self.0.with(|depth| depth.set(depth.get() - 1));
    }
}

impl<F: Future> Future for Watched<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some((monitor, slot)) = CURRENT.with(|current| current.borrow().clone()) else {
            return self.inner.as_mut().poll(cx);
        };
        // Only a worker polls the runtime's tasks.
        slot.busy.mark_worker();
        let any = Deeper::enter(&DEPTH);
        if any.1 {
            slot.entered
                .store(monitor.since_start() + 1, Ordering::Release);
        }
        let timed = self.request.then(|| Deeper::enter(&REQUEST_DEPTH));
        let outermost_request = timed.as_ref().is_some_and(|timed| timed.1);
        let timing = outermost_request.then(|| (Instant::now(), ThreadClocks::now()));
        let output = self.inner.as_mut().poll(cx);
        if let Some((started, clocks)) = timing {
            monitor.request_polls.fetch_add(1, Ordering::Relaxed);
            let wall = started.elapsed();
            // Most polls take microseconds: only a long one is worth a second look.
            if wall >= monitor.limits.blocked_poll.min(monitor.limits.hogging_poll) {
                monitor.record(&clocks.poll_until(&ThreadClocks::now(), wall));
            }
        }
        drop(timed);
        if any.1 {
            slot.entered.store(0, Ordering::Release);
        }
        output
    }
}

/// Calls `f` with this thread's monitor and slot, if it has them.
fn with_current(f: impl FnOnce(&Monitor, &Slot)) {
    CURRENT.with(|current| {
        if let Some((monitor, slot)) = current.borrow().as_ref() {
            f(monitor, slot);
        }
    });
}

/// How often the watchdog looks.
const WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// A multi-threaded Tokio runtime with a watchdog thread outside it.
///
/// Dropping it stops the watchdog and shuts the runtime down in the
/// background: threads that are blocked are left to end on their own.
pub struct GuardedRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    monitor: Arc<Monitor>,
    done: Arc<AtomicBool>,
}

impl GuardedRuntime {
    /// A runtime with `workers` worker threads, watched with `limits`.
    pub fn new(workers: usize, limits: Limits) -> std::io::Result<GuardedRuntime> {
        let monitor = Monitor::new(limits);
        let on_start = Arc::clone(&monitor);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("debuglab-run")
            .enable_all()
            .on_thread_start(move || {
                let slot = Arc::new(Slot::for_this_thread(&on_start));
                on_start
                    .slots
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(Arc::clone(&slot));
                CURRENT.with(|current| *current.borrow_mut() = Some((Arc::clone(&on_start), slot)));
            })
            .on_thread_stop(|| CURRENT.with(|current| *current.borrow_mut() = None))
            // Only workers park: their busy periods lie between these two.
            .on_thread_park(|| with_current(Monitor::worker_parking))
            .on_thread_unpark(|| with_current(Monitor::worker_woke))
            .build()?;
        let done = Arc::new(AtomicBool::new(false));
        spawn_watchdog(
            runtime.handle().clone(),
            Arc::clone(&monitor),
            Arc::clone(&done),
        )?;
        Ok(GuardedRuntime {
            runtime: Some(runtime),
            monitor,
            done,
        })
    }

    /// The runtime's watch.
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    /// Starts `future` (a run's or a replica's whole work, not one request)
    /// on the runtime, watched for a poll that never returns.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(watched_for_hangs(future))
    }

    /// A handle to the runtime.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives until the guard is dropped")
            .handle()
    }

    /// Runs `future` on the runtime's workers and waits for it on this
    /// (non-async) thread: a replica process's main.
    pub fn block_on<F>(&self, future: F) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = self.spawn(future);
        self.handle().block_on(task).ok()
    }
}

/// A service's own runtime, for scenarios where blocking a runtime is the
/// lesson: the variant's code runs on it with the worker count it asks for,
/// each request watched (its polls timed, see [`watched`]), while the run
/// drives and times the requests from its own runtime, which the variant
/// cannot block. Its [`Monitor::blocking`] is evidence for the verdict; its
/// watch never stops the run.
#[derive(Clone)]
pub struct ServiceRuntime {
    runtime: Arc<GuardedRuntime>,
}

impl ServiceRuntime {
    /// A runtime with `workers` worker threads for `scenario`'s service, its
    /// polls judged by `limits`.
    pub fn new(scenario: &str, workers: usize, limits: Limits) -> crate::Result<ServiceRuntime> {
        let runtime =
            GuardedRuntime::new(workers, limits).map_err(|error| crate::HarnessError::Setup {
                scenario: scenario.to_owned(),
                detail: format!("cannot start the service's runtime: {error}"),
            })?;
        Ok(ServiceRuntime {
            runtime: Arc::new(runtime),
        })
    }

    /// Runs `setup` (opening the service's pool, say) on the runtime, so
    /// that what it opens — connections and their I/O tasks — lives there,
    /// as in the service; `what` names it if the runtime fails it.
    pub async fn set_up<T: Send + 'static>(
        &self,
        scenario: &str,
        what: &str,
        setup: impl Future<Output = crate::Result<T>> + Send + 'static,
    ) -> crate::Result<T> {
        self.handle()
            .spawn(setup)
            .await
            .map_err(|error| crate::HarnessError::Setup {
                scenario: scenario.to_owned(),
                detail: format!("{what}: {error}"),
            })?
    }

    /// A handle to the runtime (to open pools on it, or to monitor it).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.handle()
    }

    /// What its watch has seen so far.
    pub fn monitor(&self) -> &Arc<Monitor> {
        self.runtime.monitor()
    }

    /// Runs `request` on the service's runtime, watched, and waits for it
    /// from the caller's; `None` if it panicked or the runtime went away.
    pub async fn call<T: Send + 'static>(
        &self,
        request: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        self.handle().spawn(watched(request)).await.ok()
    }
}

impl Drop for GuardedRuntime {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn spawn_watchdog(
    handle: tokio::runtime::Handle,
    monitor: Arc<Monitor>,
    done: Arc<AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("debuglab-watchdog".to_owned())
        .spawn(move || {
            let beat_pending = Arc::new(AtomicBool::new(false));
            while !done.load(Ordering::Acquire) {
                if !beat_pending.swap(true, Ordering::AcqRel) {
                    let (monitor, pending) = (Arc::clone(&monitor), Arc::clone(&beat_pending));
                    handle.spawn(async move {
                        monitor
                            .last_beat
                            .store(monitor.since_start(), Ordering::Release);
                        pending.store(false, Ordering::Release);
                    });
                }
                monitor.inspect();
                std::thread::sleep(WATCH_INTERVAL);
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(
        blocked: u64,
        longest_blocked_ms: f64,
        hogging: u64,
        longest_hogging_ms: f64,
    ) -> Blocking {
        Blocking {
            blocked_polls: blocked,
            longest_blocked_ms,
            hogging_polls: hogging,
            longest_hogging_ms,
            stuck: None,
            request_polls: 100,
        }
    }

    #[test]
    fn nothing_seen_is_no_problem() {
        assert!(!Blocking::default().is_clear());
        assert!(Blocking::default().problems().is_empty());
    }

    #[test]
    fn a_stray_poll_or_a_few_are_not_yet_clear() {
        // A busy machine can put a thread to sleep on a lock whose holder
        // waits for a CPU: a few polls, even a long one, are not proof.
        assert!(seen(9, 40.0, 0, 0.0).problems().is_empty());
        assert!(seen(1, 250.0, 0, 0.0).problems().is_empty());
        assert!(seen(0, 0.0, 2, 60.0).problems().is_empty());
    }

    #[test]
    fn ten_sleeping_polls_are_clear_and_explained() {
        let problems = seen(10, 25.0, 0, 0.0).problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("a request blocked its worker thread 10 times, up to 25 ms")
        );
        assert!(problems[0].contains("std::thread::sleep"), "{problems:?}");
        assert!(problems[0].contains("no other request on it makes progress"));
    }

    #[test]
    fn three_computing_polls_are_clear_and_one_long_one_is_not() {
        let problems = seen(0, 0.0, 3, 60.0).problems();
        assert!(
            problems[0].contains("busy computing 3 times"),
            "{problems:?}"
        );
        // A busy virtual machine's host can charge a stolen moment to a poll.
        assert!(!seen(0, 0.0, 1, 250.0).is_clear());
        assert!(!seen(0, 0.0, 2, 250.0).is_clear());
    }

    #[test]
    fn a_handful_of_blocking_polls_in_thousands_is_a_busy_machine() {
        let mut busy = seen(12, 60.0, 0, 0.0);
        busy.request_polls = 1_200;
        assert!(busy.is_clear(), "12 in 1,200 is 1 in 100");
        busy.request_polls = 600_000;
        assert!(!busy.is_clear(), "12 in 600,000 is a busy machine");
        let mut computing = seen(0, 0.0, 5, 60.0);
        computing.request_polls = 600_000;
        assert!(!computing.is_clear(), "5 in 600,000 is a busy machine");
    }

    #[test]
    fn the_longest_poll_is_told() {
        let problems = seen(0, 0.0, 3, 250.0).problems();
        assert!(
            problems[0].contains("busy computing 3 times, up to 250 ms"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_stuck_poll_comes_first() {
        let blocking = Blocking {
            stuck: Some("a request has not returned from one poll for 1.0 s".to_owned()),
            ..seen(1, 30.0, 0, 0.0)
        };
        let problems = blocking.problems();
        assert_eq!(problems.len(), 2);
        assert!(problems[0].starts_with("a request has not returned"));
        assert!(problems[0].contains("timers meant to end the run"));
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_longest() {
        let mut total = seen(1, 30.0, 0, 0.0);
        total.merge(&seen(2, 20.0, 1, 70.0));
        assert_eq!(
            total,
            Blocking {
                request_polls: 200,
                ..seen(3, 30.0, 1, 70.0)
            }
        );
    }

    fn poll(wall: u64, on_cpu: u64, waiting: Option<u64>, switches: i64) -> PollTimes {
        PollTimes {
            wall: Duration::from_millis(wall),
            on_cpu: Duration::from_millis(on_cpu),
            waiting_for_cpu: waiting.map(Duration::from_millis),
            voluntary_switches: switches,
        }
    }

    #[test]
    fn sleeping_is_what_is_neither_on_a_cpu_nor_waiting_for_one() {
        assert_eq!(poll(80, 1, Some(79), 1).sleeping(), Duration::ZERO);
        assert_eq!(
            poll(80, 1, Some(29), 1).sleeping(),
            Duration::from_millis(50)
        );
        // Without schedstat, a poll that never gave up its CPU did not sleep.
        assert_eq!(poll(80, 1, None, 0).sleeping(), Duration::ZERO);
        assert_eq!(poll(80, 1, None, 1).sleeping(), Duration::from_millis(79));
    }

    #[test]
    fn polls_are_classified_by_how_they_spent_their_time() {
        let monitor = Monitor::new(Limits::default());
        // Waiting for a busy CPU, after a brief wait for a lock.
        monitor.record(&poll(80, 1, Some(78), 1));
        // A quick poll.
        monitor.record(&poll(5, 1, Some(0), 1));
        assert_eq!(monitor.blocking(), Blocking::default());
        // Slept 30 ms.
        monitor.record(&poll(31, 1, Some(0), 1));
        // Computed 60 ms.
        monitor.record(&poll(61, 60, Some(1), 0));
        assert_eq!(
            monitor.blocking(),
            Blocking {
                request_polls: 0,
                ..seen(1, 30.0, 1, 60.0)
            }
        );
        assert_eq!(monitor.stop_reason(), None);
        for _ in 0..2 {
            monitor.record(&poll(61, 60, Some(1), 0));
        }
        assert!(
            monitor.stop_reason().is_some(),
            "three computing polls trip the watch"
        );
        let sleepy = Monitor::new(Limits::default());
        for slept in 1..=10 {
            assert_eq!(sleepy.stop_reason(), None, "{slept} sleeping polls");
            sleepy.record(&poll(25, 0, Some(0), 2));
        }
        assert!(
            sleepy.stop_reason().is_some(),
            "ten sleeping polls trip the watch"
        );
    }

    #[test]
    fn this_threads_clocks_are_read() {
        let before = ThreadClocks::now();
        let started = Instant::now();
        // Compute until this thread has had 20 ms of CPU, however busy the machine is.
        while ThreadClocks::now().on_cpu < before.on_cpu + Duration::from_millis(20) {
            std::hint::black_box(0u64);
        }
        std::thread::sleep(Duration::from_millis(30));
        let poll = before.poll_until(&ThreadClocks::now(), started.elapsed());
        assert!(poll.on_cpu >= Duration::from_millis(20), "{poll:?}");
        assert!(poll.sleeping() >= Duration::from_millis(20), "{poll:?}");
    }

    /// Computes on the calling thread until it has had `cpu` more of CPU time.
    fn compute_for(cpu: Duration) {
        let before = ThreadClocks::now().on_cpu;
        while ThreadClocks::now().on_cpu < before + cpu {
            std::hint::black_box(0u64);
        }
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn workers_are_held_by_what_they_compute_and_sleep_not_by_the_blocking_pool() {
        let guarded = GuardedRuntime::new(2, Limits::default()).unwrap();
        let monitor = Arc::clone(guarded.monitor());
        monitor.count_held_workers();
        let before = monitor.workers_held();
        guarded.block_on(async {
            tokio::task::spawn_blocking(|| compute_for(ms(60)))
                .await
                .unwrap();
        });
        let pooled = monitor.workers_held().since(&before);
        assert!(pooled.total() < ms(30), "the blocking pool's: {pooled:?}");
        guarded.block_on(async {
            compute_for(ms(40));
            std::thread::sleep(ms(40));
        });
        let held = monitor.workers_held().since(&before);
        assert!(held.on_cpu >= ms(40), "{held:?}");
        if ThreadClocks::now().waiting_for_cpu.is_some() {
            // Waiting for a CPU on a busy machine is not counted; the sleep is.
            assert!(held.asleep >= ms(30), "{held:?}");
        }
    }

    #[test]
    fn a_worker_held_right_now_counts_already() {
        let guarded = GuardedRuntime::new(2, Limits::default()).unwrap();
        let monitor = Arc::clone(guarded.monitor());
        monitor.count_held_workers();
        let (computed, has_computed) = std::sync::mpsc::channel();
        let release = Arc::new(AtomicBool::new(false));
        let released = Arc::clone(&release);
        guarded.spawn(async move {
            compute_for(ms(40));
            let _ = computed.send(());
            // Holds its worker until the test has looked.
            while !released.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
        });
        has_computed.recv().unwrap();
        let held = monitor.workers_held();
        release.store(true, Ordering::Release);
        assert!(held.on_cpu >= ms(40), "{held:?}");
    }

    #[test]
    fn workers_held_are_not_counted_unless_asked() {
        let guarded = GuardedRuntime::new(2, Limits::default()).unwrap();
        guarded.block_on(async {
            tokio::time::sleep(ms(5)).await;
            compute_for(ms(20));
        });
        assert_eq!(guarded.monitor().workers_held(), Held::default());
    }

    /// Waits for the watch to ask the workload to stop, for 10 s at most.
    fn stop_reason_within(guarded: &GuardedRuntime) -> Option<String> {
        let stopped = guarded.monitor().stopped();
        guarded
            .handle()
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), stopped).await })
            .ok()
    }

    #[test]
    fn a_thread_sleeping_in_a_poll_is_seen_and_stops_the_workload() {
        let guarded = GuardedRuntime::new(2, Limits::default()).unwrap();
        // A handler that sleeps in each of its polls, as a blocking one does.
        let finished = guarded.block_on(watched(async {
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(30));
                tokio::task::yield_now().await;
            }
        }));
        assert!(finished.is_some());
        let blocking = guarded.monitor().blocking();
        assert_eq!(blocking.blocked_polls, 10, "{blocking:?}");
        assert!(blocking.longest_blocked_ms >= 25.0, "{blocking:?}");
        assert_eq!(
            stop_reason_within(&guarded).as_deref(),
            Some("a request blocked its worker thread")
        );
    }

    #[test]
    fn awaiting_is_not_blocking() {
        let guarded = GuardedRuntime::new(2, Limits::default()).unwrap();
        guarded.block_on(watched(async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }));
        let blocking = guarded.monitor().blocking();
        assert_eq!(
            blocking.request_polls, 6,
            "one poll per sleep, and the last"
        );
        assert_eq!(
            blocking,
            Blocking {
                request_polls: 6,
                ..Blocking::default()
            }
        );
    }

    #[test]
    fn other_work_may_compute_but_not_hang() {
        let guarded = GuardedRuntime::new(2, Limits::default()).unwrap();
        guarded.block_on(async {
            // A run's own analysis, computing for a while in one poll.
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(120) {
                std::hint::black_box(0u64);
            }
        });
        assert_eq!(guarded.monitor().blocking(), Blocking::default());
    }

    #[test]
    fn a_poll_that_never_returns_is_reported_from_outside() {
        let limits = Limits {
            stuck: Duration::from_millis(200),
            ..Limits::default()
        };
        let guarded = GuardedRuntime::new(2, limits).unwrap();
        let release = Arc::new(AtomicBool::new(false));
        let held = Arc::clone(&release);
        guarded.spawn(async move {
            // Stands for a deadlock: returns only when the test lets it.
            while !held.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let reason = stop_reason_within(&guarded);
        release.store(true, Ordering::Release);
        assert_eq!(
            reason.as_deref(),
            Some("the runtime's threads were blocked")
        );
        let stuck = guarded.monitor().blocking().stuck.unwrap();
        assert!(
            stuck.starts_with("a request has not returned from one poll"),
            "{stuck}"
        );
    }
}
