//! An in-process event bus: listeners are added with [`EventBus::subscribe`]
//! and stay until [`EventBus::unsubscribe`] removes them — the shape of
//! `addEventListener` / `removeEventListener` and of many Rust pub/sub crates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Something that happened in the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message for every open dashboard.
    Announcement(u64),
}

/// Identifies one listener, for [`EventBus::unsubscribe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

type Listener = Arc<dyn Fn(&Event) + Send + Sync>;

/// Delivers every published event to every registered listener.
#[derive(Default)]
pub struct EventBus {
    listeners: Mutex<Vec<(ListenerId, Listener)>>,
    next_id: AtomicU64,
}

impl EventBus {
    /// An empty bus.
    pub fn new() -> EventBus {
        EventBus::default()
    }

    /// Registers `listener`; it is called for every event until unsubscribed.
    pub fn subscribe(&self, listener: impl Fn(&Event) + Send + Sync + 'static) -> ListenerId {
        let id = ListenerId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.lock().push((id, Arc::new(listener)));
        id
    }

    /// Removes the listener `id`; removing it twice does nothing.
    pub fn unsubscribe(&self, id: ListenerId) {
        self.lock().retain(|(listener_id, _)| *listener_id != id);
    }

    /// Calls every listener with `event`; returns how many it called (as
    /// Redis' `PUBLISH` returns its receivers).
    pub fn publish(&self, event: &Event) -> usize {
        // Listeners run outside the lock, so one may subscribe or unsubscribe.
        let listeners: Vec<Listener> = self
            .lock()
            .iter()
            .map(|(_, listener)| Arc::clone(listener))
            .collect();
        for listener in &listeners {
            listener(event);
        }
        listeners.len()
    }

    /// How many listeners are registered.
    pub fn listener_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(ListenerId, Listener)>> {
        self.listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
