//! A network between a service and its server: a TCP proxy on loopback that
//! holds every message from the client for a fixed time before passing it on.
//!
//! On one machine a round trip to PostgreSQL costs a few microseconds; in
//! production the database sits in another rack or zone, a millisecond or so
//! away. Scenarios where round trips are the cost (a page that runs a
//! hundred queries) put this proxy between the variant's pool and the
//! server ([`crate::postgres::RunDatabase::pool_with_latency`]), so every
//! statement pays the same delay whatever SQL the variant sends — no `tc`,
//! no privileges, and no way for a variant to go around it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::error::{HarnessError, Result};

/// A running proxy; it stops, with every connection through it, when dropped.
pub struct LatencyProxy {
    address: SocketAddr,
    delay: Duration,
    accepting: JoinHandle<()>,
}

impl LatencyProxy {
    /// Listens on a free loopback port and forwards each connection to
    /// `upstream` (`host`, `port`), delaying what the client sends by `delay`.
    ///
    /// The delay is one way, so a request and its answer cost it once: a
    /// statement's round trip takes `delay` longer, a pipelined batch of
    /// messages too, as on a real network.
    pub async fn start(upstream: (String, u16), delay: Duration) -> Result<LatencyProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|error| proxy_error(format!("listening on loopback: {error}")))?;
        let address = listener
            .local_addr()
            .map_err(|error| proxy_error(format!("reading its address: {error}")))?;
        let accepting = tokio::spawn(accept(listener, upstream, delay));
        Ok(LatencyProxy {
            address,
            delay,
            accepting,
        })
    }

    /// Where clients connect instead of the server.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The one-way delay it adds.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        // The connections live in the accepting task's JoinSet: they end with it.
        self.accepting.abort();
    }
}

fn proxy_error(detail: String) -> HarnessError {
    HarnessError::Setup {
        scenario: "latency proxy".to_owned(),
        detail,
    }
}

async fn accept(listener: TcpListener, upstream: (String, u16), delay: Duration) {
    let mut connections = JoinSet::new();
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                // Out of file descriptors, say: wait a little instead of spinning.
                tracing::warn!("latency proxy: accepting a connection failed: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let upstream = upstream.clone();
        connections.spawn(async move {
            match TcpStream::connect((upstream.0.as_str(), upstream.1)).await {
                Ok(server) => forward(client, server, delay).await,
                Err(error) => tracing::warn!("latency proxy: cannot reach the server: {error}"),
            }
        });
        // Forget connections that have ended, so a long run does not pile them up.
        while connections.try_join_next().is_some() {}
    }
}

/// Passes bytes both ways until either side closes; what the client sends
/// reaches the server `delay` after it arrived.
async fn forward(client: TcpStream, server: TcpStream, delay: Duration) {
    // Both ends are in the same process's hands: no Nagle delay on top of ours.
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, server_write) = server.into_split();
    // A delay line, not a delay per read: a message that arrives in several
    // reads waits `delay` once, as it would on a real link.
    let (line, arrivals) = mpsc::unbounded_channel();
    let to_client = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(
        receive(client_read, line, delay),
        deliver(arrivals, server_write),
        to_client
    );
}

/// Reads what the client sends and puts it on the line with the time it is due.
async fn receive(
    mut client: OwnedReadHalf,
    line: mpsc::UnboundedSender<(Instant, Vec<u8>)>,
    delay: Duration,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match client.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                if line
                    .send((Instant::now() + delay, buffer[..read].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    // Dropping `line` lets `deliver` pass on what is due, then close.
}

/// Writes each chunk from the line to the server when it is due.
async fn deliver(
    mut arrivals: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    mut server: OwnedWriteHalf,
) {
    while let Some((due, bytes)) = arrivals.recv().await {
        // A timer fires on the next millisecond tick at the earliest: skip it
        // for a chunk that is already due.
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        if server.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = server.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback, and its port.
    async fn echo_server() -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        port
    }

    #[tokio::test(start_paused = true)]
    async fn every_round_trip_waits_for_the_delay_and_bytes_arrive_intact() {
        let port = echo_server().await;
        let proxy = LatencyProxy::start(("127.0.0.1".to_owned(), port), Duration::from_secs(5))
            .await
            .unwrap();
        let mut client = TcpStream::connect(proxy.address()).await.unwrap();
        for message in [&b"hello"[..], &b"world, again"[..]] {
            let sent = tokio::time::Instant::now();
            client.write_all(message).await.unwrap();
            let mut answer = vec![0u8; message.len()];
            client.read_exact(&mut answer).await.unwrap();
            assert_eq!(answer, message);
            // Paused time moves only by the timers: the delay, once.
            let waited = sent.elapsed();
            assert!(
                waited >= Duration::from_secs(5) && waited < Duration::from_secs(10),
                "{waited:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_dropped_proxy_closes_its_connections() {
        let port = echo_server().await;
        let proxy = LatencyProxy::start(("127.0.0.1".to_owned(), port), Duration::ZERO)
            .await
            .unwrap();
        let mut client = TcpStream::connect(proxy.address()).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut answer = [0u8; 4];
        client.read_exact(&mut answer).await.unwrap();
        drop(proxy);
        let mut rest = Vec::new();
        // The connection ends (EOF or reset) instead of hanging.
        let ended =
            tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest)).await;
        assert!(ended.is_ok(), "the connection outlived its proxy");
    }
}
