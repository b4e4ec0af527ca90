//! The verdict: a pure function of the run's figures.
//!
//! Polls are timed by the harness's watch in CPU time (a poll that waits for
//! a busy CPU does not count), the hashing by CPU time against a check
//! calibrated in the same run, and the lookups' latency against their own
//! latency alone in the same run: no figure depends on how fast or how busy
//! this machine is.

use std::time::Duration;

use debuglab_harness::guard::Blocking;
use debuglab_harness::scenario;
use debuglab_harness::Verdict;

/// A poll on the service's workers that computes (or sleeps) this long is
/// long: everything else queued on that worker waits for it.
pub const POLL_BOUND: Duration = Duration::from_millis(10);

/// Long polls that make them routine: at least this many, and at least
/// [`LONG_POLL_SHARE`] of all polls (a busy machine can stretch a rare one).
pub const LONG_POLLS_MIN: u64 = 3;

/// See [`LONG_POLLS_MIN`].
pub const LONG_POLL_SHARE: f64 = 0.01;

/// How many times their p99 alone session lookups may take while people log in.
pub const LOOKUP_SLOWDOWN_BOUND: f64 = 20.0;

/// How long, as a share of one password check's CPU time, a session
/// lookup may wait on average for a worker to first poll it while people
/// log in: a lookup that waits for a check to end waits a good part of one.
pub const LOOKUP_WAIT_SHARE_MAX: f64 = 0.1;

/// The share of one password check's CPU time a login must still cost.
pub const HASH_CPU_SHARE_MIN: f64 = 0.5;

/// What a run measured, everything the verdict looks at.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Session lookups alone (`None` in a live run, which skips them).
    pub lookups_alone: Option<Lookups>,
    /// Session lookups while people log in.
    pub lookups_under_logins: Lookups,
    /// The logins.
    pub logins: Logins,
    /// The sessions Redis holds afterwards.
    pub sessions: Sessions,
    /// CPU time per login against one password check's.
    pub cpu: Cpu,
    /// The service's polls.
    pub polls: Polls,
    /// How long a session lookup waited on average, while people logged in,
    /// for a worker to first poll it (`tokio-metrics`), in milliseconds.
    pub lookup_wait_ms: f64,
}

impl Figures {
    /// The lookups' p99 under logins over their p99 alone.
    pub fn lookup_slowdown(&self) -> Option<f64> {
        let alone = self.lookups_alone.as_ref()?;
        (alone.p99_ms > 0.0 && self.lookups_under_logins.finished > 0)
            .then(|| self.lookups_under_logins.p99_ms / alone.p99_ms)
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

    /// Whether long polls are routine, or one never returned.
    pub fn routine(&self) -> bool {
        self.blocking.stuck.is_some()
            || (self.long() >= LONG_POLLS_MIN
                && self.long() as f64 >= LONG_POLL_SHARE * self.blocking.request_polls as f64)
    }
}

/// Judges a run by its figures.
pub fn verdict(figures: &Figures) -> Verdict {
    let mut problems = answer_problems(figures);
    problems.extend(hashing_problems(figures));
    problems.extend(poll_problems(&figures.polls));
    problems.extend(wait_problems(figures));
    problems.extend(slowdown_problems(figures));
    Verdict::from_problems(&problems, || healthy_summary(figures))
}

fn answer_problems(figures: &Figures) -> Vec<String> {
    let (lookups, logins) = (&figures.lookups_under_logins, &figures.logins);
    let mut problems = scenario::request_problems(
        lookups.finished + logins.finished,
        lookups.failed + logins.failed,
        lookups.unfinished + logins.unfinished,
    );
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

fn poll_problems(polls: &Polls) -> Vec<String> {
    if !polls.routine() {
        return Vec::new();
    }
    let mut line = format!(
        "{} polls on the service's {} worker threads ran {:.0} ms or longer (the longest {:.0} ms, \
         of {} polls), timed by the harness in CPU time{}",
        polls.long(),
        polls.worker_threads,
        POLL_BOUND.as_secs_f64() * 1000.0,
        polls.longest_ms(),
        polls.blocking.request_polls,
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

fn wait_problems(figures: &Figures) -> Vec<String> {
    let check_ms = figures.cpu.check_ms;
    if check_ms <= 0.0 || figures.lookup_wait_ms <= LOOKUP_WAIT_SHARE_MAX * check_ms {
        return Vec::new();
    }
    let mut line = format!(
        "while people logged in, session lookups waited {:.2} ms on average before a worker of the \
         service first polled them — {:.0}% of one password check's {:.1} ms (bound {:.0}%)",
        figures.lookup_wait_ms,
        figures.lookup_wait_ms / check_ms * 100.0,
        check_ms,
        LOOKUP_WAIT_SHARE_MAX * 100.0
    );
    if !figures.polls.routine() {
        // The long work escaped the polls the harness times: it runs in
        // tasks of its own, on the same workers.
        line.push_str(
            ", though no poll the harness timed was long: moving work into a task of its own on \
             the same runtime moves the long poll, it does not remove it",
        );
    }
    vec![line]
}

fn slowdown_problems(figures: &Figures) -> Vec<String> {
    let Some(slowdown) = figures.lookup_slowdown() else {
        return Vec::new();
    };
    if slowdown <= LOOKUP_SLOWDOWN_BOUND {
        return Vec::new();
    }
    let alone = figures
        .lookups_alone
        .as_ref()
        .map_or(0.0, |lookups| lookups.p99_ms);
    vec![format!(
        "session lookups took p99 {:.1} ms while people logged in, {slowdown:.0}x their {:.2} ms \
         alone (bound {LOOKUP_SLOWDOWN_BOUND:.0}x), though each lookup is one GET",
        figures.lookups_under_logins.p99_ms, alone
    )]
}

fn healthy_summary(figures: &Figures) -> String {
    format!(
        "Every lookup and login was answered right; logins kept checking the hash ({:.1} ms of \
         CPU each, a check costs {:.1} ms); no poll on the service's {} workers ran {:.0} ms; \
         lookups kept p99 {:.2} ms while people logged in ({:.1}x alone).",
        figures.cpu.per_login_ms,
        figures.cpu.check_ms,
        figures.polls.worker_threads,
        POLL_BOUND.as_secs_f64() * 1000.0,
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
            lookup_wait_ms: 0.25,
        }
    }

    fn problems(figures: &Figures) -> String {
        let verdict = verdict(figures);
        assert!(!verdict.healthy, "expected unhealthy: {}", verdict.summary);
        verdict.summary
    }

    /// Hashing inside the poll: 52 polls of ~30 ms.
    fn long_polls(figures: &mut Figures) {
        figures.polls.blocking.hogging_polls = 52;
        figures.polls.blocking.longest_hogging_ms = 41.0;
    }

    #[test]
    fn a_healthy_run_says_what_held() {
        let verdict = verdict(&healthy());
        assert!(verdict.healthy, "{}", verdict.summary);
        assert_eq!(
            verdict.summary,
            "Every lookup and login was answered right; logins kept checking the hash (31.5 ms of \
             CPU each, a check costs 30.0 ms); no poll on the service's 2 workers ran 10 ms; \
             lookups kept p99 2.40 ms while people logged in (3.0x alone)."
        );
    }

    #[test]
    fn routine_long_polls_are_named_and_rare_ones_are_not() {
        let mut figures = healthy();
        long_polls(&mut figures);
        let text = problems(&figures);
        assert!(
            text.contains(
                "52 polls on the service's 2 worker threads ran 10 ms or longer (the longest 41 ms"
            ),
            "{text}"
        );
        assert!(!text.contains("more worker threads"), "{text}");
        figures.polls.blocking.hogging_polls = LONG_POLLS_MIN - 1;
        figures.polls.blocking.longest_hogging_ms = 12.0;
        assert!(verdict(&figures).healthy);
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
    fn slow_lookups_are_judged_against_their_own_baseline() {
        let mut figures = healthy();
        figures.lookups_under_logins.p99_ms = 48.0;
        let text = problems(&figures);
        assert!(
            text.contains("p99 48.0 ms while people logged in, 60x their 0.80 ms alone"),
            "{text}"
        );
        figures.lookups_under_logins.p99_ms = 16.0;
        assert!(verdict(&figures).healthy);
        // A live run has no baseline: nothing is claimed.
        figures.lookups_alone = None;
        figures.lookups_under_logins.p99_ms = 480.0;
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn lookups_queued_behind_checks_are_named_wherever_the_checks_run() {
        let mut figures = healthy();
        figures.lookup_wait_ms = 6.0;
        let text = problems(&figures);
        assert!(
            text.contains("waited 6.00 ms on average before a worker"),
            "{text}"
        );
        assert!(
            text.contains("20% of one password check's 30.0 ms (bound 10%)"),
            "{text}"
        );
        figures.lookup_wait_ms = 3.0;
        assert!(verdict(&figures).healthy);
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
