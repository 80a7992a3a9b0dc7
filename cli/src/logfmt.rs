//! Log lines in tracing-subscriber's default text format, written without most of its
//! per-field formatting machinery.
//!
//! The gate writes one line per decision (its audit log), at the rate it decides, so the cost of
//! a line is part of the cost of a decision. tracing-subscriber's `Full` format styles every
//! piece (target, each field name, each `=`) even when colours are off, and passes each message
//! through its escaping writer one character at a time. [`PlainLines`] writes the same bytes for
//! the events the gate logs (no colours, no span context, no `log` records), and hands every
//! other event to `Full` itself, so a line never depends on which path wrote it. The test below
//! holds the two paths to the same output.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::VisitOutput as _;
use tracing_subscriber::fmt::format::{
    DefaultVisitor, Format, FormatEvent, FormatFields, Full, Writer,
};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

/// The default text format (`Full`, system time), cheaper for plain events. See the module
/// documentation.
#[derive(Default)]
pub struct PlainLines {
    full: Format<Full, SystemTime>,
}

impl<S, N> FormatEvent<S, N> for PlainLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        // Colours, span prefixes and records bridged from the `log` crate (whose metadata the
        // default format rewrites) are the default format's to write.
        if writer.has_ansi_escapes()
            || !writer.sanitizes_ansi_escapes()
            || ctx.event_scope().is_some()
            || meta.fields().field("log.target").is_some()
        {
            return self.full.format_event(ctx, writer, event);
        }
        write_timestamp(&mut writer)?;
        writer.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        let mut fields = PlainFields {
            writer: writer.by_ref(),
            is_empty: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// The time now as the default format writes it (`2026-12-03T10:03:13.523662Z`), the part up to
/// the second formatted once a second per thread.
fn write_timestamp(writer: &mut Writer<'_>) -> fmt::Result {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok();
    let written = since_epoch.map(|since| -> Result<bool, fmt::Error> {
        SECOND.with(|second| {
            let Ok(mut second) = second.try_borrow_mut() else {
                return Ok(false);
            };
            if second.0 != Some(since.as_secs()) {
                second.0 = None;
                second.1.clear();
                if !format_second(&mut second.1, since.as_secs())? {
                    return Ok(false);
                }
                second.0 = Some(since.as_secs());
            }
            writer.write_str(&second.1)?;
            write_fraction(writer, since.subsec_micros())?;
            Ok(true)
        })
    });
    match written {
        Some(Ok(true)) => Ok(()),
        Some(Err(e)) => Err(e),
        // Before 1970, after 9999 or re-entered: the default format's own clock and words.
        _ => {
            if SystemTime.format_time(writer).is_err() {
                writer.write_str("<unknown time>")?;
            }
            Ok(())
        }
    }
}

thread_local! {
    /// Each thread's last second and its text.
    static SECOND: std::cell::RefCell<(Option<u64>, String)> =
        const { std::cell::RefCell::new((None, String::new())) };
}

/// `2026-12-03T10:03:13` for `unix_seconds` into `out`; `false` for a year the default format
/// writes otherwise (after 9999).
fn format_second(out: &mut String, unix_seconds: u64) -> Result<bool, fmt::Error> {
    let Ok(seconds) = i64::try_from(unix_seconds) else {
        return Ok(false);
    };
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(seconds) else {
        return Ok(false);
    };
    if !(0..=9999).contains(&t.year()) {
        return Ok(false);
    }
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )?;
    Ok(true)
}

/// `.523662Z`
fn write_fraction(writer: &mut impl fmt::Write, micros: u32) -> fmt::Result {
    let mut text = *b".000000Z";
    let mut rest = micros.min(999_999);
    for digit in text[1..7].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    writer.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
}

/// Writes an event's fields as tracing-subscriber's `DefaultVisitor` does: `message` bare and
/// escaped, the others `name=value` in `Debug`, separated by spaces.
struct PlainFields<'w> {
    writer: Writer<'w>,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainFields<'_> {
    /// The separator before every field but the first.
    fn pad(&mut self) -> fmt::Result {
        if self.is_empty {
            self.is_empty = false;
            Ok(())
        } else {
            self.writer.write_char(' ')
        }
    }

    /// `name=` for a field other than `message` (a raw identifier loses its `r#`).
    fn name(&mut self, field: &Field) -> fmt::Result {
        let name = field.name();
        self.writer
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.writer.write_char('=')
    }

    fn write_message(&mut self, value: &dyn fmt::Debug) -> fmt::Result {
        MESSAGE.with(|buffer| {
            let mut buffer = match buffer.try_borrow_mut() {
                Ok(b) => b,
                // Re-entered from inside a value's `Debug` (an event logged while formatting):
                // a fresh buffer.
                Err(_) => return write_escaped(&mut self.writer, &format!("{value:?}")),
            };
            buffer.clear();
            write!(buffer, "{value:?}")?;
            let result = write_escaped(&mut self.writer, &buffer);
            if buffer.capacity() > MAX_KEPT_MESSAGE_BYTES {
                *buffer = String::new();
            }
            result
        })
    }
}

thread_local! {
    /// Each thread's message buffer, reused from line to line.
    static MESSAGE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A message buffer larger than this is not kept for the next line.
const MAX_KEPT_MESSAGE_BYTES: usize = 16 * 1024;

/// `text` with the terminal control characters tracing-subscriber escapes in messages
/// (ESC, BEL, BS, FF, DEL and the C1 range) written as it writes them.
fn write_escaped(writer: &mut Writer<'_>, text: &str) -> fmt::Result {
    let needs_escaping = |c: char| {
        matches!(
            c,
            '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
        )
    };
    if !text.chars().any(needs_escaping) {
        return writer.write_str(text);
    }
    for c in text.chars() {
        match c {
            '\x1b' => writer.write_str("\\x1b")?,
            '\x07' => writer.write_str("\\x07")?,
            '\x08' => writer.write_str("\\x08")?,
            '\x0c' => writer.write_str("\\x0c")?,
            '\x7f' => writer.write_str("\\x7f")?,
            '\u{80}'..='\u{9f}' => write!(writer, "\\u{{{:x}}}", c as u32)?,
            c => writer.write_char(c)?,
        }
    }
    Ok(())
}

impl Visit for PlainFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.result.is_err() || field.name() == "message" {
            return self.record_debug(field, &value);
        }
        self.result = self
            .pad()
            .and_then(|()| self.name(field))
            .and_then(|()| self.writer.write_str(if value { "true" } else { "false" }));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_err() {
            return;
        }
        // Errors with their sources: the default visitor's own words.
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        visitor.record_error(field, value);
        self.is_empty = false;
        self.result = visitor.finish();
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.result = self.pad().and_then(|()| {
            if field.name() == "message" {
                self.write_message(value)
            } else {
                self.name(field)?;
                write!(self.writer, "{value:?}")
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Outer(Inner);
    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("cannot judge")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("registry \x1b[31mdown")
        }
    }
    impl std::error::Error for Inner {}

    /// Every kind of event the binary logs, and some it might.
    fn events() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let image = "127.0.0.1:5000/team/app@sha256:00".to_string();
        tracing::info!(
            target: "signet::gate::decision",
            source = "admission", image = %image, digest = %digest, result = "allow",
            mode = "enforce", admitted = true, cached = false, elapsed_ms = 3u64,
            message = %"allowed by 127.0.0.1:5000/team", "image admitted"
        );
        tracing::warn!(
            target: "signet::gate::decision",
            source = "proxy", image = %"a b", digest = %"", result = "deny", admitted = false,
            elapsed_ms = 0u64, message = %"denied: [no-signature] \"quoted\"\nsecond line \x1b[2J \u{9b}",
            "image denied"
        );
        tracing::warn!(
            root = "Sigstore public-good root",
            "trusted root falls back to the embedded snapshot"
        );
        tracing::error!(
            error = &Outer(Inner) as &(dyn std::error::Error + 'static),
            "reload failed"
        );
        tracing::info!(
            r#type = "vuln",
            count = -4i64,
            ratio = 0.5f64,
            big = 7u128,
            "typed"
        );
        tracing::info!(
            quoted = "tab\there",
            flag = false,
            "bools \u{7f} and {}",
            "args"
        );
        tracing::info!("no fields at all");
        tracing::info!(only = 1u64);
        tracing::debug!(target: "hyper::proto", bytes = 42u64, "debug line");
        let span = tracing::info_span!("request", id = 7u64);
        span.in_scope(|| tracing::info!(inner = true, "inside a span"));
    }

    fn lines(plain: bool) -> Vec<String> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let builder = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone());
        if plain {
            tracing::subscriber::with_default(
                builder.event_format(PlainLines::default()).finish(),
                events,
            );
        } else {
            tracing::subscriber::with_default(builder.finish(), events);
        }
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        // The timestamps differ; everything after them must not. (A message with a newline
        // goes on over two lines in both formats.)
        text.lines()
            .map(|line| {
                let stamped = line.len() > TIMESTAMP_LEN
                    && line.as_bytes()[10] == b'T'
                    && line.as_bytes()[TIMESTAMP_LEN - 1] == b'Z';
                if stamped {
                    line[TIMESTAMP_LEN..].to_string()
                } else {
                    line.to_string()
                }
            })
            .collect()
    }

    /// `2026-12-03T10:03:13.523662Z`
    const TIMESTAMP_LEN: usize = 27;

    /// Known instants, and the clock now as the default format writes it.
    #[test]
    fn timestamps_are_written_as_the_default_format_writes_them() {
        for (seconds, micros, wanted) in [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (1_764_756_193, 523_662, "2025-12-03T10:03:13.523662Z"),
            (951_782_400, 7, "2000-02-29T00:00:00.000007Z"),
            (4_102_444_799, 999_999, "2099-12-31T23:59:59.999999Z"),
        ] {
            let mut text = String::new();
            assert!(format_second(&mut text, seconds).unwrap());
            write_fraction(&mut text, micros).unwrap();
            assert_eq!(text, wanted);
        }
        let mut far = String::new();
        assert!(
            !format_second(&mut far, 253_402_300_800).unwrap(),
            "year 10000"
        );
        // Against tracing-subscriber's own clock: equal to the second unless one ended between
        // the two readings, then try again.
        for _ in 0..5 {
            let mut theirs = String::new();
            SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            let mut ours = String::new();
            write_timestamp(&mut Writer::new(&mut ours)).unwrap();
            assert_eq!(ours.len(), TIMESTAMP_LEN, "{ours:?}");
            assert!(ours.ends_with('Z'), "{ours:?}");
            if theirs[..19] == ours[..19] {
                assert_eq!(theirs.len(), TIMESTAMP_LEN);
                return;
            }
        }
        panic!("the two clocks never agreed to the second");
    }

    #[test]
    fn plain_lines_are_the_default_format_byte_for_byte() {
        let full = lines(false);
        let plain = lines(true);
        assert_eq!(full.len(), 11, "{full:#?}");
        for (full, plain) in full.iter().zip(&plain) {
            assert_eq!(plain, full);
        }
        assert_eq!(plain.len(), full.len());
        // The cases the fast path must get right are really in there.
        assert!(full[2].contains(r"\x1b[2J \u{9b}"), "{}", full[2]);
        assert!(
            full[0]
                .starts_with("  INFO signet::gate::decision: image admitted source=\"admission\""),
            "{}",
            full[0]
        );
    }
}
