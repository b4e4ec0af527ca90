//! Talking to Docker: reachability, which image to run, and removing leftovers.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{
    CreateImageOptionsBuilder, ListContainersOptions, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;

use crate::error::{HarnessError, Result};
use crate::service::{env_setting, Service};
use crate::{progress, session};

/// How long a ping may take before Docker counts as unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an image pull may take; registries that are unreachable usually
/// fail at once, but a black-holed network would otherwise hang the run.
const PULL_TIMEOUT: Duration = Duration::from_secs(180);

/// Connects to the Docker daemon (`DOCKER_HOST` or the default socket) and checks it answers.
pub async fn connect() -> Result<Docker> {
    let where_ =
        env_setting("DOCKER_HOST").unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
    let unavailable = |detail: String| HarnessError::DockerUnavailable {
        detail: format!("{where_}: {detail}"),
    };
    let client =
        Docker::connect_with_defaults().map_err(|error| unavailable(short_error(&error)))?;
    match tokio::time::timeout(PING_TIMEOUT, client.ping()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(error)) => Err(unavailable(short_error(&error))),
        Err(_) => Err(unavailable(format!(
            "no answer within {} s",
            PING_TIMEOUT.as_secs()
        ))),
    }
}

/// A bollard error reduced to the part a user can act on.
pub(crate) fn short_error(error: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match error {
        E::SocketNotFoundError(path) => format!("no socket at {path}"),
        E::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        other => {
            // Transport errors nest their cause; the innermost one is the readable part.
            let mut cause: &dyn std::error::Error = other;
            while let Some(next) = cause.source() {
                cause = next;
            }
            cause.to_string()
        }
    }
}

/// Splits an image reference into the name and tag that testcontainers joins
/// again as `name:tag`: `name:tag` and `registry:port/name:tag` at the tag's
/// colon (no tag means `latest`), and a digest (`name@sha256:…`, also after a
/// tag) at the digest's own colon, so that the join is the reference again.
pub(crate) fn split_image_reference(reference: &str) -> (String, String) {
    if let Some((name, digest)) = reference.split_once('@') {
        if let Some((algorithm, hex)) = digest.split_once(':') {
            return (format!("{name}@{algorithm}"), hex.to_owned());
        }
    }
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(colon) => {
            let colon = last_slash + colon;
            (
                reference[..colon].to_owned(),
                reference[colon + 1..].to_owned(),
            )
        }
        None => (reference.to_owned(), "latest".to_owned()),
    }
}

/// Whether `reference` names a tag or a digest (a registry's port is neither).
fn names_a_version(reference: &str) -> bool {
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    reference.contains('@') || reference[last_slash..].contains(':')
}

async fn image_is_local(client: &Docker, image: &str) -> bool {
    client.inspect_image(image).await.is_ok()
}

async fn pull(client: &Docker, image: &str) -> std::result::Result<(), String> {
    let _step = progress::step(format!("pulling {image}"));
    // The whole reference goes in `fromImage`, so a digest is pulled as such;
    // `tag` only when there is none, since an empty tag pulls every tag.
    let mut options = CreateImageOptionsBuilder::new().from_image(image);
    if !names_a_version(image) {
        options = options.tag("latest");
    }
    let options = options.build();
    let pulling = async {
        let mut stream = client.create_image(Some(options), None, None);
        while let Some(event) = stream.next().await {
            event.map_err(|error| short_error(&error))?;
        }
        Ok(())
    };
    match tokio::time::timeout(PULL_TIMEOUT, pulling).await {
        Ok(result) => result,
        Err(_) => Err(format!("no progress within {} s", PULL_TIMEOUT.as_secs())),
    }
}

/// Chooses the image for `service`.
///
/// An image named in the service's `DEBUGLAB_*_IMAGE` variable must exist or be
/// pullable. Otherwise the official image is used if it is local or can be
/// pulled, and the offline image built by `make images` if not.
pub(crate) async fn resolve_image(client: &Docker, service: Service) -> Result<String> {
    let unavailable = |image: &str, detail: String| HarnessError::ImageUnavailable {
        service,
        image: image.to_owned(),
        env_var: service.image_env_var(),
        detail,
    };
    if let Some(image) = env_setting(service.image_env_var()) {
        if image_is_local(client, &image).await {
            return Ok(image);
        }
        return match pull(client, &image).await {
            Ok(()) => Ok(image),
            Err(detail) => Err(unavailable(&image, detail)),
        };
    }
    let official = service.default_image();
    if image_is_local(client, official).await {
        return Ok(official.to_owned());
    }
    let pull_error = match pull(client, official).await {
        Ok(()) => return Ok(official.to_owned()),
        Err(detail) => detail,
    };
    let offline = service.offline_image();
    if image_is_local(client, offline).await {
        tracing::info!(%service, "{official} could not be pulled ({pull_error}); using the offline image {offline}");
        return Ok(offline.to_owned());
    }
    Err(unavailable(
        official,
        format!("{pull_error}; no offline image {offline} either"),
    ))
}

/// What `debuglab clean` did.
#[derive(Debug, Default)]
pub struct CleanSummary {
    /// Names of the containers removed.
    pub removed: Vec<String>,
    /// Containers left alone because the process that owns them is still running.
    pub still_in_use: Vec<String>,
}

/// Removes containers labeled `debuglab` whose owning process has ended
/// (all of them with `include_running_sessions`).
pub async fn remove_leftover_containers(include_running_sessions: bool) -> Result<CleanSummary> {
    let client = connect().await?;
    let filters = HashMap::from([("label".to_owned(), vec![session::LABEL.to_owned()])]);
    let containers = client
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|error| HarnessError::DockerUnavailable {
            detail: short_error(&error),
        })?;
    let mut summary = CleanSummary::default();
    for container in containers {
        let Some(id) = container.id else { continue };
        let name = container
            .names
            .and_then(|names| names.into_iter().next())
            .map_or_else(
                || id.chars().take(12).collect(),
                |name| name.trim_start_matches('/').to_owned(),
            );
        let labels = container.labels.unwrap_or_default();
        let owner_alive = labels
            .get(session::PID_LABEL)
            .and_then(|pid| pid.parse::<i32>().ok())
            .is_some_and(|pid| pid != std::process::id() as i32 && process_is_alive(pid));
        if owner_alive && !include_running_sessions {
            summary.still_in_use.push(name);
            continue;
        }
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match client.remove_container(&id, Some(options)).await {
            Ok(()) => summary.removed.push(name),
            Err(error) => {
                tracing::warn!("could not remove container {name}: {}", short_error(&error))
            }
        }
    }
    Ok(summary)
}

fn process_is_alive(pid: i32) -> bool {
    // SAFETY: signal 0 performs only the existence and permission check.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::{names_a_version, split_image_reference};

    #[test]
    fn splits_image_references() {
        let split = |r| split_image_reference(r);
        assert_eq!(
            split("postgres:16-alpine"),
            ("postgres".into(), "16-alpine".into())
        );
        assert_eq!(
            split("debuglab/redis:7-bookworm"),
            ("debuglab/redis".into(), "7-bookworm".into())
        );
        assert_eq!(
            split("localhost:5000/pg"),
            ("localhost:5000/pg".into(), "latest".into())
        );
        assert_eq!(
            split("localhost:5000/pg:15"),
            ("localhost:5000/pg".into(), "15".into())
        );
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn splits_digests_so_that_testcontainers_joins_them_back() {
        for reference in [
            format!("postgres@{DIGEST}"),
            format!("postgres:15@{DIGEST}"),
            format!("localhost:5000/team/pg@{DIGEST}"),
        ] {
            let (name, tag) = split_image_reference(&reference);
            assert_eq!(format!("{name}:{tag}"), reference);
            assert!(names_a_version(&reference), "{reference}");
        }
        let (name, tag) = split_image_reference(&format!("postgres@{DIGEST}"));
        assert_eq!(name, "postgres@sha256");
        assert_eq!(tag.len(), 64);
    }

    #[test]
    fn a_registry_port_is_not_a_tag() {
        assert!(!names_a_version("localhost:5000/pg"));
        assert!(!names_a_version("postgres"));
        assert!(names_a_version("localhost:5000/pg:15"));
        assert!(names_a_version("postgres:15"));
    }
}
