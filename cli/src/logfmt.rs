//! Log lines in tracing-subscriber's default text format, written without most of its
//! per-field formatting machinery.
//!
//! The gate writes one line per decision (its audit log), at the rate it decides, so the cost of
//! a line is part of the cost of a decision. tracing-subscriber's `Full` format styles every
//! piece (target, each field name, each `=`) even when colours are off, and passes each message
//! through its escaping writer one character at a time. [`PlainLines`] writes the same bytes for
//! the events the gate logs (no colours, no span context, no `log` records), and hands every
//! other event to `Full` itself, so a line never depends on which path wrote it. The tests below
//! hold the two paths to the same output.
//!
//! A line is put together in a per-thread buffer and handed to tracing-subscriber in one piece.
//! Values whose `Debug` text is known without running it (a `str` of printable ASCII other than
//! `"` and `\`, which it only quotes; integers; `bool`) are written directly; any other value
//! goes through `Debug` as in `Full`.

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
        // The line is put together in a buffer of this formatter's own and handed on in one
        // piece: every piece written to `writer` goes through two dynamic calls.
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                let result = write_line(&mut line, event).and_then(|()| writer.write_str(&line));
                if line.capacity() > MAX_KEPT_LINE_BYTES {
                    *line = String::new();
                }
                result
            }
            // Re-entered from inside a value's `Debug` (an event logged while formatting): a
            // fresh buffer.
            Err(_) => {
                let mut line = String::new();
                write_line(&mut line, event)?;
                writer.write_str(&line)
            }
        })
    }
}

thread_local! {
    /// Each thread's line buffer, reused from line to line.
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A line buffer larger than this is not kept for the next line.
const MAX_KEPT_LINE_BYTES: usize = 16 * 1024;

/// The whole line for `event`, newline included, onto `line`.
fn write_line(line: &mut String, event: &Event<'_>) -> fmt::Result {
    let meta = event.metadata();
    write_timestamp(line)?;
    line.push_str(match *meta.level() {
        Level::TRACE => " TRACE ",
        Level::DEBUG => " DEBUG ",
        Level::INFO => "  INFO ",
        Level::WARN => "  WARN ",
        Level::ERROR => " ERROR ",
    });
    line.push_str(meta.target());
    line.push_str(": ");
    let mut fields = PlainFields {
        line,
        is_empty: true,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    fields.line.push('\n');
    Ok(())
}

/// The time now as the default format writes it (`2026-12-03T10:03:13.523662Z`), the part up to
/// the second formatted once a second per thread.
fn write_timestamp<W: fmt::Write>(writer: &mut W) -> fmt::Result {
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
            if SystemTime.format_time(&mut Writer::new(writer)).is_err() {
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
    text.iter()
        .try_for_each(|&b| writer.write_char(char::from(b)))
}

/// Writes an event's fields as tracing-subscriber's `DefaultVisitor` does: `message` bare and
/// escaped, the others `name=value` in `Debug`, separated by spaces.
struct PlainFields<'l> {
    line: &'l mut String,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainFields<'_> {
    /// The separator before every field but the first.
    fn pad(&mut self) {
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.line.push(' ');
        }
    }

    /// `name=` for a field other than `message` (a raw identifier loses its `r#`).
    fn name(&mut self, field: &Field) {
        let name = field.name();
        self.line.push_str(name.strip_prefix("r#").unwrap_or(name));
        self.line.push('=');
    }

    /// A `message` value: its `Debug`, with the control characters the default format escapes
    /// escaped. Written in place and rewritten only if it has any.
    fn write_message(&mut self, value: &dyn fmt::Debug) -> fmt::Result {
        let start = self.line.len();
        write!(self.line, "{value:?}")?;
        if may_need_escaping(&self.line[start..]) {
            let text = self.line.split_off(start);
            write_escaped(self.line, &text);
        }
        Ok(())
    }

    /// Whether a value goes to `record_debug` as it is: an error before, `message`, or a field
    /// `record_debug` skips.
    fn is_special(&self, field: &Field) -> bool {
        let name = field.name();
        self.result.is_err() || name == "message" || name.starts_with("log.")
    }
}

/// Whether `text` may hold a character [`write_escaped`] escapes: one of the ASCII ones, or
/// U+0080 to U+00BF (lead byte 0xC2), which holds the C1 range.
fn may_need_escaping(text: &str) -> bool {
    !is_printable_ascii(text)
        && text
            .bytes()
            .any(|b| matches!(b, 0x07 | 0x08 | 0x0c | 0x1b | 0x7f | 0xc2))
}

/// Whether every byte of `text` is printable ASCII (space to `~`). Every byte is looked at,
/// without stopping early, so that the compiler can check many at once.
fn is_printable_ascii(text: &str) -> bool {
    text.bytes()
        .fold(true, |plain, b| plain & (b.wrapping_sub(b' ') < 0x5f))
}

/// `text` with the terminal control characters tracing-subscriber escapes in messages
/// (ESC, BEL, BS, FF, DEL and the C1 range) written as it writes them.
fn write_escaped(out: &mut String, text: &str) {
    if !may_need_escaping(text) {
        return out.push_str(text);
    }
    for c in text.chars() {
        match c {
            '\x1b' => out.push_str("\\x1b"),
            '\x07' => out.push_str("\\x07"),
            '\x08' => out.push_str("\\x08"),
            '\x0c' => out.push_str("\\x0c"),
            '\x7f' => out.push_str("\\x7f"),
            '\u{80}'..='\u{9f}' => {
                out.push_str("\\u{");
                write_hex(out, c as u32);
                out.push('}');
            }
            c => out.push(c),
        }
    }
}

/// `value` in lower-case hexadecimal, as `{:x}` writes it.
fn write_hex(out: &mut String, value: u32) {
    let mut digits = [b'0'; 8];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[(rest % 16) as usize];
        rest /= 16;
        if rest == 0 {
            break;
        }
    }
    digits[at..].iter().for_each(|&d| out.push(char::from(d)));
}

/// `value` as `{:?}` writes a `str`: quoted and escaped. Text of printable ASCII but `"` and
/// `\` (which is how `Debug` leaves it) is copied; any other goes through `Debug`, which also
/// escapes non-printable and grapheme-extending characters beyond ASCII.
fn write_debug_str(out: &mut String, value: &str) -> fmt::Result {
    let plain = value.bytes().fold(true, |plain, b| {
        plain & (b.wrapping_sub(b' ') < 0x5f) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push('"');
        out.push_str(value);
        out.push('"');
        Ok(())
    } else {
        write!(out, "{value:?}")
    }
}

/// `value` as `{:?}` writes it (`-` and decimal digits).
fn write_decimal(out: &mut String, negative: bool, value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if negative {
        out.push('-');
    }
    digits[at..].iter().for_each(|&d| out.push(char::from(d)));
}

impl Visit for PlainFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.pad();
        self.result = if field.name() == "message" {
            // What the default format writes: the `Debug` of `format_args!("{value}")`, which
            // is the text itself, escaped.
            write_escaped(self.line, value);
            Ok(())
        } else {
            self.name(field);
            write_debug_str(self.line, value)
        };
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.is_special(field) {
            return self.record_debug(field, &value);
        }
        self.pad();
        self.name(field);
        self.line.push_str(if value { "true" } else { "false" });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.is_special(field) {
            return self.record_debug(field, &value);
        }
        self.pad();
        self.name(field);
        write_decimal(self.line, false, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.is_special(field) {
            return self.record_debug(field, &value);
        }
        self.pad();
        self.name(field);
        write_decimal(self.line, value < 0, value.unsigned_abs());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_err() {
            return;
        }
        // Errors with their sources: the default visitor's own words (no colours, escaping
        // on, as on this path).
        let mut visitor = DefaultVisitor::new(Writer::new(self.line), self.is_empty);
        visitor.record_error(field, value);
        self.is_empty = false;
        self.result = visitor.finish();
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.pad();
        self.result = if field.name() == "message" {
            self.write_message(value)
        } else {
            self.name(field);
            write!(self.line, "{value:?}")
        };
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
        lines_of(plain, events)
    }

    /// The lines `events` logs, in the default format or through [`PlainLines`], timestamps
    /// cut off.
    fn lines_of(plain: bool, events: fn()) -> Vec<String> {
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

    /// Text that `str`'s `Debug` and the message escaping treat in every way they can: plain
    /// printable ASCII (with `'`, which `str`'s `Debug` leaves alone), quotes, backslashes,
    /// ASCII controls, DEL, the C1 range and the rest of U+0080..U+00BF, other non-ASCII,
    /// zero-width, grapheme-extending and non-printable characters.
    const AWKWARD: &[&str] = &[
        "",
        "plain ~!#$%&'()*+,-./:;<=>?@[]^_`{|}",
        "quote \" inside",
        "back\\slash",
        "new\nline",
        "tab\tcarriage\rnul\0 \x01 \x1f",
        "bell \x07 bs \x08 ff \x0c esc \x1b[2J del \x7f",
        "c1 \u{80} \u{85} \u{9b} \u{9f} nbsp \u{a0} soft \u{ad} \u{bf}",
        "caf\u{e9} \u{fc}ber \u{4e2d}\u{6587} \u{1f600}",
        "zero\u{200b}width \u{200d} \u{2028} \u{feff} \u{e000} \u{10ffff}",
        "e\u{301} a\u{308} \u{300}leading",
        "\u{fffd} \u{d7ff}",
    ];

    /// A `Display` written straight into the line, like the gate's image and digest values.
    struct Shown(&'static str);
    impl fmt::Display for Shown {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    /// Logs while it is being formatted: the event inside must not break the line outside.
    struct Reentrant;
    impl fmt::Display for Reentrant {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            tracing::info!(inner = "from inside a value", "nested");
            f.write_str("outer value")
        }
    }

    /// Events whose fields take every fast path and every way out of one.
    fn awkward_events() {
        for text in AWKWARD {
            tracing::info!(target: "signet::gate::decision", source = *text, "str field");
            tracing::info!(r#type = *text, "raw str field");
            tracing::info!(message = *text, after = 1u64);
            tracing::info!(shown = %Shown(text), message = %Shown(text));
            tracing::warn!("{} and {:?}", text, text);
        }
        tracing::info!(
            zero = 0u64,
            max = u64::MAX,
            min = i64::MIN,
            minus_one = -1i64,
            nought = 0i64,
            top = i64::MAX,
            r#loop = 12u64,
            r#true = false,
            "numbers"
        );
        tracing::info!(message = 42u64, other = -42i64);
        tracing::info!(message = -7i64);
        tracing::info!(message = true, yes = true);
        tracing::info!(
            log.note = "skipped",
            log.n = 3u64,
            log.b = true,
            kept = "kept",
            "log."
        );
        tracing::info!(value = %Reentrant, message = %Reentrant);
    }

    #[test]
    fn fast_paths_are_the_default_format_byte_for_byte() {
        let full = lines_of(false, awkward_events);
        let plain = lines_of(true, awkward_events);
        assert!(full.len() > AWKWARD.len() * 5, "{full:#?}");
        for (full, plain) in full.iter().zip(&plain) {
            assert_eq!(plain, full);
        }
        assert_eq!(plain.len(), full.len());
        // The escapes the fast paths must give way to are in there.
        let text = full.join("\n");
        for escaped in [
            r#"source="quote \" inside""#,
            r"\u{200b}",
            r"e\u{301}",
            r"\x1b[2J",
        ] {
            assert!(text.contains(escaped), "{escaped} in {text}");
        }
    }

    /// `str`'s `Debug`, character by character, for every character up to U+3000 and some
    /// beyond, alone and between printable ASCII.
    #[test]
    fn debug_strings_are_written_as_debug_writes_them() {
        let beyond = [0xfeff, 0xfff9, 0xfffd, 0xe0001, 0xe0100, 0x1f600, 0x10ffff];
        for c in (0..0x3000).chain(beyond).filter_map(char::from_u32) {
            for text in [c.to_string(), format!("a{c}b")] {
                let mut ours = String::new();
                write_debug_str(&mut ours, &text).unwrap();
                assert_eq!(ours, format!("{text:?}"), "U+{:04X}", c as u32);
            }
        }
    }

    #[test]
    fn integers_are_written_as_debug_writes_them() {
        for value in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut ours = String::new();
            write_decimal(&mut ours, false, value);
            assert_eq!(ours, format!("{value:?}"));
        }
        for value in [i64::MIN, -100, -1, 0, 1, i64::MAX] {
            let mut ours = String::new();
            write_decimal(&mut ours, value < 0, value.unsigned_abs());
            assert_eq!(ours, format!("{value:?}"));
        }
    }
}
