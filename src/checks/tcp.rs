//! `tcp`: a connection to `host:port` is accepted.

use std::net::SocketAddr;
use std::time::Duration;

use super::{BoxFuture, Checker, Outcome, io_text, ms};

pub(crate) struct Tcp {
    pub addr: SocketAddr,
}

impl Checker for Tcp {
    fn run(&self, timeout: Duration) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let t0 = tokio::time::Instant::now();
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(self.addr)).await {
                Ok(Ok(_)) => Outcome::pass(format!("connected in {}", ms(t0.elapsed()))),
                Ok(Err(e)) => Outcome::fail(io_text(&e)),
                Err(_) => Outcome::timed_out(timeout),
            }
        })
    }
}
