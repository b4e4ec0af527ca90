//! The verdict: a pure function of the figures a run collected.
//!
//! Each check is one line of the contract (see the crate's docs); each
//! problem line says what broke and, where a learner could have broken it on
//! purpose, why that is not a fix. Latency is in the figures as the symptom a
//! user sees, and in the healthy summary, but no check depends on it.

use debuglab_harness::report::grouped;
use debuglab_harness::scenario;
use debuglab_harness::Verdict;

/// Shared buffers PostgreSQL may touch per request, on average.
///
/// Ten orders of one user, found through a suitable structure, cost about
/// fifteen buffers (a few pages of an index, one page per order); reading
/// every order of the user costs over a hundred, reading the table about
/// eight thousand. The bound sits between, with a wide margin either side,
/// and buffers do not depend on the machine's speed or load.
pub const BUFFERS_PER_REQUEST_BOUND: f64 = 40.0;

/// What a run measured, everything the verdict looks at.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// The requests, as the clients saw them.
    pub requests: Requests,
    /// PostgreSQL's count of the work the requests did (`pg_stat_statements`);
    /// `None` when the server does not keep it.
    pub work: Option<DatabaseWork>,
    /// The new orders placed behind the endpoint's back, and what it showed.
    pub freshness: Freshness,
    /// The plan of one real call, captured with `auto_explain` (or, where
    /// the server log cannot be read, the generic plan of the statement it
    /// ran); `None` when the call ran no statement on `orders`.
    pub plan: Option<PlanFigures>,
}

/// The requests, as the clients saw them.
#[derive(Clone, Debug, Default)]
pub struct Requests {
    /// Requests that finished (answered or failed).
    pub finished: usize,
    /// Requests that returned an error.
    pub failed: usize,
    /// Requests still running when the workload ended.
    pub unfinished: usize,
    /// Answers that differ from the reference.
    pub wrong_answers: usize,
    /// The first wrong answer, described.
    pub first_wrong: Option<String>,
    /// The first error.
    pub first_error: Option<String>,
    /// Median latency (the symptom; not judged).
    pub p50_ms: f64,
    /// 95th percentile latency (the symptom; not judged).
    pub p95_ms: f64,
}

impl Requests {
    /// Requests that returned an answer.
    pub fn answered(&self) -> usize {
        self.finished - self.failed
    }
}

/// The statements the requests ran, from the server's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DatabaseWork {
    /// Statements executed.
    pub statements: i64,
    /// Shared buffers they touched (hit or read).
    pub shared_blocks: i64,
    /// Rows they returned.
    pub rows: i64,
    /// Their execution time, in milliseconds (shown, not judged).
    pub total_ms: f64,
}

/// The freshness check: a new order for users the endpoint had answered.
#[derive(Clone, Debug, Default)]
pub struct Freshness {
    /// Users who got a new order and were asked for again.
    pub checked: usize,
    /// Answers that did not show the new order on top (or failed).
    pub stale: usize,
    /// The first stale answer, described.
    pub first_stale: Option<String>,
}

/// The plan of one call of the endpoint, as far as `orders` is concerned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanFigures {
    /// The nodes that read `orders`, as EXPLAIN names them
    /// (`Parallel Seq Scan on orders`, `Index Scan using … on orders`).
    pub scans: Vec<String>,
    /// Whether any of them reads `orders` through an index.
    pub through_index: bool,
    /// Whether the plan sorts rows itself.
    pub sorts: bool,
    /// What the scans of `orders` read, measured as the call ran; `None`
    /// for a generic plan (the planner's estimates, nothing measured).
    pub rows: Option<RowsRead>,
    /// Rows the call returned.
    pub rows_returned: usize,
    /// Shared buffers the plans touched.
    pub shared_blocks: Option<i64>,
}

impl Figures {
    /// Shared buffers per answered request: from `pg_stat_statements`, or,
    /// on a server without it, from the captured plan.
    pub fn buffers_per_request(&self) -> Option<f64> {
        match (&self.work, &self.plan) {
            (Some(work), _) => {
                Some(work.shared_blocks as f64 / self.requests.answered().max(1) as f64)
            }
            (None, Some(plan)) => plan.shared_blocks.map(|blocks| blocks as f64),
            (None, None) => None,
        }
    }
}

/// What the scans of `orders` read in one call, measured (`ANALYZE`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RowsRead {
    /// Rows read, kept or thrown away.
    pub read: f64,
    /// Rows thrown away after reading them (`Rows Removed by Filter`).
    pub removed: f64,
}

/// Judges a run by its figures.
pub fn verdict(figures: &Figures) -> Verdict {
    let mut problems = request_problems(&figures.requests);
    problems.extend(freshness_problems(&figures.freshness));
    problems.extend(work_problems(figures));
    Verdict::from_problems(&problems, || healthy_summary(figures))
}

fn request_problems(requests: &Requests) -> Vec<String> {
    let mut problems =
        scenario::request_problems(requests.finished, requests.failed, requests.unfinished);
    if requests.wrong_answers > 0 {
        problems.push(format!(
            "{} of {} answers differ from the reference: the page must list the user's ten \
             newest orders, newest first — a faster query that answers another question is not a fix",
            requests.wrong_answers,
            requests.answered()
        ));
    }
    problems
}

fn freshness_problems(freshness: &Freshness) -> Vec<String> {
    if freshness.stale == 0 {
        return Vec::new();
    }
    vec![format!(
        "{} of {} users did not see the order they had just placed: answers kept in memory are \
         stale the moment a user orders — hiding the slow query behind a cache is not a fix",
        freshness.stale, freshness.checked
    )]
}

fn work_problems(figures: &Figures) -> Vec<String> {
    let answered = figures.requests.answered();
    let mut problems = Vec::new();
    if let Some(work) = &figures.work {
        if answered > 0 && work.statements < answered as i64 {
            problems.push(format!(
                "PostgreSQL ran {} statements for {answered} answered requests: answers that do \
                 not come from the database miss the orders placed since",
                work.statements
            ));
        }
    }
    match figures.buffers_per_request() {
        Some(buffers) if buffers > BUFFERS_PER_REQUEST_BOUND => problems.push(format!(
            "each request touched {} shared buffers of PostgreSQL on average, over the bound of \
             {BUFFERS_PER_REQUEST_BOUND:.0} (ten orders fit in a few pages): {}",
            grouped(buffers.round()),
            explain(figures.plan.as_ref())
        )),
        Some(_) => {}
        None if answered > 0 => problems.push(
            "the database work per request could not be measured: this server keeps no \
             pg_stat_statements and its log (for the plan) cannot be read"
                .to_owned(),
        ),
        None => {}
    }
    problems
}

/// What the plan says about the buffers: which scan, how many rows for how few.
fn explain(plan: Option<&PlanFigures>) -> String {
    let Some(plan) = plan else {
        return "the plan of the endpoint's query could not be captured".to_owned();
    };
    let mut line = format!(
        "the {} reads orders with {}{}",
        if plan.rows.is_some() {
            "plan"
        } else {
            "generic plan of its statement"
        },
        plan.scans.join(", "),
        if plan.sorts { " and sorts them" } else { "" },
    );
    if let Some(rows) = plan.rows {
        line.push_str(&format!(", {} rows read", grouped(rows.read.round())));
        if rows.removed > 0.0 {
            line.push_str(&format!(
                " ({} thrown away by the filter)",
                grouped(rows.removed.round())
            ));
        }
        line.push_str(&format!(" to return {}", plan.rows_returned));
    }
    if plan.through_index {
        // The learner has an index already: say why it is not yet the right one.
        line.push_str(
            " — the newest ten can only be found without reading them all when one index \
             serves both the filter and the order",
        );
    }
    line
}

fn healthy_summary(figures: &Figures) -> String {
    let requests = &figures.requests;
    let buffers = figures.buffers_per_request().unwrap_or(0.0);
    let plan = figures
        .plan
        .as_ref()
        .map(|plan| match plan.rows {
            Some(rows) => format!(
                ", orders read with {} ({} rows for {})",
                plan.scans.join(", "),
                grouped(rows.read.round()),
                plan.rows_returned
            ),
            None => format!(
                ", orders read with {} (its generic plan)",
                plan.scans.join(", ")
            ),
        })
        .unwrap_or_default();
    format!(
        "All {} answers matched the reference and new orders showed at once; each request touched {} shared buffers on average (bound {BUFFERS_PER_REQUEST_BOUND:.0}){plan}; p95 latency {:.1} ms.",
        requests.answered(),
        grouped(buffers.round()),
        requests.p95_ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A healthy run: 400 right answers, fifteen buffers each.
    fn healthy() -> Figures {
        Figures {
            requests: Requests {
                finished: 400,
                p50_ms: 0.6,
                p95_ms: 1.4,
                ..Requests::default()
            },
            work: Some(DatabaseWork {
                statements: 400,
                shared_blocks: 400 * 14,
                rows: 4000,
                total_ms: 80.0,
            }),
            freshness: Freshness {
                checked: 10,
                ..Freshness::default()
            },
            plan: Some(PlanFigures {
                scans: vec!["Index Scan using orders_by_user_and_time on orders".to_owned()],
                through_index: true,
                sorts: false,
                rows: Some(RowsRead {
                    read: 10.0,
                    removed: 0.0,
                }),
                rows_returned: 10,
                shared_blocks: Some(14),
            }),
        }
    }

    /// The unhealthy summary, its first letter as the problem line wrote it.
    fn summary(figures: &Figures) -> String {
        let verdict = verdict(figures);
        assert!(!verdict.healthy, "expected unhealthy: {}", verdict.summary);
        // `Verdict` capitalised it; "PostgreSQL" stays as it is.
        let first_word = verdict.summary.split(' ').next().unwrap_or_default();
        if first_word.chars().skip(1).any(char::is_uppercase) {
            return verdict.summary;
        }
        let mut chars = verdict.summary.chars();
        chars
            .next()
            .map(|first| first.to_lowercase().chain(chars).collect())
            .unwrap_or_default()
    }

    #[test]
    fn counts_are_written_in_thousands() {
        assert_eq!(grouped(0.0), "0");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(1_000.0), "1,000");
        assert_eq!(grouped(999_900.4), "999,900");
        assert_eq!(grouped(-12_345.0), "-12,345");
    }

    #[test]
    fn a_healthy_run_says_what_held() {
        let verdict = verdict(&healthy());
        assert!(verdict.healthy, "{}", verdict.summary);
        assert_eq!(
            verdict.summary,
            "All 400 answers matched the reference and new orders showed at once; each request \
             touched 14 shared buffers on average (bound 40), orders read with Index Scan using \
             orders_by_user_and_time on orders (10 rows for 10); p95 latency 1.4 ms."
        );
    }

    #[test]
    fn latency_alone_never_decides() {
        let mut figures = healthy();
        figures.requests.p50_ms = 400.0;
        figures.requests.p95_ms = 2_000.0;
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn the_buffer_bound_has_its_edge() {
        let mut figures = healthy();
        figures.work.as_mut().unwrap().shared_blocks = 400 * 40;
        assert!(verdict(&figures).healthy);
        figures.work.as_mut().unwrap().shared_blocks = 400 * 40 + 200;
        assert!(summary(&figures).contains(
            "each request touched 41 shared buffers of PostgreSQL on average, over the bound of 40"
        ));
    }

    #[test]
    fn reading_the_whole_table_is_explained_by_the_plan() {
        let mut figures = healthy();
        figures.work.as_mut().unwrap().shared_blocks = 400 * 8_400;
        figures.plan = Some(PlanFigures {
            scans: vec!["Parallel Seq Scan on orders".to_owned()],
            through_index: false,
            sorts: true,
            rows: Some(RowsRead {
                read: 1_000_000.0,
                removed: 999_900.0,
            }),
            rows_returned: 10,
            shared_blocks: Some(8_400),
        });
        let summary = summary(&figures);
        assert!(
            summary.contains(
                "each request touched 8,400 shared buffers of PostgreSQL on average, over the bound of 40 \
                 (ten orders fit in a few pages): the plan reads orders with Parallel Seq Scan on orders \
                 and sorts them, 1,000,000 rows read (999,900 thrown away by the filter) to return 10."
            ),
            "{summary}"
        );
        // Nothing about the cure while no index is used.
        assert!(!summary.contains("index"), "{summary}");
    }

    #[test]
    fn an_index_on_the_filter_alone_is_explained() {
        let mut figures = healthy();
        figures.work.as_mut().unwrap().shared_blocks = 400 * 104;
        figures.plan = Some(PlanFigures {
            scans: vec!["Bitmap Heap Scan on orders".to_owned()],
            through_index: true,
            sorts: true,
            rows: Some(RowsRead {
                read: 100.0,
                removed: 0.0,
            }),
            rows_returned: 10,
            shared_blocks: Some(104),
        });
        let summary = summary(&figures);
        assert!(
            summary.contains(
                "the plan reads orders with Bitmap Heap Scan on orders and sorts them, 100 rows read to return 10 \
                 — the newest ten can only be found without reading them all when one index serves both the filter and the order"
            ),
            "{summary}"
        );
    }

    #[test]
    fn an_index_on_the_order_alone_is_explained() {
        let mut figures = healthy();
        figures.work.as_mut().unwrap().shared_blocks = 400 * 90_000;
        figures.plan = Some(PlanFigures {
            scans: vec!["Index Scan using orders_by_time on orders".to_owned()],
            through_index: true,
            sorts: false,
            rows: Some(RowsRead {
                read: 98_010.0,
                removed: 98_000.0,
            }),
            rows_returned: 10,
            shared_blocks: Some(90_000),
        });
        let summary = summary(&figures);
        assert!(
            summary.contains(
                "98,010 rows read (98,000 thrown away by the filter) to return 10 — the newest ten"
            ),
            "{summary}"
        );
    }

    #[test]
    fn a_generic_plan_names_the_scan_and_claims_no_rows() {
        let generic = PlanFigures {
            scans: vec!["Seq Scan on orders".to_owned()],
            through_index: false,
            sorts: true,
            rows: None,
            rows_returned: 10,
            shared_blocks: None,
        };
        let mut figures = healthy();
        figures.plan = Some(generic.clone());
        assert!(verdict(&figures)
            .summary
            .contains("orders read with Seq Scan on orders (its generic plan); p95"));
        figures.work.as_mut().unwrap().shared_blocks = 400 * 8_400;
        let summary = summary(&figures);
        assert!(
            summary.contains(
                "(ten orders fit in a few pages): the generic plan of its statement reads orders \
                 with Seq Scan on orders and sorts them."
            ),
            "{summary}"
        );
        assert!(!summary.contains("rows read"), "{summary}");
        // Without pg_stat_statements a generic plan has no buffers to count.
        figures.work = None;
        assert!(summary_of_unmeasured(&figures));
    }

    fn summary_of_unmeasured(figures: &Figures) -> bool {
        summary(figures).contains("the database work per request could not be measured")
    }

    #[test]
    fn an_uncaptured_plan_still_leaves_the_figure() {
        let mut figures = healthy();
        figures.work.as_mut().unwrap().shared_blocks = 400 * 500;
        figures.plan = None;
        assert!(summary(&figures)
            .contains("over the bound of 40 (ten orders fit in a few pages): the plan of the endpoint's query could not be captured"));
    }

    #[test]
    fn without_statement_statistics_the_plan_counts() {
        let mut figures = healthy();
        figures.work = None;
        assert!(verdict(&figures).healthy);
        figures.plan.as_mut().unwrap().shared_blocks = Some(8_400);
        assert!(summary(&figures).contains("each request touched 8,400 shared buffers"));
        figures.plan = None;
        assert!(summary(&figures).contains("the database work per request could not be measured"));
    }

    #[test]
    fn wrong_answers_are_not_a_fix() {
        let mut figures = healthy();
        figures.requests.wrong_answers = 398;
        let summary = summary(&figures);
        assert!(
            summary.starts_with("398 of 400 answers differ from the reference: the page must list the user's ten newest orders, newest first"),
            "{summary}"
        );
        assert!(summary.contains("a faster query that answers another question is not a fix"));
    }

    #[test]
    fn stale_answers_are_not_a_fix() {
        let mut figures = healthy();
        figures.freshness.stale = 10;
        let summary = summary(&figures);
        assert!(
            summary.starts_with("10 of 10 users did not see the order they had just placed"),
            "{summary}"
        );
        assert!(summary.contains("hiding the slow query behind a cache is not a fix"));
    }

    #[test]
    fn answers_from_memory_are_counted_by_the_server() {
        let mut figures = healthy();
        figures.work.as_mut().unwrap().statements = 1;
        figures.work.as_mut().unwrap().shared_blocks = 8_400;
        let summary = summary(&figures);
        assert!(
            summary.contains("PostgreSQL ran 1 statements for 400 answered requests: answers that do not come from the database"),
            "{summary}"
        );
        // One statement per answer is the edge.
        figures.work.as_mut().unwrap().statements = 400;
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn failed_hung_and_missing_requests_are_named() {
        let mut figures = healthy();
        figures.requests.failed = 3;
        figures.requests.unfinished = 2;
        let text = summary(&figures);
        assert!(text.contains("3 of 400 requests failed"), "{text}");
        assert!(text.contains("2 requests hung"), "{text}");
        let mut figures = healthy();
        figures.requests.finished = 0;
        figures.work = Some(DatabaseWork::default());
        assert!(summary(&figures).starts_with("no request finished"));
    }
}
