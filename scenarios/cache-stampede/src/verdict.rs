//! The verdict: a pure function of the figures a run collected.
//!
//! Each check is one line of the contract (see the crate's docs); each
//! problem line says what broke and, where a learner could have broken it on
//! purpose, why that is not a fix.

use std::time::Duration;

use debuglab_harness::Verdict;

/// The most computations of the report an expiry may cost, on average over
/// the run: one, and room for the odd second.
pub const MAX_COMPUTATIONS_PER_EXPIRY: f64 = 2.0;

/// The most computations of the report a wave of them may hold, on average
/// over the run: one, and room for the odd second (a wave is computations
/// that ran at the same time or soon after one another, see [`AtOnce`]).
pub const MAX_COMPUTATIONS_PER_WAVE: f64 = 1.5;

/// How long past the TTL and twice the slowest request new sales may take to
/// show: room for round trips and scheduling on a busy machine.
pub const FRESHNESS_SLACK: Duration = Duration::from_millis(250);

/// Replica failures named one by one in a verdict; the rest are counted.
const FAILURES_NAMED: usize = 3;

/// What a run measured, everything the verdict looks at.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Replica processes serving at once.
    pub replicas: usize,
    /// Shoppers per replica.
    pub clients: usize,
    /// The report's TTL, in ms.
    pub ttl_ms: f64,
    /// How long the traffic lasted, in ms.
    pub traffic_ms: f64,
    /// What the shoppers got, as the replicas' scenario side recorded it.
    pub requests: Requests,
    /// What PostgreSQL did, by its own statistics.
    pub computations: Computations,
    /// Whether answers followed the new sales (`None` in a live run, which changes nothing).
    pub freshness: Option<Freshness>,
    /// Replica processes that failed, hung or were cut off, described.
    pub replica_failures: Vec<String>,
    /// Why replicas stopped short, as they said.
    pub shortfalls: Vec<String>,
    /// Pools changed from inside a replica (their problem lines).
    pub pool_problems: Vec<String>,
}

/// The requests, as the scenario's side of each replica recorded them.
#[derive(Clone, Debug, Default)]
pub struct Requests {
    /// Requests answered (with a report or an error).
    pub answered: u64,
    /// Answered with an error.
    pub failed: u64,
    /// Answered with a report that is neither the one before nor the one after the new sales.
    pub wrong: u64,
    /// Still waiting when they were cut off, after the traffic ended.
    pub hung: u64,
    /// The first error, as a shopper saw it.
    pub first_error: Option<String>,
}

/// The report's computations, counted and timed by PostgreSQL.
#[derive(Clone, Debug, Default)]
pub struct Computations {
    /// Computations: the run database's shared blocks (`pg_stat_statements`)
    /// divided by one computation's (its plan's own count).
    pub computations: f64,
    /// How long a computation took on average, in ms (`pg_stat_statements`:
    /// the execution time of the statements that touch a computation's blocks).
    pub mean_ms: f64,
    /// How many times the report can have expired during the traffic
    /// ([`expiries`]): once per TTL plus the time to compute a new one.
    pub expiries: f64,
    /// Bursts of the database's work between quiet spells, as the run's
    /// looks saw them (evidence: the verdict counts [`Computations::expiries`]).
    pub bursts: usize,
    /// The most backends seen running at once (`pg_stat_activity`, sampled).
    pub peak_concurrent: i64,
    /// Which computations ran at the same time, by PostgreSQL's log (`None`
    /// where the server log cannot be read).
    pub at_once: Option<AtOnce>,
}

/// Which computations ran at the same time, by PostgreSQL's own log: when
/// each statement that touched a computation's blocks began and ended, in
/// whichever replica process. A computation that begins while another runs,
/// or soon after it ended — while its report is fresh in the cache — repeats
/// work under way or just done.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AtOnce {
    /// Computations in the log.
    pub computations: usize,
    /// Waves of them: a computation joins the wave before it when it began
    /// while one of the wave ran or less than [`WAVE_GAP`] of a TTL after
    /// the wave's first one ended; otherwise it starts a wave of its own.
    /// One computation per expiry is one wave each, however long it takes.
    pub waves: usize,
    /// The most that ran at one moment.
    pub most: usize,
}

/// How long after a computation ends, as a share of the TTL, another one
/// still joins its wave. A computation's report is in the cache for a whole
/// TTL after it ends, so one computation per expiry keeps them a TTL apart
/// at least, on any machine; a busy machine only makes a late duplicate
/// look like a wave of its own, never the other way round.
pub const WAVE_GAP: f64 = 0.5;

impl AtOnce {
    /// Computations per wave: 1.0 when none ever ran beside another.
    pub fn per_wave(&self) -> f64 {
        match self.waves {
            0 => 0.0,
            waves => self.computations as f64 / waves as f64,
        }
    }
}

/// How many times a report kept for `ttl_ms` and taking `mean_ms` to
/// compute can expire in `traffic_ms`: after an expiry a new report exists
/// only once it is computed, and its TTL runs from then. On a busy machine
/// computations take longer and expiries are fewer, for every variant alike:
/// the one computation per expiry of a correct cache stays within 1 + `mean_ms`
/// / `traffic_ms` of it, a computation in each of several replicas above it.
pub fn expiries(traffic_ms: f64, ttl_ms: f64, mean_ms: f64) -> f64 {
    traffic_ms / (ttl_ms + mean_ms.max(0.0))
}

impl Computations {
    /// The most computations that ran at once: by the log where there is
    /// one, else as the sampled looks saw them.
    pub fn most_at_once(&self) -> i64 {
        match &self.at_once {
            Some(at_once) => at_once.most as i64,
            None => self.peak_concurrent,
        }
    }

    /// Computations per expiry.
    pub fn per_expiry(&self) -> f64 {
        if self.expiries <= 0.0 {
            return 0.0;
        }
        self.computations / self.expiries
    }
}

/// How answers followed the new sales committed during the run.
#[derive(Clone, Debug, Default)]
pub struct Freshness {
    /// When the new sales were committed, in ms after the traffic's start.
    pub changed_at_ms: f64,
    /// The slowest request of the run, in ms: how long a computation that
    /// began before the commit may have taken to finish.
    pub slowest_ms: f64,
    /// From when every answer must show the new sales: the commit + TTL +
    /// twice the slowest request + [`FRESHNESS_SLACK`] (a computation begun
    /// before the commit finishing, and the next one after its report expired).
    pub deadline_ms: f64,
    /// Reports answered to requests that began at or after the deadline.
    pub checked: u64,
    /// Of those, the ones that still showed the report without the new sales.
    pub stale: u64,
    /// When the last request that got the old report began, in ms after the
    /// commit (`None` if none did after it).
    pub old_served_for_ms: Option<f64>,
    /// What a storefront started after the traffic got, asked once the TTL
    /// had passed since the last replica stopped.
    pub after_traffic: Seen,
    /// How long after the commit it asked, in ms.
    pub after_traffic_ms: f64,
}

/// What one request got, against the report with the new sales.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Seen {
    /// The report with the new sales.
    #[default]
    Fresh,
    /// The report without them.
    Stale,
    /// Neither report.
    Wrong,
    /// An error, or no answer in time.
    Failed(String),
}

/// Judges a run by its figures.
pub fn verdict(figures: &Figures) -> Verdict {
    let mut problems = replica_problems(figures);
    problems.extend(request_problems(figures));
    problems.extend(freshness_problems(figures));
    problems.extend(computation_problems(figures));
    problems.extend(at_once_problems(figures));
    Verdict::from_problems(&problems, || {
        let computations = &figures.computations;
        let freshness = figures
            .freshness
            .as_ref()
            .map(|freshness| match freshness.old_served_for_ms {
                Some(ms) => format!("; the report without the new sales was last served {ms:.0} ms after they were committed (TTL {:.0} ms)", figures.ttl_ms),
                None => "; no answer showed the old report after the new sales were committed".to_owned(),
            })
            .unwrap_or_default();
        format!(
            "All {} requests of {} replica processes × {} shoppers got the report; PostgreSQL computed it {:.0} times in {:.1} s, {:.1} per expiry of its {:.0} ms TTL, at most {} at once{freshness}.",
            figures.requests.answered,
            figures.replicas,
            figures.clients,
            computations.computations,
            figures.traffic_ms / 1000.0,
            computations.per_expiry(),
            figures.ttl_ms,
            computations.most_at_once(),
        )
    })
}

fn replica_problems(figures: &Figures) -> Vec<String> {
    let failures = &figures.replica_failures;
    let mut problems: Vec<String> = failures.iter().take(FAILURES_NAMED).cloned().collect();
    if failures.len() > FAILURES_NAMED {
        problems.push(format!(
            "{} more replica processes failed",
            failures.len() - FAILURES_NAMED
        ));
    }
    problems.extend(
        figures
            .shortfalls
            .first()
            .map(|why| format!("a replica process stopped short: {why}")),
    );
    problems.extend(figures.pool_problems.iter().cloned());
    problems
}

fn request_problems(figures: &Figures) -> Vec<String> {
    let requests = &figures.requests;
    let mut problems = Vec::new();
    if requests.answered == 0 {
        problems.push("no request was answered".to_owned());
    }
    if requests.failed > 0 {
        problems.push(format!(
            "{} of {} requests failed (first: {}): every shopper must get the report, those who ask while it is being computed too",
            requests.failed,
            requests.answered,
            requests.first_error.as_deref().unwrap_or("no message")
        ));
    }
    if requests.hung > 0 {
        problems.push(format!(
            "{} requests were still waiting for the report {} s after the traffic ended",
            requests.hung,
            crate::replica::HANG_GRACE.as_secs()
        ));
    }
    if requests.wrong > 0 {
        problems.push(format!(
            "{} answers were neither the report before the new sales nor the one after: the report must be what its query computes from the order lines",
            requests.wrong
        ));
    }
    problems
}

fn freshness_problems(figures: &Figures) -> Vec<String> {
    let Some(freshness) = &figures.freshness else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if freshness.stale > 0 {
        let last = freshness
            .old_served_for_ms
            .map(|ms| format!(", the last {ms:.0} ms after the commit"))
            .unwrap_or_default();
        problems.push(format!(
            "{} of {} answers to requests that began more than {:.0} ms after new sales were committed (TTL {:.0} ms + twice the slowest request, {:.0} ms + {} ms) still showed the report without them{last}: every replica must serve the report as the order lines have it, within its TTL",
            freshness.stale,
            freshness.checked,
            freshness.deadline_ms - freshness.changed_at_ms,
            figures.ttl_ms,
            freshness.slowest_ms,
            FRESHNESS_SLACK.as_millis()
        ));
    }
    let asked = format!(
        "a storefront started after the traffic, once the TTL had passed since the last replica stopped ({:.0} ms after new sales were committed),",
        freshness.after_traffic_ms
    );
    match &freshness.after_traffic {
        Seen::Fresh => {}
        Seen::Stale => problems.push(format!(
            "{asked} still got the report without them: the report must follow the order lines within its TTL — a report that never expires never stampedes, but never changes either"
        )),
        Seen::Wrong => problems.push(format!(
            "{asked} got a report that is neither the one before the new sales nor the one after"
        )),
        Seen::Failed(error) => problems.push(format!("{asked} got no report: {error}")),
    }
    problems
}

fn computation_problems(figures: &Figures) -> Vec<String> {
    let computations = &figures.computations;
    let per_expiry = computations.per_expiry();
    if per_expiry <= MAX_COMPUTATIONS_PER_EXPIRY {
        return Vec::new();
    }
    let mut line = format!(
        "PostgreSQL computed the report {:.0} times in {:.1} s of traffic, in which a {:.0} ms TTL and {:.0} ms per computation (pg_stat_statements) make {:.1} expiries: {per_expiry:.1} computations per expiry, up to {} at once; an expiry must cost the database at most {MAX_COMPUTATIONS_PER_EXPIRY} computations, however many shoppers and replicas ask",
        computations.computations,
        figures.traffic_ms / 1000.0,
        figures.ttl_ms,
        computations.mean_ms,
        computations.expiries,
        computations.most_at_once()
    );
    // The teaching comes with the log's count where there is one.
    if computations.at_once.is_none()
        && one_per_replica(figures, computations.peak_concurrent, per_expiry)
    {
        line.push_str(&reach_across(figures));
    }
    vec![line]
}

fn at_once_problems(figures: &Figures) -> Vec<String> {
    let Some(at_once) = &figures.computations.at_once else {
        return Vec::new();
    };
    let per_wave = at_once.per_wave();
    if per_wave <= MAX_COMPUTATIONS_PER_WAVE {
        return Vec::new();
    }
    let mut line = format!(
        "PostgreSQL's log shows {} computations of the report in {}, each computation of a wave begun while another ran or less than {:.0} ms after the first ended (up to {} at one moment): {per_wave:.1} per wave, so {} of them repeated work under way or just done, whose report was fresh; on average a wave may hold at most {MAX_COMPUTATIONS_PER_WAVE} computations, however many shoppers and replicas ask",
        at_once.computations,
        waves(at_once.waves),
        WAVE_GAP * figures.ttl_ms,
        at_once.most,
        at_once.computations - at_once.waves,
    );
    if one_per_replica(figures, at_once.most as i64, per_wave) {
        line.push_str(&reach_across(figures));
    }
    vec![line]
}

/// `1 wave`, `3 waves`.
pub fn waves(count: usize) -> String {
    match count {
        1 => "1 wave".to_owned(),
        _ => format!("{count} waves"),
    }
}

/// Several computations at once, but never more than one per replica, and
/// about one per replica each time (`per`, an expiry or a wave): what a wait
/// that stays within one process looks like. When a computation outlasts
/// the TTL (a busy machine), a replica's waiting callers find the report
/// gone again and compute in turn, one after another: a few per replica.
fn one_per_replica(figures: &Figures, most_at_once: i64, per: f64) -> bool {
    let replicas = figures.replicas as i64;
    let turns = (figures.computations.mean_ms / figures.ttl_ms).max(1.0);
    replicas > 1 && (2..=replicas).contains(&most_at_once) && per <= 1.5 * turns * replicas as f64
}

fn reach_across(figures: &Figures) -> String {
    format!(
        " — about one per replica process each time: whatever makes callers wait for each other must reach across the {} replica processes, which share nothing but PostgreSQL and Redis",
        figures.replicas
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the log showed: computations, waves, the most at one moment.
    fn logged(computations: usize, waves: usize, most: usize) -> Option<AtOnce> {
        Some(AtOnce {
            computations,
            waves,
            most,
        })
    }

    /// A healthy run: 4 replicas × 16 shoppers, 5 expiries, 5 computations,
    /// the new sales shown 270 ms after their commit.
    fn healthy() -> Figures {
        Figures {
            replicas: 4,
            clients: 16,
            ttl_ms: 250.0,
            traffic_ms: 1500.0,
            requests: Requests {
                answered: 4_400,
                ..Requests::default()
            },
            computations: Computations {
                computations: 5.0,
                mean_ms: 50.0,
                expiries: 5.0,
                bursts: 5,
                peak_concurrent: 1,
                at_once: logged(5, 5, 1),
            },
            freshness: Some(Freshness {
                changed_at_ms: 300.0,
                slowest_ms: 60.0,
                deadline_ms: 920.0,
                checked: 1_800,
                stale: 0,
                old_served_for_ms: Some(270.0),
                after_traffic: Seen::Fresh,
                after_traffic_ms: 1_550.0,
            }),
            ..Figures::default()
        }
    }

    fn summary(figures: &Figures) -> String {
        let verdict = verdict(figures);
        assert!(!verdict.healthy, "expected unhealthy: {}", verdict.summary);
        verdict.summary
    }

    #[test]
    fn a_healthy_run_says_what_held() {
        let verdict = verdict(&healthy());
        assert!(verdict.healthy, "{}", verdict.summary);
        assert_eq!(
            verdict.summary,
            "All 4400 requests of 4 replica processes × 16 shoppers got the report; PostgreSQL computed it 5 times in 1.5 s, 1.0 per expiry of its 250 ms TTL, at most 1 at once; the report without the new sales was last served 270 ms after they were committed (TTL 250 ms)."
        );
        let mut live = healthy();
        live.freshness = None;
        assert!(super::verdict(&live).healthy);
    }

    #[test]
    fn computations_per_expiry_are_judged_at_the_bound() {
        let mut figures = healthy();
        figures.computations.computations = 10.0;
        assert!(verdict(&figures).healthy, "{}", verdict(&figures).summary);
        figures.computations.computations = 10.1;
        let summary = summary(&figures);
        assert!(summary.starts_with("PostgreSQL computed the report 10 times in 1.5 s of traffic, in which a 250 ms TTL and 50 ms per computation (pg_stat_statements) make 5.0 expiries: 2.0 computations per expiry, up to 1 at once; an expiry must cost the database at most 2 computations, however many shoppers and replicas ask"), "{summary}");
    }

    #[test]
    fn a_stampede_names_its_counts_and_nothing_about_replicas() {
        let mut figures = healthy();
        figures.computations = Computations {
            computations: 54.0,
            mean_ms: 867.0,
            expiries: expiries(1_500.0, 250.0, 867.0),
            bursts: 1,
            peak_concurrent: 16,
            at_once: None,
        };
        let summary = summary(&figures);
        assert_eq!(summary, "PostgreSQL computed the report 54 times in 1.5 s of traffic, in which a 250 ms TTL and 867 ms per computation (pg_stat_statements) make 1.3 expiries: 40.2 computations per expiry, up to 16 at once; an expiry must cost the database at most 2 computations, however many shoppers and replicas ask.");
    }

    #[test]
    fn expiries_are_a_ttl_plus_a_computation_each() {
        assert_eq!(expiries(1_500.0, 250.0, 50.0), 5.0);
        assert_eq!(expiries(1_500.0, 250.0, 0.0), 6.0);
        assert_eq!(expiries(1_500.0, 250.0, 1_250.0), 1.0);
    }

    /// The replicas' process locks under load: 11 computations in three
    /// waves of four, four and three; per expiry, at the bound.
    fn one_per_replica_in_waves() -> Figures {
        let mut figures = healthy();
        figures.computations.computations = 11.0;
        figures.computations.expiries = 5.5;
        figures.computations.at_once = logged(11, 3, 4);
        figures
    }

    #[test]
    fn computations_at_the_same_time_are_judged_by_the_log_whatever_the_expiries() {
        let figures = one_per_replica_in_waves();
        assert_eq!(figures.computations.per_expiry(), 2.0);
        let summary = summary(&figures);
        assert_eq!(summary, "PostgreSQL's log shows 11 computations of the report in 3 waves, each computation of a wave begun while another ran or less than 125 ms after the first ended (up to 4 at one moment): 3.7 per wave, so 8 of them repeated work under way or just done, whose report was fresh; on average a wave may hold at most 1.5 computations, however many shoppers and replicas ask — about one per replica process each time: whatever makes callers wait for each other must reach across the 4 replica processes, which share nothing but PostgreSQL and Redis.");
    }

    #[test]
    fn a_computation_longer_than_the_ttl_lets_each_replica_compute_in_turn() {
        // Seen in a busy make test: 595 ms per computation against a 200 ms
        // TTL, two computations per replica in one wave, four at once.
        let mut figures = healthy();
        figures.ttl_ms = 200.0;
        figures.computations.mean_ms = 595.0;
        figures.computations.computations = 8.0;
        figures.computations.at_once = logged(8, 1, 4);
        assert!(summary(&figures).contains("8.0 per wave"));
        assert!(summary(&figures).contains("about one per replica process each time"));
        // As quick as the TTL, two per replica is beyond a process's lock.
        figures.computations.mean_ms = 100.0;
        assert!(!summary(&figures).contains("about one per replica"));
    }

    #[test]
    fn computations_per_wave_are_judged_at_the_bound() {
        let mut figures = healthy();
        // Six computations in four waves: the odd second, twice.
        figures.computations.computations = 6.0;
        figures.computations.at_once = logged(6, 4, 2);
        assert!(verdict(&figures).healthy, "{}", verdict(&figures).summary);
        figures.computations.at_once = logged(7, 4, 2);
        let summary = summary(&figures);
        assert!(summary.starts_with("PostgreSQL's log shows 7 computations of the report in 4 waves, each computation of a wave begun while another ran or less than 125 ms after the first ended (up to 2 at one moment): 1.8 per wave, so 3 of them repeated work under way or just done"), "{summary}");
        // Where the log cannot be read, only the count per expiry judges.
        figures.computations.at_once = None;
        assert!(verdict(&figures).healthy, "{}", verdict(&figures).summary);
    }

    #[test]
    fn a_stampede_in_the_log_says_nothing_about_replicas() {
        let mut figures = healthy();
        figures.computations.computations = 150.0;
        figures.computations.at_once = logged(150, 4, 48);
        let summary = summary(&figures);
        assert!(
            summary.contains("37.5 per wave, so 146 of them repeated work under way or just done"),
            "{summary}"
        );
        assert!(!summary.contains("about one per replica"), "{summary}");
        assert_eq!(AtOnce::default().per_wave(), 0.0);
        figures.computations.at_once = logged(48, 1, 16);
        assert!(summary_of(&figures).contains("48 computations of the report in 1 wave, each"));
    }

    #[test]
    fn a_few_at_once_and_no_more_than_the_replicas_says_the_waiting_must_reach_across_them() {
        let mut figures = healthy();
        // What the sampled looks saw, where the server log cannot be read.
        figures.computations.at_once = None;
        figures.computations.computations = 19.0;
        figures.computations.peak_concurrent = 4;
        let summary = summary(&figures);
        assert!(summary.contains("3.8 computations per expiry"), "{summary}");
        assert!(summary.contains("about one per replica process each time: whatever makes callers wait for each other must reach across the 4 replica processes, which share nothing but PostgreSQL and Redis"), "{summary}");
        figures.computations.peak_concurrent = 2;
        assert!(summary_of(&figures).contains("about one per replica"));
        // One at a time, more than the replicas at once, or many more per
        // expiry than replicas: no such teaching.
        for (peak, computations) in [(1, 19.0), (5, 19.0), (4, 31.0)] {
            figures.computations.peak_concurrent = peak;
            figures.computations.computations = computations;
            assert!(
                !summary_of(&figures).contains("about one per replica"),
                "{peak} {computations}"
            );
        }
        // One replica alone has no others to reach.
        figures.replicas = 1;
        figures.computations.peak_concurrent = 1;
        figures.computations.computations = 19.0;
        assert!(!summary_of(&figures).contains("about one per replica"));
    }

    fn summary_of(figures: &Figures) -> String {
        verdict(figures).summary
    }

    #[test]
    fn no_traffic_means_no_expiries_and_no_judgement_on_them() {
        let computations = Computations {
            computations: 3.0,
            mean_ms: 10.0,
            expiries: 0.0,
            bursts: 0,
            peak_concurrent: 1,
            at_once: None,
        };
        assert_eq!(computations.per_expiry(), 0.0);
    }

    #[test]
    fn a_report_that_never_follows_the_data_is_stale() {
        let mut figures = healthy();
        figures.computations.computations = 1.0;
        let freshness = figures.freshness.as_mut().unwrap();
        freshness.stale = 1_800;
        freshness.old_served_for_ms = Some(1_190.0);
        freshness.after_traffic = Seen::Stale;
        let summary = summary(&figures);
        assert_eq!(summary, "1800 of 1800 answers to requests that began more than 620 ms after new sales were committed (TTL 250 ms + twice the slowest request, 60 ms + 250 ms) still showed the report without them, the last 1190 ms after the commit: every replica must serve the report as the order lines have it, within its TTL; a storefront started after the traffic, once the TTL had passed since the last replica stopped (1550 ms after new sales were committed), still got the report without them: the report must follow the order lines within its TTL — a report that never expires never stampedes, but never changes either.");
    }

    #[test]
    fn one_stale_answer_past_the_deadline_is_one_too_many() {
        let mut figures = healthy();
        let freshness = figures.freshness.as_mut().unwrap();
        freshness.stale = 1;
        freshness.old_served_for_ms = Some(620.0);
        let summary = summary(&figures);
        assert!(
            summary.starts_with("1 of 1800 answers to requests that began more than 620 ms"),
            "{summary}"
        );
    }

    #[test]
    fn with_no_answer_late_enough_the_check_after_the_traffic_decides() {
        let mut figures = healthy();
        let freshness = figures.freshness.as_mut().unwrap();
        freshness.checked = 0;
        freshness.old_served_for_ms = Some(1_100.0);
        assert!(verdict(&figures).healthy, "{}", verdict(&figures).summary);
        for (seen, says) in [
            (Seen::Stale, "still got the report without them: the report must follow the order lines within its TTL — a report that never expires never stampedes, but never changes either"),
            (Seen::Wrong, "got a report that is neither the one before the new sales nor the one after"),
            (Seen::Failed("no answer within 10 s".to_owned()), "got no report: no answer within 10 s"),
        ] {
            figures.freshness.as_mut().unwrap().after_traffic = seen;
            let summary = summary(&figures);
            assert_eq!(summary, format!("A storefront started after the traffic, once the TTL had passed since the last replica stopped (1550 ms after new sales were committed), {says}."));
        }
    }

    #[test]
    fn failed_hung_and_wrong_answers_are_named() {
        let mut figures = healthy();
        figures.requests.failed = 61;
        figures.requests.first_error = Some("busy: the report is being computed".to_owned());
        let said = summary(&figures);
        assert_eq!(said, "61 of 4400 requests failed (first: busy: the report is being computed): every shopper must get the report, those who ask while it is being computed too.");
        let mut figures = healthy();
        figures.requests.hung = 3;
        figures.requests.wrong = 7;
        let summary = summary(&figures);
        assert!(
            summary.starts_with(
                "3 requests were still waiting for the report 2 s after the traffic ended"
            ),
            "{summary}"
        );
        assert!(summary.contains("7 answers were neither the report before the new sales nor the one after: the report must be what its query computes from the order lines"), "{summary}");
        let mut figures = healthy();
        figures.requests.answered = 0;
        assert!(summary_of(&figures).starts_with("No request was answered"));
    }

    #[test]
    fn replica_failures_shortfalls_and_pools_come_first() {
        let mut figures = healthy();
        figures.replica_failures = (0..5)
            .map(|index| format!("replica process {index} exited with code 1"))
            .collect();
        figures.shortfalls = vec!["the workload was stopped: a thread was blocked".to_owned()];
        figures.pool_problems = vec!["the PostgreSQL pool was resized from 4 to 1".to_owned()];
        let summary = summary(&figures);
        assert!(summary.starts_with("Replica process 0 exited with code 1; replica process 1 exited with code 1; replica process 2 exited with code 1; 2 more replica processes failed; a replica process stopped short: the workload was stopped: a thread was blocked; the PostgreSQL pool was resized from 4 to 1"), "{summary}");
    }
}
