//! Which computations ran at the same time, by PostgreSQL's own log.
//!
//! Counting computations per expiry needs the number of expiries, which a
//! busy machine changes (requests and computations take longer, expiries
//! come later). Which computations overlapped does not depend on the
//! machine's speed: the run has the server log the plan of every statement
//! the replicas run (`auto_explain`, with buffers), and reads when each
//! statement that touched a computation's blocks began and ended.

use std::time::{Duration, SystemTime};

use debuglab_harness::postgres::{LogMark, LoggedPlan, RunDatabase};
use debuglab_harness::Result;

use super::millis_between;
use crate::verdict::AtOnce;

/// How long the run waits for the logging collector to write the plans of
/// the computations PostgreSQL counted.
const LOG_WAIT: Duration = Duration::from_secs(2);

/// When each computation of the report ran, `[began, ended]` in ms after
/// the traffic's start — or why that is unknown.
pub type Logged = std::result::Result<Vec<[f64; 2]>, String>;

/// When each computation of the report ran, `[began, ended]` in ms after
/// the traffic's `start`, oldest first: every statement logged since the
/// `log` mark that touched at least half a computation's `blocks` (`log`
/// says why not, where the plans are not logged). The log is awaited until
/// it holds the `counted` computations `pg_stat_statements` saw, for at most
/// [`LOG_WAIT`].
pub async fn logged_computations(
    database: &RunDatabase,
    log: std::result::Result<LogMark, String>,
    start: SystemTime,
    blocks: i64,
    counted: usize,
) -> Result<Logged> {
    let mark = match log {
        Ok(mark) => mark,
        Err(why) => return Ok(Err(why)),
    };
    let is_computation =
        |logged: &LoggedPlan| logged.plan.shared_blocks().unwrap_or(0) >= blocks / 2;
    let plans = database
        .logged_plans_since(mark, LOG_WAIT, |plans| {
            plans.iter().filter(|logged| is_computation(logged)).count() >= counted
        })
        .await?;
    let mut computations: Vec<[f64; 2]> = plans
        .iter()
        .filter(|logged| is_computation(logged))
        .map(|logged| {
            [
                millis_between(start, logged.began()),
                millis_between(start, logged.ended),
            ]
        })
        .collect();
    // In the order they began: the timeline's rows.
    computations.sort_by(|a, b| a[0].total_cmp(&b[0]));
    Ok(Ok(computations))
}

/// Groups computations (`[began, ended]`) into waves — a computation joins
/// the wave before it when it began while one of the wave ran or less than
/// `gap_ms` after the wave's first end, from which its report is stored
/// (see [`AtOnce::waves`]) — and finds the most that ran at one moment
/// (touching ends do not overlap).
pub fn at_once(computations: &[[f64; 2]], gap_ms: f64) -> AtOnce {
    let mut sorted = computations.to_vec();
    sorted.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let mut waves = 0;
    // The wave's first end (its report is stored from then on) and its last.
    let (mut first_end, mut last_end) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for [began, ended] in &sorted {
        let running = *began < last_end;
        if running || *began < first_end + gap_ms {
            first_end = first_end.min(*ended);
        } else {
            waves += 1;
            first_end = *ended;
        }
        last_end = last_end.max(*ended);
    }
    // Ends before beginnings at the same moment: touching is not overlapping.
    let mut moments: Vec<(f64, i32)> = sorted
        .iter()
        .flat_map(|[began, ended]| [(*began, 1), (*ended, -1)])
        .collect();
    moments.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut running, mut most) = (0, 0);
    for (_, change) in moments {
        running += change;
        most = most.max(running);
    }
    AtOnce {
        computations: sorted.len(),
        waves,
        most: most as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_expiry_is_a_wave_each_however_long_it_takes() {
        // A TTL of 200 ms: each begins at least 200 ms after the last ended.
        let computations = [[200.0, 230.0], [730.0, 1_000.0], [430.0, 530.0]];
        assert_eq!(
            at_once(&computations, 100.0),
            AtOnce {
                computations: 3,
                waves: 3,
                most: 1
            }
        );
        assert_eq!(at_once(&[], 100.0), AtOnce::default());
    }

    #[test]
    fn overlapping_and_soon_after_are_one_wave() {
        // A and B overlap, C overlaps B only, D begins 60 ms after C ended
        // (a replica that found the report missing before C's was stored);
        // E begins 150 ms after D ended: a wave of its own.
        let computations = [
            [200.0, 230.0],
            [205.0, 240.0],
            [235.0, 260.0],
            [320.0, 350.0],
            [500.0, 530.0],
        ];
        assert_eq!(
            at_once(&computations, 100.0),
            AtOnce {
                computations: 5,
                waves: 2,
                most: 2
            }
        );
        // With no gap allowed, D is a wave of its own.
        assert_eq!(at_once(&computations, 0.0).waves, 3);
        // The gap counts from the wave's first end: a late duplicate that
        // ran long does not draw the next expiry's computation in.
        let late = [[200.0, 230.0], [280.0, 400.0], [440.0, 470.0]];
        assert_eq!(at_once(&late, 100.0).waves, 2);
        // Touching ends neither overlap nor, with no gap, join.
        let touching = [[0.0, 10.0], [10.0, 20.0]];
        assert_eq!(
            at_once(&touching, 0.0),
            AtOnce {
                computations: 2,
                waves: 2,
                most: 1
            }
        );
    }

    #[test]
    fn four_replicas_at_once_then_three() {
        let computations = [
            [200.0, 240.0],
            [201.0, 238.0],
            [202.0, 245.0],
            [210.0, 250.0],
            [480.0, 520.0],
            [481.0, 519.0],
            [490.0, 530.0],
        ];
        assert_eq!(
            at_once(&computations, 100.0),
            AtOnce {
                computations: 7,
                waves: 2,
                most: 4
            }
        );
    }
}
