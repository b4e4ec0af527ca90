//! Wrong fixes — the ways people really get this bug wrong — each judged
//! unhealthy with the problem line that says why; and another correct fix,
//! judged healthy: the verdict is about the contract, not about one fix.

use crate::*;

use debuglab_harness::testing::{assert_fix_verified, assert_unhealthy_because, judge_candidate};
use debuglab_harness::Report;

/// Runs `code` as the exercise and returns its report.
async fn judge(code: Code) -> Report {
    judge_candidate(BlockedRuntime::with_candidate(code)).await
}

/// The login as it shipped, with the password check handed to `check`
/// (given the password typed and the stored hash): the wrong fixes differ
/// only in how they check.
mod shipped {
    use std::future::Future;

    use deadpool_redis::redis::AsyncCommands;

    use crate::{new_token, session_key, Credentials, LoginError, Pool, SESSION_TTL, USERS_KEY};

    pub async fn login_with<F, Fut>(
        redis: &Pool,
        credentials: Credentials,
        check: F,
    ) -> Result<String, LoginError>
    where
        F: FnOnce(String, String) -> Fut,
        Fut: Future<Output = Result<(), LoginError>>,
    {
        let mut conn = redis.get().await?;
        let stored: Option<String> = conn.hget(USERS_KEY, &credentials.username).await?;
        let stored = stored.ok_or(LoginError::UnknownUser)?;
        check(credentials.password.clone(), stored).await?;
        let token = new_token();
        let _: () = conn
            .set_ex(
                session_key(&token),
                &credentials.username,
                SESSION_TTL.as_secs(),
            )
            .await?;
        Ok(token)
    }
}

/// "The runtime is too small": the login as it shipped, on sixteen workers.
mod more_workers {
    pub use crate::buggy::login;

    pub const WORKER_THREADS: usize = 16;
}

#[tokio::test]
async fn more_worker_threads_is_not_a_fix() {
    let report = judge(code_of!(more_workers)).await;
    assert_unhealthy_because(
        &report,
        "polls on the service's 16 worker threads ran 10 ms or longer",
    );
    assert_unhealthy_because(&report, "more worker threads make it rarer");
}

/// "Run it in the background": the check in a task of its own, on the same workers.
mod spawns_the_check {
    use super::shipped::login_with;
    use crate::{verify_password, Credentials, LoginError, Pool};

    pub const WORKER_THREADS: usize = 2;

    pub async fn login(redis: &Pool, credentials: Credentials) -> Result<String, LoginError> {
        login_with(redis, credentials, |password, stored| async move {
            tokio::spawn(async move { verify_password(&password, &stored) })
                .await
                .map_err(|error| LoginError::Task(error.to_string()))?
        })
        .await
    }
}

#[tokio::test]
async fn spawning_the_check_on_the_same_runtime_is_not_a_fix() {
    let report = judge(code_of!(spawns_the_check)).await;
    // The check runs in a task whose polls the harness does not time; it
    // still holds a worker, and the lookups queue behind it.
    assert_unhealthy_because(&report, "the service's 2 worker threads were held");
    assert_unhealthy_because(&report, "moves the long poll, it does not remove it");
}

/// "Give the check a thread of its own": a thread for each check, joined
/// in a task of its own on the same runtime.
mod joins_a_thread_in_a_task {
    use super::shipped::login_with;
    use crate::{verify_password, Credentials, LoginError, Pool};

    pub const WORKER_THREADS: usize = 2;

    pub async fn login(redis: &Pool, credentials: Credentials) -> Result<String, LoginError> {
        login_with(redis, credentials, |password, stored| async move {
            tokio::spawn(async move {
                std::thread::spawn(move || verify_password(&password, &stored))
                    .join()
                    .map_err(|_| LoginError::Task("the check panicked".to_owned()))?
            })
            .await
            .map_err(|error| LoginError::Task(error.to_string()))?
        })
        .await
    }
}

#[tokio::test]
async fn joining_the_checks_thread_in_a_task_is_not_a_fix() {
    let report = judge(code_of!(joins_a_thread_in_a_task)).await;
    // The worker computes nothing: it sleeps in join(), held all the same.
    assert_unhealthy_because(&report, "the service's 2 worker threads were held");
    assert_unhealthy_because(
        &report,
        "computing or asleep, a held worker polls nothing else",
    );
}

/// "Hashing is slow, remember who logged in": each verified password kept
/// in memory, checked again only when it is new.
mod remembers_passwords {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use super::shipped::login_with;
    use crate::{verify_password, Credentials, LoginError, Pool};

    pub const WORKER_THREADS: usize = 2;

    static VERIFIED: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);

    pub async fn login(redis: &Pool, credentials: Credentials) -> Result<String, LoginError> {
        let key = (credentials.username.clone(), credentials.password.clone());
        login_with(redis, credentials, |password, stored| async move {
            let mut verified = VERIFIED.lock().unwrap();
            let verified = verified.get_or_insert_with(HashSet::new);
            if !verified.contains(&key) {
                verify_password(&password, &stored)?;
                verified.insert(key);
            }
            Ok(())
        })
        .await
    }
}

#[tokio::test]
async fn remembering_verified_passwords_is_not_a_fix() {
    let report = judge(code_of!(remembers_passwords)).await;
    assert_unhealthy_because(
        &report,
        "logins no longer check the password against its Argon2 hash",
    );
}

/// Another correct fix: the check on a thread of its own, the answer sent
/// back on a oneshot channel.
mod checks_on_a_thread {
    use super::shipped::login_with;
    use crate::{verify_password, Credentials, LoginError, Pool};

    pub const WORKER_THREADS: usize = 2;

    pub async fn login(redis: &Pool, credentials: Credentials) -> Result<String, LoginError> {
        login_with(redis, credentials, |password, stored| async move {
            let (answer, checked) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || answer.send(verify_password(&password, &stored)));
            checked
                .await
                .map_err(|error| LoginError::Task(error.to_string()))?
        })
        .await
    }
}

#[tokio::test]
async fn checking_on_a_thread_of_its_own_is_another_correct_fix() {
    let report = judge(code_of!(checks_on_a_thread)).await;
    assert_fix_verified(&report);
}
