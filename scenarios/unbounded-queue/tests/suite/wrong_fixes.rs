//! Wrong fixes — the ways people really get this bug wrong — each judged
//! unhealthy with the problem line that says why; and other correct fixes,
//! judged healthy: the verdict is about the contract, not about one fix.

use crate::*;

use debuglab_harness::testing::{
    assert_fix_verified, assert_stopped_for_blocking, assert_unhealthy_because, judge_candidate,
    metric,
};
use debuglab_harness::Report;

/// Runs `ingest` as the exercise and returns its report.
async fn judge(ingest: Ingest) -> Report {
    judge_candidate(UnboundedQueue::with_candidate(ingest)).await
}

/// "Bound the queue and drop what does not fit": `try_send`, and an event
/// that finds the queue full is dropped. Memory stays flat — the events are
/// gone.
mod drops_when_full {
    use tokio::sync::mpsc::{self, error::TrySendError};

    use crate::{Event, Feed, IngestError, Store, BATCH};

    pub async fn ingest(feed: Feed, store: Store) -> Result<(), IngestError> {
        let (queue, mut incoming) = mpsc::channel::<Event>(BATCH);
        let source = feed.clone();
        let read = async move {
            while let Some(events) = source.take(BATCH).await? {
                for event in events {
                    match queue.try_send(event) {
                        Ok(()) | Err(TrySendError::Full(_)) => {}
                        Err(TrySendError::Closed(_)) => return Err(IngestError::WriterStopped),
                    }
                }
            }
            Ok::<_, IngestError>(())
        };
        let write = async move {
            let mut batch = Vec::with_capacity(BATCH);
            while incoming.recv_many(&mut batch, BATCH).await > 0 {
                store.write(&batch).await?;
                feed.ack(&batch).await?;
                batch.clear();
            }
            Ok(())
        };
        tokio::try_join!(read, write)?;
        Ok(())
    }
}

#[tokio::test]
async fn dropping_events_when_the_queue_is_full_loses_them() {
    let report = judge(ingest_of!(drops_when_full)).await;
    assert_unhealthy_because(
        &report,
        "neither stored nor set aside when the ingester stopped",
    );
    assert_unhealthy_because(&report, "all still pending in Redis, never stored");
    assert_unhealthy_because(&report, "an event the ingester drops is lost");
}

/// "Give it a bound, a generous one": a queue of 100,000 events, which no
/// burst ever fills.
mod huge_bound {
    use tokio::sync::mpsc;

    use crate::{Event, Feed, IngestError, Store, BATCH};

    pub async fn ingest(feed: Feed, store: Store) -> Result<(), IngestError> {
        let (queue, mut incoming) = mpsc::channel::<Event>(100_000);
        let source = feed.clone();
        let read = async move {
            while let Some(events) = source.take(BATCH).await? {
                for event in events {
                    queue
                        .send(event)
                        .await
                        .map_err(|_| IngestError::WriterStopped)?;
                }
            }
            Ok::<_, IngestError>(())
        };
        let write = async move {
            let mut batch = Vec::with_capacity(BATCH);
            while incoming.recv_many(&mut batch, BATCH).await > 0 {
                store.write(&batch).await?;
                feed.ack(&batch).await?;
                batch.clear();
            }
            Ok(())
        };
        tokio::try_join!(read, write)?;
        Ok(())
    }
}

#[tokio::test]
async fn a_bound_no_burst_reaches_bounds_nothing() {
    let report = judge(ingest_of!(huge_bound)).await;
    assert_unhealthy_because(&report, "the ingester held up to");
    assert_unhealthy_because(&report, "whatever the backlog");
    assert_eq!(metric(&report, "events_lost"), 0.0);
}

/// "Shed load when full, and count it": `try_send`, and an event that finds
/// the queue full goes to the dead-letter stream. Nothing is lost, memory is
/// flat — and most of the burst ends up set aside.
mod dead_letters_when_full {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::mpsc::{self, error::TrySendError};

    use crate::{Event, Feed, IngestError, Store, BATCH};

    static SHED: AtomicU64 = AtomicU64::new(0);

    pub async fn ingest(feed: Feed, store: Store) -> Result<(), IngestError> {
        let (queue, mut incoming) = mpsc::channel::<Event>(BATCH);
        let source = feed.clone();
        let read = async move {
            while let Some(events) = source.take(BATCH).await? {
                let mut shed = Vec::new();
                for event in events {
                    match queue.try_send(event) {
                        Ok(()) => {}
                        Err(TrySendError::Full(event)) => shed.push(event),
                        Err(TrySendError::Closed(_)) => return Err(IngestError::WriterStopped),
                    }
                }
                SHED.fetch_add(shed.len() as u64, Ordering::Relaxed);
                source.dead_letter(&shed).await?;
            }
            Ok::<_, IngestError>(())
        };
        let write = async move {
            let mut batch = Vec::with_capacity(BATCH);
            while incoming.recv_many(&mut batch, BATCH).await > 0 {
                store.write(&batch).await?;
                feed.ack(&batch).await?;
                batch.clear();
            }
            Ok(())
        };
        tokio::try_join!(read, write)?;
        Ok(())
    }
}

#[tokio::test]
async fn setting_the_burst_aside_is_not_ingesting_it() {
    let report = judge(ingest_of!(dead_letters_when_full)).await;
    assert_unhealthy_because(&report, "were set aside in events:dead (at most 10%)");
    assert_unhealthy_because(&report, "setting the traffic aside is not ingesting it");
    assert_eq!(metric(&report, "events_lost"), 0.0);
    assert!(metric(&report, "held_max") <= MAX_HELD as f64);
}

/// "Acknowledge first, so the pending count stays low": the writer
/// acknowledges each batch, then stores it (the queue bounded otherwise).
mod acknowledges_before_storing {
    use tokio::sync::mpsc;

    use crate::{Event, Feed, IngestError, Store, BATCH};

    pub async fn ingest(feed: Feed, store: Store) -> Result<(), IngestError> {
        let (queue, mut incoming) = mpsc::channel::<Event>(BATCH);
        let source = feed.clone();
        let read = async move {
            while let Some(events) = source.take(BATCH).await? {
                for event in events {
                    queue
                        .send(event)
                        .await
                        .map_err(|_| IngestError::WriterStopped)?;
                }
            }
            Ok::<_, IngestError>(())
        };
        let write = async move {
            let mut batch = Vec::with_capacity(BATCH);
            while incoming.recv_many(&mut batch, BATCH).await > 0 {
                feed.ack(&batch).await?;
                store.write(&batch).await?;
                batch.clear();
            }
            Ok(())
        };
        tokio::try_join!(read, write)?;
        Ok(())
    }
}

#[tokio::test]
async fn acknowledging_before_storing_is_not_a_fix() {
    let report = judge(ingest_of!(acknowledges_before_storing)).await;
    assert_unhealthy_because(&report, "Redis was told up to");
    assert_unhealthy_because(&report, "is gone for good if the ingester dies");
    assert!(
        !report.summary.contains("held up to"),
        "{}",
        report.render_text(false)
    );
}

/// The laziest change that empties the queue: the writer acknowledges
/// what it receives and skips the slow part, storing it.
mod skips_the_write {
    use tokio::sync::mpsc;

    use crate::{Event, Feed, IngestError, Store, BATCH};

    pub async fn ingest(feed: Feed, _store: Store) -> Result<(), IngestError> {
        let (queue, mut incoming) = mpsc::unbounded_channel::<Event>();
        let source = feed.clone();
        let read = async move {
            while let Some(events) = source.take(BATCH).await? {
                for event in events {
                    queue.send(event).map_err(|_| IngestError::WriterStopped)?;
                }
            }
            Ok::<_, IngestError>(())
        };
        let write = async move {
            let mut batch = Vec::with_capacity(BATCH);
            while incoming.recv_many(&mut batch, BATCH).await > 0 {
                feed.ack(&batch).await?;
                batch.clear();
            }
            Ok(())
        };
        tokio::try_join!(read, write)?;
        Ok(())
    }
}

#[tokio::test]
async fn skipping_the_write_loses_every_event() {
    let report = judge(ingest_of!(skips_the_write)).await;
    assert_unhealthy_because(
        &report,
        "of them acknowledged, so not even Redis lists them as pending",
    );
    assert_unhealthy_because(&report, "Redis was told up to");
    assert_eq!(metric(&report, "events_stored"), 0.0);
}

/// "The writer is the bottleneck: write each batch in a task of its own."
/// The queue stays short; the events move into the tasks.
mod writes_in_spawned_tasks {
    use tokio::sync::mpsc;

    use crate::{Event, Feed, IngestError, Store, BATCH};

    pub async fn ingest(feed: Feed, store: Store) -> Result<(), IngestError> {
        let (queue, mut incoming) = mpsc::channel::<Event>(BATCH);
        let source = feed.clone();
        let read = async move {
            while let Some(events) = source.take(BATCH).await? {
                for event in events {
                    queue
                        .send(event)
                        .await
                        .map_err(|_| IngestError::WriterStopped)?;
                }
            }
            Ok::<_, IngestError>(())
        };
        let write = async move {
            let mut batch = Vec::with_capacity(BATCH);
            while incoming.recv_many(&mut batch, BATCH).await > 0 {
                let (events, store, feed) =
                    (std::mem::take(&mut batch), store.clone(), feed.clone());
                tokio::spawn(async move {
                    if store.write(&events).await.is_ok() {
                        let _ = feed.ack(&events).await;
                    }
                });
            }
            Ok(())
        };
        tokio::try_join!(read, write)?;
        Ok(())
    }
}

#[tokio::test]
async fn writing_in_spawned_tasks_moves_the_backlog_into_them() {
    let report = judge(ingest_of!(writes_in_spawned_tasks)).await;
    assert_unhealthy_because(&report, "the ingester held up to");
}

/// "Slow the reader down so the writer keeps up" — with a blocking sleep.
mod throttles_the_reader {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use crate::{Event, Feed, IngestError, Store, BATCH};

    pub async fn ingest(feed: Feed, store: Store) -> Result<(), IngestError> {
        let (queue, mut incoming) = mpsc::unbounded_channel::<Event>();
        let source = feed.clone();
        let read = async move {
            while let Some(events) = source.take(BATCH).await? {
                for event in events {
                    queue.send(event).map_err(|_| IngestError::WriterStopped)?;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            Ok::<_, IngestError>(())
        };
        let write = async move {
            let mut batch = Vec::with_capacity(BATCH);
            while incoming.recv_many(&mut batch, BATCH).await > 0 {
                store.write(&batch).await?;
                feed.ack(&batch).await?;
                batch.clear();
            }
            Ok(())
        };
        tokio::try_join!(read, write)?;
        Ok(())
    }
}

#[tokio::test]
async fn blocking_the_thread_is_stopped_and_judged_within_the_budget() {
    let report = judge(ingest_of!(throttles_the_reader)).await;
    assert_stopped_for_blocking(&report);
    assert!(report.duration_ms < 30_000, "{}", report.render_text(false));
}

/// Another correct fix, shedding with a counter: the reader waits for room
/// in a short queue, and sets an event aside only when the writer has made
/// no room for a whole second (the database is down, say).
mod waits_then_sets_aside {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use tokio::sync::mpsc::{self, error::SendTimeoutError};

    use crate::{Event, Feed, IngestError, Store, BATCH};

    static SET_ASIDE: AtomicU64 = AtomicU64::new(0);

    pub async fn ingest(feed: Feed, store: Store) -> Result<(), IngestError> {
        let (queue, mut incoming) = mpsc::channel::<Event>(BATCH);
        let source = feed.clone();
        let read = async move {
            while let Some(events) = source.take(BATCH).await? {
                for event in events {
                    match queue.send_timeout(event, Duration::from_secs(1)).await {
                        Ok(()) => {}
                        Err(SendTimeoutError::Timeout(event)) => {
                            SET_ASIDE.fetch_add(1, Ordering::Relaxed);
                            source.dead_letter(&[event]).await?;
                        }
                        Err(SendTimeoutError::Closed(_)) => return Err(IngestError::WriterStopped),
                    }
                }
            }
            Ok::<_, IngestError>(())
        };
        let write = async move {
            let mut batch = Vec::with_capacity(BATCH);
            while incoming.recv_many(&mut batch, BATCH).await > 0 {
                store.write(&batch).await?;
                feed.ack(&batch).await?;
                batch.clear();
            }
            Ok(())
        };
        tokio::try_join!(read, write)?;
        Ok(())
    }
}

#[tokio::test]
async fn waiting_with_a_deadline_then_setting_aside_is_another_correct_fix() {
    let report = judge(ingest_of!(waits_then_sets_aside)).await;
    assert_fix_verified(&report);
}

/// Another correct fix, with no queue at all: one loop takes a batch,
/// stores it, acknowledges it, and only then takes the next.
mod one_batch_at_a_time {
    use crate::{Feed, IngestError, Store, BATCH};

    pub async fn ingest(feed: Feed, store: Store) -> Result<(), IngestError> {
        while let Some(events) = feed.take(BATCH).await? {
            store.write(&events).await?;
            feed.ack(&events).await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn one_batch_at_a_time_is_another_correct_fix() {
    let report = judge(ingest_of!(one_batch_at_a_time)).await;
    assert_fix_verified(&report);
    assert!(metric(&report, "held_max") <= BATCH as f64);
}
