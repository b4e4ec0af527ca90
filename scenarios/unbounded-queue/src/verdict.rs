//! The verdict: a pure function of the figures a run collected.
//!
//! Each check is one line of the contract (see the crate's docs); each
//! problem line says what broke and, where a learner could have broken it on
//! purpose, why that is not a fix.

use debuglab_harness::report::grouped;
use debuglab_harness::Verdict;

use crate::workload::PAYLOAD_BYTES;

/// Most events the ingester may hold at once: taken from the stream and
/// neither stored nor set aside, whatever the backlog in Redis.
pub const MAX_HELD: u64 = 1_000;

/// Most of a run's events that may end in the dead-letter stream.
pub const MAX_DEAD_SHARE: f64 = 0.1;

/// Most the live heap may grow per 1,000 events taken from the stream
/// (holding them would cost at least their payloads: 250 KiB).
pub const MAX_HEAP_BYTES_PER_1000: f64 = 100.0 * 1024.0;

/// What a run measured, everything the verdict looks at.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// The events the apps sent.
    pub sent: Sent,
    /// How the ingester ended once its feed was closed.
    pub ending: Ending,
    /// Where every event was once the ingester had stopped, from the stores.
    pub settled: Settled,
    /// What the ingester held while it ran, sampled from the stores.
    pub holding: Holding,
    /// The live heap while events were being taken.
    pub memory: Memory,
}

/// The events the apps sent, as the workload saw them.
#[derive(Clone, Debug, Default)]
pub struct Sent {
    /// Events the run planned to send (in a live run, those it sent).
    pub planned: u64,
    /// Events added to the stream.
    pub events: u64,
    /// Bursts Redis refused.
    pub failed_bursts: usize,
    /// The first refusal.
    pub first_error: Option<String>,
}

/// How the ingester ended once its feed was closed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Ending {
    /// It returned `Ok`.
    #[default]
    Returned,
    /// It returned an error.
    Failed(String),
    /// It panicked.
    Panicked(String),
    /// It had not returned this many seconds after its feed was closed.
    Hung(u64),
}

/// Where the events were once the ingester had stopped: Redis' and
/// PostgreSQL's own counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Settled {
    /// Entries in the stream (`XLEN events`): the events the apps sent.
    pub in_stream: u64,
    /// Entries delivered to the group (`XINFO GROUPS` `entries-read`).
    pub taken: u64,
    /// Of those, not acknowledged (`pending`).
    pub pending: u64,
    /// Rows in `events` (one per event id: it is the primary key).
    pub stored: u64,
    /// Distinct events in `events:dead` that are not also stored.
    pub dead: u64,
    /// Entries of `events:dead` beyond those: an event set aside twice, or
    /// set aside and stored.
    pub duplicates: u64,
}

impl Settled {
    /// Events never taken from the stream.
    pub fn never_taken(&self) -> u64 {
        self.in_stream.saturating_sub(self.taken)
    }

    /// Events taken and neither stored nor set aside.
    pub fn lost(&self) -> u64 {
        self.taken.saturating_sub(self.stored + self.dead)
    }

    /// Of the lost events, those acknowledged: Redis no longer lists them as pending.
    pub fn lost_acknowledged(&self) -> u64 {
        self.taken
            .saturating_sub(self.pending)
            .saturating_sub(self.stored + self.dead)
    }
}

/// What the ingester held while it ran, from samples of the stores.
#[derive(Clone, Copy, Debug, Default)]
pub struct Holding {
    /// Samples taken.
    pub samples: usize,
    /// Most events taken and neither stored nor set aside at one sample.
    pub held_max: u64,
    /// Most events waiting in the stream, not yet taken.
    pub waiting_max: u64,
    /// Most entries pending (taken, not acknowledged).
    pub pending_max: u64,
    /// Most events acknowledged beyond those stored or set aside.
    pub acknowledged_unstored_max: u64,
}

/// The live heap while events were being taken from the stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Whether this program counts its heap (the harness's counting allocator).
    pub counted: bool,
    /// Growth per 1,000 events taken (a least-squares slope); `None` with too
    /// few samples to fit one.
    pub bytes_per_1000: Option<f64>,
}

/// Judges a run by its figures.
pub fn verdict(figures: &Figures) -> Verdict {
    let mut problems = ending_problems(&figures.ending);
    problems.extend(sent_problems(&figures.sent));
    problems.extend(holding_problems(&figures.holding, &figures.memory));
    problems.extend(settled_problems(&figures.settled));
    Verdict::from_problems(&problems, || {
        let (settled, holding) = (&figures.settled, &figures.holding);
        let heap = match figures.memory.bytes_per_1000 {
            Some(bytes) if figures.memory.counted => format!(
                "; the live heap changed by {} KiB per 1,000 events taken",
                grouped((bytes / 1024.0).round())
            ),
            _ => String::new(),
        };
        format!(
            "All {} events settled exactly once: {} stored, {} set aside; the ingester held at most {} at once (at most {}) while up to {} waited in Redis{heap}.",
            grouped(settled.in_stream as f64),
            grouped(settled.stored as f64),
            grouped(settled.dead as f64),
            grouped(holding.held_max as f64),
            grouped(MAX_HELD as f64),
            grouped(holding.waiting_max as f64),
        )
    })
}

fn ending_problems(ending: &Ending) -> Vec<String> {
    match ending {
        Ending::Returned => Vec::new(),
        Ending::Failed(error) => vec![format!("the ingester stopped with an error: {error}")],
        Ending::Panicked(message) => vec![format!("the ingester panicked: {message}")],
        Ending::Hung(seconds) => vec![format!(
            "the ingester had not returned {seconds} s after its feed was closed"
        )],
    }
}

fn sent_problems(sent: &Sent) -> Vec<String> {
    let mut problems = Vec::new();
    if sent.failed_bursts > 0 {
        problems.push(format!(
            "{} bursts of events could not be added to the stream (the first: {})",
            sent.failed_bursts,
            sent.first_error.as_deref().unwrap_or("no message")
        ));
    }
    if sent.events < sent.planned {
        problems.push(format!(
            "the apps sent only {} of {} events before the run was stopped",
            grouped(sent.events as f64),
            grouped(sent.planned as f64)
        ));
    }
    problems
}

fn holding_problems(holding: &Holding, memory: &Memory) -> Vec<String> {
    let mut problems = Vec::new();
    if holding.samples == 0 {
        problems.push("the stores were never sampled while the ingester ran".to_owned());
    }
    if holding.held_max > MAX_HELD {
        problems.push(format!(
            "the ingester held up to {} events at once, taken from the stream and neither stored nor set aside (at most {}, whatever the backlog)",
            grouped(holding.held_max as f64),
            grouped(MAX_HELD as f64)
        ));
    }
    match memory.bytes_per_1000 {
        Some(bytes) if memory.counted && bytes > MAX_HEAP_BYTES_PER_1000 => {
            problems.push(format!(
                "the live heap grew by {} KiB per 1,000 events taken (at most {}; an event's payload alone is {PAYLOAD_BYTES} bytes)",
                grouped((bytes / 1024.0).round()),
                grouped(MAX_HEAP_BYTES_PER_1000 / 1024.0)
            ));
        }
        _ => {}
    }
    if holding.acknowledged_unstored_max > 0 {
        problems.push(format!(
            "Redis was told up to {} events were done before they were stored or set aside: an event acknowledged before it is stored is gone for good if the ingester dies, and the pending count no longer shows what is at risk",
            grouped(holding.acknowledged_unstored_max as f64)
        ));
    }
    problems
}

fn settled_problems(settled: &Settled) -> Vec<String> {
    let mut problems = Vec::new();
    let lost = settled.lost();
    if lost > 0 {
        let acknowledged = settled.lost_acknowledged();
        let where_now = if acknowledged == 0 {
            "all still pending in Redis, never stored".to_owned()
        } else {
            format!(
                "{} of them acknowledged, so not even Redis lists them as pending",
                grouped(acknowledged as f64)
            )
        };
        problems.push(format!(
            "{} of {} events taken from the stream were neither stored nor set aside when the ingester stopped ({where_now}): an event the ingester drops is lost — the contract allows setting it aside, visibly, in events:dead",
            grouped(lost as f64),
            grouped(settled.taken as f64)
        ));
    }
    if settled.never_taken() > 0 {
        problems.push(format!(
            "{} of {} events were never taken from the stream",
            grouped(settled.never_taken() as f64),
            grouped(settled.in_stream as f64)
        ));
    }
    if settled.duplicates > 0 {
        problems.push(format!(
            "{} entries of events:dead repeat an event that was stored or already set aside",
            grouped(settled.duplicates as f64)
        ));
    }
    let dead_share = settled.dead as f64 / settled.in_stream.max(1) as f64;
    if dead_share > MAX_DEAD_SHARE {
        problems.push(format!(
            "{} of {} events ({:.0}%) were set aside in events:dead (at most {:.0}%): the dead-letter stream is for exceptions, and setting the traffic aside is not ingesting it",
            grouped(settled.dead as f64),
            grouped(settled.in_stream as f64),
            dead_share * 100.0,
            MAX_DEAD_SHARE * 100.0
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A healthy run: 20,000 events, all stored, a few hundred held at most.
    fn healthy() -> Figures {
        Figures {
            sent: Sent {
                planned: 20_000,
                events: 20_000,
                ..Sent::default()
            },
            ending: Ending::Returned,
            settled: Settled {
                in_stream: 20_000,
                taken: 20_000,
                pending: 0,
                stored: 20_000,
                dead: 0,
                duplicates: 0,
            },
            holding: Holding {
                samples: 150,
                held_max: 280,
                waiting_max: 19_500,
                pending_max: 300,
                acknowledged_unstored_max: 0,
            },
            memory: Memory {
                counted: true,
                bytes_per_1000: Some(2_000.0),
            },
        }
    }

    /// The buggy ingester: everything taken at once, held until written.
    fn hoarding() -> Figures {
        let mut figures = healthy();
        figures.holding.held_max = 18_400;
        figures.holding.waiting_max = 1_200;
        figures.holding.pending_max = 18_500;
        figures.memory.bytes_per_1000 = Some(420.0 * 1024.0);
        figures
    }

    fn summary(figures: &Figures) -> String {
        let verdict = verdict(figures);
        assert!(!verdict.healthy, "expected unhealthy: {}", verdict.summary);
        verdict.summary
    }

    #[test]
    fn a_healthy_run_says_where_the_events_waited() {
        let verdict = verdict(&healthy());
        assert!(verdict.healthy, "{}", verdict.summary);
        assert_eq!(
            verdict.summary,
            "All 20,000 events settled exactly once: 20,000 stored, 0 set aside; the ingester held at most 280 at once (at most 1,000) while up to 19,500 waited in Redis; the live heap changed by 2 KiB per 1,000 events taken."
        );
    }

    #[test]
    fn holding_the_backlog_is_named_with_its_heap() {
        let line = summary(&hoarding());
        assert!(
            line.starts_with("The ingester held up to 18,400 events at once, taken from the stream and neither stored nor set aside (at most 1,000, whatever the backlog)"),
            "{line}"
        );
        assert!(
            line.contains("the live heap grew by 420 KiB per 1,000 events taken (at most 100; an event's payload alone is 256 bytes)"),
            "{line}"
        );
    }

    #[test]
    fn the_held_bound_has_its_edge() {
        let mut figures = healthy();
        figures.holding.held_max = MAX_HELD;
        assert!(verdict(&figures).healthy);
        figures.holding.held_max = MAX_HELD + 1;
        assert!(summary(&figures).starts_with("The ingester held up to 1,001 events"));
    }

    #[test]
    fn the_heap_bound_has_its_edge_and_needs_a_counted_heap() {
        let mut figures = healthy();
        figures.memory.bytes_per_1000 = Some(MAX_HEAP_BYTES_PER_1000);
        assert!(verdict(&figures).healthy);
        figures.memory.bytes_per_1000 = Some(MAX_HEAP_BYTES_PER_1000 + 1.0);
        assert!(summary(&figures).starts_with("The live heap grew by 100 KiB per 1,000"));
        // A program without the counting allocator: the held count still judges.
        figures.memory.counted = false;
        let verdict = verdict(&figures);
        assert!(verdict.healthy, "{}", verdict.summary);
        assert!(!verdict.summary.contains("heap"), "{}", verdict.summary);
        // Too few samples to fit a slope: nothing to say about the heap.
        figures.memory = Memory {
            counted: true,
            bytes_per_1000: None,
        };
        assert!(super::verdict(&figures).healthy);
    }

    #[test]
    fn events_dropped_are_lost_and_say_where_they_are() {
        let mut figures = healthy();
        figures.settled.stored = 2_600;
        figures.settled.pending = 17_400;
        let line = summary(&figures);
        assert!(
            line.starts_with("17,400 of 20,000 events taken from the stream were neither stored nor set aside when the ingester stopped (all still pending in Redis, never stored): an event the ingester drops is lost"),
            "{line}"
        );
        figures.settled.pending = 400;
        assert!(summary(&figures)
            .contains("(17,000 of them acknowledged, so not even Redis lists them as pending)"));
        figures.settled.stored = 19_999;
        figures.settled.pending = 0;
        assert!(summary(&figures).starts_with("1 of 20,000 events taken"));
    }

    #[test]
    fn acknowledging_before_storing_is_named() {
        let mut figures = healthy();
        figures.holding.acknowledged_unstored_max = 1;
        let line = summary(&figures);
        assert!(
            line.starts_with("Redis was told up to 1 events were done before they were stored or set aside: an event acknowledged before it is stored is gone for good"),
            "{line}"
        );
    }

    #[test]
    fn setting_the_traffic_aside_is_not_ingesting_it() {
        let mut figures = healthy();
        figures.settled.stored = 18_000;
        figures.settled.dead = 2_000;
        assert!(verdict(&figures).healthy, "10% is allowed");
        figures.settled.stored = 17_999;
        figures.settled.dead = 2_001;
        let line = summary(&figures);
        assert!(
            line.starts_with("2,001 of 20,000 events (10%) were set aside in events:dead (at most 10%): the dead-letter stream is for exceptions"),
            "{line}"
        );
        figures.settled.stored = 0;
        figures.settled.dead = 20_000;
        assert!(summary(&figures).starts_with("20,000 of 20,000 events (100%)"));
    }

    #[test]
    fn events_never_taken_and_duplicates_are_named() {
        let mut figures = healthy();
        figures.settled.taken = 19_000;
        figures.settled.stored = 19_000;
        figures.settled.duplicates = 3;
        let line = summary(&figures);
        assert!(
            line.starts_with("1,000 of 20,000 events were never taken from the stream"),
            "{line}"
        );
        assert!(line.contains("3 entries of events:dead repeat an event"));
    }

    #[test]
    fn endings_are_named_first() {
        for (ending, line) in [
            (
                Ending::Failed("database: pool timed out".to_owned()),
                "The ingester stopped with an error: database: pool timed out",
            ),
            (
                Ending::Panicked("oops".to_owned()),
                "The ingester panicked: oops",
            ),
            (
                Ending::Hung(30),
                "The ingester had not returned 30 s after its feed was closed",
            ),
        ] {
            let mut figures = hoarding();
            figures.ending = ending;
            assert!(summary(&figures).starts_with(line), "{line}");
        }
    }

    #[test]
    fn a_short_or_refused_feed_is_named() {
        let mut figures = healthy();
        figures.sent.events = 4_000;
        figures.sent.failed_bursts = 2;
        figures.sent.first_error = Some("redis: OOM".to_owned());
        let line = summary(&figures);
        assert!(line.starts_with(
            "2 bursts of events could not be added to the stream (the first: redis: OOM); the apps sent only 4,000 of 20,000 events"
        ), "{line}");
        let mut figures = healthy();
        figures.holding.samples = 0;
        assert!(summary(&figures).starts_with("The stores were never sampled"));
    }
}
