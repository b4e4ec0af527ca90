//! The events and the ingester's life: the ingester starts on an empty
//! stream, the apps send 12,000 events in bursts as fast as Redis takes
//! them, and once the ingester has taken them all its feed is closed and it
//! must return, everything settled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use deadpool_redis::redis::{self, aio::MultiplexedConnection, RedisError};
use debuglab_harness::guard::{watched, Monitor};
use debuglab_harness::redis::RunRedis;
use debuglab_harness::workload::{Workload, WorkloadOutcome};
use debuglab_harness::{HarnessError, PoolSettings, Result, RunContext};
use tokio::task::JoinHandle;

use crate::probes::{self, Probe, Watch};
use crate::verdict::{Ending, Figures, Sent};
use crate::{Feed, Ingest, IngestError, Store, GROUP, SCHEMA, STREAM};

/// Events the apps send in a run.
pub const EVENTS: usize = 12_000;

/// Events in one burst (one request of the workload).
pub const BURST: usize = 200;

/// Bytes of an event's payload.
pub const PAYLOAD_BYTES: usize = 256;

/// The bursts: 60 of 200 events, 4 at a time, as fast as Redis takes them.
/// A live run sends 8 bursts a second (1,600 events) to a database 100 ms
/// away, which stores at most 1,000 a second: the backlog grows at human
/// speed.
pub const WORKLOAD: Workload = Workload {
    requests: EVENTS / BURST,
    concurrency: 4,
    max_duration: Duration::from_secs(60),
    hard_limit: Duration::from_secs(90),
    live_rate: 8,
};

/// The one-way delay in front of PostgreSQL: every statement's round trip
/// costs this much, as to a database in another zone.
pub const WRITE_DELAY: Duration = Duration::from_millis(3);

/// The delay in a live run, slow enough to watch.
pub const LIVE_WRITE_DELAY: Duration = Duration::from_millis(100);

/// The ingester's pool in front of PostgreSQL.
pub const STORE_POOL: PoolSettings = PoolSettings {
    max_connections: 4,
    acquire_timeout: Duration::from_secs(10),
};

/// The ingester's pool of Redis connections.
pub const FEED_POOL: PoolSettings = PoolSettings {
    max_connections: 4,
    acquire_timeout: Duration::from_secs(10),
};

/// How long the ingester may take to take every event sent, once the apps
/// are done (a healthy one needs a second or two): slack for a busy
/// machine, never an objective.
pub const INTAKE_LIMIT: Duration = Duration::from_secs(30);

/// How long the ingester may take to return once its feed is closed.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);

/// How long when the run was stopped (a blocked thread, the end of a live
/// run): long enough to finish a batch, not to work off a backlog.
pub const SHUTDOWN_LIMIT_WHEN_STOPPED: Duration = Duration::from_secs(3);

/// In a live run, the apps pause while this many events are sent and not
/// yet settled, so that a run left going keeps within the machine.
pub const LIVE_BACKLOG_CAP: u64 = 100_000;

/// What the latest sample found: events sent and neither stored nor set
/// aside (a live run's apps pause above [`LIVE_BACKLOG_CAP`]).
#[derive(Default)]
pub struct Tally {
    /// Events sent and neither stored nor set aside, at the latest sample.
    pub unsettled: AtomicU64,
}

/// The payload of event `id` in the run seeded with `seed`: a small JSON
/// document of [`PAYLOAD_BYTES`] bytes.
pub fn payload(seed: u64, id: i64) -> String {
    let kinds = ["page_view", "add_to_cart", "search", "checkout"];
    let mut payload = format!(
        r#"{{"kind":"{}","app":"shop-{}","user":{},"path":"/products/{}","pad":""#,
        kinds[(id % 4) as usize],
        ["ios", "android", "web"][(id % 3) as usize],
        (seed ^ id as u64) % 100_000,
        id.wrapping_mul(7_919) % 100_000
    );
    while payload.len() < PAYLOAD_BYTES - 2 {
        payload.push('x');
    }
    payload.truncate(PAYLOAD_BYTES - 2);
    payload.push_str(r#""}"#);
    payload
}

/// Runs `ingest` against a fresh stream and table, sends it the apps'
/// events, closes its feed once it has taken them, and returns the figures
/// the verdict is made of (also recorded on `ctx`).
pub async fn run_ingester(ctx: &RunContext, ingest: Ingest) -> Result<Figures> {
    let database = ctx.database(Some(&SCHEMA)).await?;
    let redis = ctx.redis().await?;
    require_streams_with_counters(ctx, &redis).await?;
    let apps = redis.probe_connection().await?;
    create_group(&mut apps.clone()).await?;
    let delay = if ctx.is_live() {
        LIVE_WRITE_DELAY
    } else {
        WRITE_DELAY
    };
    let store = Store::new(database.pool_with_latency(STORE_POOL, delay).await?);
    let feed = Feed::new(redis.pool(FEED_POOL).await?);
    let tally = Arc::new(Tally::default());
    let watch = Watch::start(ctx, &redis, &database, &tally).await?;
    let ingester = tokio::spawn(watched(ingest(feed.clone(), store)));
    let outcome = send_events(ctx, &apps, &tally).await;
    let mut probe = Probe::open(&redis, &database).await?;
    let stopped = wait_for_intake(ctx, &mut probe, &ingester).await;
    feed.close();
    let limit = if stopped || ctx.is_live() {
        SHUTDOWN_LIMIT_WHEN_STOPPED
    } else {
        SHUTDOWN_LIMIT
    };
    let ending = shut_down(ctx, ingester, limit).await;
    let watched = watch.stop().await;
    let settled = probes::settle(&redis, &mut probe).await?;
    let lags = probes::lags(&mut probe).await?;
    let figures = Figures {
        sent: sent(&outcome, settled.in_stream, ctx.is_live()),
        ending,
        settled,
        holding: watched.holding(),
        memory: watched.memory(),
    };
    probes::record(ctx, &figures, &watched, &lags, delay);
    Ok(figures)
}

/// Fails with one clear line on a Redis older than 7.0, whose `XINFO
/// GROUPS` has no `entries-read` for the run to count with.
async fn require_streams_with_counters(ctx: &RunContext, redis: &RunRedis) -> Result<()> {
    let server = redis.info("server").await?;
    let version = server.get("redis_version").cloned().unwrap_or_default();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(0);
    if major >= 7 {
        return Ok(());
    }
    Err(HarnessError::Setup {
        scenario: ctx.info().id.to_owned(),
        detail: format!(
            "this Redis server is version {version}; the run needs Redis 7 or newer, whose XINFO GROUPS counts the entries a group has read"
        ),
    })
}

/// Creates the stream and its group, the group's read counter at zero.
pub async fn create_group(conn: &mut MultiplexedConnection) -> Result<()> {
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("$")
        .arg("MKSTREAM")
        .arg("ENTRIESREAD")
        .arg(0)
        .query_async::<()>(conn)
        .await
        .map_err(HarnessError::redis("creating the stream's consumer group"))
}

/// The apps' bursts, driven by the workload.
async fn send_events(
    ctx: &RunContext,
    apps: &MultiplexedConnection,
    tally: &Arc<Tally>,
) -> WorkloadOutcome<usize, RedisError> {
    let (apps, tally, seed, live) = (apps.clone(), Arc::clone(tally), ctx.seed(), ctx.is_live());
    ctx.drive("the apps' events", WORKLOAD, move |index| {
        let (mut apps, tally) = (apps.clone(), Arc::clone(&tally));
        async move {
            if live && tally.unsettled.load(Ordering::Relaxed) >= LIVE_BACKLOG_CAP {
                return Ok(0);
            }
            send_burst(&mut apps, seed, index).await?;
            Ok(BURST)
        }
    })
    .await
}

/// Adds burst `index` to the stream: events `index * BURST + 1` onwards, in one pipeline.
async fn send_burst(
    apps: &mut MultiplexedConnection,
    seed: u64,
    index: usize,
) -> std::result::Result<(), RedisError> {
    let first = (index * BURST) as i64 + 1;
    let sent_at = Utc::now().timestamp_micros();
    let mut pipe = redis::pipe();
    for id in first..first + BURST as i64 {
        pipe.cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("id")
            .arg(id)
            .arg("sent_at")
            .arg(sent_at)
            .arg("payload")
            .arg(payload(seed, id))
            .ignore();
    }
    pipe.query_async(apps).await
}

/// Waits until the ingester has taken every event in the stream (or has
/// returned, or the run was stopped); whether the run was stopped.
async fn wait_for_intake(
    ctx: &RunContext,
    probe: &mut Probe,
    ingester: &JoinHandle<std::result::Result<(), IngestError>>,
) -> bool {
    let monitor = Monitor::current();
    let stop_reason = || monitor.as_ref().and_then(|monitor| monitor.stop_reason());
    let taken_all = async {
        loop {
            if ingester.is_finished() || stop_reason().is_some() {
                return;
            }
            if let Ok(stream) = probe.stream().await {
                if stream.waiting() == 0 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if !ctx.is_live() {
        ctx.within(
            "taking every event from the stream",
            INTAKE_LIMIT,
            taken_all,
        )
        .await;
    }
    match stop_reason() {
        Some(reason) => {
            ctx.evidence(format!(
                "the ingester's feed was closed early: the workload was stopped: {reason}"
            ));
            true
        }
        None => false,
    }
}

/// Awaits the ingester's return for at most `limit`, then aborts it.
async fn shut_down(
    ctx: &RunContext,
    mut ingester: JoinHandle<std::result::Result<(), IngestError>>,
    limit: Duration,
) -> Ending {
    match ctx
        .within(
            "the ingester's return after its feed closed",
            limit,
            &mut ingester,
        )
        .await
    {
        Some(Ok(Ok(()))) => Ending::Returned,
        Some(Ok(Err(error))) => Ending::Failed(error.to_string()),
        Some(Err(error)) if error.is_panic() => {
            let payload = error.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|message| (*message).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            Ending::Panicked(message)
        }
        Some(Err(_)) => Ending::Failed("the ingester's task was cancelled".to_owned()),
        None => {
            ingester.abort();
            Ending::Hung(limit.as_secs())
        }
    }
}

/// The events sent: as many as the stream holds (a burst cut off by a stop
/// may have reached Redis all the same), and the workload's failures.
fn sent(outcome: &WorkloadOutcome<usize, RedisError>, in_stream: u64, live: bool) -> Sent {
    let events = in_stream;
    Sent {
        planned: if live { events } else { EVENTS as u64 },
        events,
        failed_bursts: outcome.errors(),
        first_error: outcome
            .records
            .iter()
            .find_map(|record| record.result.as_ref().err().map(ToString::to_string)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_their_size_and_depend_on_seed_and_id() {
        for id in [1, 2, 19_999, 1_000_000] {
            let text = payload(7, id);
            assert_eq!(text.len(), PAYLOAD_BYTES, "{text}");
            assert!(
                text.starts_with("{\"kind\":") && text.ends_with("\"}"),
                "{text}"
            );
        }
        assert_eq!(payload(7, 3), payload(7, 3));
        assert_ne!(payload(7, 3), payload(8, 3));
        assert_ne!(payload(7, 3), payload(7, 4));
    }
}
