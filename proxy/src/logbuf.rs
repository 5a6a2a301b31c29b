//! Log lines written in batches. With the access log on, one `write(2)` per request to stdout
//! (a pipe to the container runtime, which wakes for each write) cost about a fifth of the
//! proxy's CPU per request; this buffer collects lines and writes them together:
//!
//! - when the runtime has nothing left to do (its threads call [`LogBuffer::flush`] before they
//!   park), so a lightly loaded proxy writes each line at once;
//! - when the buffer holds [`BATCH`] bytes, or its oldest line has waited [`MAX_WAIT`];
//! - at once for warnings and errors (with the lines before them: the order is kept);
//! - at exit and in the panic hook ([`install_panic_flush`]).
//!
//! A crash that skips the panic hook (SIGKILL, an OOM kill) loses what is buffered: at most
//! [`BATCH`] bytes or [`MAX_WAIT`] of lines, as nginx's `access_log ... buffer= flush=` does.

use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Bytes buffered before they are written.
pub const BATCH: usize = 32 * 1024;
/// Longest a line waits.
pub const MAX_WAIT: Duration = Duration::from_millis(200);

struct Pending {
    buf: Vec<u8>,
    since: Option<Instant>,
}

/// A buffer in front of `W` (stdout in the binary).
pub struct LogBuffer<W> {
    pending: Mutex<Pending>,
    sink: Mutex<W>,
}

impl<W: Write> LogBuffer<W> {
    /// An empty buffer in front of `sink`.
    pub fn new(sink: W) -> Self {
        LogBuffer {
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(BATCH),
                since: None,
            }),
            sink: Mutex::new(sink),
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes out what is buffered. Write errors are dropped: logging never fails a request.
    pub fn flush(&self) {
        let mut p = self.pending();
        self.write_out(&mut p);
    }

    fn write_out(&self, p: &mut Pending) {
        if p.buf.is_empty() {
            return;
        }
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let _ = sink.write_all(&p.buf);
        let _ = sink.flush();
        p.buf.clear();
        p.since = None;
    }

    /// Appends one formatted event; `urgent` writes it out at once.
    fn append(&self, line: &[u8], urgent: bool) {
        let mut p = self.pending();
        p.buf.extend_from_slice(line);
        let now = Instant::now();
        let since = *p.since.get_or_insert(now);
        if urgent || p.buf.len() >= BATCH || now.duration_since(since) >= MAX_WAIT {
            self.write_out(&mut p);
        }
    }
}

/// One event's writer: tracing formats an event in several writes; they are collected here and
/// appended to the buffer as one when the event is done.
pub struct EventWriter<'a, W: Write> {
    buffer: &'a LogBuffer<W>,
    line: Vec<u8>,
    urgent: bool,
}

impl<W: Write> Write for EventWriter<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for EventWriter<'_, W> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.buffer.append(&self.line, self.urgent);
        }
    }
}

impl<'a, W: Write + 'static> MakeWriter<'a> for &'static LogBuffer<W> {
    type Writer = EventWriter<'static, W>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            buffer: self,
            line: Vec::new(),
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EventWriter {
            buffer: self,
            line: Vec::with_capacity(256),
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

/// The process's buffer in front of stdout.
pub fn stdout() -> &'static LogBuffer<io::Stdout> {
    static STDOUT: OnceLock<LogBuffer<io::Stdout>> = OnceLock::new();
    STDOUT.get_or_init(|| LogBuffer::new(io::stdout()))
}

/// Makes a panic write out the buffered lines before the panic's own message.
pub fn install_panic_flush() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        stdout().flush();
        previous(info);
    }));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;

    /// A sink the test can read while the buffer holds it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// A buffer in front of a sink the test reads.
    fn buffer() -> (Shared, &'static LogBuffer<Shared>) {
        let sink = Shared::default();
        (sink.clone(), Box::leak(Box::new(LogBuffer::new(sink))))
    }

    fn event(b: &'static LogBuffer<Shared>, level: Level, text: &str) {
        let mut w = b.make_writer();
        w.urgent = level <= Level::WARN;
        // Formatters write an event in pieces.
        for piece in text.as_bytes().chunks(3) {
            w.write_all(piece).unwrap();
        }
    }

    #[test]
    fn lines_wait_for_a_flush_and_keep_their_order() {
        let (sink, b) = buffer();
        event(b, Level::INFO, "one\n");
        event(b, Level::INFO, "two\n");
        assert_eq!(sink.text(), "");
        b.flush();
        assert_eq!(sink.text(), "one\ntwo\n");
        b.flush();
        assert_eq!(sink.text(), "one\ntwo\n");
    }

    #[test]
    fn a_warning_writes_out_itself_and_what_came_before() {
        let (sink, b) = buffer();
        event(b, Level::INFO, "access\n");
        event(b, Level::WARN, "warning\n");
        assert_eq!(sink.text(), "access\nwarning\n");
    }

    #[test]
    fn a_full_batch_is_written_without_a_flush() {
        let (sink, b) = buffer();
        let line = format!("{}\n", "x".repeat(99));
        for _ in 0..BATCH / line.len() {
            event(b, Level::INFO, &line);
        }
        assert_eq!(sink.text(), "");
        event(b, Level::INFO, &line);
        assert_eq!(sink.text().len(), (BATCH / line.len() + 1) * line.len());
    }

    #[test]
    fn an_old_line_is_written_with_the_next_one() {
        let (sink, b) = buffer();
        event(b, Level::INFO, "first\n");
        b.pending().since = Some(Instant::now() - MAX_WAIT);
        event(b, Level::INFO, "second\n");
        assert_eq!(sink.text(), "first\nsecond\n");
    }

    #[test]
    fn tracing_events_arrive_whole() {
        let (sink, b) = buffer();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(b)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "access", path = "/a", status = 200u16);
            tracing::info!(target: "access", path = "/b", status = 404u16);
        });
        assert_eq!(sink.text(), "");
        b.flush();
        let lines: Vec<serde_json::Value> = sink
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["path"], "/a");
        assert_eq!(lines[1]["status"], 404);
    }
}
