//! Where `signet serve` writes its log: decision lines in batches, every other line at once.
//!
//! The gate logs one line per decision, its audit trail, at the rate it decides. Written one
//! `write` at a time from the runtime's workers, those lines cost a system call each and
//! contention on stderr's lock; handed one at a time to a writer thread (tracing-appender), they
//! cost a wake-up of that thread each, and the thread competes with the workers for the cores.
//! Here a decision line is appended to a queue in memory and a thread writes the queue out every
//! [`FLUSH_INTERVAL`], in one `write`. Any other line (a reload, a warning, an error) first
//! writes out the queue and then itself, at once: lines keep their order, and nothing but
//! decision lines waits. Nothing is dropped: a full queue is written out by the line that finds
//! it full, and [`LogGuard`] writes out what is queued when the command ends. What a `SIGKILL`
//! takes with it is at most one interval of decision lines.
//!
//! Hand-written: tracing-appender's non-blocking writer wakes its thread per line, and no kept
//! crate batches by time without dropping lines.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// How long a decision line may wait in the queue.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// A queue this large is written out by the line that would overflow it.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;
/// The events that are queued: the gate's decision lines.
const QUEUED_TARGET: &str = "signet::gate::decision";

/// A [`MakeWriter`] for the log: see the module documentation.
#[derive(Clone)]
pub struct LogSink<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
}

struct Shared<W> {
    /// Decision lines not yet written. Taken after `out` whenever both are held.
    queue: Mutex<Vec<u8>>,
    out: Mutex<Out<W>>,
    stop: Mutex<bool>,
    stopped: Condvar,
    max_queued: usize,
}

struct Out<W> {
    writer: W,
    /// The queue's previous buffer, swapped in and out so that neither is reallocated.
    spare: Vec<u8>,
}

/// Keeps the [`LogSink`]'s writer thread running; dropping it writes out the queue.
pub struct LogGuard {
    stop: Box<dyn Fn() + Send>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        (self.stop)();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock left whole lines behind: logging goes on.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<W: Write + Send + 'static> LogSink<W> {
    /// A sink writing to `writer`, its queue written out every `interval` and whenever it would
    /// pass `max_queued` bytes. The guard must live as long as the log is written to.
    pub fn new(writer: W, interval: Duration, max_queued: usize) -> (Self, LogGuard) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::new()),
            out: Mutex::new(Out {
                writer,
                spare: Vec::new(),
            }),
            stop: Mutex::new(false),
            stopped: Condvar::new(),
            max_queued,
        });
        let flusher = shared.clone();
        let thread = std::thread::Builder::new()
            .name("signet-log".into())
            .spawn(move || loop {
                let stopping = {
                    let stop = lock(&flusher.stop);
                    let (stop, _) = flusher
                        .stopped
                        .wait_timeout_while(stop, interval, |stop| !*stop)
                        .unwrap_or_else(PoisonError::into_inner);
                    *stop
                };
                // Nobody to tell about a failed write of the log itself.
                let _ = flusher.write_out(&[]);
                if stopping {
                    break;
                }
            })
            .ok();
        let stopper = shared.clone();
        let guard = LogGuard {
            stop: Box::new(move || {
                *lock(&stopper.stop) = true;
                stopper.stopped.notify_all();
                // Without a thread (it could not be started), the guard writes out the queue.
                let _ = stopper.write_out(&[]);
            }),
            thread,
        };
        (LogSink { shared }, guard)
    }
}

impl<W: Write> Shared<W> {
    /// Write the queue, then `line`, under the writer's lock.
    fn write_out(&self, line: &[u8]) -> io::Result<()> {
        let mut out = lock(&self.out);
        let out = &mut *out;
        std::mem::swap(&mut *lock(&self.queue), &mut out.spare);
        let queued = out.writer.write_all(&out.spare);
        out.spare.clear();
        queued?;
        if !line.is_empty() {
            out.writer.write_all(line)?;
        }
        out.writer.flush()
    }
}

/// One event's writer (tracing-subscriber formats the line first, then writes it here).
pub struct SinkWriter<'a, W> {
    shared: &'a Shared<W>,
    queued: bool,
}

impl<W: Write> Write for SinkWriter<'_, W> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        if self.queued {
            let mut queue = lock(&self.shared.queue);
            if queue.len() + line.len() <= self.shared.max_queued {
                queue.extend_from_slice(line);
                return Ok(line.len());
            }
        }
        self.shared.write_out(line)?;
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for LogSink<W> {
    type Writer = SinkWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        SinkWriter {
            shared: &self.shared,
            queued: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        SinkWriter {
            shared: &self.shared,
            queued: meta.target() == QUEUED_TARGET,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Instant;

    use super::*;

    /// An output the test can read while the sink writes to it; counts the writes.
    #[derive(Clone, Default)]
    struct Output(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Output {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut out = self.0.lock().unwrap();
            out.0.extend_from_slice(bytes);
            out.1 += 1;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Output {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().0.clone()).unwrap()
        }
        fn writes(&self) -> usize {
            self.0.lock().unwrap().1
        }
    }

    fn write_line(sink: &LogSink<Output>, queued: bool, line: &str) {
        let mut writer = SinkWriter {
            shared: &sink.shared,
            queued,
        };
        writer.write_all(line.as_bytes()).unwrap();
    }

    /// Decision lines from several threads and other lines among them: every line is written
    /// whole, once, and each thread's lines in the order it wrote them, queued or not.
    #[test]
    fn lines_keep_their_order_and_none_is_lost() {
        let output = Output::default();
        let (sink, guard) = LogSink::new(output.clone(), Duration::from_millis(1), 4096);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        write_line(&sink, i % 100 != 99, &format!("t{t} line {i}\n"));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let text = output.text();
        assert!(text.ends_with('\n'));
        for t in 0..4 {
            let prefix = format!("t{t} ");
            let mine: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
            let wanted: Vec<String> = (0..2000).map(|i| format!("t{t} line {i}")).collect();
            assert_eq!(mine, wanted, "thread {t}");
        }
        assert_eq!(text.lines().count(), 8000);
        // Batched: far fewer writes than lines.
        assert!(output.writes() < 8000, "{} writes", output.writes());
    }

    /// A queued line goes out within the interval without any further line to push it.
    #[test]
    fn a_queued_line_is_written_within_the_interval() {
        let output = Output::default();
        let (sink, _guard) = LogSink::new(output.clone(), Duration::from_millis(20), 1 << 20);
        write_line(&sink, true, "decision\n");
        let deadline = Instant::now() + Duration::from_secs(5);
        while output.text().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the queued line was never written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(output.text(), "decision\n");
    }

    /// A line other than a decision is written at once, after the decisions queued before it.
    #[test]
    fn other_lines_write_out_the_queue_and_themselves_at_once() {
        let output = Output::default();
        let (sink, _guard) = LogSink::new(output.clone(), Duration::from_secs(3600), 1 << 20);
        write_line(&sink, true, "first decision\n");
        write_line(&sink, true, "second decision\n");
        assert_eq!(output.text(), "", "queued for the hour");
        write_line(&sink, false, "policy reloaded\n");
        assert_eq!(
            output.text(),
            "first decision\nsecond decision\npolicy reloaded\n"
        );
    }

    /// A full queue is written out by the line that finds it full, in order, nothing dropped.
    #[test]
    fn a_full_queue_is_written_out_not_dropped() {
        let output = Output::default();
        let (sink, _guard) = LogSink::new(output.clone(), Duration::from_secs(3600), 20);
        write_line(&sink, true, "0123456789\n");
        assert_eq!(output.text(), "");
        write_line(&sink, true, "abcdefghij\n");
        assert_eq!(output.text(), "0123456789\nabcdefghij\n");
        write_line(&sink, true, "queued\n");
        assert_eq!(output.text(), "0123456789\nabcdefghij\n");
    }

    /// Dropping the guard writes out the queue, however long the interval.
    #[test]
    fn the_guard_writes_out_the_queue() {
        let output = Output::default();
        let (sink, guard) = LogSink::new(output.clone(), Duration::from_secs(3600), 1 << 20);
        for i in 0..100 {
            write_line(&sink, true, &format!("decision {i}\n"));
        }
        assert_eq!(output.text(), "");
        let started = Instant::now();
        drop(guard);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the thread stopped at once"
        );
        assert_eq!(output.text().lines().count(), 100);
        assert!(output.text().ends_with("decision 99\n"));
    }

    /// Through tracing: decision events are queued, others are not.
    #[test]
    fn decision_events_are_the_queued_ones() {
        let output = Output::default();
        let (sink, _guard) = LogSink::new(output.clone(), Duration::from_secs(3600), 1 << 20);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "signet::gate::decision", image = "a", "image admitted");
            assert_eq!(output.text(), "");
            tracing::warn!(target: "signet::gate::decision", image = "b", "image denied");
            assert_eq!(output.text(), "");
            tracing::warn!("trusted root falls back to the embedded snapshot");
        });
        let text = output.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].contains("image admitted") && lines[1].contains("image denied"));
        assert!(lines[2].contains("falls back"), "{text}");
    }
}
