//! The verdict: a pure function of the figures a run collected.
//!
//! Each check is one line of the contract (see the crate's docs); each
//! problem line says what broke and, where a learner could have broken it on
//! purpose, why that is not a fix.

use debuglab_harness::report::format_number;
use debuglab_harness::Verdict;

use crate::DASHBOARD_BYTES;

/// Most listeners a healthy service adds per 1,000 dashboards served, after
/// warm-up: one dashboard in twenty, well above the noise of sampling while
/// dashboards come and go and a loaded machine delays their clean-up (a
/// smaller leak still shows in [`Leftovers`], which are exact).
pub const MAX_LISTENERS_PER_1000: f64 = 50.0;
/// Tasks: the same bound.
pub const MAX_TASKS_PER_1000: f64 = 50.0;
/// Redis clients: the same bound.
pub const MAX_CLIENTS_PER_1000: f64 = 50.0;
/// Heap: 1 MiB per 1,000 dashboards (keeping each closed dashboard's data would be 32 MiB).
pub const MAX_HEAP_BYTES_PER_1000: f64 = 1024.0 * 1024.0;
/// Tasks more than before the first dashboard that may still be alive once
/// every dashboard has closed (the harness's own connections come and go).
pub const MAX_TASKS_LEFT: i64 = 4;

/// What a run measured, everything the verdict looks at.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// The dashboards, as the workload saw them.
    pub dashboards: Dashboards,
    /// The events due to open dashboards, and those they showed.
    pub deliveries: Deliveries,
    /// Growth per 1,000 dashboards served, after warm-up.
    pub growth: Growth,
    /// What was left once every dashboard had closed.
    pub leftovers: Leftovers,
}

/// The dashboards, as the workload saw them.
#[derive(Clone, Debug, Default)]
pub struct Dashboards {
    /// Dashboards the run planned (in a live run, those it started).
    pub planned: usize,
    /// Dashboards that opened, got their rounds, and closed.
    pub served: usize,
    /// Dashboards that failed to open or update.
    pub failed: usize,
    /// Dashboards still open when the workload ended.
    pub unfinished: usize,
    /// The first failure.
    pub first_error: Option<String>,
}

/// The events due to open dashboards, and those they showed.
#[derive(Clone, Debug, Default)]
pub struct Deliveries {
    /// Announcements published while a dashboard was open, summed over dashboards.
    pub announcements_due: u64,
    /// Of those, not shown on that dashboard.
    pub announcements_missed: u64,
    /// Price alerts published for an open dashboard's user.
    pub alerts_due: u64,
    /// Of those, not shown on that dashboard.
    pub alerts_missed: u64,
    /// Price alerts Redis delivered to no subscriber (`PUBLISH` answered 0).
    pub alerts_unheard: u64,
    /// Dashboards that missed at least one event while open.
    pub dashboards_missing: usize,
    /// Whether the run stopped waiting long for events after many misses.
    pub impatient: bool,
}

/// Growth per 1,000 dashboards served, after warm-up (least-squares slopes).
#[derive(Clone, Debug, Default)]
pub struct Growth {
    /// Whether enough samples were taken after warm-up to fit a slope.
    pub measured: bool,
    /// Listeners on the bus.
    pub listeners: f64,
    /// Tasks alive on the run's runtime.
    pub tasks: f64,
    /// Clients on the run's Redis database.
    pub redis_clients: f64,
    /// Live heap bytes.
    pub heap_bytes: f64,
}

/// What was left once every dashboard had closed (and a moment to wind down).
#[derive(Clone, Debug, Default)]
pub struct Leftovers {
    /// Listeners still on the bus (a fresh bus per run: anything is left over).
    pub listeners: usize,
    /// Clients still on the run's Redis database, the harness's probes left out.
    pub redis_clients: usize,
    /// Tasks alive beyond those alive before the first dashboard.
    pub tasks: i64,
}

/// Judges a run by its figures.
pub fn verdict(figures: &Figures) -> Verdict {
    let mut problems = dashboard_problems(&figures.dashboards);
    problems.extend(delivery_problems(
        &figures.deliveries,
        figures.dashboards.served,
    ));
    problems.extend(growth_problems(&figures.growth));
    problems.extend(leftover_problems(&figures.leftovers));
    Verdict::from_problems(&problems, || {
        let (growth, deliveries) = (&figures.growth, &figures.deliveries);
        format!(
            "All {} dashboards showed every one of their {} announcements and {} price alerts while open, and left nothing behind: per 1,000 dashboards, listeners {:+.1}, tasks {:+.1}, Redis clients {:+.1}, heap {} KiB.",
            figures.dashboards.served,
            deliveries.announcements_due,
            deliveries.alerts_due,
            growth.listeners,
            growth.tasks,
            growth.redis_clients,
            format_number((growth.heap_bytes / 1024.0).round())
        )
    })
}

fn dashboard_problems(dashboards: &Dashboards) -> Vec<String> {
    let mut problems = Vec::new();
    if dashboards.failed > 0 {
        problems.push(format!(
            "{} dashboards failed to open or update (the first: {})",
            dashboards.failed,
            dashboards.first_error.as_deref().unwrap_or("no message")
        ));
    }
    if dashboards.unfinished > 0 {
        problems.push(format!("{} dashboards hung", dashboards.unfinished));
    }
    let ended = dashboards.served + dashboards.failed + dashboards.unfinished;
    if ended < dashboards.planned {
        problems.push(format!(
            "the workload stopped after {ended} of {} dashboards",
            dashboards.planned
        ));
    }
    problems
}

fn delivery_problems(deliveries: &Deliveries, served: usize) -> Vec<String> {
    if deliveries.dashboards_missing == 0 {
        return Vec::new();
    }
    vec![format!(
        "{} of {served} dashboards missed events while still open ({} of {} announcements, {} of {} price alerts): an open dashboard must show every event for as long as it is open — unsubscribing early is not a fix",
        deliveries.dashboards_missing,
        deliveries.announcements_missed,
        deliveries.announcements_due,
        deliveries.alerts_missed,
        deliveries.alerts_due
    )]
}

fn growth_problems(growth: &Growth) -> Vec<String> {
    let mut problems = Vec::new();
    let per_1000 = |value: f64| format_number(value.round());
    if growth.listeners > MAX_LISTENERS_PER_1000 {
        problems.push(format!(
            "listeners on the bus grow by {} per 1,000 dashboards served",
            per_1000(growth.listeners)
        ));
    }
    if growth.tasks > MAX_TASKS_PER_1000 {
        problems.push(format!(
            "tokio tasks grow by {} per 1,000 dashboards served",
            per_1000(growth.tasks)
        ));
    }
    if growth.redis_clients > MAX_CLIENTS_PER_1000 {
        problems.push(format!(
            "Redis clients grow by {} per 1,000 dashboards served",
            per_1000(growth.redis_clients)
        ));
    }
    if growth.heap_bytes > MAX_HEAP_BYTES_PER_1000 {
        problems.push(format!(
            "the live heap grows by {} KiB per 1,000 dashboards served (a dashboard holds {} KiB)",
            per_1000(growth.heap_bytes / 1024.0),
            DASHBOARD_BYTES / 1024
        ));
    }
    problems
}

fn leftover_problems(left: &Leftovers) -> Vec<String> {
    let mut problems = Vec::new();
    if left.listeners > 0 {
        problems.push(format!(
            "{} listeners were still registered on the bus after every dashboard had closed: a closed dashboard must leave nothing behind — even a listener that only ignores events once its dashboard is gone costs memory and a call on every publish",
            left.listeners
        ));
    }
    if left.redis_clients > 0 {
        problems.push(format!(
            "{} Redis clients were still connected after every dashboard had closed: each is a subscription, a connection and a task that no dashboard reads any more",
            left.redis_clients
        ));
    }
    if left.tasks > MAX_TASKS_LEFT {
        problems.push(format!(
            "{} more tokio tasks were alive after every dashboard had closed than before the first one",
            left.tasks
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A healthy run: 600 dashboards, three rounds each, nothing left.
    fn healthy() -> Figures {
        Figures {
            dashboards: Dashboards {
                planned: 600,
                served: 600,
                ..Dashboards::default()
            },
            deliveries: Deliveries {
                announcements_due: 1800,
                alerts_due: 1800,
                ..Deliveries::default()
            },
            growth: Growth {
                measured: true,
                listeners: 0.4,
                tasks: -1.2,
                redis_clients: 0.8,
                heap_bytes: 20_000.0,
            },
            leftovers: Leftovers {
                listeners: 0,
                redis_clients: 0,
                tasks: 1,
            },
        }
    }

    /// The buggy service: everything each dashboard registered stays.
    fn leaking() -> Figures {
        let mut figures = healthy();
        figures.growth = Growth {
            measured: true,
            listeners: 1000.0,
            tasks: 2000.0,
            redis_clients: 1000.0,
            heap_bytes: 40.0 * 1024.0 * 1000.0,
        };
        figures.leftovers = Leftovers {
            listeners: 600,
            redis_clients: 600,
            tasks: 1200,
        };
        figures
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
        assert!(
            verdict
                .summary
                .starts_with("All 600 dashboards showed every one of their 1800 announcements and 1800 price alerts"),
            "{}",
            verdict.summary
        );
    }

    #[test]
    fn growth_of_every_kind_is_named() {
        let summary = summary(&leaking());
        assert!(
            summary.starts_with("Listeners on the bus grow by 1,000 per 1,000 dashboards served"),
            "{summary}"
        );
        assert!(
            summary.contains("tokio tasks grow by 2,000 per 1,000"),
            "{summary}"
        );
        assert!(
            summary.contains("Redis clients grow by 1,000 per 1,000"),
            "{summary}"
        );
        assert!(summary.contains("the live heap grows by 40,000 KiB per 1,000 dashboards served (a dashboard holds 32 KiB)"), "{summary}");
        assert!(
            summary.contains(
                "600 listeners were still registered on the bus after every dashboard had closed"
            ),
            "{summary}"
        );
        assert!(
            summary.contains("600 Redis clients were still connected"),
            "{summary}"
        );
        assert!(
            summary.contains("1200 more tokio tasks were alive"),
            "{summary}"
        );
    }

    #[test]
    fn growth_bounds_have_their_edges() {
        let mut figures = healthy();
        figures.growth.listeners = MAX_LISTENERS_PER_1000;
        figures.growth.tasks = MAX_TASKS_PER_1000;
        figures.growth.redis_clients = MAX_CLIENTS_PER_1000;
        figures.growth.heap_bytes = MAX_HEAP_BYTES_PER_1000;
        assert!(verdict(&figures).healthy);
        for (bump, line) in [
            (
                (|g: &mut Growth| g.listeners += 0.1) as fn(&mut Growth),
                "listeners on the bus grow by 50 per",
            ),
            (
                |g: &mut Growth| g.tasks += 0.6,
                "tokio tasks grow by 51 per",
            ),
            (
                |g: &mut Growth| g.redis_clients += 0.1,
                "Redis clients grow by 50 per",
            ),
            (
                |g: &mut Growth| g.heap_bytes += 1.0,
                "the live heap grows by 1,024 KiB per",
            ),
        ] {
            let mut over = figures.clone();
            bump(&mut over.growth);
            assert!(
                summary(&over).to_lowercase().contains(&line.to_lowercase()),
                "{line}"
            );
        }
    }

    #[test]
    fn a_single_listener_left_behind_is_named() {
        let mut figures = healthy();
        figures.leftovers.listeners = 1;
        let summary = summary(&figures);
        assert!(
            summary.starts_with("1 listeners were still registered on the bus"),
            "{summary}"
        );
        assert!(summary.contains(
            "even a listener that only ignores events once its dashboard is gone costs memory"
        ));
    }

    #[test]
    fn a_single_redis_client_left_behind_is_named() {
        let mut figures = healthy();
        figures.leftovers.redis_clients = 1;
        assert!(summary(&figures)
            .starts_with("1 Redis clients were still connected after every dashboard had closed"));
    }

    #[test]
    fn leftover_tasks_have_their_edge() {
        let mut figures = healthy();
        figures.leftovers.tasks = MAX_TASKS_LEFT;
        assert!(verdict(&figures).healthy);
        figures.leftovers.tasks = MAX_TASKS_LEFT + 1;
        assert!(summary(&figures).starts_with("5 more tokio tasks were alive"));
    }

    #[test]
    fn missed_events_say_why_unsubscribing_early_is_not_a_fix() {
        let mut figures = healthy();
        figures.deliveries.announcements_missed = 590;
        figures.deliveries.alerts_missed = 10;
        figures.deliveries.dashboards_missing = 597;
        let summary = summary(&figures);
        assert!(
            summary.starts_with("597 of 600 dashboards missed events while still open (590 of 1800 announcements, 10 of 1800 price alerts)"),
            "{summary}"
        );
        assert!(summary.contains("unsubscribing early is not a fix"));
    }

    #[test]
    fn a_single_missed_event_is_enough() {
        let mut figures = healthy();
        figures.deliveries.alerts_missed = 1;
        figures.deliveries.dashboards_missing = 1;
        assert!(summary(&figures).starts_with("1 of 600 dashboards missed events while still open"));
    }

    #[test]
    fn failed_hung_and_missing_dashboards_are_named() {
        let mut figures = healthy();
        figures.dashboards.served = 590;
        figures.dashboards.failed = 3;
        figures.dashboards.unfinished = 2;
        figures.dashboards.first_error = Some("redis: connection refused".to_owned());
        let summary = summary(&figures);
        assert!(
            summary.starts_with(
                "3 dashboards failed to open or update (the first: redis: connection refused)"
            ),
            "{summary}"
        );
        assert!(summary.contains("2 dashboards hung"));
        assert!(summary.contains("the workload stopped after 595 of 600 dashboards"));
    }

    #[test]
    fn unmeasured_growth_is_not_a_problem_by_itself() {
        let mut figures = healthy();
        figures.growth = Growth::default();
        assert!(verdict(&figures).healthy);
    }
}
