//! The login endpoint, as it shipped.

use deadpool_redis::redis::AsyncCommands;

use crate::{
    new_token, session_key, verify_password, Credentials, LoginError, Pool, SESSION_TTL, USERS_KEY,
};

/// Worker threads of the service's runtime: one per CPU of its container.
pub const WORKER_THREADS: usize = 2;

/// Checks the password against the user's stored hash and, if it matches,
/// opens a session; returns its token.
pub async fn login(redis: &Pool, credentials: Credentials) -> Result<String, LoginError> {
    let mut conn = redis.get().await?;
    let stored: Option<String> = conn.hget(USERS_KEY, &credentials.username).await?;
    let stored = stored.ok_or(LoginError::UnknownUser)?;
    // Tens of milliseconds of CPU: on the blocking pool, so that the
    // runtime's workers go on polling everyone else's requests meanwhile.
    let password = credentials.password.clone();
    tokio::task::spawn_blocking(move || verify_password(&password, &stored))
        .await
        .map_err(|error| LoginError::Task(error.to_string()))??;
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
