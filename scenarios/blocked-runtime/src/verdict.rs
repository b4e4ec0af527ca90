//! The verdict: a pure function of the run's figures.
//!
//! Polls are timed by the harness's watch in CPU time (a poll that waits for
//! a busy CPU does not count) and counted against the logins that had a hash
//! to check; how long the workers were held is timed the same way, per such
//! login; the hashing is judged by CPU time against a check calibrated in
//! the same run. No figure the verdict judges depends on how fast or how
//! busy this machine is: how many page views fit in the time limit, and
//! their latency, do, so they are evidence of the symptom, never a bound.

use std::time::Duration;

use debuglab_harness::guard::Blocking;
use debuglab_harness::scenario;
use debuglab_harness::Verdict;

/// A poll on the service's workers that computes (or sleeps) this long is
/// long: everything else queued on that worker waits for it.
pub const POLL_BOUND: Duration = Duration::from_millis(10);

/// Long polls that make them routine: at least this many, and at least
/// [`LONG_POLLS_PER_LOGIN`] for each login that had a hash to check.
pub const LONG_POLLS_MIN: u64 = 3;

/// Long polls per login that had a hash to check that make them routine.
/// A check on a worker is one long poll per such login, however many page
/// views fitted in the run; a busy machine can stretch a rare stray poll.
pub const LONG_POLLS_PER_LOGIN: f64 = 0.5;

/// How long the service's workers may be held per login that had a hash to
/// check, beyond what the page views meanwhile needed, as a share of one
/// check's CPU time: a check run on a worker holds it for a whole check.
pub const HELD_SHARE_MAX: f64 = 0.5;

/// The share of one password check's CPU time a login must still cost.
pub const HASH_CPU_SHARE_MIN: f64 = 0.5;

/// What a run measured, everything the verdict looks at.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Session lookups alone (`None` in a live run, which skips them).
    pub lookups_alone: Option<Lookups>,
    /// Session lookups while people log in.
    pub lookups_under_logins: Lookups,
    /// The logins while the page views ran.
    pub logins: Logins,
    /// The logins before them: each user once, with the right password.
    pub returning: Logins,
    /// The sessions Redis holds afterwards.
    pub sessions: Sessions,
    /// CPU time per login against one password check's.
    pub cpu: Cpu,
    /// The service's polls.
    pub polls: Polls,
    /// How long the service's workers were held.
    pub workers: Workers,
    /// How long a session lookup waited on average, while people logged in,
    /// for a worker to first poll it (`tokio-metrics`), in milliseconds:
    /// evidence, not judged (it is wall-clock time).
    pub lookup_wait_ms: f64,
}

impl Figures {
    /// The lookups' p99 under logins over their p99 alone.
    pub fn lookup_slowdown(&self) -> Option<f64> {
        let alone = self.lookups_alone.as_ref()?;
        (alone.p99_ms > 0.0 && self.lookups_under_logins.finished > 0)
            .then(|| self.lookups_under_logins.p99_ms / alone.p99_ms)
    }

    /// Logins that had a hash to check in the whole run, as the harness's
    /// watch counts long polls over the whole run.
    pub fn hashed_in_run(&self) -> usize {
        self.returning.hashed + self.logins.hashed
    }

    /// Whether long polls are routine — at least [`LONG_POLLS_MIN`] and
    /// [`LONG_POLLS_PER_LOGIN`] per login that had a hash to check — or
    /// one never returned.
    pub fn long_polls_routine(&self) -> bool {
        let long = self.polls.long();
        self.polls.blocking.stuck.is_some()
            || (long >= LONG_POLLS_MIN
                && long as f64 >= LONG_POLLS_PER_LOGIN * self.hashed_in_run() as f64)
    }

    /// How long the workers were held per login that had a hash to check,
    /// beyond what the page views meanwhile needed at their cost alone, in
    /// milliseconds; `None` without such logins.
    pub fn held_per_login_ms(&self) -> Option<f64> {
        let workers = &self.workers;
        let lookups =
            workers.per_lookup_alone_ms.unwrap_or(0.0) * self.lookups_under_logins.finished as f64;
        (self.logins.hashed > 0).then(|| {
            (workers.on_cpu_ms + workers.asleep_ms - lookups).max(0.0) / self.logins.hashed as f64
        })
    }
}

/// Session lookups, as the page views saw them.
#[derive(Clone, Debug, Default)]
pub struct Lookups {
    /// Lookups answered or failed.
    pub finished: usize,
    /// Lookups that never answered.
    pub unfinished: usize,
    /// Lookups that failed.
    pub failed: usize,
    /// Lookups answered with the wrong user.
    pub wrong_answers: usize,
    /// The first failure, described.
    pub first_failure: Option<String>,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
}

/// Logins, as the people logging in saw them.
#[derive(Clone, Debug, Default)]
pub struct Logins {
    /// Logins answered (accepted, refused or failed).
    pub finished: usize,
    /// Logins that never answered.
    pub unfinished: usize,
    /// Right passwords given a session.
    pub accepted: usize,
    /// Wrong passwords and unknown users refused.
    pub refused: usize,
    /// Logins that failed.
    pub failed: usize,
    /// Logins answered wrongly (a session for a wrong password, say).
    pub wrong_answers: usize,
    /// Logins of users who exist: each has a hash to check.
    pub hashed: usize,
    /// The first failure, described.
    pub first_failure: Option<String>,
    /// The first wrong answer, described.
    pub first_wrong: Option<String>,
}

impl Logins {
    /// These logins and `others`, counted together.
    pub fn with(&self, others: &Logins) -> Logins {
        Logins {
            finished: self.finished + others.finished,
            unfinished: self.unfinished + others.unfinished,
            accepted: self.accepted + others.accepted,
            refused: self.refused + others.refused,
            failed: self.failed + others.failed,
            wrong_answers: self.wrong_answers + others.wrong_answers,
            hashed: self.hashed + others.hashed,
            first_failure: others.first_failure.clone().or(self.first_failure.clone()),
            first_wrong: others.first_wrong.clone().or(self.first_wrong.clone()),
        }
    }
}

/// The sessions Redis holds after the run.
#[derive(Clone, Debug, Default)]
pub struct Sessions {
    /// Accepted logins whose session is not there for their user.
    pub missing: usize,
    /// Sessions beyond the live ones and the accepted logins'.
    pub extra: usize,
}

/// CPU time, in milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Cpu {
    /// One password check, calibrated by the harness in the same run.
    pub check_ms: f64,
    /// The process, per login that had a hash to check.
    pub per_login_ms: f64,
}

/// The service's polls, as the harness's watch saw them.
#[derive(Clone, Debug, Default)]
pub struct Polls {
    /// Worker threads of the service's runtime.
    pub worker_threads: usize,
    /// What the watch saw.
    pub blocking: Blocking,
}

/// How long the service's worker threads were held by the tasks they ran,
/// as the harness's watch saw them: from waking to parking, on a CPU or
/// asleep, every task included, time waiting for a busy CPU left out; in
/// milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Workers {
    /// While the page views ran alone, per lookup (`None` in a live run).
    pub per_lookup_alone_ms: Option<f64>,
    /// While people logged in, on a CPU.
    pub on_cpu_ms: f64,
    /// While people logged in, asleep in a blocking call.
    pub asleep_ms: f64,
}

impl Polls {
    /// Polls of [`POLL_BOUND`] or more.
    pub fn long(&self) -> u64 {
        self.blocking.blocked_polls + self.blocking.hogging_polls
    }

    /// The longest poll, in milliseconds.
    pub fn longest_ms(&self) -> f64 {
        self.blocking
            .longest_blocked_ms
            .max(self.blocking.longest_hogging_ms)
    }
}

/// Judges a run by its figures.
pub fn verdict(figures: &Figures) -> Verdict {
    let mut problems = answer_problems(figures);
    problems.extend(hashing_problems(figures));
    problems.extend(poll_problems(figures));
    problems.extend(held_problems(figures));
    Verdict::from_problems(&problems, || healthy_summary(figures))
}

fn answer_problems(figures: &Figures) -> Vec<String> {
    let lookups = &figures.lookups_under_logins;
    let logins = figures.logins.with(&figures.returning);
    let mut problems = scenario::request_problems(
        lookups.finished + logins.finished,
        lookups.failed + logins.failed,
        lookups.unfinished + logins.unfinished,
    );
    if let Some(failure) = &lookups.first_failure {
        problems.push(format!("the first session lookup that failed: {failure}"));
    }
    if let Some(failure) = &logins.first_failure {
        problems.push(format!("the first login that failed: {failure}"));
    }
    if lookups.wrong_answers > 0 {
        problems.push(format!(
            "{} session lookups named the wrong user or none: a page view must see whose session it is",
            lookups.wrong_answers
        ));
    }
    if logins.wrong_answers > 0 {
        problems.push(format!(
            "{} logins got the wrong answer; the first: {} — a session for the right password only",
            logins.wrong_answers,
            logins.first_wrong.as_deref().unwrap_or("?")
        ));
    }
    let sessions = &figures.sessions;
    if sessions.missing + sessions.extra > 0 {
        problems.push(format!(
            "Redis holds {} sessions nobody was given and lacks {} of the accepted logins': a \
             session exists exactly for each login accepted",
            sessions.extra, sessions.missing
        ));
    }
    problems
}

fn hashing_problems(figures: &Figures) -> Vec<String> {
    let cpu = &figures.cpu;
    if figures.logins.hashed == 0
        || cpu.check_ms <= 0.0
        || cpu.per_login_ms >= HASH_CPU_SHARE_MIN * cpu.check_ms
    {
        return Vec::new();
    }
    vec![format!(
        "the process used {:.2} ms of CPU per login, and one password check costs {:.1} ms on this \
         machine (measured in the same run): logins no longer check the password against its \
         Argon2 hash every time — skipping, weakening or remembering the check makes a stolen \
         hash or a guessed password cheap to try; the hashing is the point, not the bug",
        cpu.per_login_ms, cpu.check_ms
    )]
}

fn poll_problems(figures: &Figures) -> Vec<String> {
    if !figures.long_polls_routine() {
        return Vec::new();
    }
    let polls = &figures.polls;
    let mut line = format!(
        "{} polls on the service's {} worker threads ran {:.0} ms or longer (the longest {:.0} ms; \
         {} logins had a hash to check), timed by the harness in CPU time{}",
        polls.long(),
        polls.worker_threads,
        POLL_BOUND.as_secs_f64() * 1000.0,
        polls.longest_ms(),
        figures.hashed_in_run(),
        polls.blocking.stuck.as_deref().map(|stuck| format!("; {stuck}")).unwrap_or_default()
    );
    if polls.worker_threads > crate::buggy::WORKER_THREADS {
        line.push_str(
            ": more worker threads make it rarer that every one is caught in a long poll, they do \
             not make a poll shorter — the requests queued on a busy worker still wait, and the \
             threads share the same CPUs",
        );
    }
    vec![line]
}

fn held_problems(figures: &Figures) -> Vec<String> {
    let check_ms = figures.cpu.check_ms;
    let Some(held_ms) = figures.held_per_login_ms() else {
        return Vec::new();
    };
    if check_ms <= 0.0 || held_ms < HELD_SHARE_MAX * check_ms {
        return Vec::new();
    }
    let workers = &figures.workers;
    let mut line = format!(
        "while people logged in, the service's {} worker threads were held {held_ms:.1} ms per \
         login that had a hash to check, beyond what the page views needed — {:.0}% of one \
         password check's {check_ms:.1} ms (bound {:.0}%; {:.0} ms computing and {:.0} ms asleep \
         in all, timed by the harness without the time spent waiting for a busy CPU): a session \
         lookup queued on a held worker waits",
        figures.polls.worker_threads,
        held_ms / check_ms * 100.0,
        HELD_SHARE_MAX * 100.0,
        workers.on_cpu_ms,
        workers.asleep_ms
    );
    if workers.asleep_ms > workers.on_cpu_ms {
        line.push_str(
            "; mostly asleep, in a blocking wait (a thread joined, a lock, a blocking channel): \
             computing or asleep, a held worker polls nothing else",
        );
    }
    if !figures.long_polls_routine() {
        // The long work escaped the polls the harness times: it runs in
        // tasks of its own, on the same workers.
        line.push_str(
            ", though no poll the harness timed was long: moving work into a task of its own on \
             the same runtime moves the long poll, it does not remove it",
        );
    }
    vec![line]
}

fn healthy_summary(figures: &Figures) -> String {
    format!(
        "Every lookup and login was answered right; logins kept checking the hash ({:.1} ms of \
         CPU each, a check costs {:.1} ms); no poll on the service's {} workers routinely ran \
         {:.0} ms, and they were held {:.1} ms per login beyond the page views' needs; lookups \
         took p99 {:.2} ms while people logged in ({:.1}x alone).",
        figures.cpu.per_login_ms,
        figures.cpu.check_ms,
        figures.polls.worker_threads,
        POLL_BOUND.as_secs_f64() * 1000.0,
        figures.held_per_login_ms().unwrap_or(0.0),
        figures.lookups_under_logins.p99_ms,
        figures.lookup_slowdown().unwrap_or(1.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Figures {
        Figures {
            lookups_alone: Some(Lookups {
                finished: 120,
                p50_ms: 0.3,
                p99_ms: 0.8,
                ..Lookups::default()
            }),
            lookups_under_logins: Lookups {
                finished: 400,
                p50_ms: 0.4,
                p99_ms: 2.4,
                ..Lookups::default()
            },
            logins: Logins {
                finished: 60,
                accepted: 40,
                refused: 20,
                hashed: 52,
                ..Logins::default()
            },
            returning: Logins::default(),
            sessions: Sessions::default(),
            cpu: Cpu {
                check_ms: 30.0,
                per_login_ms: 31.5,
            },
            polls: Polls {
                worker_threads: 2,
                blocking: Blocking {
                    request_polls: 3_000,
                    ..Blocking::default()
                },
            },
            // The page views' 20 ms (400 at 0.05 ms), and 0.5 ms per login.
            workers: Workers {
                per_lookup_alone_ms: Some(0.05),
                on_cpu_ms: 44.0,
                asleep_ms: 2.0,
            },
            lookup_wait_ms: 0.25,
        }
    }

    fn problems(figures: &Figures) -> String {
        let verdict = verdict(figures);
        assert!(!verdict.healthy, "expected unhealthy: {}", verdict.summary);
        verdict.summary
    }

    /// Hashing inside the poll: 52 polls of ~30 ms, holding the workers.
    fn long_polls(figures: &mut Figures) {
        figures.polls.blocking.hogging_polls = 52;
        figures.polls.blocking.longest_hogging_ms = 41.0;
        figures.workers.on_cpu_ms += 52.0 * 30.0;
    }

    /// `long` long polls, and only them.
    fn only_long_polls(figures: &mut Figures, long: u64) {
        figures.polls.blocking.hogging_polls = long;
        figures.polls.blocking.longest_hogging_ms = 35.0;
    }

    #[test]
    fn a_healthy_run_says_what_held() {
        let verdict = verdict(&healthy());
        assert!(verdict.healthy, "{}", verdict.summary);
        assert_eq!(
            verdict.summary,
            "Every lookup and login was answered right; logins kept checking the hash (31.5 ms of \
             CPU each, a check costs 30.0 ms); no poll on the service's 2 workers routinely ran \
             10 ms, and they were held 0.5 ms per login beyond the page views' needs; lookups \
             took p99 2.40 ms while people logged in (3.0x alone)."
        );
    }

    #[test]
    fn routine_long_polls_are_named_and_rare_ones_are_not() {
        let mut figures = healthy();
        long_polls(&mut figures);
        let text = problems(&figures);
        assert!(
            text.contains(
                "52 polls on the service's 2 worker threads ran 10 ms or longer (the longest 41 ms; \
                 52 logins had a hash to check)"
            ),
            "{text}"
        );
        assert!(!text.contains("more worker threads"), "{text}");
        // A stray or two in a correct fix.
        let mut strays = healthy();
        only_long_polls(&mut strays, LONG_POLLS_MIN - 1);
        strays.logins.hashed = 2;
        assert!(verdict(&strays).healthy);
    }

    #[test]
    fn long_polls_are_counted_against_the_logins_that_hashed_not_all_polls() {
        // As on a loaded CI machine: 12 logins had a hash to check, 11 long
        // polls, and many cheap lookups polled in between.
        let mut figures = healthy();
        figures.logins.hashed = 12;
        only_long_polls(&mut figures, 11);
        for request_polls in [1_394, 1_000_000] {
            figures.polls.blocking.request_polls = request_polls;
            assert!(
                problems(&figures).contains("11 polls on the service's 2 worker threads"),
                "{request_polls} polls"
            );
        }
        // Both sides of the threshold: half the logins that hashed.
        only_long_polls(&mut figures, 6);
        assert!(!verdict(&figures).healthy);
        only_long_polls(&mut figures, 5);
        assert!(verdict(&figures).healthy, "{}", verdict(&figures).summary);
        // A few strays in a correct fix that checked many hashes.
        figures.logins.hashed = 52;
        only_long_polls(&mut figures, 4);
        assert!(verdict(&figures).healthy);
        // The returning users' logins, before the traffic, count too: the
        // watch counts long polls over the whole run.
        figures.logins.hashed = 8;
        figures.returning.hashed = 4;
        only_long_polls(&mut figures, 6);
        assert!(problems(&figures).contains("(the longest 35 ms; 12 logins had a hash to check)"));
        only_long_polls(&mut figures, 5);
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn a_poll_that_never_returns_is_routine_by_itself() {
        let mut figures = healthy();
        figures.polls.blocking.stuck =
            Some("a request has not returned from one poll for 2.1 s".to_owned());
        assert!(problems(&figures).contains("; a request has not returned from one poll"));
    }

    #[test]
    fn more_workers_do_not_shorten_a_poll() {
        let mut figures = healthy();
        long_polls(&mut figures);
        figures.polls.worker_threads = 16;
        let text = problems(&figures);
        assert!(text.contains("more worker threads make it rarer"), "{text}");
    }

    #[test]
    fn a_login_that_stops_hashing_is_not_a_fix() {
        let mut figures = healthy();
        figures.cpu.per_login_ms = 0.2;
        let text = problems(&figures);
        assert!(
            text.contains("used 0.20 ms of CPU per login, and one password check costs 30.0 ms"),
            "{text}"
        );
        figures.cpu.per_login_ms = 15.0;
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn workers_held_by_checks_are_named_wherever_the_checks_run() {
        // The checks in tasks of their own on the workers: no long poll the
        // harness timed, but the workers were held a check per login.
        let mut figures = healthy();
        figures.workers.on_cpu_ms = 20.0 + 52.0 * 30.0;
        let text = problems(&figures);
        assert!(
            text.contains(
                "the service's 2 worker threads were held 30.0 ms per login that had a hash to \
                 check, beyond what the page views needed — 100% of one password check's 30.0 ms \
                 (bound 50%; 1580 ms computing and 2 ms asleep in all"
            ),
            "{text}"
        );
        assert!(
            text.contains("moves the long poll, it does not remove it"),
            "{text}"
        );
        assert!(!text.contains("mostly asleep"), "{text}");
        // Where the polls were long too, that is said already.
        long_polls(&mut figures);
        assert!(!problems(&figures).contains("moves the long poll"));
    }

    #[test]
    fn the_held_bound_has_two_sides_and_sleeping_counts() {
        let mut figures = healthy();
        // 15 ms per login is half a check; the page views' 20 ms are theirs.
        figures.workers.on_cpu_ms = 20.0 + 52.0 * 15.0 - 2.0;
        assert!(!verdict(&figures).healthy);
        figures.workers.on_cpu_ms -= 1.0;
        assert!(verdict(&figures).healthy, "{}", verdict(&figures).summary);
        // A worker asleep waiting for the check holds it as much.
        figures.workers.on_cpu_ms = 20.0;
        figures.workers.asleep_ms = 52.0 * 30.0;
        let text = problems(&figures);
        assert!(text.contains("were held 30.0 ms per login"), "{text}");
        assert!(
            text.contains("computing or asleep, a held worker polls nothing else"),
            "{text}"
        );
    }

    #[test]
    fn the_page_views_need_of_the_workers_is_theirs() {
        // Twice the page views, each costing the workers 1 ms, as alone.
        let mut figures = healthy();
        figures.workers.per_lookup_alone_ms = Some(1.0);
        figures.workers.on_cpu_ms = 400.0 + 52.0 * 2.0;
        assert!(verdict(&figures).healthy, "{}", verdict(&figures).summary);
        figures.lookups_under_logins.finished = 800;
        figures.workers.on_cpu_ms += 400.0;
        assert!(verdict(&figures).healthy, "{}", verdict(&figures).summary);
        // Without logins that hashed, nothing is claimed.
        figures.logins.hashed = 0;
        figures.workers.on_cpu_ms = 5_000.0;
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn the_lookups_latency_is_evidence_not_a_bound() {
        // A loaded machine: slow page views, though the workers were free.
        let mut figures = healthy();
        figures.lookups_under_logins.p99_ms = 480.0;
        figures.lookup_wait_ms = 40.0;
        let verdict = verdict(&figures);
        assert!(verdict.healthy, "{}", verdict.summary);
        assert!(
            verdict
                .summary
                .contains("lookups took p99 480.00 ms while people logged in (600.0x alone)"),
            "{}",
            verdict.summary
        );
    }

    #[test]
    fn a_failed_lookup_is_named() {
        let mut figures = healthy();
        figures.lookups_under_logins.failed = 1;
        figures.lookups_under_logins.first_failure = Some("redis: timed out".to_owned());
        let text = problems(&figures);
        assert!(text.contains("1 of 460 requests failed"), "{text}");
        assert!(
            text.contains("the first session lookup that failed: redis: timed out"),
            "{text}"
        );
    }

    #[test]
    fn the_returning_users_logins_are_judged_too() {
        let mut figures = healthy();
        figures.returning = Logins {
            finished: 4,
            accepted: 3,
            failed: 1,
            hashed: 4,
            first_failure: Some("user2: redis: timed out".to_owned()),
            ..Logins::default()
        };
        let text = problems(&figures);
        assert!(text.contains("1 of 464 requests failed"), "{text}");
        assert!(
            text.contains("the first login that failed: user2: redis: timed out"),
            "{text}"
        );
    }

    #[test]
    fn wrong_answers_and_sessions_are_named() {
        let mut figures = healthy();
        figures.logins.wrong_answers = 4;
        figures.logins.first_wrong = Some("user1 with a wrong password: a session".to_owned());
        figures.sessions.extra = 4;
        let text = problems(&figures);
        assert!(
            text.contains("4 logins got the wrong answer; the first: user1 with a wrong password"),
            "{text}"
        );
        assert!(
            text.contains("Redis holds 4 sessions nobody was given"),
            "{text}"
        );
    }

    #[test]
    fn hung_requests_are_named() {
        let mut figures = healthy();
        figures.logins.unfinished = 2;
        assert!(problems(&figures).contains("2 requests hung"));
    }
}
