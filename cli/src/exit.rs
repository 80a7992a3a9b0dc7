//! Exit codes, and the one place that turns an outcome into a process exit status and an error
//! into the single `signet: error: …` line on stderr.

/// How `signet` exits. Commands return one of these; errors become [`ExitCode::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// 0: the command did what was asked (the image validated, the digest was printed, …).
    Success,
    /// 1: `validate` found blobs or manifests that do not match their descriptors.
    Mismatch,
    /// 2: a usage or operational error (bad arguments, unreadable file, unreachable registry).
    Error,
    /// 10: `verify` found no signatures for the image.
    NoSignatures,
    /// 11: `verify`: the image or tag does not exist.
    ImageNotFound,
    /// 12: `verify`: signatures exist but none passes every check.
    NoValidSignature,
    /// 13: `audit`: some image does not pass (denied, warned, unknown or unverifiable).
    NotAllPass,
}

impl ExitCode {
    /// The numeric process exit status.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Mismatch => 1,
            ExitCode::Error => 2,
            ExitCode::NoSignatures => 10,
            ExitCode::ImageNotFound => 11,
            ExitCode::NoValidSignature => 12,
            ExitCode::NotAllPass => 13,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

/// The error and its causes on one line, joined with ": ". A cause whose text the message before
/// it already contains is skipped (library errors often print their source themselves).
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Print `error` as `signet: error: <message>` on stderr and give the exit code for it.
pub fn report_error(error: &anyhow::Error) -> ExitCode {
    eprintln!("signet: error: {}", error_line(error));
    ExitCode::Error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_without_repeated_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(io)
            .context("reading x: no such file")
            .context("opening image");
        assert_eq!(error_line(&e), "opening image: reading x: no such file");
        let e = anyhow::anyhow!("two\nlines");
        assert_eq!(error_line(&e), "two lines");
    }
}
