//! For random sequences of opening and closing services and publishing
//! events, the fixed service delivers every event to every live service, and
//! nothing to closed ones: the fix removes what is dead, never what is live.

use std::collections::BTreeMap;
use std::sync::Arc;

use listener_leak::{fixed::DataService, App, DataServiceApi, Event, EventBus};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[derive(Clone, Debug)]
enum Step {
    Open(u8),
    Close(u8),
    Publish,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..6).prop_map(Step::Open),
        (0u8..6).prop_map(Step::Close),
        Just(Step::Publish)
    ]
}

#[test]
fn fixed_delivers_to_every_live_service_and_only_to_them() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let redis = runtime.block_on(async {
        debuglab_harness::redis::server()
            .await
            .unwrap()
            .lease_database()
            .await
            .unwrap()
    });
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(step(), 1..40), |steps| {
        runtime.block_on(async {
            let app = App {
                bus: Arc::new(EventBus::new()),
                redis: redis.client().unwrap(),
            };
            // slot → (service, announcements it must have seen)
            let mut live: BTreeMap<u8, (DataService, u64)> = BTreeMap::new();
            let mut closed = Vec::new();
            for (at, step) in steps.iter().enumerate() {
                match step {
                    Step::Open(slot) if !live.contains_key(slot) => {
                        let service = DataService::open(&app, i64::from(*slot)).await.unwrap();
                        live.insert(*slot, (service, 0));
                    }
                    Step::Close(slot) => {
                        if let Some((service, expected)) = live.remove(slot) {
                            closed.push((Arc::clone(service.state()), expected));
                        }
                    }
                    Step::Publish => {
                        app.bus.publish(&Event::Announcement(at as u64));
                        for (_, expected) in live.values_mut() {
                            *expected += 1;
                        }
                    }
                    Step::Open(_) => {}
                }
                for (slot, (service, expected)) in &live {
                    prop_assert_eq!(
                        service.state().announcements_seen(),
                        *expected,
                        "live service {}",
                        slot
                    );
                }
                for (state, expected) in &closed {
                    prop_assert_eq!(
                        state.announcements_seen(),
                        *expected,
                        "a closed service got an event"
                    );
                }
                prop_assert_eq!(app.bus.listener_count(), live.len());
            }
            Ok(())
        })
    });
    runtime.block_on(redis.release());
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
