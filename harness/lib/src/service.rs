//! The backing services a scenario can use, and how their containers start.
//!
//! Each service runs in at most one container per process. The container is
//! started on a small runtime owned by the harness (not on the caller's), so it
//! outlives the `#[tokio::test]` that happened to start it; tests share the
//! container's address and build their own pools.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use serde::Serialize;
use testcontainers::core::{IntoContainerPort, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::error::{HarnessError, Result};
use crate::{docker, progress, session};

/// A backing service a scenario runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// PostgreSQL, with `pg_stat_statements` preloaded.
    Postgres,
    /// Redis.
    Redis,
}

impl Service {
    /// The short lowercase name used in labels, JSON and tables.
    pub fn id(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis",
        }
    }

    /// The official image real users pull.
    pub fn default_image(self) -> &'static str {
        match self {
            Service::Postgres => "postgres:16-alpine",
            Service::Redis => "redis:7-alpine",
        }
    }

    /// The image `make images` builds from Debian packages for offline machines.
    pub fn offline_image(self) -> &'static str {
        match self {
            Service::Postgres => "debuglab/postgres:15-bookworm",
            Service::Redis => "debuglab/redis:7-bookworm",
        }
    }

    /// The variable that overrides the image.
    pub fn image_env_var(self) -> &'static str {
        match self {
            Service::Postgres => "DEBUGLAB_POSTGRES_IMAGE",
            Service::Redis => "DEBUGLAB_REDIS_IMAGE",
        }
    }

    /// The variable that names an already-running server to use instead of a container.
    pub fn url_env_var(self) -> &'static str {
        match self {
            Service::Postgres => "DEBUGLAB_POSTGRES_URL",
            Service::Redis => "DEBUGLAB_REDIS_URL",
        }
    }

    /// The port the service listens on inside its container.
    pub(crate) fn container_port(self) -> u16 {
        match self {
            Service::Postgres => 5432,
            Service::Redis => 6379,
        }
    }

    /// Where the service keeps its data inside the container; a tmpfs is
    /// mounted there so that seeding and copying databases run at memory speed.
    pub(crate) fn data_dir(self) -> &'static str {
        match self {
            Service::Postgres => "/var/lib/postgresql/data",
            Service::Redis => "/data",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Service::Postgres => "PostgreSQL",
            Service::Redis => "Redis",
        })
    }
}

/// How long the one connection attempt to a server named by URL may take.
///
/// The server is already running, so a refusal means it is down or the URL
/// is wrong: trying again would only delay the one line that says so.
/// Silence (a host that drops packets) is cut off after this long.
const URL_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The first connection to a server named by URL (see [`Service::url_env_var`]):
/// one attempt, within [`URL_CONNECT_TIMEOUT`], and one clear line if it fails.
pub(crate) async fn connect_to_named_server<T, E: std::fmt::Display>(
    service: Service,
    description: &str,
    connecting: impl Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    let detail = match tokio::time::timeout(URL_CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => return Ok(connection),
        Ok(Err(error)) => crate::redact::redact(&error.to_string()),
        Err(_) => format!("no answer within {} s", URL_CONNECT_TIMEOUT.as_secs()),
    };
    Err(HarnessError::ServerUnreachable {
        service,
        address: description.to_owned(),
        env_var: service.url_env_var(),
        detail,
    })
}

/// Reads an optional setting from the environment; empty counts as unset.
pub(crate) fn env_setting(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// A random password of 24 letters and digits, for a container's server.
pub(crate) fn random_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

/// A running service container and where to reach it.
pub(crate) struct ServiceContainer {
    /// The container's address on Docker's bridge, or the host name its
    /// port is published on ([`address`]).
    pub host: String,
    /// The server's port there.
    pub port: u16,
    /// The image the container runs.
    pub image: String,
    /// Docker's id of the container.
    pub id: String,
    /// Kept so the container is not removed; statics are never dropped, and the
    /// session watcher removes the container when the process ends.
    _handle: ContainerAsync<GenericImage>,
}

/// What a service container needs beyond its image.
pub(crate) struct ContainerSpec {
    pub service: Service,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    /// What the container writes when its server has started; testcontainers
    /// waits for it (within [`STARTUP_TIMEOUT`]) and fails at once if the
    /// container exits first.
    pub ready: WaitFor,
}

/// How long a container may take to start and say it is ready, pulls aside.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts a container for `spec` on the harness's own runtime.
pub(crate) async fn start_container(spec: ContainerSpec) -> Result<ServiceContainer> {
    on_harness_runtime(start_container_inner(spec)).await
}

async fn start_container_inner(spec: ContainerSpec) -> Result<ServiceContainer> {
    let service = spec.service;
    let client = docker::connect().await?;
    let image = docker::resolve_image(&client, service).await?;
    session::ensure_watcher();

    let (name, tag) = docker::split_image_reference(&image);
    let port = service.container_port();
    let mut request = GenericImage::new(name, tag)
        .with_exposed_port(port.tcp())
        .with_wait_for(spec.ready)
        .with_cmd(spec.cmd)
        .with_mount(Mount::tmpfs_mount(service.data_dir()).with_mode(0o1777))
        .with_shm_size(256 * 1024 * 1024)
        .with_startup_timeout(STARTUP_TIMEOUT);
    for (key, value) in session::labels(service) {
        request = request.with_label(key, value);
    }
    for (key, value) in spec.env {
        request = request.with_env_var(key, value);
    }

    let step = progress::step(format!("starting {service} ({image})"));
    let handle = request
        .start()
        .await
        .map_err(|error| HarnessError::Container {
            service,
            action: "start",
            detail: crate::redact::redact(&error.to_string()),
        })?;
    let (host, port) = address(&client, &handle, service).await?;
    drop(step);
    tracing::info!(%service, %image, container = handle.id(), %host, port, "container started");
    Ok(ServiceContainer {
        id: handle.id().to_owned(),
        host,
        port,
        image,
        _handle: handle,
    })
}

/// How long the harness tries the container's own address before it falls
/// back to the published port.
const DIRECT_ROUTE_TIMEOUT: Duration = Duration::from_millis(500);

/// Where the harness reaches a started container: at its own address on
/// Docker's bridge where the host routes there (Linux), else at the port
/// Docker publishes on the host (Docker Desktop, a remote engine). Every
/// byte through a published port is copied by `docker-proxy`, a userland
/// process that took as much CPU as the tests themselves in `make test`.
async fn address(
    client: &bollard::Docker,
    handle: &ContainerAsync<GenericImage>,
    service: Service,
) -> Result<(String, u16)> {
    let inside = service.container_port();
    if let Some(ip) = own_address(client, handle.id()).await {
        let direct = tokio::time::timeout(
            DIRECT_ROUTE_TIMEOUT,
            tokio::net::TcpStream::connect((ip, inside)),
        )
        .await;
        if matches!(direct, Ok(Ok(_))) {
            return Ok((ip.to_string(), inside));
        }
        tracing::debug!(%service, %ip, "the container's own address is not reachable; using its published port");
    }
    let host = handle
        .get_host()
        .await
        .map_err(|error| container_error(service, "inspect", error))?
        .to_string();
    let port = handle
        .get_host_port_ipv4(inside.tcp())
        .await
        .map_err(|error| container_error(service, "inspect", error))?;
    Ok((host, port))
}

/// The container's address on the first network that gave it one.
async fn own_address(client: &bollard::Docker, id: &str) -> Option<std::net::IpAddr> {
    let container = client.inspect_container(id, None).await.ok()?;
    container
        .network_settings?
        .networks?
        .into_values()
        .filter_map(|network| network.ip_address)
        .find_map(|ip| ip.parse().ok())
}

fn container_error(
    service: Service,
    action: &'static str,
    error: impl std::fmt::Display,
) -> HarnessError {
    HarnessError::Container {
        service,
        action,
        detail: crate::redact::redact(&error.to_string()),
    }
}

/// Runs `future` on the harness's own runtime and waits for it from any runtime.
///
/// Container handles and the Docker client keep background tasks on the
/// runtime that created them; a `#[tokio::test]` runtime ends with its test,
/// so anything shared by the whole process is created here instead.
pub(crate) async fn on_harness_runtime<F, T>(future: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("debuglab-harness")
            .enable_all()
            .build()
            .expect("the harness runtime could not start")
    });
    match RUNTIME.spawn(future).await {
        Ok(value) => value,
        Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
    }
}
