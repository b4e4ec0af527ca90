//! The dashboard's data service, opened for every request.

use std::sync::Arc;

use futures::StreamExt;

use crate::{App, AppError, DataServiceApi, SessionState};

/// Serves one request's dashboard and keeps it up to date.
pub struct DataService {
    state: Arc<SessionState>,
}

impl DataServiceApi for DataService {
    async fn open(app: &App, user_id: i64) -> Result<DataService, AppError> {
        let state = SessionState::load(user_id);

        // Keep the dashboard up to date with announcements.
        let listener_state = Arc::clone(&state);
        app.bus
            .subscribe(move |event| listener_state.on_event(event));

        // Follow the user's price alerts, published on Redis.
        let mut prices = app.redis.get_async_pubsub().await?;
        prices.subscribe(format!("prices:{user_id}")).await?;
        let feed_state = Arc::clone(&state);
        tokio::spawn(async move {
            let mut messages = prices.into_on_message();
            while let Some(message) = messages.next().await {
                feed_state.on_price(message.get_payload().unwrap_or_default());
            }
        });

        Ok(DataService { state })
    }

    fn state(&self) -> &Arc<SessionState> {
        &self.state
    }
}
