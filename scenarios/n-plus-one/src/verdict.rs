//! The verdict: a pure function of the figures a run collected.
//!
//! Each check is one line of the contract (see the crate's docs); each
//! problem line says what broke and, where a learner could have broken it on
//! purpose, why that is not a fix. Statements and rows are counted by
//! PostgreSQL itself, so no variant can make them look smaller; latency is
//! in the figures as the symptom a user sees, and in the summaries, but no
//! check depends on it.

use debuglab_harness::report::grouped;
use debuglab_harness::scenario;
use debuglab_harness::Verdict;

/// Statements a page may cost, on average, whatever its size.
///
/// A page needs its orders and their line items; a third statement leaves
/// room for reading the products on their own. What matters is that the
/// count does not grow with the page: a page of a hundred orders that costs
/// a statement per order is over it by thirty times.
pub const STATEMENTS_PER_PAGE_BOUND: f64 = 3.0;

/// Rows PostgreSQL may return per row the page shows (orders and line items).
///
/// Reading the orders and the items apart returns each once; a join that
/// repeats the order on every line stays under it too. Fetching a
/// customer's whole history, or the whole table, to keep a page of it does
/// not.
pub const ROWS_PER_SHOWN_BOUND: f64 = 2.0;

/// What a run measured, everything the verdict looks at.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// The requests of every page size, as the clients saw them.
    pub requests: Requests,
    /// What each page size cost, in the order the traffic asked for them.
    pub pages: Vec<PageFigures>,
    /// The changes made behind the endpoint's back, and what it showed.
    pub freshness: Freshness,
    /// Whether the server keeps `pg_stat_statements` (without it, nothing is counted).
    pub statement_stats: bool,
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
    /// Pages that differ from the reference.
    pub wrong_answers: usize,
    /// The first wrong page, described.
    pub first_wrong: Option<String>,
    /// The first error.
    pub first_error: Option<String>,
}

impl Requests {
    /// Requests that returned a page.
    pub fn answered(&self) -> usize {
        self.finished - self.failed
    }
}

/// What the pages of one size cost.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageFigures {
    /// Orders per page.
    pub page_size: i64,
    /// Pages answered.
    pub answered: usize,
    /// Orders and line items those pages show, by the reference.
    pub rows_shown: usize,
    /// Statements PostgreSQL ran meanwhile (`pg_stat_statements`); `None`
    /// when the server keeps no statistics.
    pub statements: Option<i64>,
    /// Rows those statements returned.
    pub rows: Option<i64>,
    /// Their execution time on the server, in milliseconds (shown, not judged).
    pub db_ms: f64,
    /// Median latency of a page (the symptom; not judged).
    pub p50_ms: f64,
    /// 95th percentile latency of a page (the symptom; not judged).
    pub p95_ms: f64,
}

impl PageFigures {
    /// Statements per answered page.
    pub fn statements_per_page(&self) -> Option<f64> {
        self.statements
            .map(|calls| calls as f64 / self.answered.max(1) as f64)
    }

    /// Rows returned per row shown.
    pub fn rows_per_shown(&self) -> Option<f64> {
        self.rows
            .map(|rows| rows as f64 / self.rows_shown.max(1) as f64)
    }
}

/// The freshness check: a new order and a renamed product for customers
/// the endpoint had answered.
#[derive(Clone, Debug, Default)]
pub struct Freshness {
    /// Customers whose page changed and who were asked for again.
    pub checked: usize,
    /// Pages that did not show the change (or failed).
    pub stale: usize,
    /// The first stale page, described.
    pub first_stale: Option<String>,
}

impl Figures {
    /// The pages of the largest size the run asked for.
    pub fn largest_page(&self) -> Option<&PageFigures> {
        self.pages.iter().max_by_key(|page| page.page_size)
    }
}

/// Judges a run by its figures.
pub fn verdict(figures: &Figures) -> Verdict {
    let mut problems = request_problems(&figures.requests);
    problems.extend(freshness_problems(&figures.freshness));
    problems.extend(statement_problems(figures));
    problems.extend(row_problems(&figures.pages));
    Verdict::from_problems(&problems, || healthy_summary(figures))
}

fn request_problems(requests: &Requests) -> Vec<String> {
    let mut problems =
        scenario::request_problems(requests.finished, requests.failed, requests.unfinished);
    if requests.wrong_answers > 0 {
        problems.push(format!(
            "{} of {} pages differ from the reference: a page must show the customer's newest \
             orders, every line item and the products' current names — a faster page that shows \
             less is not a fix",
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
        "{} of {} customers did not see the order they had just placed or a product's new name: \
         rows kept in memory between requests are stale the moment the shop changes — hiding \
         the database behind a cache is not a fix",
        freshness.stale, freshness.checked
    )]
}

fn statement_problems(figures: &Figures) -> Vec<String> {
    let answered: usize = figures.pages.iter().map(|page| page.answered).sum();
    if answered == 0 {
        return Vec::new();
    }
    if !figures.statement_stats {
        return vec![
            "the statements per page could not be counted: this server keeps no \
                     pg_stat_statements"
                .to_owned(),
        ];
    }
    let statements: i64 = figures
        .pages
        .iter()
        .filter_map(|page| page.statements)
        .sum();
    let mut problems = Vec::new();
    if statements < answered as i64 {
        problems.push(format!(
            "PostgreSQL ran {statements} statements for {answered} pages: pages that do not \
             come from the database miss the orders placed since"
        ));
    }
    let over = figures.pages.iter().any(|page| {
        page.answered > 0 && page.statements_per_page().unwrap_or(0.0) > STATEMENTS_PER_PAGE_BOUND
    });
    if over {
        problems.push(format!(
            "PostgreSQL ran {} (bound {STATEMENTS_PER_PAGE_BOUND:.0}, whatever the page size): \
             statements that grow with the page cost a round trip each, however fast each one is \
             and however many run at once",
            per_page_list(&figures.pages)
        ));
    }
    problems
}

/// `101.0 statements per page of 100 orders, 21.0 per page of 20`, largest first.
fn per_page_list(pages: &[PageFigures]) -> String {
    let mut pages: Vec<&PageFigures> = pages.iter().filter(|page| page.answered > 0).collect();
    pages.sort_by_key(|page| std::cmp::Reverse(page.page_size));
    pages
        .iter()
        .enumerate()
        .map(|(index, page)| {
            let what = if index == 0 { " statements" } else { "" };
            format!(
                "{:.1}{what} per page of {} orders",
                page.statements_per_page().unwrap_or(0.0),
                page.page_size
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn row_problems(pages: &[PageFigures]) -> Vec<String> {
    pages
        .iter()
        .filter(|page| page.answered > 0)
        .filter(|page| {
            page.rows_per_shown()
                .is_some_and(|ratio| ratio > ROWS_PER_SHOWN_BOUND)
        })
        .map(|page| {
            let answered = page.answered as f64;
            format!(
                "PostgreSQL returned {} rows per page of {} orders, which shows {} orders and line \
                 items (bound {ROWS_PER_SHOWN_BOUND:.0}x): fetching more than the page and keeping \
                 part of it in the service moves the database's work onto the network — not a fix",
                grouped((page.rows.unwrap_or(0) as f64 / answered).round()),
                page.page_size,
                grouped((page.rows_shown as f64 / answered).round())
            )
        })
        .collect()
}

fn healthy_summary(figures: &Figures) -> String {
    let pages = |each: &dyn Fn(&PageFigures) -> String| {
        figures
            .pages
            .iter()
            .map(each)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "All {} pages matched the reference and changes showed at once; PostgreSQL ran {} \
         (bound {STATEMENTS_PER_PAGE_BOUND:.0}); p50 latency {}.",
        figures.requests.answered(),
        pages(&|page| format!(
            "{:.1} statements per page of {}",
            page.statements_per_page().unwrap_or(0.0),
            page.page_size
        )),
        pages(&|page| format!("{:.1} ms for {} orders", page.p50_ms, page.page_size)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages of `size` orders, `per_page` statements each, the rows shown returned once.
    fn pages(size: i64, answered: usize, per_page: i64) -> PageFigures {
        let rows_shown = answered * size as usize * 7 / 2;
        PageFigures {
            page_size: size,
            answered,
            rows_shown,
            statements: Some(answered as i64 * per_page),
            rows: Some(rows_shown as i64),
            db_ms: 0.05 * (answered as i64 * per_page) as f64,
            p50_ms: 1.0 + per_page as f64,
            p95_ms: 2.0 + per_page as f64,
        }
    }

    /// A healthy run: 64 right pages, two statements each.
    fn healthy() -> Figures {
        Figures {
            requests: Requests {
                finished: 64,
                ..Requests::default()
            },
            pages: vec![pages(20, 40, 2), pages(100, 24, 2)],
            freshness: Freshness {
                checked: 5,
                ..Freshness::default()
            },
            statement_stats: true,
        }
    }

    fn problems(figures: &Figures) -> String {
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
            "All 64 pages matched the reference and changes showed at once; PostgreSQL ran 2.0 \
             statements per page of 20, 2.0 statements per page of 100 (bound 3); p50 latency \
             3.0 ms for 20 orders, 3.0 ms for 100 orders."
        );
    }

    #[test]
    fn a_statement_per_order_is_named_for_both_page_sizes() {
        let mut figures = healthy();
        figures.pages = vec![pages(20, 40, 21), pages(100, 24, 101)];
        let text = problems(&figures);
        assert!(
            text.contains(
                "PostgreSQL ran 101.0 statements per page of 100 orders, 21.0 per page of 20 orders \
                 (bound 3, whatever the page size): statements that grow with the page cost a round \
                 trip each, however fast each one is and however many run at once"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_statement_bound_has_its_edge_on_every_page_size() {
        let mut figures = healthy();
        figures.pages = vec![pages(20, 40, 3), pages(100, 24, 3)];
        assert!(verdict(&figures).healthy);
        // A big page alone over the bound is enough.
        figures.pages[1].statements = Some(24 * 4);
        let text = problems(&figures);
        assert!(
            text.contains(
                "PostgreSQL ran 4.0 statements per page of 100 orders, 3.0 per page of 20"
            ),
            "{text}"
        );
    }

    #[test]
    fn latency_alone_never_decides() {
        let mut figures = healthy();
        for page in &mut figures.pages {
            page.p50_ms = 900.0;
            page.p95_ms = 4_000.0;
        }
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn fetching_more_than_the_page_is_not_a_fix() {
        let mut figures = healthy();
        figures.pages[0].rows = Some(40 * 150_000);
        let text = problems(&figures);
        assert!(
            text.contains(
                "PostgreSQL returned 150,000 rows per page of 20 orders, which shows 70 orders and \
                 line items (bound 2x): fetching more than the page"
            ),
            "{text}"
        );
        figures.pages[0].rows = Some(figures.pages[0].rows_shown as i64 * 2);
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn stale_pages_are_not_a_fix() {
        let mut figures = healthy();
        figures.freshness.stale = 5;
        let text = problems(&figures);
        assert!(
            text.contains("5 of 5 customers did not see the order they had just placed"),
            "{text}"
        );
        assert!(
            text.contains("hiding the database behind a cache is not a fix"),
            "{text}"
        );
    }

    #[test]
    fn pages_from_memory_are_counted_by_the_server() {
        let mut figures = healthy();
        figures.pages[0].statements = Some(1);
        figures.pages[1].statements = Some(0);
        assert!(problems(&figures).contains("PostgreSQL ran 1 statements for 64 pages"));
        figures.pages[0].statements = Some(40);
        figures.pages[1].statements = Some(24);
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn wrong_failed_and_hung_pages_are_named() {
        let mut figures = healthy();
        figures.requests.wrong_answers = 7;
        figures.requests.failed = 2;
        figures.requests.unfinished = 1;
        let text = problems(&figures);
        assert!(text.contains("2 of 64 requests failed"), "{text}");
        assert!(text.contains("1 requests hung"), "{text}");
        assert!(
            text.contains("7 of 62 pages differ from the reference"),
            "{text}"
        );
        assert!(
            text.contains("a faster page that shows less is not a fix"),
            "{text}"
        );
        let mut figures = healthy();
        figures.requests.finished = 0;
        figures.pages.clear();
        assert!(problems(&figures).starts_with("No request finished"));
    }

    #[test]
    fn without_statement_statistics_nothing_is_claimed() {
        let mut figures = healthy();
        figures.statement_stats = false;
        for page in &mut figures.pages {
            (page.statements, page.rows) = (None, None);
        }
        assert!(problems(&figures)
            .contains("could not be counted: this server keeps no pg_stat_statements"));
    }
}
