//! A dependency on loopback: a small TCP service with a fixed capacity, a
//! bounded queue and an outage window, that keeps its own books.
//!
//! Scenarios about how a client treats a service it calls (retries, timeouts,
//! load shedding) need a service whose limits are real and whose counts the
//! client cannot forge. [`Downstream::start`] runs one on a thread and a
//! runtime of its own (a variant that spins or blocks its runtime cannot stop
//! its clock), listening on `127.0.0.1`:
//!
//! - it serves at most [`Settings::workers`] attempts at once, each taking
//!   [`Settings::service_time`]; up to [`Settings::queue_bound`] more wait
//!   their turn, first come first served, and any further one is answered
//!   `BUSY` at once;
//! - during [`Settings::outage`] every attempt is answered `DOWN` at once;
//! - an attempt whose caller hangs up while it waits or is served is still
//!   served — the service cannot know — and counted as served to nobody;
//! - it issues one ticket per key: serving the same key again returns the
//!   same ticket (an idempotent call), but costs a worker all the same.
//!
//! The protocol is a line per attempt: the client sends `<key>\n` and reads
//! `OK <ticket>\n`, `BUSY\n` or `DOWN\n`. [`Client`] speaks it, with a
//! timeout per attempt and the connections it keeps open between attempts.
//!
//! [`Downstream::books`] returns everything the service counted, per time
//! bucket (attempts, served, rejected, the longest queue) and per key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify, Semaphore};

use crate::error::{HarnessError, Result};

/// How a [`Downstream`] behaves.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Attempts served at once.
    pub workers: usize,
    /// How long serving one attempt takes.
    pub service_time: Duration,
    /// Attempts that may wait for a worker; any further one is answered `BUSY`.
    pub queue_bound: usize,
    /// When the service answers every attempt `DOWN`, if ever.
    pub outage: Option<Outage>,
    /// The width of a time bucket in [`Books::buckets`].
    pub bucket: Duration,
}

impl Settings {
    /// Attempts the service can serve in one bucket, at most.
    pub fn capacity_per_bucket(&self) -> f64 {
        // In nanoseconds, so that round figures stay round (6 × 100 ms / 20 ms = 30).
        (self.workers as u128 * self.bucket.as_nanos()) as f64
            / self.service_time.as_nanos().max(1) as f64
    }
}

/// A window, counted from the service's start, during which it is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    /// When it begins.
    pub start: Duration,
    /// How long it lasts.
    pub length: Duration,
}

impl Outage {
    /// When it ends.
    pub fn end(&self) -> Duration {
        self.start + self.length
    }

    /// Whether `at` falls inside it.
    pub fn contains(&self, at: Duration) -> bool {
        at >= self.start && at < self.end()
    }
}

/// What a service counted over some time (one bucket, or its whole life).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Attempts received (counted when they arrive).
    pub attempts: u64,
    /// Attempts served, a ticket issued (counted when they finish).
    pub served: u64,
    /// Of those, attempts whose caller had hung up before the answer.
    pub served_to_nobody: u64,
    /// Attempts answered `BUSY`: the queue was full.
    pub busy: u64,
    /// Attempts answered `DOWN`: the service was in its outage.
    pub down: u64,
    /// The longest queue of attempts waiting for a worker.
    pub queue_max: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.attempts += other.attempts;
        self.served += other.served;
        self.served_to_nobody += other.served_to_nobody;
        self.busy += other.busy;
        self.down += other.down;
        self.queue_max = self.queue_max.max(other.queue_max);
    }
}

/// What the service knows about one key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyBooks {
    /// Attempts received for it.
    pub attempts: u64,
    /// When the first arrived, since the service's start.
    pub first_attempt: Duration,
    /// When the last arrived.
    pub last_attempt: Duration,
    /// How many times it was served.
    pub served: u64,
    /// The ticket issued for it, once served.
    pub ticket: Option<String>,
}

/// Everything a service counted, as of [`Downstream::books`].
#[derive(Clone, Debug, Default)]
pub struct Books {
    /// The width of each bucket.
    pub bucket: Duration,
    /// Counts per bucket: bucket `i` covers `[i * bucket, (i + 1) * bucket)` since the start.
    pub buckets: Vec<Counts>,
    /// Counts over the service's whole life.
    pub totals: Counts,
    /// Per key.
    pub keys: HashMap<String, KeyBooks>,
    /// How long the service had been running.
    pub elapsed: Duration,
}

impl Books {
    /// The bucket that `at` falls in.
    pub fn bucket_of(&self, at: Duration) -> usize {
        bucket_index(at, self.bucket)
    }

    /// The counts of the buckets from the one holding `from` up to, not
    /// including, the one holding `to`.
    pub fn between(&self, from: Duration, to: Duration) -> Counts {
        let (first, end) = (self.bucket_of(from), self.bucket_of(to));
        let mut counts = Counts::default();
        for bucket in self.buckets.iter().take(end).skip(first) {
            counts.add(bucket);
        }
        counts
    }

    /// The ticket issued for `key`, if it was served.
    pub fn ticket(&self, key: &str) -> Option<&str> {
        self.keys.get(key).and_then(|books| books.ticket.as_deref())
    }
}

fn bucket_index(at: Duration, bucket: Duration) -> usize {
    (at.as_nanos() / bucket.as_nanos().max(1)) as usize
}

/// Why an attempt got no ticket, as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The service's queue was full (`BUSY`).
    #[error("busy: the service's queue is full")]
    Busy,
    /// The service was down (`DOWN`).
    #[error("unavailable: the service is down")]
    Unavailable,
    /// No answer came within the client's timeout; the client hung up.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The connection failed, or the answer made no sense.
    #[error("connection: {0}")]
    Connection(String),
}

/// A running service; it stops, with its connections, when dropped.
pub struct Downstream {
    address: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Downstream {
    /// Starts the service on a free loopback port, on a thread of its own;
    /// its clock (the outage, the buckets) starts now.
    pub fn start(settings: Settings) -> Result<Downstream> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(|error| setup_error(format!("listening on loopback: {error}")))?;
        let address = listener
            .local_addr()
            .map_err(|error| setup_error(format!("reading its address: {error}")))?;
        let shared = Arc::new(Shared::new(settings));
        let (shutdown, stopped) = oneshot::channel();
        let serving = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("debuglab-downstream".to_owned())
            .spawn(move || serve(listener, serving, stopped))
            .map_err(|error| setup_error(format!("starting its thread: {error}")))?;
        Ok(Downstream {
            address,
            shared,
            shutdown: Some(shutdown),
        })
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// How it behaves.
    pub fn settings(&self) -> Settings {
        self.shared.settings
    }

    /// A client that waits at most `attempt_timeout` for each answer.
    pub fn client(&self, attempt_timeout: Duration) -> Client {
        Client {
            address: self.address,
            attempt_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Time since the service started.
    pub fn elapsed(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// Resolves once no attempt is waiting or being served (those whose
    /// callers hung up included), so that the books are complete.
    pub async fn idle(&self) {
        loop {
            let notified = self.shared.settled.notified();
            if self.shared.in_progress.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Attempts received so far for `key`.
    pub fn attempts(&self, key: &str) -> u64 {
        lock(&self.shared.ledger)
            .keys
            .get(key)
            .map_or(0, |books| books.attempts)
    }

    /// Attempts waiting for a worker now.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// What it counted so far over its whole life, without the per-key
    /// books (cheap enough to read every few milliseconds).
    pub fn totals(&self) -> Counts {
        let ledger = lock(&self.shared.ledger);
        let mut totals = Counts::default();
        for bucket in &ledger.buckets {
            totals.add(bucket);
        }
        totals
    }

    /// What it counted so far.
    pub fn books(&self) -> Books {
        let totals = self.totals();
        let ledger = lock(&self.shared.ledger);
        Books {
            bucket: self.shared.settings.bucket,
            buckets: ledger.buckets.clone(),
            totals,
            keys: ledger.keys.clone(),
            elapsed: self.elapsed(),
        }
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn setup_error(detail: String) -> HarnessError {
    HarnessError::Setup {
        scenario: "downstream service".to_owned(),
        detail,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The service's state, shared by its connections.
struct Shared {
    settings: Settings,
    started: Instant,
    workers: Semaphore,
    queued: AtomicUsize,
    in_progress: AtomicUsize,
    settled: Notify,
    /// Makes tickets unguessable, as a real service's ids are.
    secret: u64,
    ledger: Mutex<Ledger>,
}

#[derive(Default)]
struct Ledger {
    buckets: Vec<Counts>,
    keys: HashMap<String, KeyBooks>,
    issued: u64,
}

impl Ledger {
    fn bucket(&mut self, at: Duration, width: Duration) -> &mut Counts {
        let index = bucket_index(at, width);
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, Counts::default());
        }
        &mut self.buckets[index]
    }
}

/// How the service answered one attempt.
enum Answer {
    Served(String),
    Busy,
    Down,
}

impl Shared {
    fn new(settings: Settings) -> Shared {
        Shared {
            settings,
            started: Instant::now(),
            workers: Semaphore::new(settings.workers),
            queued: AtomicUsize::new(0),
            in_progress: AtomicUsize::new(0),
            settled: Notify::new(),
            secret: rand::random(),
            ledger: Mutex::new(Ledger::default()),
        }
    }

    fn down_at(&self, at: Duration) -> bool {
        self.settings
            .outage
            .is_some_and(|outage| outage.contains(at))
    }

    /// Counts one update in the bucket of now.
    fn note(&self, update: impl FnOnce(&mut Counts, &mut Ledger)) {
        let at = self.started.elapsed();
        let mut ledger = lock(&self.ledger);
        let mut counts = std::mem::take(ledger.bucket(at, self.settings.bucket));
        update(&mut counts, &mut ledger);
        *ledger.bucket(at, self.settings.bucket) = counts;
    }

    fn note_arrival(&self, key: &str) {
        let at = self.started.elapsed();
        self.note(|counts, ledger| {
            counts.attempts += 1;
            let books = ledger.keys.entry(key.to_owned()).or_insert(KeyBooks {
                first_attempt: at,
                ..KeyBooks::default()
            });
            books.attempts += 1;
            books.last_attempt = at;
        });
    }

    fn issue_ticket(&self, key: &str, caller_gone: bool) -> String {
        let secret = self.secret;
        let mut ticket = String::new();
        self.note(|counts, ledger| {
            counts.served += 1;
            counts.served_to_nobody += u64::from(caller_gone);
            ledger.issued += 1;
            let sequence = ledger.issued;
            let books = ledger.keys.entry(key.to_owned()).or_default();
            books.served += 1;
            ticket = books
                .ticket
                .get_or_insert_with(|| {
                    let mixed =
                        secret.rotate_left(17) ^ sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    format!("tk-{mixed:016x}")
                })
                .clone();
        });
        ticket
    }

    /// Decides and, if it may, serves one attempt for `key`: the worker it
    /// held, or how it was turned away.
    async fn attempt(
        &self,
        key: &str,
    ) -> std::result::Result<tokio::sync::SemaphorePermit<'_>, Answer> {
        self.note_arrival(key);
        if self.down_at(self.started.elapsed()) {
            self.note(|counts, _| counts.down += 1);
            return Err(Answer::Down);
        }
        let permit = match self.workers.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                let waiting = self.queued.fetch_add(1, Ordering::AcqRel) + 1;
                if waiting > self.settings.queue_bound {
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                    self.note(|counts, _| counts.busy += 1);
                    return Err(Answer::Busy);
                }
                self.note(|counts, _| counts.queue_max = counts.queue_max.max(waiting as u64));
                let permit = self.workers.acquire().await;
                self.queued.fetch_sub(1, Ordering::AcqRel);
                // The semaphore is never closed.
                permit.map_err(|_| Answer::Down)?
            }
        };
        // An outage that began while the attempt waited turns it away too.
        if self.down_at(self.started.elapsed()) {
            self.note(|counts, _| counts.down += 1);
            return Err(Answer::Down);
        }
        tokio::time::sleep(self.settings.service_time).await;
        Ok(permit)
    }

    /// Serves one attempt; `caller_gone` says at the end whether its caller hung up.
    async fn answer(&self, key: &str, caller_gone: impl Fn() -> bool) -> Answer {
        match self.attempt(key).await {
            Ok(permit) => {
                let ticket = self.issue_ticket(key, caller_gone());
                drop(permit);
                Answer::Served(ticket)
            }
            Err(turned_away) => turned_away,
        }
    }
}

/// The service's thread: its own runtime, accepting until shut down.
fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, stopped: oneshot::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::warn!("downstream service: cannot start its runtime: {error}");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!("downstream service: cannot listen: {error}");
                return;
            }
        };
        tokio::select! {
            _ = stopped => {}
            () = accept(listener, shared) => {}
        }
    });
    // Connections still open end with the runtime.
    runtime.shutdown_background();
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, Arc::clone(&shared)));
            }
            Err(error) => {
                // Out of file descriptors, say: wait a little instead of spinning.
                tracing::warn!("downstream service: accepting a connection failed: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Answers one connection's attempts, one after another, until the caller hangs up.
async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let key = line.trim().to_owned();
        shared.in_progress.fetch_add(1, Ordering::AcqRel);
        let (answer, caller_gone) = answer_watching_caller(&shared, &key, &mut reader).await;
        if shared.in_progress.fetch_sub(1, Ordering::AcqRel) == 1 {
            shared.settled.notify_waiters();
        }
        if caller_gone {
            return;
        }
        let reply = match answer {
            Answer::Served(ticket) => format!("OK {ticket}\n"),
            Answer::Busy => "BUSY\n".to_owned(),
            Answer::Down => "DOWN\n".to_owned(),
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Answers `key` while watching the connection: a caller that hangs up
/// meanwhile (end of stream) does not stop the work, as on a real server.
async fn answer_watching_caller(
    shared: &Shared,
    key: &str,
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> (Answer, bool) {
    let gone = std::sync::atomic::AtomicBool::new(false);
    let answer = shared.answer(key, || gone.load(Ordering::Acquire));
    tokio::pin!(answer);
    let mut watching = true;
    loop {
        tokio::select! {
            answer = &mut answer => return (answer, gone.load(Ordering::Acquire)),
            read = reader.fill_buf(), if watching => {
                // End of stream or an error: the caller hung up. Bytes: a
                // caller that sends ahead; they stay for the next read.
                let hung_up = read.map_or(true, |bytes| bytes.is_empty());
                gone.store(hung_up, Ordering::Release);
                watching = false;
            }
        }
    }
}

/// A client of a [`Downstream`]: one attempt per [`Client::call`], each on a
/// connection of its own while it lasts (kept for the next attempt once
/// answered, dropped when the attempt timed out).
pub struct Client {
    address: SocketAddr,
    attempt_timeout: Duration,
    idle: Mutex<Vec<BufReader<TcpStream>>>,
}

/// Connections a client keeps open between attempts, at most.
const IDLE_CONNECTIONS: usize = 256;

impl Client {
    /// How long it waits for an answer.
    pub fn attempt_timeout(&self) -> Duration {
        self.attempt_timeout
    }

    /// One attempt for `key` (a single-line token): the ticket the service
    /// issued for it, or why there is none.
    pub async fn call(&self, key: &str) -> std::result::Result<String, CallError> {
        if key.is_empty() || key.contains(['\n', '\r', ' ']) {
            return Err(CallError::Connection(format!("invalid key {key:?}")));
        }
        let idle = lock(&self.idle).pop();
        let exchange = async {
            let mut connection = match idle {
                Some(connection) => connection,
                None => {
                    let stream = TcpStream::connect(self.address).await?;
                    stream.set_nodelay(true)?;
                    BufReader::new(stream)
                }
            };
            connection
                .get_mut()
                .write_all(format!("{key}\n").as_bytes())
                .await?;
            let mut answer = String::new();
            connection.read_line(&mut answer).await?;
            Ok::<_, std::io::Error>((connection, answer))
        };
        // On timeout the connection is dropped with the future: the caller hangs up.
        let (connection, answer) = tokio::time::timeout(self.attempt_timeout, exchange)
            .await
            .map_err(|_| CallError::TimedOut(self.attempt_timeout))?
            .map_err(|error| CallError::Connection(error.to_string()))?;
        let answer = parse(&answer);
        if !matches!(answer, Err(CallError::Connection(_))) {
            let mut idle = lock(&self.idle);
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(connection);
            }
        }
        answer
    }
}

fn parse(answer: &str) -> std::result::Result<String, CallError> {
    let answer = answer.trim_end();
    match answer.split_once(' ') {
        Some(("OK", ticket)) => Ok(ticket.to_owned()),
        _ if answer == "BUSY" => Err(CallError::Busy),
        _ if answer == "DOWN" => Err(CallError::Unavailable),
        _ if answer.is_empty() => Err(CallError::Connection(
            "the service closed the connection".to_owned(),
        )),
        _ => Err(CallError::Connection(format!(
            "unexpected answer {answer:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(workers: usize, service_ms: u64, queue_bound: usize) -> Settings {
        Settings {
            workers,
            service_time: Duration::from_millis(service_ms),
            queue_bound,
            outage: None,
            bucket: Duration::from_millis(100),
        }
    }

    #[tokio::test]
    async fn one_ticket_per_key_however_often_it_is_served() {
        let downstream = Downstream::start(settings(2, 1, 4)).unwrap();
        let client = downstream.client(Duration::from_secs(10));
        let first = client.call("order-1").await.unwrap();
        let again = client.call("order-1").await.unwrap();
        let other = client.call("order-2").await.unwrap();
        assert_eq!(first, again);
        assert_ne!(first, other);
        let books = downstream.books();
        assert_eq!((books.totals.attempts, books.totals.served), (3, 3));
        assert_eq!(books.keys["order-1"].attempts, 2);
        assert_eq!(books.keys["order-1"].served, 2);
        assert_eq!(books.ticket("order-2"), Some(other.as_str()));
        assert_eq!(books.ticket("order-3"), None);
    }

    #[tokio::test]
    async fn beyond_the_workers_and_the_queue_attempts_are_turned_away() {
        // One worker, one place in the queue: of three attempts at once, one
        // is served, one waits and is served after it, one is answered BUSY.
        let downstream = Downstream::start(settings(1, 300, 1)).unwrap();
        let client = Arc::new(downstream.client(Duration::from_secs(10)));
        let calls = (0..3).map(|index| {
            let client = Arc::clone(&client);
            async move { client.call(&format!("order-{index}")).await }
        });
        let answers = futures::future::join_all(calls).await;
        let busy = answers
            .iter()
            .filter(|answer| **answer == Err(CallError::Busy))
            .count();
        assert_eq!(
            (busy, answers.iter().filter(|answer| answer.is_ok()).count()),
            (1, 2),
            "{answers:?}"
        );
        let books = downstream.books();
        assert_eq!(books.totals.attempts, 3);
        assert_eq!(downstream.attempts("order-0"), 1);
        assert_eq!(downstream.attempts("order-9"), 0);
        assert_eq!((books.totals.served, books.totals.busy), (2, 1));
        assert_eq!(books.totals.queue_max, 1);
    }

    #[tokio::test]
    async fn during_its_outage_every_attempt_is_answered_down() {
        let downstream = Downstream::start(Settings {
            outage: Some(Outage {
                start: Duration::ZERO,
                length: Duration::from_secs(600),
            }),
            ..settings(4, 1, 4)
        })
        .unwrap();
        let client = downstream.client(Duration::from_secs(10));
        for _ in 0..3 {
            assert_eq!(client.call("order-1").await, Err(CallError::Unavailable));
        }
        let books = downstream.books();
        assert_eq!((books.totals.down, books.totals.served), (3, 0));
        assert_eq!(books.keys["order-1"].attempts, 3);
        assert_eq!(books.ticket("order-1"), None);
    }

    #[tokio::test]
    async fn work_for_a_caller_who_hung_up_is_still_done_and_counted() {
        let downstream = Downstream::start(settings(1, 400, 4)).unwrap();
        let impatient = downstream.client(Duration::from_millis(20));
        assert_eq!(
            impatient.call("order-1").await,
            Err(CallError::TimedOut(Duration::from_millis(20)))
        );
        downstream.idle().await;
        let books = downstream.books();
        assert_eq!(books.totals.served, 1);
        assert_eq!(books.totals.served_to_nobody, 1);
        assert!(books.ticket("order-1").is_some());
        // The next caller finds the service as it was.
        let patient = downstream.client(Duration::from_secs(10));
        assert!(patient.call("order-2").await.is_ok());
        assert_eq!(downstream.books().totals.served_to_nobody, 1);
    }

    #[test]
    fn books_add_up_buckets_between_two_times() {
        let bucket = Duration::from_millis(100);
        let counts = |attempts| Counts {
            attempts,
            queue_max: attempts,
            ..Counts::default()
        };
        let books = Books {
            bucket,
            buckets: vec![counts(1), counts(2), counts(4), counts(8)],
            ..Books::default()
        };
        let between = books.between(Duration::from_millis(150), Duration::from_millis(300));
        assert_eq!((between.attempts, between.queue_max), (6, 4));
        assert_eq!(
            books
                .between(Duration::ZERO, Duration::from_secs(9))
                .attempts,
            15
        );
        assert_eq!(books.bucket_of(Duration::from_millis(299)), 2);
    }

    #[test]
    fn capacity_and_outage_windows_follow_from_the_settings() {
        let settings = settings(5, 25, 40);
        assert_eq!(settings.capacity_per_bucket(), 20.0);
        let outage = Outage {
            start: Duration::from_millis(600),
            length: Duration::from_millis(500),
        };
        assert_eq!(outage.end(), Duration::from_millis(1100));
        assert!(outage.contains(Duration::from_millis(600)));
        assert!(!outage.contains(Duration::from_millis(1100)));
    }

    #[test]
    fn answers_are_parsed_and_nonsense_is_a_connection_error() {
        assert_eq!(parse("OK tk-1\n"), Ok("tk-1".to_owned()));
        assert_eq!(parse("BUSY\n"), Err(CallError::Busy));
        assert_eq!(parse("DOWN\n"), Err(CallError::Unavailable));
        assert!(matches!(parse(""), Err(CallError::Connection(_))));
        assert!(matches!(parse("HELLO"), Err(CallError::Connection(_))));
    }
}
