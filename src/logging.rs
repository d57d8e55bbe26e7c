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
pub(crate) struct NonBlocking;

impl NonBlocking {
    /// Starts the writer thread (once) and returns the writer.
    pub(crate) fn start() -> NonBlocking {
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
pub(crate) fn flush() {
    if let Some(tx) = QUEUE_TX.get() {
        let (done_tx, done_rx) = sync_channel(1);
        if tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(Duration::from_secs(1));
        }
    }
}

/// One event's bytes, queued as one line when dropped.
pub(crate) struct Line(Vec<u8>);

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

/// logfmt (`time=... level=info target=kube_vrrp::agent msg="..." key=value`): the text log
/// format, one event per line, values quoted when they need it.
pub(crate) struct Logfmt;

fn logfmt_value(out: &mut String, v: &str) {
    if !v.is_empty() && !v.contains([' ', '"', '=', '\\', '\n', '\t']) {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Fields<'a>(&'a mut String, &'a mut Option<String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            *self.1 = Some(value.to_string());
        } else {
            self.0.push(' ');
            self.0.push_str(field.name());
            self.0.push('=');
            logfmt_value(self.0, value);
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Logfmt
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = String::new();
        let mut message = None;
        event.record(&mut Fields(&mut fields, &mut message));
        let mut line = format!(
            "time={} level={} target={}",
            k8s_openapi::jiff::Timestamp::now(),
            meta.level().as_str().to_lowercase(),
            meta.target()
        );
        line.push_str(" msg=");
        logfmt_value(&mut line, message.as_deref().unwrap_or(""));
        line.push_str(&fields);
        writeln!(writer, "{line}")
    }
}

/// A Kubernetes API error in one line ("404 NotFound: virtualips \"web\" not found"), not the
/// client's debug dump of the whole Status.
pub(crate) fn kube_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => other.to_string(),
    }
}

/// A watcher error in one line.
pub(crate) fn watch_error(e: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as W;
    match e {
        W::InitialListFailed(e) => format!("list failed: {}", kube_error(e)),
        W::WatchStartFailed(e) => format!("watch failed to start: {}", kube_error(e)),
        W::WatchFailed(e) => format!("watch failed: {}", kube_error(e)),
        W::WatchError(s) => format!(
            "watch ended by the API: {} {}: {}",
            s.code, s.reason, s.message
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn logfmt_values_are_quoted_when_they_must_be() {
        let q = |v: &str| {
            let mut s = String::new();
            super::logfmt_value(&mut s, v);
            s
        };
        assert_eq!(q("eth0"), "eth0");
        assert_eq!(q("interface eth0 down"), "\"interface eth0 down\"");
        assert_eq!(q("a=\"b\""), "\"a=\\\"b\\\"\"");
        assert_eq!(q(""), "\"\"");
    }
}

/// Errors that recur every round (a configuration retried every few seconds) logged once per
/// change: a key's text is news the first time and when it changes; a key that stops
/// recurring is reported cleared with how many rounds it lasted.
#[derive(Debug, Default)]
pub(crate) struct Repeats {
    seen: std::collections::HashMap<String, (String, u64)>,
}

impl Repeats {
    /// Notes `text` for `key` this round; true when it should be logged.
    pub(crate) fn is_news(&mut self, key: &str, text: &str) -> bool {
        match self.seen.get_mut(key) {
            Some((t, n)) if t == text => {
                *n += 1;
                false
            }
            _ => {
                self.seen.insert(key.to_string(), (text.to_string(), 1));
                true
            }
        }
    }

    /// Forgets the keys not among `current`; returns them with how many rounds they lasted.
    pub(crate) fn cleared<'a>(
        &mut self,
        current: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(String, u64)> {
        let current: std::collections::HashSet<&str> = current.into_iter().collect();
        let gone: Vec<String> = self
            .seen
            .keys()
            .filter(|k| !current.contains(k.as_str()))
            .cloned()
            .collect();
        let mut out: Vec<(String, u64)> = gone
            .into_iter()
            .filter_map(|k| self.seen.remove(&k).map(|(_, n)| (k, n)))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod repeats_tests {
    use super::Repeats;

    #[test]
    fn a_recurring_error_is_news_once_per_change_and_clears_with_its_count() {
        let mut r = Repeats::default();
        assert!(r.is_news("web/ipv4", "no interface"));
        for _ in 0..99 {
            assert!(!r.is_news("web/ipv4", "no interface"));
        }
        assert!(r.is_news("web/ipv4", "another reason"), "a change is news");
        assert!(!r.is_news("web/ipv4", "another reason"));
        assert!(r.is_news("db/ipv4", "x"));
        assert_eq!(r.cleared(["db/ipv4"]), vec![("web/ipv4".to_string(), 2)]);
        assert_eq!(r.cleared([]), vec![("db/ipv4".to_string(), 1)]);
        assert!(
            r.is_news("web/ipv4", "no interface"),
            "news again after clearing"
        );
    }
}
