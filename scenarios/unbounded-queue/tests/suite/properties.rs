//! For random bursts of events, each sent at once while the fixed ingester
//! runs (PostgreSQL a few milliseconds away), with or without letting it
//! catch up in between, it stores every event exactly once with the payload
//! the app sent, acknowledges them all, sets none aside, returns once its
//! feed is closed — and never holds more than a few batches: the fix bounds
//! what was unbounded and changes nothing else. (The buggy ingester fails
//! it with the first burst bigger than three batches.)

use std::time::Duration;

use deadpool_redis::redis;
use debuglab_harness::testing::TestDatabase;
use debuglab_harness::PoolSettings;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use unbounded_queue::probes::Probe;
use unbounded_queue::workload::{create_group, payload, WRITE_DELAY};
use unbounded_queue::{fixed, Feed, Store, BATCH, DEAD_LETTERS, SCHEMA, STREAM};

const POOL: PoolSettings = PoolSettings {
    max_connections: 2,
    acquire_timeout: Duration::from_secs(10),
};

/// One burst: how many events, and whether the test lets the ingester
/// take them all before the next.
#[derive(Clone, Debug)]
struct Burst {
    events: u16,
    catch_up: bool,
}

fn burst() -> impl Strategy<Value = Burst> {
    (0u16..=500, any::<bool>()).prop_map(|(events, catch_up)| Burst { events, catch_up })
}

#[test]
fn fixed_stores_every_event_once_and_holds_a_few_batches() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (test_db, redis) = runtime.block_on(async {
        let test_db = TestDatabase::create("unbounded_queue_props", Some(&SCHEMA)).await;
        let redis = debuglab_harness::redis::server()
            .await
            .unwrap()
            .lease_database()
            .await
            .unwrap();
        (test_db, redis)
    });
    let mut runner = TestRunner::new(Config {
        cases: 10,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(burst(), 1..5), |bursts| {
        runtime.block_on(async {
            let mut probe = Probe::open(&redis, &test_db.database).await.unwrap();
            let mut apps = redis.probe_connection().await.unwrap();
            start_afresh(&mut apps, &test_db).await;
            let feed = Feed::new(redis.pool(POOL).await.unwrap());
            let store = Store::new(
                test_db
                    .database
                    .pool_with_latency(POOL, WRITE_DELAY)
                    .await
                    .unwrap(),
            );
            let ingester = tokio::spawn(fixed::ingest(feed.clone(), store));
            let mut sent = 0i64;
            let mut held_max = 0;
            for burst in &bursts {
                send(&mut apps, sent, burst.events).await;
                sent += i64::from(burst.events);
                held_max = held_max.max(held(&mut probe).await);
                if burst.catch_up {
                    held_max = held_max.max(taken_all(&mut probe).await);
                }
            }
            held_max = held_max.max(taken_all(&mut probe).await);
            feed.close();
            let ended = tokio::time::timeout(Duration::from_secs(30), ingester).await;
            prop_assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
            prop_assert!(held_max <= 3 * BATCH as u64, "held {held_max}");
            let stream = probe.stream().await.unwrap();
            prop_assert_eq!(
                (stream.taken, stream.pending, stream.dead),
                (sent as u64, 0, 0)
            );
            let mut conn = test_db.database.probe_connection().await.unwrap();
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT event_id, payload FROM events ORDER BY event_id")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            prop_assert_eq!(rows.len() as i64, sent);
            for (index, (id, text)) in rows.iter().enumerate() {
                prop_assert_eq!(*id, index as i64 + 1);
                prop_assert_eq!(text, &payload(9, *id));
            }
            Ok(())
        })
    });
    runtime.block_on(async {
        redis.release().await;
        test_db.close().await;
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// Empties the stream, the dead letters and the table, and makes the group again.
async fn start_afresh(apps: &mut redis::aio::MultiplexedConnection, test_db: &TestDatabase) {
    let _: () = redis::cmd("DEL")
        .arg(STREAM)
        .arg(DEAD_LETTERS)
        .query_async(apps)
        .await
        .unwrap();
    create_group(apps).await.unwrap();
    let mut conn = test_db.database.probe_connection().await.unwrap();
    sqlx::raw_sql("TRUNCATE events; UPDATE events_count SET stored = 0")
        .execute(&mut conn)
        .await
        .unwrap();
}

/// Sends events `after + 1 ..= after + count` at once, in one pipeline
/// (none for an empty burst: redis-rs refuses an empty pipeline).
async fn send(apps: &mut redis::aio::MultiplexedConnection, after: i64, count: u16) {
    if count == 0 {
        return;
    }
    let mut pipe = redis::pipe();
    for id in after + 1..=after + i64::from(count) {
        pipe.cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("id")
            .arg(id)
            .arg("sent_at")
            .arg(1_700_000_000_000_000i64 + id)
            .arg("payload")
            .arg(payload(9, id))
            .ignore();
    }
    let _: () = pipe.query_async(apps).await.unwrap();
}

/// Events taken and not yet stored, from the stores.
async fn held(probe: &mut Probe) -> u64 {
    let stream = probe.stream().await.unwrap();
    let stored = probe.stored().await.unwrap();
    stream.taken.saturating_sub(stored + stream.dead)
}

/// Waits until the ingester has taken every event in the stream; the most
/// it held meanwhile.
async fn taken_all(probe: &mut Probe) -> u64 {
    let mut held_max = 0;
    // Polls, each at least 2 ms apart: 30 s at the very least.
    for _ in 0..15_000 {
        held_max = held_max.max(held(probe).await);
        if probe.stream().await.unwrap().waiting() == 0 {
            return held_max;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the ingester did not take every event within 30 s");
}
