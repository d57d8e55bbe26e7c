//! A deliberately tiny HTTP/1.1 responder for `/metrics`, `/status` and the probes: GET only,
//! one request per connection. Enough for Prometheus and kubelet probes without a web stack.
//! Bounded: at most [`MAX_CONNECTIONS`] at once and [`PER_PEER`] from one address other than
//! loopback (more are closed at once, so one host on the network cannot crowd out the
//! others), 5 s to send the request and 5 s to take the answer, 8 KiB of request; an accept
//! error (say, out of file descriptors) backs off instead of spinning, and is logged once a
//! minute at most. Each listener has its own bounds: kubelet's probes go to the loopback one
//! (the chart's probes use `host: 127.0.0.1`), which nothing on the network can reach.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Status line, content type, body.
pub(crate) type Response = (&'static str, &'static str, String);

pub(crate) const PROMETHEUS: &str = "text/plain; version=0.0.4";

pub(crate) fn not_found(hint: &str) -> Response {
    ("404 Not Found", "text/plain", format!("{hint}\n"))
}

/// Connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Connections served at once from one peer address (loopback excepted).
pub(crate) const PER_PEER: usize = 4;

/// Connections open per peer address; a [`PeerSlot`] gives its place back when dropped.
#[derive(Clone, Default)]
struct Peers(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>>);

struct PeerSlot(Peers, IpAddr);

impl Peers {
    /// A place for one more connection from `peer`, unless it has [`PER_PEER`] already.
    fn take(&self, peer: IpAddr) -> Option<Option<PeerSlot>> {
        if peer.is_loopback() {
            return Some(None);
        }
        let mut m = self.0.lock().expect("peers");
        let n = m.entry(peer).or_default();
        if *n >= PER_PEER {
            return None;
        }
        *n += 1;
        Some(Some(PeerSlot(self.clone(), peer)))
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut m = self.0.0.lock().expect("peers");
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// Serves until the task is dropped; every GET is answered by `handler`.
pub(crate) async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response> + Send,
{
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let peers = Peers::default();
    let mut last_error_log: Option<tokio::time::Instant> = None;
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok((s, peer)) => (s, peer),
            Err(e) => {
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(error = %e, "status listener: cannot accept; backing off");
                    last_error_log = Some(tokio::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(peer_slot) = peers.take(peer.ip()) else {
            drop(stream); // over its peer's cap: closed at once, nothing kept
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream); // over the cap: closed at once, nothing kept
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _permit = (permit, peer_slot);
            let mut buf = vec![0u8; 8192];
            let mut len = 0;
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while len < buf.len() {
                    let n = stream.read(&mut buf[len..]).await?;
                    if n == 0 {
                        break;
                    }
                    len += n;
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let request = String::from_utf8_lossy(&buf[..len]);
            let mut parts = request.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (code, ctype, body) = match (method, path) {
                ("GET", p) => handler(p.to_string()).await,
                _ => (
                    "405 Method Not Allowed",
                    "text/plain",
                    "GET only\n".to_string(),
                ),
            };
            let head = format!(
                "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_peer_gets_at_most_its_share_and_gives_it_back() {
        let peers = Peers::default();
        let a: IpAddr = "198.51.100.100".parse().unwrap();
        let b: IpAddr = "198.51.100.101".parse().unwrap();
        let held: Vec<_> = (0..PER_PEER).map(|_| peers.take(a).unwrap()).collect();
        assert!(peers.take(a).is_none(), "a fifth connection from one host");
        assert!(peers.take(b).is_some(), "another host is not crowded out");
        // Loopback (kubelet's probes, a local scraper) is never capped per peer.
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!((0..100).all(|_| matches!(peers.take(lo), Some(None))));
        drop(held);
        let again = peers.take(a).unwrap();
        assert_eq!(peers.0.lock().unwrap().get(&a), Some(&1));
        drop(again);
        assert!(
            peers.0.lock().unwrap().is_empty(),
            "nothing kept per departed peer"
        );
    }
}
