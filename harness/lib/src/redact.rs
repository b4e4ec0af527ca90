//! Keeps secrets out of logs and reports.
//!
//! Two layers: every password the harness generates or reads from a URL is
//! registered here and replaced wherever it appears, and anything shaped like a
//! credential (`scheme://user:secret@`, `password=secret`) is masked even if it
//! was never registered.

use std::sync::{LazyLock, RwLock};

use regex::Regex;

/// What a secret is replaced with.
pub const MASK: &str = "***";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

static URL_CREDENTIALS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@").unwrap()
});

static KEY_VALUE_SECRETS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?P<key>\b(?:password|passwd|pwd|requirepass|secret)\b\s*[=:]\s*|\b(?:password|requirepass)\s+(?P<q>'|")|--requirepass\s+)(?P<q2>['"]?)[^\s'"&,;]+"#,
    )
    .unwrap()
});

/// Registers a secret so that [`redact`] masks it from now on.
///
/// Empty strings and very short values are ignored: masking every `a` in a
/// report would make it unreadable without protecting anything.
pub fn register_secret(secret: &str) {
    if secret.len() < 4 {
        return;
    }
    let mut secrets = SECRETS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !secrets.iter().any(|known| known == secret) {
        secrets.push(secret.to_owned());
        // Longest first, so that a secret containing another is masked whole.
        secrets.sort_by_key(|known| std::cmp::Reverse(known.len()));
    }
}

/// Returns `text` with every registered secret and credential-shaped value masked.
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    {
        let secrets = SECRETS
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
    }
    let out = URL_CREDENTIALS.replace_all(&out, format!("${{scheme}}${{user}}:{MASK}@"));
    KEY_VALUE_SECRETS
        .replace_all(&out, format!("${{key}}${{q2}}{MASK}"))
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords_in_connection_urls() {
        assert_eq!(
            redact("connecting to postgres://postgres:hunter2@127.0.0.1:5432/app"),
            "connecting to postgres://postgres:***@127.0.0.1:5432/app"
        );
        assert_eq!(
            redact("redis://:s3cr3t@localhost:6379/2"),
            "redis://:***@localhost:6379/2"
        );
    }

    #[test]
    fn masks_key_value_passwords() {
        assert_eq!(
            redact("host=db user=app password=hunter2 dbname=x"),
            "host=db user=app password=*** dbname=x"
        );
        assert_eq!(
            redact("ALTER USER postgres PASSWORD 'abc123'"),
            "ALTER USER postgres PASSWORD '***'"
        );
        assert_eq!(
            redact("redis-server --requirepass xyz987 --port 1"),
            "redis-server --requirepass *** --port 1"
        );
        assert_eq!(
            redact("password authentication failed"),
            "password authentication failed"
        );
    }

    #[test]
    fn masks_registered_secrets_anywhere() {
        register_secret("Zq8vLr2Kp0");
        assert_eq!(
            redact("error near 'Zq8vLr2Kp0' in output"),
            "error near '***' in output"
        );
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        let text = "Seq Scan on orders (rows removed by filter: 999900) at http://localhost:8080/x";
        assert_eq!(redact(text), text);
    }
}
