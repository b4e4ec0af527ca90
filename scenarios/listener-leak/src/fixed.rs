//! The dashboard's data service, opened for every request.

use std::sync::Arc;

use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::bus::{EventBus, ListenerId};
use crate::{App, AppError, DataServiceApi, SessionState};

/// Serves one request's dashboard and keeps it up to date.
///
/// What it registers is owned by guards in its fields, so dropping the
/// service removes the listener and stops the price feed (RAII).
pub struct DataService {
    state: Arc<SessionState>,
    _listener: Unsubscribe,
    _price_feed: AbortOnDrop,
}

impl DataServiceApi for DataService {
    async fn open(app: &App, user_id: i64) -> Result<DataService, AppError> {
        let state = SessionState::load(user_id);

        // Keep the dashboard up to date with announcements.
        let listener_state = Arc::clone(&state);
        let listener = app
            .bus
            .subscribe(move |event| listener_state.on_event(event));
        let listener = Unsubscribe {
            bus: Arc::clone(&app.bus),
            id: listener,
        };

        // Follow the user's price alerts, published on Redis.
        let mut prices = app.redis.get_async_pubsub().await?;
        prices.subscribe(format!("prices:{user_id}")).await?;
        let feed_state = Arc::clone(&state);
        let price_feed = tokio::spawn(async move {
            let mut messages = prices.into_on_message();
            while let Some(message) = messages.next().await {
                feed_state.on_price(message.get_payload().unwrap_or_default());
            }
        });

        Ok(DataService {
            state,
            _listener: listener,
            _price_feed: AbortOnDrop(price_feed),
        })
    }

    fn state(&self) -> &Arc<SessionState> {
        &self.state
    }
}

/// Removes a listener from the bus when dropped.
struct Unsubscribe {
    bus: Arc<EventBus>,
    id: ListenerId,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.bus.unsubscribe(self.id);
    }
}

/// Stops a task when dropped; the task's Redis connection closes with it.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
