//! The verdict: a pure function of the figures a run collected.
//!
//! Each check is one line of the contract (see the crate's docs); each
//! problem line says what broke and, where a learner could have broken it on
//! purpose, why that is not a fix.

use std::time::Duration;

use debuglab_harness::report::grouped;
use debuglab_harness::Verdict;

use crate::workload::CONFIG;
use crate::PAGE_BYTES;

/// The hit rate must reach this share of the best any cache reaches on the same views.
pub const MIN_HIT_RATE_SHARE: f64 = 0.8;

/// Most rows the database may return per view: a page needs one.
pub const MAX_ROWS_PER_VIEW: f64 = 1.0;

/// Most the live heap may grow over a run: twice what `max_entries` pages
/// take (the margin covers the cache's own bookkeeping and the run's).
pub const HEAP_BOUND_BYTES: f64 = 2.0 * CONFIG.max_entries as f64 * PAGE_BYTES as f64;

/// Most heap growth per 1,000 views in the second half of a run, when a
/// bounded cache is full (a cache that keeps every page grows by ~500 KiB).
pub const MAX_LATE_HEAP_BYTES_PER_1000: f64 = 100.0 * 1024.0;

/// What a run measured, everything the verdict looks at.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// The views, as the clients saw them.
    pub views: Views,
    /// The database's own count of the work the service asked of it.
    pub database: DatabaseWork,
    /// The process's memory, from the harness's counting allocator.
    pub memory: Memory,
    /// Every key in the run's Redis database.
    pub redis: RedisAudit,
    /// The freshness check: a price change, then a view after the TTL.
    pub freshness: Freshness,
}

/// The views, as the clients saw them.
#[derive(Clone, Debug, Default)]
pub struct Views {
    /// Views the workload planned.
    pub planned: usize,
    /// Views that answered (rightly, wrongly, or with an error).
    pub finished: usize,
    /// Views that failed with an error.
    pub failed: usize,
    /// Views still running when the workload ended.
    pub unfinished: usize,
    /// Views whose page differed from the catalogue's.
    pub wrong_pages: usize,
    /// The product of the first wrong page.
    pub first_wrong: Option<i64>,
    /// The first error, as the client saw it.
    pub first_error: Option<String>,
    /// Distinct existing products among the finished views.
    pub distinct_products: usize,
    /// The best hit rate any cache reaches on the finished views.
    pub ideal_hit_rate: f64,
    /// 99th percentile latency (evidence only).
    pub p99_ms: f64,
}

/// The work PostgreSQL did for the views, from `pg_stat_statements`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DatabaseWork {
    /// Statements executed, whatever their SQL.
    pub statements: i64,
    /// Rows they returned.
    pub rows: i64,
    /// Shared buffers they touched.
    pub shared_blocks: i64,
}

/// The process's memory over the run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Pages the service says its in-process cache holds (its own count).
    pub local_entries: u64,
    /// How much the live heap grew from before the service was built to the
    /// end of the views, the run's own records left out.
    pub heap_growth_bytes: f64,
    /// Heap growth per 1,000 views in the second half of the run; `None`
    /// with too few samples to tell.
    pub late_heap_bytes_per_1000: Option<f64>,
}

/// Every key in the run's Redis database, with its `PTTL`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedisAudit {
    /// `DBSIZE` at the end of the views.
    pub keys: i64,
    /// Keys whose `PTTL` was read.
    pub keys_checked: usize,
    /// Keys that never expire (`PTTL` -1).
    pub never_expiring: usize,
    /// The longest time to live left on any key, in milliseconds.
    pub longest_ttl_ms: Option<u64>,
    /// `INFO memory` `used_memory`.
    pub used_memory_bytes: f64,
}

/// What one view of the freshness check showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PageSeen {
    /// The page as the catalogue has it now.
    #[default]
    Right,
    /// The page as it was before the price changed.
    Stale,
    /// Some other answer (no page, another product's).
    Wrong,
    /// An error, or no answer in time.
    Failed(String),
}

/// The freshness check: a service configured with a short TTL views a
/// product, its price changes in PostgreSQL, and after the TTL it is viewed
/// again by the same instance and by a new one that shares the same Redis.
#[derive(Clone, Debug, Default)]
pub struct Freshness {
    /// The product whose price changed.
    pub product_id: i64,
    /// The TTL that instance was configured with.
    pub ttl: Duration,
    /// How long after the change the product was viewed again.
    pub waited: Duration,
    /// The first view, before the change.
    pub before_change: PageSeen,
    /// A new instance's view after the TTL (its in-process cache empty).
    pub new_instance: PageSeen,
    /// The first instance's view after the TTL.
    pub same_instance: PageSeen,
    /// Keys in that instance's Redis database still there after the TTL.
    pub redis_keys_past_ttl: usize,
}

impl Figures {
    /// Views that did not need the database, by PostgreSQL's count of statements.
    pub fn hit_rate(&self) -> f64 {
        1.0 - self.database.statements as f64 / self.views.finished.max(1) as f64
    }

    /// Rows the database returned per finished view.
    pub fn rows_per_view(&self) -> f64 {
        self.database.rows as f64 / self.views.finished.max(1) as f64
    }
}

/// Judges a run by its figures.
pub fn verdict(figures: &Figures) -> Verdict {
    let mut problems = view_problems(&figures.views);
    let memory = memory_problems(&figures.memory);
    let memory_bounded = memory.is_empty();
    problems.extend(memory);
    problems.extend(redis_problems(&figures.redis, memory_bounded));
    problems.extend(freshness_problems(&figures.freshness));
    problems.extend(database_problems(figures));
    Verdict::from_problems(&problems, || {
        let redis = match figures.redis.keys_checked {
            0 => "nothing kept in Redis".to_owned(),
            keys => format!(
                "all {} in Redis expire within the {} s TTL",
                plural(keys, "key"),
                CONFIG.ttl.as_secs()
            ),
        };
        format!(
            "Bounded and fresh: the heap grew by {} MiB (bound {} MiB); {redis}; a changed price showed after the TTL; hit rate {:.1}% of an ideal {:.1}% ({} database statements for {} views); every page right.",
            mib(figures.memory.heap_growth_bytes),
            mib(HEAP_BOUND_BYTES),
            figures.hit_rate() * 100.0,
            figures.views.ideal_hit_rate * 100.0,
            grouped(figures.database.statements as f64),
            grouped(figures.views.finished as f64),
        )
    })
}

/// `count` of `noun`, in the plural unless one: `1 key`, `3,058 keys`.
pub fn plural(count: usize, noun: &str) -> String {
    format!(
        "{} {noun}{}",
        grouped(count as f64),
        if count == 1 { "" } else { "s" }
    )
}

fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / (1024.0 * 1024.0))
}

fn view_problems(views: &Views) -> Vec<String> {
    let mut problems = Vec::new();
    if views.failed > 0 {
        let first = views.first_error.as_deref().unwrap_or("?");
        problems.push(format!(
            "{} views failed (the first: {first})",
            views.failed
        ));
    }
    if views.unfinished > 0 {
        problems.push(format!("{} views hung", views.unfinished));
    }
    if views.wrong_pages > 0 {
        let first = views
            .first_wrong
            .map_or_else(String::new, |id| format!(" (the first: product {id})"));
        problems.push(format!(
            "{} pages differed from the catalogue{first}",
            views.wrong_pages
        ));
    }
    problems
}

fn freshness_problems(check: &Freshness) -> Vec<String> {
    let id = check.product_id;
    match &check.before_change {
        PageSeen::Right => {}
        PageSeen::Failed(error) => {
            return vec![format!(
                "the freshness check's first view of product {id} failed: {error}"
            )]
        }
        _ => {
            return vec![format!(
                "the freshness check's first view of product {id} was not the catalogue's page"
            )]
        }
    }
    let mut problems = Vec::new();
    for (who, seen) in [
        ("a new instance", &check.new_instance),
        ("the instance that had viewed it", &check.same_instance),
    ] {
        match seen {
            PageSeen::Failed(error) => problems.push(format!("after the freshness check's price change, {who} failed: {error}")),
            PageSeen::Wrong => problems.push(format!("after the freshness check's price change, {who} showed a page that was neither the old nor the new one")),
            PageSeen::Right | PageSeen::Stale => {}
        }
    }
    let when = format!(
        "{:.1} s after product {id}'s price changed, past the {} s TTL the service was configured with",
        check.waited.as_secs_f64(),
        check.ttl.as_secs_f64()
    );
    match (&check.new_instance, &check.same_instance) {
        (PageSeen::Stale, same) => {
            let also = if *same == PageSeen::Stale { ", and so did the instance that had viewed it" } else { "" };
            let source = if check.redis_keys_past_ttl > 0 {
                format!("; Redis still held {} written before the change", plural(check.redis_keys_past_ttl, "key"))
            } else {
                " although Redis had let its keys go: the old page came from inside the process — a cache every instance shares keeps old prices too".to_owned()
            };
            problems.push(format!(
                "{when}, a new instance (its in-process cache empty, the same Redis) still showed the old price{also}{source}"
            ));
        }
        (PageSeen::Right, PageSeen::Stale) => problems.push(format!(
            "{when}, the instance that had viewed it still showed the old price while a new instance showed the new one: \
             its in-process cache kept the old page — a size bound alone keeps a popular product's old price for ever, \
             entries must expire after the TTL too"
        )),
        _ => {}
    }
    problems
}

fn memory_problems(memory: &Memory) -> Vec<String> {
    let mut problems = Vec::new();
    if memory.local_entries > CONFIG.max_entries {
        problems.push(format!(
            "the in-process cache holds {} entries by its own count, over its bound of {}",
            grouped(memory.local_entries as f64),
            grouped(CONFIG.max_entries as f64)
        ));
    }
    if memory.heap_growth_bytes > HEAP_BOUND_BYTES {
        problems.push(format!(
            "the heap grew by {} MiB over the run, more than twice what {} pages of {} bytes take ({} MiB)",
            mib(memory.heap_growth_bytes),
            grouped(CONFIG.max_entries as f64),
            grouped(PAGE_BYTES as f64),
            mib(HEAP_BOUND_BYTES)
        ));
    }
    if let Some(late) = memory.late_heap_bytes_per_1000 {
        if late > MAX_LATE_HEAP_BYTES_PER_1000 {
            problems.push(format!(
                "the heap still grew by {} KiB per 1,000 views in the second half of the run (at most {} KiB)",
                grouped((late / 1024.0).round()),
                grouped(MAX_LATE_HEAP_BYTES_PER_1000 / 1024.0)
            ));
        }
    }
    problems
}

fn redis_problems(redis: &RedisAudit, memory_bounded: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if redis.never_expiring > 0 {
        let why = if memory_bounded {
            " — Redis is a cache too, and it keeps such a key until its memory runs out: bounding the in-process cache alone is not a fix"
        } else {
            ""
        };
        problems.push(format!(
            "{} of {} keys in Redis never expire (PTTL -1){why}",
            grouped(redis.never_expiring as f64),
            grouped(redis.keys_checked as f64)
        ));
    }
    let ttl_ms = CONFIG.ttl.as_millis() as u64;
    if let Some(longest) = redis.longest_ttl_ms.filter(|longest| *longest > ttl_ms) {
        let times = longest as f64 / ttl_ms as f64;
        let why = if times >= 500.0 {
            format!(
                " — about {} times too long: check the unit the command expects",
                grouped((times / 10.0).round() * 10.0)
            )
        } else {
            ": an entry must not outlive the TTL it was configured with".to_owned()
        };
        problems.push(format!(
            "a key in Redis will live another {} s (PTTL {} ms), longer than the configured TTL of {} s{why}",
            grouped((longest as f64 / 1000.0).round()),
            grouped(longest as f64),
            CONFIG.ttl.as_secs()
        ));
    }
    problems
}

fn database_problems(figures: &Figures) -> Vec<String> {
    let (views, database) = (&figures.views, &figures.database);
    let mut problems = Vec::new();
    let (hit_rate, ideal) = (figures.hit_rate(), views.ideal_hit_rate);
    if views.finished > 0 && hit_rate < MIN_HIT_RATE_SHARE * ideal {
        problems.push(format!(
            "the database ran {} statements for {} views: a hit rate of {:.1}%, under {:.0}% of the {:.1}% a cache reaches on this traffic — \
             the database now does the cache's work: a fix must keep the hits",
            grouped(database.statements as f64),
            grouped(views.finished as f64),
            hit_rate.max(0.0) * 100.0,
            MIN_HIT_RATE_SHARE * 100.0,
            ideal * 100.0
        ));
    }
    if figures.rows_per_view() > MAX_ROWS_PER_VIEW {
        let per_view = if views.finished == 0 {
            "before a single view finished".to_owned()
        } else {
            format!(
                "for {} views ({:.1} per view)",
                grouped(views.finished as f64),
                figures.rows_per_view()
            )
        };
        problems.push(format!(
            "the database returned {} rows {per_view}: a page needs one row — \
             loading the whole catalogue reads what nobody views, holds it all, and never sees a change",
            grouped(database.rows as f64),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A healthy run: 10,000 views, a bounded heap, expiring keys, fresh prices.
    fn healthy() -> Figures {
        Figures {
            views: Views {
                planned: 10_000,
                finished: 10_000,
                distinct_products: 3_067,
                ideal_hit_rate: 0.683,
                p99_ms: 4.0,
                ..Views::default()
            },
            database: DatabaseWork {
                statements: 3_170,
                rows: 3_067,
                shared_blocks: 9_600,
            },
            memory: Memory {
                local_entries: 1_000,
                heap_growth_bytes: 2.4e6,
                late_heap_bytes_per_1000: Some(3_000.0),
            },
            redis: RedisAudit {
                keys: 3_067,
                keys_checked: 3_067,
                never_expiring: 0,
                longest_ttl_ms: Some(59_990),
                used_memory_bytes: 8e6,
            },
            freshness: Freshness {
                product_id: 42,
                ttl: Duration::from_secs(1),
                waited: Duration::from_millis(1_500),
                redis_keys_past_ttl: 0,
                ..Freshness::default()
            },
        }
    }

    fn summary(figures: &Figures) -> String {
        let verdict = verdict(figures);
        assert!(!verdict.healthy, "expected unhealthy: {}", verdict.summary);
        verdict.summary
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0.0), "0");
        assert_eq!(grouped(999.4), "999");
        assert_eq!(grouped(1_000.0), "1,000");
        assert_eq!(grouped(59_999_000.0), "59,999,000");
        assert_eq!(grouped(-12_345.0), "-12,345");
    }

    #[test]
    fn a_healthy_run_says_what_held() {
        let verdict = verdict(&healthy());
        assert!(verdict.healthy, "{}", verdict.summary);
        assert!(
            verdict
                .summary
                .starts_with("Bounded and fresh: the heap grew by 2.3 MiB (bound 3.9 MiB)"),
            "{}",
            verdict.summary
        );
        assert!(
            verdict
                .summary
                .contains("all 3,067 keys in Redis expire within the 60 s TTL"),
            "{}",
            verdict.summary
        );
        assert!(
            verdict.summary.contains(
                "hit rate 68.3% of an ideal 68.3% (3,170 database statements for 10,000 views)"
            ),
            "{}",
            verdict.summary
        );
        let mut without_redis = healthy();
        without_redis.redis = RedisAudit::default();
        assert!(super::verdict(&without_redis)
            .summary
            .contains("; nothing kept in Redis;"));
    }

    #[test]
    fn the_buggy_run_names_its_symptoms_without_teaching() {
        let mut figures = healthy();
        figures.memory = Memory {
            local_entries: 3_067,
            heap_growth_bytes: 6.9e6,
            late_heap_bytes_per_1000: Some(570_000.0),
        };
        figures.redis.never_expiring = 3_067;
        figures.redis.longest_ttl_ms = None;
        figures.freshness.new_instance = PageSeen::Stale;
        figures.freshness.same_instance = PageSeen::Stale;
        figures.freshness.redis_keys_past_ttl = 1;
        let summary = summary(&figures);
        assert!(
            summary.starts_with("The in-process cache holds 3,067 entries by its own count"),
            "{summary}"
        );
        assert!(
            summary.contains("; 1.5 s after product 42's price changed, past the 1 s TTL"),
            "{summary}"
        );
        assert!(summary.contains("a new instance (its in-process cache empty, the same Redis) still showed the old price, and so did the instance that had viewed it; Redis still held 1 key written before the change"), "{summary}");
        assert!(
            summary.contains(
                "he in-process cache holds 3,067 entries by its own count, over its bound of 1,000"
            ),
            "{summary}"
        );
        assert!(summary.contains("the heap grew by 6.6 MiB over the run, more than twice what 1,000 pages of 2,048 bytes take (3.9 MiB)"), "{summary}");
        assert!(
            summary.contains("the heap still grew by 557 KiB per 1,000 views in the second half"),
            "{summary}"
        );
        assert!(
            summary.contains("3,067 of 3,067 keys in Redis never expire (PTTL -1);"),
            "{summary}"
        );
        assert!(!summary.contains("not a fix"), "{summary}");
    }

    #[test]
    fn keys_that_never_expire_beside_a_bounded_heap_are_not_a_fix() {
        let mut figures = healthy();
        figures.redis.never_expiring = 3_067;
        let summary = summary(&figures);
        assert!(
            summary.starts_with(
                "3,067 of 3,067 keys in Redis never expire (PTTL -1) — Redis is a cache too"
            ),
            "{summary}"
        );
        assert!(
            summary.contains("bounding the in-process cache alone is not a fix"),
            "{summary}"
        );
    }

    #[test]
    fn a_ttl_in_the_wrong_unit_is_named_with_its_factor() {
        let mut figures = healthy();
        figures.redis.longest_ttl_ms = Some(59_999_000);
        let summary = summary(&figures);
        assert!(summary.contains("key in Redis will live another 59,999 s (PTTL 59,999,000 ms), longer than the configured TTL of 60 s"), "{summary}");
        assert!(summary.contains("about 1,000 times too long"), "{summary}");
    }

    #[test]
    fn the_unit_clause_starts_at_500_times_the_ttl() {
        let mut figures = healthy();
        figures.redis.longest_ttl_ms = Some(30_000_000);
        assert!(summary(&figures).contains("about 500 times too long"));
        figures.redis.longest_ttl_ms = Some(29_999_999);
        let summary = summary(&figures);
        assert!(!summary.contains("times too long"), "{summary}");
        assert!(summary.contains("an entry must not outlive"), "{summary}");
    }

    #[test]
    fn the_ttl_bound_has_its_edge() {
        let mut figures = healthy();
        figures.redis.longest_ttl_ms = Some(60_000);
        assert!(verdict(&figures).healthy);
        figures.redis.longest_ttl_ms = Some(60_001);
        let summary = summary(&figures);
        assert!(
            summary.contains("longer than the configured TTL of 60 s: an entry must not outlive"),
            "{summary}"
        );
    }

    #[test]
    fn dropping_the_caches_loses_the_hit_rate() {
        let mut figures = healthy();
        figures.database.statements = 10_000;
        figures.database.rows = 9_900;
        figures.memory.heap_growth_bytes = 1e5;
        let summary = summary(&figures);
        assert!(summary.starts_with("The database ran 10,000 statements for 10,000 views: a hit rate of 0.0%, under 80% of the 68.3%"), "{summary}");
        assert!(summary.contains("a fix must keep the hits"), "{summary}");
    }

    #[test]
    fn the_hit_rate_has_its_edge() {
        let mut figures = healthy();
        figures.views.ideal_hit_rate = 0.5;
        figures.database.statements = 6_000; // hit rate 0.4 = 80% of 0.5
        assert!(verdict(&figures).healthy, "{}", verdict(&figures).summary);
        figures.database.statements = 6_001;
        assert!(summary(&figures).contains("a hit rate of 40.0%, under 80% of the 50.0%"));
    }

    #[test]
    fn loading_the_whole_catalogue_is_named_by_its_rows() {
        let mut figures = healthy();
        figures.database.statements = 1;
        figures.database.rows = 100_000;
        let summary = summary(&figures);
        assert!(
            summary
                .starts_with("The database returned 100,000 rows for 10,000 views (10.0 per view)"),
            "{summary}"
        );
        assert!(summary.contains("loading the whole catalogue"), "{summary}");
    }

    #[test]
    fn rows_read_before_any_view_finished_are_named_so() {
        let mut figures = healthy();
        figures.views.finished = 0;
        figures.database.rows = 100_000;
        let summary = summary(&figures);
        assert!(summary.starts_with("The database returned 100,000 rows before a single view finished: a page needs one row"), "{summary}");
    }

    #[test]
    fn the_rows_bound_has_its_edge() {
        let mut figures = healthy();
        figures.database.rows = 10_000;
        assert!(verdict(&figures).healthy);
        figures.database.rows = 10_001;
        assert!(summary(&figures).contains("10,001 rows for 10,000 views"));
    }

    #[test]
    fn a_size_bound_without_expiry_inside_the_process_keeps_old_prices() {
        let mut figures = healthy();
        figures.freshness.same_instance = PageSeen::Stale;
        let summary = summary(&figures);
        assert!(summary.contains("the instance that had viewed it still showed the old price while a new instance showed the new one"), "{summary}");
        assert!(
            summary.contains("a size bound alone keeps a popular product's old price for ever"),
            "{summary}"
        );
    }

    #[test]
    fn an_old_page_without_a_redis_key_came_from_the_process() {
        let mut figures = healthy();
        figures.freshness.new_instance = PageSeen::Stale;
        let summary = summary(&figures);
        assert!(summary.contains("a new instance (its in-process cache empty, the same Redis) still showed the old price although Redis had let its keys go"), "{summary}");
        assert!(
            summary.contains("a cache every instance shares"),
            "{summary}"
        );
    }

    #[test]
    fn a_freshness_check_that_fails_says_so() {
        let mut figures = healthy();
        figures.freshness.before_change = PageSeen::Failed("cache pool: timed out".to_owned());
        assert!(summary(&figures).starts_with(
            "The freshness check's first view of product 42 failed: cache pool: timed out"
        ));
        let mut figures = healthy();
        figures.freshness.before_change = PageSeen::Wrong;
        assert!(summary(&figures).contains("was not the catalogue's page"));
        let mut figures = healthy();
        figures.freshness.new_instance = PageSeen::Wrong;
        figures.freshness.same_instance = PageSeen::Failed("database: closed".to_owned());
        let summary = summary(&figures);
        assert!(
            summary
                .contains("a new instance showed a page that was neither the old nor the new one"),
            "{summary}"
        );
        assert!(
            summary.contains("the instance that had viewed it failed: database: closed"),
            "{summary}"
        );
    }

    #[test]
    fn the_heap_bounds_have_their_edges() {
        let mut figures = healthy();
        figures.memory.heap_growth_bytes = HEAP_BOUND_BYTES;
        figures.memory.late_heap_bytes_per_1000 = Some(MAX_LATE_HEAP_BYTES_PER_1000);
        assert!(verdict(&figures).healthy);
        figures.memory.heap_growth_bytes = HEAP_BOUND_BYTES + 1.0;
        assert!(summary(&figures).contains("he heap grew by 3.9 MiB over the run"));
        figures.memory.heap_growth_bytes = 0.0;
        figures.memory.late_heap_bytes_per_1000 = Some(MAX_LATE_HEAP_BYTES_PER_1000 + 1.0);
        assert!(summary(&figures).contains("he heap still grew by 100 KiB per 1,000 views"));
        figures.memory.late_heap_bytes_per_1000 = None;
        assert!(
            verdict(&figures).healthy,
            "too few samples to tell is not a problem"
        );
    }

    #[test]
    fn a_reported_count_is_checked_but_not_trusted() {
        let mut figures = healthy();
        figures.memory.local_entries = CONFIG.max_entries;
        assert!(verdict(&figures).healthy);
        figures.memory.local_entries = CONFIG.max_entries + 1;
        assert!(summary(&figures).contains("holds 1,001 entries by its own count"));
        // A service that reports nothing still has its heap measured.
        let mut figures = healthy();
        figures.memory.local_entries = 0;
        figures.memory.heap_growth_bytes = 6.9e6;
        assert!(summary(&figures).contains("he heap grew by 6.6 MiB"));
    }

    #[test]
    fn failed_hung_and_wrong_views_are_named() {
        let mut figures = healthy();
        figures.views.failed = 3;
        figures.views.first_error = Some("database: pool timed out".to_owned());
        figures.views.unfinished = 2;
        figures.views.wrong_pages = 5;
        figures.views.first_wrong = Some(17);
        let summary = summary(&figures);
        assert!(summary.starts_with("3 views failed (the first: database: pool timed out); 2 views hung; 5 pages differed from the catalogue (the first: product 17)"), "{summary}");
    }
}
