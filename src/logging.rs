//! A log writer that never blocks and never panics. Lines go into a bounded queue that one
//! thread writes to stderr; when the queue is full (stderr stuck: a full pipe, a stopped
//! terminal) lines are dropped and counted, and the count is written once stderr moves again.
//! A write error (a closed pipe: `agent ... 2>&1 | head -2`) is ignored.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// Lines queued at most.
const QUEUE: usize = 8192;

enum Msg {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

static QUEUE_TX: OnceLock<SyncSender<Msg>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The `MakeWriter` for tracing-subscriber.
#[derive(Clone, Copy)]
pub struct NonBlocking;

impl NonBlocking {
    /// Starts the writer thread (once) and returns the writer.
    pub fn start() -> NonBlocking {
        QUEUE_TX.get_or_init(|| {
            let (tx, rx) = sync_channel(QUEUE);
            let _ = std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || write_loop(rx));
            tx
        });
        NonBlocking
    }
}

fn write_loop(rx: Receiver<Msg>) {
    let stderr = std::io::stderr();
    for msg in rx {
        let mut out = stderr.lock();
        match msg {
            Msg::Line(line) => {
                let dropped = DROPPED.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    let _ = writeln!(
                        out,
                        "[{dropped} log lines dropped: stderr was not keeping up]"
                    );
                }
                let _ = out.write_all(&line);
            }
            Msg::Flush(done) => {
                let _ = out.flush();
                let _ = done.send(());
            }
        }
    }
}

/// Waits (at most a second) for the queued lines to be written.
pub fn flush() {
    if let Some(tx) = QUEUE_TX.get() {
        let (done_tx, done_rx) = sync_channel(1);
        if tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(Duration::from_secs(1));
        }
    }
}

/// One event's bytes, queued as one line when dropped.
pub struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.0);
        match QUEUE_TX.get().map(|tx| tx.try_send(Msg::Line(line))) {
            Some(Ok(())) => {}
            Some(Err(TrySendError::Full(_))) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
            Some(Err(TrySendError::Disconnected(_))) | None => {}
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for NonBlocking {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line(Vec::with_capacity(256))
    }
}
