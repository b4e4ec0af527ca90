//! The service's users and their live sessions, written to Redis by the
//! run before the traffic starts.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;
use deadpool_redis::redis::AsyncCommands;
use debuglab_harness::redis::RunRedis;
use debuglab_harness::{HarnessError, Result};

use crate::{session_key, SESSION_TTL, USERS_KEY};

/// Users who log in during the run.
pub const USERS: usize = 4;

/// Live sessions the page views look up.
pub const SESSIONS: usize = 64;

/// The name of user `index`.
pub fn username(index: usize) -> String {
    format!("user{index}")
}

/// The password of user `index` (a test shop's: never do this with real ones).
pub fn password(index: usize) -> String {
    format!("correct horse battery staple {index}")
}

/// The token of live session `index` (fixed, so that lookups can be checked).
pub fn session_token(index: usize) -> String {
    format!("{:032x}", 0x5e55_1000_u128 + index as u128)
}

/// The user live session `index` belongs to.
pub fn session_owner(index: usize) -> String {
    username(index % USERS)
}

/// The PHC string of `password`, hashed with Argon2's defaults and a salt
/// derived from `salt` (the same every run, so that runs compare).
pub fn hash(password: &str, salt: usize) -> String {
    let salt = SaltString::encode_b64(format!("debuglab-salt-{salt:04}").as_bytes())
        .expect("a 18-byte salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing with the defaults")
        .to_string()
}

/// Writes every user's hash and every live session to `redis` (on a
/// connection of the harness's own).
pub async fn open_service(redis: &RunRedis) -> Result<()> {
    let mut conn = redis.probe_connection().await?;
    for index in 0..USERS {
        let _: () = conn
            .hset(USERS_KEY, username(index), hash(&password(index), index))
            .await
            .map_err(HarnessError::redis("writing a user's hash"))?;
    }
    for index in 0..SESSIONS {
        let _: () = conn
            .set_ex(
                session_key(&session_token(index)),
                session_owner(index),
                SESSION_TTL.as_secs(),
            )
            .await
            .map_err(HarnessError::redis("opening a session"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify_password;

    #[test]
    fn stored_hashes_check_the_right_password_only() {
        let stored = hash(&password(1), 1);
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify_password(&password(1), &stored).is_ok());
        assert!(verify_password(&password(2), &stored).is_err());
    }

    #[test]
    fn session_tokens_are_distinct() {
        let tokens: std::collections::BTreeSet<String> = (0..SESSIONS).map(session_token).collect();
        assert_eq!(tokens.len(), SESSIONS);
    }
}
