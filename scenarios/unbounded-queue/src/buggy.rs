//! The ingester: takes the apps' events from the Redis stream and stores
//! them in PostgreSQL.

use tokio::sync::mpsc;

use crate::{Event, Feed, IngestError, Store, BATCH};

/// Runs until the feed is closed and every event taken is stored.
pub async fn ingest(feed: Feed, store: Store) -> Result<(), IngestError> {
    // The reader hands events to the writer, which stores them in batches.
    let (queue, mut incoming) = mpsc::unbounded_channel::<Event>();

    let source = feed.clone();
    let read = async move {
        while let Some(events) = source.take(BATCH).await? {
            for event in events {
                queue.send(event).map_err(|_| IngestError::WriterStopped)?;
            }
        }
        // Dropping the queue here lets the writer finish what is left.
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
