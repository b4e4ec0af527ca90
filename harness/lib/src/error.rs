//! The harness's error type.
//!
//! Every variant reads as one sentence that says what went wrong and what to
//! do about it, because the CLI prints it as the single line a user sees.

use crate::Service;

/// Anything that stops the harness from producing a report.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The Docker daemon could not be reached.
    #[error("cannot reach Docker ({detail}); start the Docker daemon (or set DOCKER_HOST) and try again")]
    DockerUnavailable { detail: String },

    /// Neither the wanted image nor the offline fallback is available.
    #[error(
        "the {service} image {image} is not available locally and could not be pulled ({detail}); \
         run `make images` to build the offline images, or set {env_var} to an image you have"
    )]
    ImageUnavailable {
        service: Service,
        image: String,
        env_var: &'static str,
        detail: String,
    },

    /// Docker refused or failed an operation on a container.
    #[error("Docker could not {action} the {service} container: {detail}")]
    Container {
        service: Service,
        action: &'static str,
        detail: String,
    },

    /// A service's container said it had started, but its server did not
    /// accept connections.
    #[error("{service} at {address} started but did not accept connections within {waited_secs} s: {detail}")]
    ServiceNotReady {
        service: Service,
        address: String,
        waited_secs: u64,
        detail: String,
    },

    /// A server named by URL did not accept the harness's connection.
    #[error("cannot connect to {service} at {address} ({detail}); check that the server is running and that {env_var} names it")]
    ServerUnreachable {
        service: Service,
        address: String,
        env_var: &'static str,
        detail: String,
    },

    /// An environment variable that configures the harness has a bad value.
    #[error("{var} is not valid: {detail}")]
    InvalidSetting { var: &'static str, detail: String },

    /// A PostgreSQL statement the harness itself issued failed.
    #[error("PostgreSQL error while {doing}: {source}")]
    Postgres {
        doing: String,
        #[source]
        source: sqlx::Error,
    },

    /// A Redis command the harness itself issued failed.
    #[error("Redis error while {doing}: {detail}")]
    Redis { doing: String, detail: String },

    /// `clean --server` was asked for, but no server is named.
    #[error("no server to clean: set DEBUGLAB_POSTGRES_URL and/or DEBUGLAB_REDIS_URL to the servers debuglab used")]
    NoServerNamed,

    /// The process is ending and has cleaned up the servers it did not start.
    #[error("debuglab is ending; nothing more is made on the servers")]
    Ending,

    /// A scenario's verdict needs heap figures and this program does not count them.
    #[error(
        "scenario {scenario} judges the heap, but this program does not count it: add \
         `debuglab_harness::install_counting_allocator!();` at the top of the program's main.rs \
         (or of the test file) — see the authoring guide"
    )]
    HeapNotCounted { scenario: String },

    /// A scenario's own set-up failed in a way that is a bug, not a verdict.
    #[error("scenario {scenario} failed to set up: {detail}")]
    Setup { scenario: String, detail: String },
}

impl HarnessError {
    /// Wraps a `sqlx` error with what the harness was doing at the time.
    pub fn postgres(doing: impl Into<String>) -> impl FnOnce(sqlx::Error) -> HarnessError {
        let doing = doing.into();
        move |source| HarnessError::Postgres { doing, source }
    }

    /// Wraps a Redis error with what the harness was doing at the time.
    pub fn redis<E: std::fmt::Display>(doing: impl Into<String>) -> impl FnOnce(E) -> HarnessError {
        let doing = doing.into();
        move |error| HarnessError::Redis {
            doing,
            detail: error.to_string(),
        }
    }
}

/// Shorthand for results whose error is a [`HarnessError`].
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
