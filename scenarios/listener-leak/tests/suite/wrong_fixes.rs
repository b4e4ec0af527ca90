//! Wrong fixes — the ways people really get this bug wrong — each judged
//! unhealthy with the problem line that says why; and other correct fixes,
//! judged healthy: the verdict is about the contract, not about one fix.

use crate::*;

use debuglab_harness::testing::{
    assert_fix_verified, assert_stopped_for_blocking, assert_unhealthy_because, judge_candidate,
};
use debuglab_harness::Report;

/// Runs `run` as the exercise and returns its report.
async fn judge(run: RunDashboards) -> Report {
    judge_candidate(ListenerLeak::with_candidate(run)).await
}

/// "It only needs one update": the listener removes itself after its first
/// event, and the price feed ends after its first alert. Nothing is left
/// behind — and nothing more is shown.
mod unsubscribes_after_the_first_event {
    use std::sync::{Arc, OnceLock};

    use futures::StreamExt;

    use crate::{App, AppError, DataServiceApi, SessionState};

    pub struct DataService {
        state: Arc<SessionState>,
    }

    impl DataServiceApi for DataService {
        async fn open(app: &App, user_id: i64) -> Result<DataService, AppError> {
            let state = SessionState::load(user_id);
            let id = Arc::new(OnceLock::new());
            let (listener_state, listener_id, bus) =
                (Arc::clone(&state), Arc::clone(&id), Arc::clone(&app.bus));
            let registered = app.bus.subscribe(move |event| {
                listener_state.on_event(event);
                if let Some(id) = listener_id.get() {
                    bus.unsubscribe(*id);
                }
            });
            let _ = id.set(registered);
            let mut prices = app.redis.get_async_pubsub().await?;
            prices.subscribe(format!("prices:{user_id}")).await?;
            let feed_state = Arc::clone(&state);
            tokio::spawn(async move {
                let mut messages = prices.into_on_message();
                if let Some(message) = messages.next().await {
                    feed_state.on_price(message.get_payload().unwrap_or_default());
                }
            });
            Ok(DataService { state })
        }

        fn state(&self) -> &Arc<SessionState> {
            &self.state
        }
    }
}

#[tokio::test]
async fn unsubscribing_after_the_first_event_is_not_a_fix() {
    let report = judge(data_service_of!(unsubscribes_after_the_first_event)).await;
    assert_unhealthy_because(&report, "dashboards missed events while still open");
    assert_unhealthy_because(&report, "unsubscribing early is not a fix");
}

/// Guards that undo a registration when the service is dropped, shared by
/// the half fixes below.
mod guards {
    use std::sync::Arc;

    use tokio::task::JoinHandle;

    use crate::bus::{EventBus, ListenerId};

    pub struct Unsubscribe(pub Arc<EventBus>, pub ListenerId);

    impl Drop for Unsubscribe {
        fn drop(&mut self) {
            self.0.unsubscribe(self.1);
        }
    }

    pub struct Abort(pub JoinHandle<()>);

    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
}

/// "The listener was the leak": the listener is removed with the service,
/// the price feed's task is left running.
mod cleans_up_the_bus_only {
    use std::sync::Arc;

    use futures::StreamExt;

    use super::guards::Unsubscribe;
    use crate::{App, AppError, DataServiceApi, SessionState};

    pub struct DataService {
        state: Arc<SessionState>,
        _listener: Unsubscribe,
    }

    impl DataServiceApi for DataService {
        async fn open(app: &App, user_id: i64) -> Result<DataService, AppError> {
            let state = SessionState::load(user_id);
            let listener_state = Arc::clone(&state);
            let id = app
                .bus
                .subscribe(move |event| listener_state.on_event(event));
            let listener = Unsubscribe(Arc::clone(&app.bus), id);
            let mut prices = app.redis.get_async_pubsub().await?;
            prices.subscribe(format!("prices:{user_id}")).await?;
            let feed_state = Arc::clone(&state);
            tokio::spawn(async move {
                let mut messages = prices.into_on_message();
                while let Some(message) = messages.next().await {
                    feed_state.on_price(message.get_payload().unwrap_or_default());
                }
            });
            Ok(DataService {
                state,
                _listener: listener,
            })
        }

        fn state(&self) -> &Arc<SessionState> {
            &self.state
        }
    }
}

#[tokio::test]
async fn cleaning_up_the_bus_but_not_the_feed_is_not_a_fix() {
    let report = judge(data_service_of!(cleans_up_the_bus_only)).await;
    assert_unhealthy_because(&report, "tokio tasks grow by");
    assert_unhealthy_because(&report, "Redis clients grow by");
    assert_unhealthy_because(
        &report,
        "Redis clients were still connected after every dashboard had closed",
    );
    assert!(
        !report.summary.contains("listeners"),
        "{}",
        report.render_text(false)
    );
}

/// "The task was the leak": the price feed stops with the service, the
/// listener stays on the bus.
mod cleans_up_the_feed_only {
    use std::sync::Arc;

    use futures::StreamExt;

    use super::guards::Abort;
    use crate::{App, AppError, DataServiceApi, SessionState};

    pub struct DataService {
        state: Arc<SessionState>,
        _feed: Abort,
    }

    impl DataServiceApi for DataService {
        async fn open(app: &App, user_id: i64) -> Result<DataService, AppError> {
            let state = SessionState::load(user_id);
            let listener_state = Arc::clone(&state);
            app.bus
                .subscribe(move |event| listener_state.on_event(event));
            let mut prices = app.redis.get_async_pubsub().await?;
            prices.subscribe(format!("prices:{user_id}")).await?;
            let feed_state = Arc::clone(&state);
            let feed = tokio::spawn(async move {
                let mut messages = prices.into_on_message();
                while let Some(message) = messages.next().await {
                    feed_state.on_price(message.get_payload().unwrap_or_default());
                }
            });
            Ok(DataService {
                state,
                _feed: Abort(feed),
            })
        }

        fn state(&self) -> &Arc<SessionState> {
            &self.state
        }
    }
}

#[tokio::test]
async fn cleaning_up_the_feed_but_not_the_bus_is_not_a_fix() {
    let report = judge(data_service_of!(cleans_up_the_feed_only)).await;
    assert_unhealthy_because(&report, "listeners on the bus grow by");
    assert_unhealthy_because(&report, "the live heap grows by");
    assert_unhealthy_because(&report, "listeners were still registered on the bus");
    assert!(
        !report.summary.contains("Redis clients"),
        "{}",
        report.render_text(false)
    );
}

/// "A weak reference can't leak": the listener holds the dashboard weakly
/// and does nothing once it is gone — but it stays registered.
mod listens_through_a_weak_reference {
    use std::sync::Arc;

    use futures::StreamExt;

    use super::guards::Abort;
    use crate::{App, AppError, DataServiceApi, SessionState};

    pub struct DataService {
        state: Arc<SessionState>,
        _feed: Abort,
    }

    impl DataServiceApi for DataService {
        async fn open(app: &App, user_id: i64) -> Result<DataService, AppError> {
            let state = SessionState::load(user_id);
            let listener_state = Arc::downgrade(&state);
            app.bus.subscribe(move |event| {
                if let Some(state) = listener_state.upgrade() {
                    state.on_event(event);
                }
            });
            let mut prices = app.redis.get_async_pubsub().await?;
            prices.subscribe(format!("prices:{user_id}")).await?;
            let feed_state = Arc::clone(&state);
            let feed = tokio::spawn(async move {
                let mut messages = prices.into_on_message();
                while let Some(message) = messages.next().await {
                    feed_state.on_price(message.get_payload().unwrap_or_default());
                }
            });
            Ok(DataService {
                state,
                _feed: Abort(feed),
            })
        }

        fn state(&self) -> &Arc<SessionState> {
            &self.state
        }
    }
}

#[tokio::test]
async fn a_weak_listener_that_stays_registered_is_not_a_fix() {
    let report = judge(data_service_of!(listens_through_a_weak_reference)).await;
    assert_unhealthy_because(&report, "listeners on the bus grow by");
    assert_unhealthy_because(
        &report,
        "even a listener that only ignores events once its dashboard is gone",
    );
}

/// "Clear them out now and then": every 50th dashboard opened removes every
/// listener registered so far — open dashboards' included.
mod clears_every_listener_now_and_then {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use futures::StreamExt;

    use super::guards::Abort;
    use crate::bus::{EventBus, ListenerId};
    use crate::{App, AppError, DataServiceApi, SessionState};

    static REGISTERED: Mutex<Vec<(Arc<EventBus>, ListenerId)>> = Mutex::new(Vec::new());
    static OPENED: AtomicUsize = AtomicUsize::new(0);

    pub struct DataService {
        state: Arc<SessionState>,
        _feed: Abort,
    }

    impl DataServiceApi for DataService {
        async fn open(app: &App, user_id: i64) -> Result<DataService, AppError> {
            if OPENED.fetch_add(1, Ordering::Relaxed) % 50 == 49 {
                for (bus, id) in REGISTERED.lock().unwrap().drain(..) {
                    bus.unsubscribe(id);
                }
            }
            let state = SessionState::load(user_id);
            let listener_state = Arc::clone(&state);
            let id = app
                .bus
                .subscribe(move |event| listener_state.on_event(event));
            REGISTERED.lock().unwrap().push((Arc::clone(&app.bus), id));
            let mut prices = app.redis.get_async_pubsub().await?;
            prices.subscribe(format!("prices:{user_id}")).await?;
            let feed_state = Arc::clone(&state);
            let feed = tokio::spawn(async move {
                let mut messages = prices.into_on_message();
                while let Some(message) = messages.next().await {
                    feed_state.on_price(message.get_payload().unwrap_or_default());
                }
            });
            Ok(DataService {
                state,
                _feed: Abort(feed),
            })
        }

        fn state(&self) -> &Arc<SessionState> {
            &self.state
        }
    }
}

#[tokio::test]
async fn clearing_every_listener_now_and_then_is_not_a_fix() {
    let report = judge(data_service_of!(clears_every_listener_now_and_then)).await;
    assert_unhealthy_because(&report, "dashboards missed events while still open");
}

/// "Give the subscriber a moment to wind down": a close that sleeps.
mod waits_for_the_feed_when_closing {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::{fixed, App, AppError, DataServiceApi, SessionState};

    pub struct DataService(fixed::DataService);

    impl DataServiceApi for DataService {
        async fn open(app: &App, user_id: i64) -> Result<DataService, AppError> {
            Ok(DataService(fixed::DataService::open(app, user_id).await?))
        }

        fn state(&self) -> &Arc<SessionState> {
            self.0.state()
        }
    }

    impl Drop for DataService {
        fn drop(&mut self) {
            // Stands for a blocking wait (a join, a synchronous client) in async code.
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

#[tokio::test]
async fn blocking_the_thread_is_stopped_and_judged_within_the_budget() {
    let report = judge(data_service_of!(waits_for_the_feed_when_closing)).await;
    assert_stopped_for_blocking(&report);
}

/// Another correct fix: the service itself undoes what it registered when
/// it is dropped.
mod drops_what_it_registered {
    use std::sync::Arc;

    use futures::StreamExt;
    use tokio::task::JoinHandle;

    use crate::bus::{EventBus, ListenerId};
    use crate::{App, AppError, DataServiceApi, SessionState};

    pub struct DataService {
        state: Arc<SessionState>,
        bus: Arc<EventBus>,
        listener: ListenerId,
        feed: JoinHandle<()>,
    }

    impl DataServiceApi for DataService {
        async fn open(app: &App, user_id: i64) -> Result<DataService, AppError> {
            let state = SessionState::load(user_id);
            let mut prices = app.redis.get_async_pubsub().await?;
            prices.subscribe(format!("prices:{user_id}")).await?;
            let feed_state = Arc::clone(&state);
            let feed = tokio::spawn(async move {
                let mut messages = prices.into_on_message();
                while let Some(message) = messages.next().await {
                    feed_state.on_price(message.get_payload().unwrap_or_default());
                }
            });
            let listener_state = Arc::clone(&state);
            let listener = app
                .bus
                .subscribe(move |event| listener_state.on_event(event));
            Ok(DataService {
                state,
                bus: Arc::clone(&app.bus),
                listener,
                feed,
            })
        }

        fn state(&self) -> &Arc<SessionState> {
            &self.state
        }
    }

    impl Drop for DataService {
        fn drop(&mut self) {
            self.bus.unsubscribe(self.listener);
            self.feed.abort();
        }
    }
}

#[tokio::test]
async fn undoing_registrations_when_dropped_is_another_correct_fix() {
    let report = judge(data_service_of!(drops_what_it_registered)).await;
    assert_fix_verified(&report);
}

/// Another correct fix, with nothing to undo by hand: one task per dashboard
/// shows both kinds of events (announcements reach it over a channel), and
/// ends — removing its listener — when the service drops its end of a
/// cancellation channel.
mod one_task_cancelled_on_close {
    use std::sync::Arc;

    use futures::StreamExt;
    use tokio::sync::{mpsc, oneshot};

    use crate::{App, AppError, DataServiceApi, SessionState};

    pub struct DataService {
        state: Arc<SessionState>,
        _cancel: oneshot::Sender<()>,
    }

    impl DataServiceApi for DataService {
        async fn open(app: &App, user_id: i64) -> Result<DataService, AppError> {
            let state = SessionState::load(user_id);
            let mut prices = app.redis.get_async_pubsub().await?;
            prices.subscribe(format!("prices:{user_id}")).await?;
            let (events, mut received) = mpsc::unbounded_channel();
            let listener = app.bus.subscribe(move |event| {
                let _ = events.send(event.clone());
            });
            let (cancel, mut cancelled) = oneshot::channel::<()>();
            let (bus, shown) = (Arc::clone(&app.bus), Arc::clone(&state));
            tokio::spawn(async move {
                let mut messages = prices.into_on_message();
                loop {
                    tokio::select! {
                        _ = &mut cancelled => break,
                        Some(event) = received.recv() => shown.on_event(&event),
                        Some(message) = messages.next() => {
                            shown.on_price(message.get_payload().unwrap_or_default());
                        }
                        else => break,
                    }
                }
                bus.unsubscribe(listener);
            });
            Ok(DataService {
                state,
                _cancel: cancel,
            })
        }

        fn state(&self) -> &Arc<SessionState> {
            &self.state
        }
    }
}

#[tokio::test]
async fn one_task_cancelled_on_close_is_another_correct_fix() {
    let report = judge(data_service_of!(one_task_cancelled_on_close)).await;
    assert_fix_verified(&report);
}
