//! A deliberately tiny HTTP/1.1 responder for `/metrics`, `/status` and `/healthz`: GET only,
//! one request per connection. Enough for Prometheus and kubelet probes without a web stack.
//! Bounded: at most [`MAX_CONNECTIONS`] at once (more are closed at once), 5 s to send the
//! request and 5 s to take the answer, 8 KiB of request; an accept error (say, out of file
//! descriptors) backs off instead of spinning, and is logged once a minute at most.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Status line, content type, body.
pub type Response = (&'static str, &'static str, String);

pub const PROMETHEUS: &str = "text/plain; version=0.0.4";

pub fn not_found(hint: &str) -> Response {
    ("404 Not Found", "text/plain", format!("{hint}\n"))
}

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// Serves until the task is dropped. `/healthz` is answered here; other paths by `handler`.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response> + Send,
{
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut last_error_log: Option<tokio::time::Instant> = None;
    loop {
        let mut stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(error = %e, "status listener: cannot accept; backing off");
                    last_error_log = Some(tokio::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream); // over the cap: closed at once, nothing kept
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _permit = permit;
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
                ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".to_string()),
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
