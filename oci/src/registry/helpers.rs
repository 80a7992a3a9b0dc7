//! Docker credential helpers (`docker-credential-<name>`, the docker-credential-helpers
//! protocol): `get` with the server URL on stdin, `{"Username": …, "Secret": …}` on stdout. A
//! user name of `<token>` means the secret is an identity token (OAuth2 refresh token).
//!
//! A helper is another program holding secrets, so: its name is validated (no path, no `..`: a
//! config file must not name an arbitrary binary), it runs with a time-out and is killed at it,
//! its stdout is read to a bound, its stderr is discarded unread (helpers print diagnostics
//! that may carry anything), and no error repeats what it printed.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::Credentials;
use crate::Error;

/// Largest answer read from a helper.
const MAX_HELPER_OUTPUT_BYTES: u64 = 64 * 1024;
/// Longest helper name accepted.
const MAX_HELPER_NAME_CHARS: usize = 64;
/// What helpers print (on stdout, exiting 1) when they hold nothing for the server; docker
/// treats it as "no credentials", not as an error.
const NOT_FOUND_MESSAGE: &str = "credentials not found in native keychain";

/// A credential helper, by the name docker's `credsStore`/`credHelpers` use: `pass` means the
/// program `docker-credential-pass`, looked up on `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialHelper(String);

impl CredentialHelper {
    /// Validate a helper name: ASCII letters, digits, `-`, `_` and `.`, not starting with `-` or
    /// `.`, no `..`, at most 64 characters. Anything else (a `/`, a `..`) could make the program
    /// name a path, i.e. run any binary a config file points at.
    pub fn new(name: &str) -> Result<CredentialHelper, String> {
        let valid_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if name.is_empty() {
            Err("a credential helper name is empty".into())
        } else if name.chars().count() > MAX_HELPER_NAME_CHARS {
            Err(format!(
                "a credential helper name is longer than {MAX_HELPER_NAME_CHARS} characters"
            ))
        } else if !valid_chars || name.contains("..") || name.starts_with(['-', '.']) {
            Err(format!(
                "credential helper name {:?} is refused: only letters, digits, '-', '_' and '.' \
                 (no path, no \"..\")",
                name.chars().take(MAX_HELPER_NAME_CHARS).collect::<String>()
            ))
        } else {
            Ok(CredentialHelper(name.to_string()))
        }
    }

    /// The name as configured (`pass`).
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The program run: `docker-credential-<name>`.
    pub fn program(&self) -> String {
        format!("docker-credential-{}", self.0)
    }
}

impl std::fmt::Display for CredentialHelper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.program())
    }
}

/// Ask `helper` for the credentials of `server_url` (`host[:port]`, or
/// `https://index.docker.io/v1/` for Docker Hub). `Ok(None)` when it holds none. Every failure
/// names the helper and the registry, never the helper's output.
pub(crate) async fn get(
    helper: &CredentialHelper,
    server_url: &str,
    registry: &str,
    timeout: Duration,
) -> Result<Option<Credentials>, Error> {
    let fail = |why: String| Error::Unauthorized {
        registry: registry.to_string(),
        message: format!("credential helper {helper}: {why}"),
    };
    let mut child = tokio::process::Command::new(helper.program())
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => fail("not found on PATH".into()),
            _ => fail(format!("cannot be started: {e}")),
        })?;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let exchange = async {
        if let Some(mut stdin) = stdin.take() {
            // A helper that exits without reading is judged by its exit status, not this write.
            let _ = stdin.write_all(server_url.as_bytes()).await;
            let _ = stdin.shutdown().await;
        }
        let mut out = Vec::new();
        if let Some(stdout) = stdout.take() {
            stdout
                .take(MAX_HELPER_OUTPUT_BYTES + 1)
                .read_to_end(&mut out)
                .await
                .map_err(|e| fail(format!("reading its answer failed: {e}")))?;
        }
        let status = child
            .wait()
            .await
            .map_err(|e| fail(format!("waiting for it failed: {e}")))?;
        Ok::<_, Error>((status, out))
    };
    let (status, out) = match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result?,
        // Dropping the exchange drops the child, which kill_on_drop ends.
        Err(_) => return Err(fail(format!("did not answer within {timeout:?}"))),
    };
    if out.len() as u64 > MAX_HELPER_OUTPUT_BYTES {
        return Err(fail(format!(
            "answered more than {MAX_HELPER_OUTPUT_BYTES} bytes"
        )));
    }
    if !status.success() {
        if String::from_utf8_lossy(&out).trim() == NOT_FOUND_MESSAGE {
            return Ok(None);
        }
        // Its output is not repeated: a helper may print anything, secrets included.
        return Err(fail(format!("failed ({status})")));
    }
    parse_answer(&out).map_err(fail)
}

/// The helper's JSON answer: `Username` and `Secret` (`ServerURL` ignored).
fn parse_answer(out: &[u8]) -> Result<Option<Credentials>, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    // serde_json's message names a position, never the text; still, say only what kind.
    let answer: Answer = serde_json::from_slice(out).map_err(|e| {
        format!(
            "answer is not the helper protocol's JSON ({:?} at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: answer.username,
        password: answer.secret,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn names_are_validated() {
        for good in [
            "pass",
            "secretservice",
            "ecr-login",
            "acr_env",
            "gcr.v2",
            "desktop.exe",
        ] {
            assert_eq!(CredentialHelper::new(good).unwrap().name(), good);
        }
        for bad in [
            "",
            "../../bin/sh",
            "..",
            "a..b",
            "/bin/sh",
            "x/y",
            "-rf",
            ".hidden",
            "a b",
            "a\0b",
            "ünicode",
        ] {
            let err = CredentialHelper::new(bad).unwrap_err();
            assert!(
                err.contains("refused") || err.contains("empty"),
                "{bad:?}: {err}"
            );
        }
        let long = "a".repeat(65);
        assert!(CredentialHelper::new(&long)
            .unwrap_err()
            .contains("longer than 64"));
        assert_eq!(
            CredentialHelper::new("pass").unwrap().to_string(),
            "docker-credential-pass"
        );
    }

    #[test]
    fn answers_are_parsed() {
        let got = parse_answer(br#"{"ServerURL":"r","Username":"u","Secret":"s"}"#)
            .unwrap()
            .unwrap();
        assert_eq!((got.username.as_str(), got.password.as_str()), ("u", "s"));
        let token = parse_answer(br#"{"Username":"<token>","Secret":"rt"}"#)
            .unwrap()
            .unwrap();
        assert!(token.is_identity_token());
        assert!(parse_answer(br#"{"Username":"u","Secret":""}"#)
            .unwrap()
            .is_none());
        let err = parse_answer(b"password=hunter2").err().unwrap();
        assert!(err.contains("not the helper protocol's JSON"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
