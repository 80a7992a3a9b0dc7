//! The one switch that lets a test rewrite a golden file, shared by every golden test in the
//! workspace (included with `#[path]` by `tests/e2e/golden.rs` and `policy/tests/engine.rs`, so
//! the two cannot drift apart again).
//!
//! `UPDATE_GOLDEN=1` rewrites; unset (or empty) compares. Any other value is refused rather than
//! guessed at (`UPDATE_GOLDEN=0` used to rewrite in one place and compare in the other). Under CI
//! (`CI` set to anything but empty, `0` or `false`) rewriting is refused too: a CI run that
//! blessed its own output would always pass.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::path::Path;

/// The variable that asks for golden files to be rewritten.
pub const UPDATE_VAR: &str = "UPDATE_GOLDEN";

/// What a golden check does with what it computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Compare with the committed file.
    Check,
    /// Rewrite the committed file.
    Update,
}

/// The mode the process environment asks for; panics when it asks for something refused.
pub fn mode() -> Mode {
    mode_from(
        std::env::var_os(UPDATE_VAR).as_deref(),
        std::env::var_os("CI").as_deref(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// [`mode`] from the values of `UPDATE_GOLDEN` and `CI`.
pub fn mode_from(update: Option<&OsStr>, ci: Option<&OsStr>) -> Result<Mode, String> {
    let update = update.map(|v| v.to_string_lossy().into_owned());
    let mode = match update.as_deref() {
        None | Some("") => Mode::Check,
        Some("1") => Mode::Update,
        Some(other) => {
            return Err(format!(
                "{UPDATE_VAR}={other:?}: set {UPDATE_VAR}=1 to rewrite golden files, or unset it to compare"
            ))
        }
    };
    let under_ci = ci
        .map(|v| v.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    if mode == Mode::Update && under_ci {
        return Err(format!(
            "{UPDATE_VAR}=1 under CI: refusing to rewrite golden files (CI must compare, never bless)"
        ));
    }
    Ok(mode)
}

/// Compare `actual` with the golden file at `path`, or rewrite it (atomically) under
/// `UPDATE_GOLDEN=1`. `rerun` is the command that regenerates it, named in the failure.
pub fn check_golden(path: &Path, actual: &str, rerun: &str) {
    if mode() == Mode::Update {
        let tmp = path.with_extension("golden-tmp");
        std::fs::write(&tmp, actual).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (create it with {UPDATE_VAR}=1 {rerun})",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from what the code produces now, from line {}:\n  committed: {:?}\n  now:       {:?}\n\
             (if the change is intended, regenerate with {UPDATE_VAR}=1 {rerun} and review the diff)",
            path.display(),
            line + 1,
            expected.lines().nth(line).unwrap_or("<end of file>"),
            actual.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}

#[cfg(test)]
mod switch_tests {
    use super::{mode_from, Mode};
    use std::ffi::OsStr;

    fn m(update: Option<&str>, ci: Option<&str>) -> Result<Mode, String> {
        mode_from(update.map(OsStr::new), ci.map(OsStr::new))
    }

    #[test]
    fn golden_switch_has_one_meaning() {
        assert_eq!(m(None, None), Ok(Mode::Check));
        assert_eq!(m(Some(""), None), Ok(Mode::Check));
        assert_eq!(m(Some("1"), None), Ok(Mode::Update));
        assert_eq!(m(Some("1"), Some("false")), Ok(Mode::Update));
        assert_eq!(m(Some("1"), Some("0")), Ok(Mode::Update));
        assert_eq!(m(None, Some("true")), Ok(Mode::Check));
        let refused = m(Some("1"), Some("true")).unwrap_err();
        assert!(refused.contains("under CI: refusing"), "{refused}");
        let refused = m(Some("1"), Some("1")).unwrap_err();
        assert!(refused.contains("under CI: refusing"), "{refused}");
        // `0` used to rewrite in the e2e tests (any value did) and compare in the policy tests.
        let unclear = m(Some("0"), None).unwrap_err();
        assert!(unclear.contains("UPDATE_GOLDEN=\"0\""), "{unclear}");
        let unclear = m(Some("yes"), None).unwrap_err();
        assert!(unclear.contains("set UPDATE_GOLDEN=1"), "{unclear}");
    }
}
