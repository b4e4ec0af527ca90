//! The verdict: a pure function of the figures a run collected.
//!
//! Each check is one line of the contract (see the crate's docs); each
//! problem line says what broke and, where a learner could have broken it on
//! purpose, why that is not a fix.

use debuglab_harness::Verdict;

/// Replica failures named one by one in a verdict; the rest are counted.
const FAILURES_NAMED: usize = 3;

/// What a run measured, everything the verdict looks at.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Replica processes working at once.
    pub replicas: usize,
    /// Operations each replica ran at once.
    pub concurrency: usize,
    /// Operations planned over every replica (`None` in a live run, which goes on until stopped).
    pub planned: Option<u64>,
    /// What the replicas' scenario side counted.
    pub done: Done,
    /// The remote services' own counts of their calls.
    pub calls: Calls,
    /// What the stores hold afterwards.
    pub stores: Stores,
    /// Replica processes that failed, hung or were cut off, described.
    pub replica_failures: Vec<String>,
    /// Why replicas did fewer operations than planned, as they said.
    pub shortfalls: Vec<String>,
    /// Pools changed from inside a replica (their problem lines).
    pub pool_problems: Vec<String>,
}

/// The operations, as the scenario's side of each replica counted them.
#[derive(Clone, Debug, Default)]
pub struct Done {
    /// Likes recorded successfully.
    pub likes: u64,
    /// Tips credited successfully.
    pub tips: u64,
    /// The cents of those tips.
    pub cents: i64,
    /// Likes that returned an error.
    pub failed_likes: u64,
    /// Tips that returned an error.
    pub failed_tips: u64,
    /// Likes cut off midway (a stopped workload): the store may hold them or not.
    pub likes_cut_off: u64,
    /// Tips cut off midway.
    pub tips_cut_off: u64,
    /// The cents of the tips cut off midway.
    pub cents_cut_off: i64,
    /// The first error, as the replica saw it.
    pub first_error: Option<String>,
}

/// How many calls each remote service answered, by its own count.
#[derive(Clone, Debug, Default)]
pub struct Calls {
    /// The notification service.
    pub notifications: u64,
    /// The fraud check.
    pub fraud_checks: u64,
}

/// What the stores hold after the run, read by the scenario's probes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stores {
    /// Redis `likes:1` (0 if absent or not a number).
    pub likes: i64,
    /// Wallet 1's `tips_received`.
    pub tips: i64,
    /// Wallet 1's `balance_cents`.
    pub cents: i64,
}

/// Judges a run by its figures.
pub fn verdict(figures: &Figures) -> Verdict {
    let mut problems = replica_problems(figures);
    problems.extend(operation_problems(figures));
    problems.extend(store_problems(figures));
    problems.extend(call_problems(figures));
    Verdict::from_problems(&problems, || {
        let done = &figures.done;
        format!(
            "All {} likes and {} tips ({} cents) from {} replica processes, {} at a time each, are in the stores exactly once; the author was notified once per like and the fraud check called once per tip.",
            done.likes, done.tips, done.cents, figures.replicas, figures.concurrency
        )
    })
}

fn replica_problems(figures: &Figures) -> Vec<String> {
    let failures = &figures.replica_failures;
    let mut problems: Vec<String> = failures.iter().take(FAILURES_NAMED).cloned().collect();
    if failures.len() > FAILURES_NAMED {
        problems.push(format!(
            "{} more replica processes failed",
            failures.len() - FAILURES_NAMED
        ));
    }
    problems.extend(figures.pool_problems.iter().cloned());
    problems
}

fn operation_problems(figures: &Figures) -> Vec<String> {
    let done = &figures.done;
    let mut problems = Vec::new();
    if done.failed_likes + done.failed_tips > 0 {
        problems.push(format!(
            "{} likes and {} tips failed (first: {}): every operation must succeed",
            done.failed_likes,
            done.failed_tips,
            done.first_error.as_deref().unwrap_or("no message")
        ));
    }
    if let Some(planned) = figures.planned {
        if done.likes < planned || done.tips < planned {
            let why = figures
                .shortfalls
                .first()
                .map(|why| format!(" (a replica {why})"))
                .unwrap_or_default();
            problems.push(format!(
                "only {} of {planned} likes and {} of {planned} tips were handled successfully{why}",
                done.likes, done.tips
            ));
        }
    }
    problems
}

fn store_problems(figures: &Figures) -> Vec<String> {
    let (done, stores) = (&figures.done, &figures.stores);
    let (likes, tips) = (done.likes as i64, done.tips as i64);
    let mut problems = Vec::new();
    if stores.likes < likes {
        problems.push(format!(
            "{} of {likes} likes are missing: likes:1 = {} after {likes} successful likes from {} replica processes — each like must be counted exactly once, whichever replica handles it and however the requests interleave",
            likes - stores.likes, stores.likes, figures.replicas
        ));
    } else if stores.likes > likes + done.likes_cut_off as i64 {
        problems.push(format!(
            "likes:1 = {} after {likes} successful likes: {} likes were counted twice — each like must be counted exactly once, a retried one too",
            stores.likes, stores.likes - likes - done.likes_cut_off as i64
        ));
    }
    if stores.tips < tips {
        problems.push(format!(
            "{} of {tips} tips are missing: wallet 1 has tips_received = {} after {tips} successful tips",
            tips - stores.tips, stores.tips
        ));
    } else if stores.tips > tips + done.tips_cut_off as i64 {
        problems.push(format!(
            "wallet 1 has tips_received = {} after {tips} successful tips: {} tips were credited twice",
            stores.tips, stores.tips - tips - done.tips_cut_off as i64
        ));
    }
    if stores.cents < done.cents {
        problems.push(format!(
            "{} of the {} cents tipped are missing from wallet 1, whose balance_cents = {}: money must be exact to the cent",
            done.cents - stores.cents, done.cents, stores.cents
        ));
    } else if stores.cents > done.cents + done.cents_cut_off {
        problems.push(format!(
            "wallet 1 holds {} cents more than the {} cents tipped (balance_cents = {}): money must be exact to the cent — crediting a tip twice is as wrong as losing it",
            stores.cents - done.cents - done.cents_cut_off, done.cents, stores.cents
        ));
    }
    problems
}

fn call_problems(figures: &Figures) -> Vec<String> {
    let (done, calls) = (&figures.done, &figures.calls);
    let mut problems = Vec::new();
    if calls.notifications < done.likes {
        problems.push(format!(
            "the notification service was called {} times for {} successful likes: every like must notify the author, exactly once — skipping the remote call does not make the count right",
            calls.notifications, done.likes
        ));
    } else if calls.notifications > done.likes + done.failed_likes + done.likes_cut_off {
        problems.push(format!(
            "the notification service was called {} times for {} likes: authors were notified more than once for a like — a retried like must not repeat the remote call",
            calls.notifications, done.likes
        ));
    }
    if calls.fraud_checks < done.tips {
        problems.push(format!(
            "the fraud check was called {} times for {} successful tips: every tip must be approved, exactly once — skipping the remote call does not make the money right",
            calls.fraud_checks, done.tips
        ));
    } else if calls.fraud_checks > done.tips + done.failed_tips + done.tips_cut_off {
        problems.push(format!(
            "the fraud check was called {} times for {} tips: tips were approved more than once — a retried tip must not repeat the remote call",
            calls.fraud_checks, done.tips
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A healthy run: 1,200 likes and tips, each in the stores and each
    /// remote service called once per operation.
    fn healthy() -> Figures {
        Figures {
            replicas: 2,
            concurrency: 16,
            planned: Some(1200),
            done: Done {
                likes: 1200,
                tips: 1200,
                cents: 60_500,
                ..Done::default()
            },
            calls: Calls {
                notifications: 1200,
                fraud_checks: 1200,
            },
            stores: Stores {
                likes: 1200,
                tips: 1200,
                cents: 60_500,
            },
            ..Figures::default()
        }
    }

    fn summary(figures: &Figures) -> String {
        let verdict = verdict(figures);
        assert!(!verdict.healthy, "expected unhealthy: {}", verdict.summary);
        verdict.summary
    }

    #[test]
    fn a_healthy_run_says_what_held() {
        let verdict = verdict(&healthy());
        assert!(verdict.healthy, "{}", verdict.summary);
        assert_eq!(
            verdict.summary,
            "All 1200 likes and 1200 tips (60500 cents) from 2 replica processes, 16 at a time each, are in the stores exactly once; the author was notified once per like and the fraud check called once per tip."
        );
    }

    #[test]
    fn missing_likes_tips_and_cents_are_named_down_to_one() {
        let mut figures = healthy();
        figures.stores = Stores {
            likes: 1199,
            tips: 1199,
            cents: 60_499,
        };
        let summary = summary(&figures);
        assert!(
            summary.starts_with("1 of 1200 likes are missing: likes:1 = 1199 after 1200 successful likes from 2 replica processes — each like must be counted exactly once, whichever replica handles it"),
            "{summary}"
        );
        assert!(summary.contains("1 of 1200 tips are missing: wallet 1 has tips_received = 1199 after 1200 successful tips"));
        assert!(summary.contains("1 of the 60500 cents tipped are missing from wallet 1, whose balance_cents = 60499: money must be exact to the cent"));
    }

    #[test]
    fn the_buggy_picture_names_each_store() {
        let mut figures = healthy();
        figures.stores = Stores {
            likes: 161,
            tips: 104,
            cents: 5_321,
        };
        let summary = summary(&figures);
        assert!(
            summary.contains("1039 of 1200 likes are missing"),
            "{summary}"
        );
        assert!(
            summary.contains("1096 of 1200 tips are missing"),
            "{summary}"
        );
        assert!(
            summary.contains("55179 of the 60500 cents tipped are missing"),
            "{summary}"
        );
    }

    #[test]
    fn counting_twice_is_as_wrong_as_losing() {
        let mut figures = healthy();
        figures.stores = Stores {
            likes: 1201,
            tips: 1201,
            cents: 60_501,
        };
        let summary = summary(&figures);
        assert!(
            summary.starts_with(
                "Likes:1 = 1201 after 1200 successful likes: 1 likes were counted twice"
            ),
            "{summary}"
        );
        assert!(summary.contains("wallet 1 has tips_received = 1201 after 1200 successful tips: 1 tips were credited twice"));
        assert!(summary.contains(
            "wallet 1 holds 1 cents more than the 60500 cents tipped (balance_cents = 60501)"
        ));
        assert!(summary.contains("crediting a tip twice is as wrong as losing it"));
    }

    #[test]
    fn operations_cut_off_midway_may_or_may_not_be_in_the_stores() {
        let mut figures = healthy();
        figures.planned = None;
        figures.done.likes_cut_off = 2;
        figures.done.tips_cut_off = 2;
        figures.done.cents_cut_off = 150;
        figures.calls.notifications = 1202;
        figures.calls.fraud_checks = 1202;
        figures.stores = Stores {
            likes: 1202,
            tips: 1202,
            cents: 60_650,
        };
        assert!(verdict(&figures).healthy, "{}", verdict(&figures).summary);
        figures.stores = Stores {
            likes: 1203,
            tips: 1203,
            cents: 60_651,
        };
        figures.calls.notifications = 1203;
        figures.calls.fraud_checks = 1203;
        let summary = summary(&figures);
        assert!(summary.contains("1 likes were counted twice"), "{summary}");
        assert!(summary.contains("1 tips were credited twice"), "{summary}");
        assert!(summary.contains("wallet 1 holds 1 cents more"), "{summary}");
        assert!(
            summary.contains("notification service was called 1203 times for 1200 likes"),
            "{summary}"
        );
        assert!(
            summary.contains("fraud check was called 1203 times for 1200 tips"),
            "{summary}"
        );
    }

    #[test]
    fn skipping_the_remote_calls_is_not_a_fix() {
        let mut figures = healthy();
        figures.calls = Calls {
            notifications: 0,
            fraud_checks: 1199,
        };
        let summary = summary(&figures);
        assert!(
            summary.starts_with("The notification service was called 0 times for 1200 successful likes: every like must notify the author, exactly once — skipping the remote call does not make the count right"),
            "{summary}"
        );
        assert!(summary.contains("the fraud check was called 1199 times for 1200 successful tips: every tip must be approved, exactly once"));
    }

    #[test]
    fn repeating_the_remote_calls_is_not_a_fix() {
        let mut figures = healthy();
        figures.calls = Calls {
            notifications: 1201,
            fraud_checks: 2400,
        };
        let summary = summary(&figures);
        assert!(summary.starts_with("The notification service was called 1201 times for 1200 likes: authors were notified more than once for a like — a retried like must not repeat the remote call"), "{summary}");
        assert!(summary.contains("the fraud check was called 2400 times for 1200 tips: tips were approved more than once"));
    }

    #[test]
    fn failed_operations_may_have_called_the_services() {
        let mut figures = healthy();
        figures.planned = None;
        figures.done.failed_likes = 3;
        figures.done.failed_tips = 1;
        figures.done.first_error = Some("cache pool: Timeout".to_owned());
        figures.calls.notifications = 1203;
        figures.calls.fraud_checks = 1201;
        let summary = summary(&figures);
        assert_eq!(
            summary,
            "3 likes and 1 tips failed (first: cache pool: Timeout): every operation must succeed."
        );
    }

    #[test]
    fn operations_not_done_are_named_with_the_replicas_reason() {
        let mut figures = healthy();
        figures.done.likes = 6;
        figures.done.tips = 5;
        figures.done.cents = 300;
        figures.calls = Calls {
            notifications: 6,
            fraud_checks: 5,
        };
        figures.stores = Stores {
            likes: 6,
            tips: 5,
            cents: 300,
        };
        figures.shortfalls = vec![
            "stopped after 3 of 600 requests: the workload was stopped: a request blocked its worker thread".to_owned(),
        ];
        let summary = summary(&figures);
        assert_eq!(
            summary,
            "Only 6 of 1200 likes and 5 of 1200 tips were handled successfully (a replica stopped after 3 of 600 requests: the workload was stopped: a request blocked its worker thread)."
        );
    }

    #[test]
    fn a_live_run_has_no_plan_to_fall_short_of() {
        let mut figures = healthy();
        figures.planned = None;
        figures.done.likes = 10;
        figures.done.tips = 10;
        figures.done.cents = 500;
        figures.calls = Calls {
            notifications: 10,
            fraud_checks: 10,
        };
        figures.stores = Stores {
            likes: 10,
            tips: 10,
            cents: 500,
        };
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn replica_failures_and_pool_changes_come_first() {
        let mut figures = healthy();
        figures.replica_failures = (0..5)
            .map(|index| format!("replica process {index} exited with code 1 before it reported"))
            .collect();
        figures.pool_problems =
            vec!["the Redis pool was resized from 8 to 1 connections during the run".to_owned()];
        let summary = summary(&figures);
        assert!(
            summary.starts_with(
                "Replica process 0 exited with code 1 before it reported; replica process 1"
            ),
            "{summary}"
        );
        assert!(summary.contains("replica process 2 exited"), "{summary}");
        assert!(!summary.contains("replica process 3 exited"), "{summary}");
        assert!(summary
            .contains("2 more replica processes failed; the Redis pool was resized from 8 to 1"));
    }
}
