//! The two ends of the ingester: the [`Feed`] it takes events from (the
//! Redis stream `events`, read as the consumer group `ingest`) and the
//! [`Store`] it writes them to (the PostgreSQL table `events`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_redis::redis::{self, Value};
use sqlx::PgPool;

use crate::{CONSUMER, DEAD_LETTERS, GROUP, STREAM};

/// How long one read of the stream waits for new events before it looks
/// again whether the feed was closed.
const BLOCK_MS: u64 = 20;

/// Why the ingester could not go on.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A Redis command failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No Redis connection could be had.
    #[error("redis pool: {0}")]
    RedisPool(#[from] deadpool_redis::PoolError),
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stream entry that is not an event.
    #[error("malformed stream entry {entry}: {detail}")]
    Malformed {
        /// The entry's id in the stream.
        entry: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The writer stopped while the reader still had events for it.
    #[error("the writer stopped")]
    WriterStopped,
}

/// One event an app sent, as taken from the stream.
///
/// Only [`Feed::take`] makes events: what the ingester stores or sets aside
/// is always something the apps sent.
pub struct Event {
    id: i64,
    entry: String,
    payload: String,
    sent_at: DateTime<Utc>,
    taken_at: DateTime<Utc>,
}

impl Event {
    /// The event's id, unique among the events the apps send.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// What the app sent (a small JSON document).
    pub fn payload(&self) -> &str {
        &self.payload
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id)
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

/// The stream the apps write to, read as the consumer group `ingest`.
#[derive(Clone)]
pub struct Feed {
    redis: deadpool_redis::Pool,
    closed: Arc<AtomicBool>,
}

impl Feed {
    /// The feed on `redis`, whose stream and group exist.
    pub fn new(redis: deadpool_redis::Pool) -> Feed {
        Feed {
            redis,
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Closes the feed (the service is shutting down): [`Feed::take`] then
    /// returns `None` instead of waiting for more events.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// The next events from the stream, at most `max`: waits until there is
    /// at least one, or returns `None` once the feed is closed.
    ///
    /// Events taken are delivered to the group: Redis lists them as pending
    /// until they are acknowledged.
    pub async fn take(&self, max: usize) -> Result<Option<Vec<Event>>, IngestError> {
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let mut conn = self.redis.get().await?;
            let reply: Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(CONSUMER)
                .arg("COUNT")
                .arg(max.max(1))
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("STREAMS")
                .arg(STREAM)
                .arg(">")
                .query_async(&mut conn)
                .await?;
            let events = events_of(&reply)?;
            if !events.is_empty() {
                return Ok(Some(events));
            }
        }
    }

    /// Acknowledges `events`: Redis no longer lists them as pending.
    pub async fn ack(&self, events: &[Event]) -> Result<(), IngestError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut conn = self.redis.get().await?;
        let mut xack = redis::cmd("XACK");
        xack.arg(STREAM).arg(GROUP);
        for event in events {
            xack.arg(&event.entry);
        }
        xack.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Sets `events` aside: adds each to the dead-letter stream
    /// `events:dead` (where an operator can replay it) and acknowledges it,
    /// both at once.
    pub async fn dead_letter(&self, events: &[Event]) -> Result<(), IngestError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for event in events {
            pipe.cmd("XADD")
                .arg(DEAD_LETTERS)
                .arg("*")
                .arg("id")
                .arg(event.id)
                .arg("sent_at")
                .arg(event.sent_at.timestamp_micros())
                .arg("payload")
                .arg(&event.payload)
                .ignore();
        }
        let mut xack = redis::cmd("XACK");
        xack.arg(STREAM).arg(GROUP);
        for event in events {
            xack.arg(&event.entry);
        }
        pipe.add_command(xack).ignore();
        let mut conn = self.redis.get().await?;
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }
}

/// The table the events are stored in.
#[derive(Clone)]
pub struct Store {
    db: PgPool,
}

impl Store {
    /// The store on `db`, whose `events` table exists.
    pub fn new(db: PgPool) -> Store {
        Store { db }
    }

    /// Stores `events`, one row each, in one statement.
    pub async fn write(&self, events: &[Event]) -> Result<(), IngestError> {
        if events.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = events.iter().map(|event| event.id).collect();
        let payloads: Vec<&str> = events.iter().map(|event| event.payload.as_str()).collect();
        let sent: Vec<DateTime<Utc>> = events.iter().map(|event| event.sent_at).collect();
        let taken: Vec<DateTime<Utc>> = events.iter().map(|event| event.taken_at).collect();
        sqlx::query(
            "INSERT INTO events (event_id, payload, sent_at, taken_at)
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[], $4::timestamptz[])",
        )
        .bind(ids)
        .bind(payloads)
        .bind(sent)
        .bind(taken)
        .execute(&self.db)
        .await?;
        Ok(())
    }
}

/// The events of an `XREADGROUP` reply (none when it timed out).
fn events_of(reply: &Value) -> Result<Vec<Event>, IngestError> {
    let taken_at = Utc::now();
    let mut events = Vec::new();
    for (_, entries) in streams_of(reply) {
        for entry in items(entries) {
            let (id, fields) = entry_of(entry).ok_or_else(|| IngestError::Malformed {
                entry: "?".to_owned(),
                detail: "not an entry".to_owned(),
            })?;
            events.push(event_of(id, &fields, taken_at)?);
        }
    }
    Ok(events)
}

/// `(stream, entries)` pairs of a reply, as RESP2 (arrays) or RESP3 (a map) sends them.
fn streams_of(reply: &Value) -> Vec<(&Value, &Value)> {
    match reply {
        Value::Map(pairs) => pairs.iter().map(|(key, value)| (key, value)).collect(),
        Value::Array(streams) => streams
            .iter()
            .filter_map(|stream| match items(stream) {
                [name, entries] => Some((name, entries)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// An entry's id and its fields.
pub(crate) fn entry_of(entry: &Value) -> Option<(String, Vec<(String, String)>)> {
    let [id, fields] = items(entry) else {
        return None;
    };
    let fields = items(fields)
        .chunks(2)
        .filter_map(|pair| Some((text(pair.first()?)?, text(pair.get(1)?)?)))
        .collect();
    Some((text(id)?, fields))
}

fn event_of(
    entry: String,
    fields: &[(String, String)],
    taken_at: DateTime<Utc>,
) -> Result<Event, IngestError> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let malformed = |detail: &str| IngestError::Malformed {
        entry: entry.clone(),
        detail: detail.to_owned(),
    };
    let id = field("id")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| malformed("no numeric id"))?;
    let sent_at = field("sent_at")
        .and_then(|micros| micros.parse().ok())
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| malformed("no sent_at"))?;
    let payload = field("payload")
        .ok_or_else(|| malformed("no payload"))?
        .to_owned();
    Ok(Event {
        id,
        entry,
        payload,
        sent_at,
        taken_at,
    })
}

/// The items of an array reply (empty for anything else).
pub(crate) fn items(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        _ => &[],
    }
}

/// A string reply as text.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        Value::Int(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(fields.iter().map(|field| bulk(field)).collect()),
        ])
    }

    #[test]
    fn a_reply_becomes_events_and_a_timeout_none() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("events"),
            Value::Array(vec![
                entry(
                    "1-0",
                    &["id", "7", "sent_at", "1700000000000000", "payload", "{}"],
                ),
                entry(
                    "1-1",
                    &[
                        "id",
                        "8",
                        "sent_at",
                        "1700000000000001",
                        "payload",
                        "{\"a\":1}",
                    ],
                ),
            ]),
        ])]);
        let events = events_of(&reply).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].id(), events[0].entry.as_str()), (7, "1-0"));
        assert_eq!(events[1].payload(), "{\"a\":1}");
        assert_eq!(events[1].sent_at.timestamp_micros(), 1_700_000_000_000_001);
        assert!(events_of(&Value::Nil).unwrap().is_empty());
    }

    #[test]
    fn an_entry_without_an_id_is_malformed() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("events"),
            Value::Array(vec![entry("2-0", &["payload", "{}"])]),
        ])]);
        let error = events_of(&reply).unwrap_err().to_string();
        assert_eq!(error, "malformed stream entry 2-0: no numeric id");
    }
}
