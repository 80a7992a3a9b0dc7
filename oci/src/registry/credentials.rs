//! Where registry credentials come from: explicit ones first, then the auth files podman and docker
//! write (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`). Credential helpers (`credsStore`,
//! `credHelpers`) are not run: Signet never executes other programs to obtain secrets.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use base64::Engine;

use super::Credentials;
use crate::reference::DOCKER_HUB;
use crate::Error;

/// Auth files larger than this are refused rather than parsed.
const MAX_AUTH_FILE_BYTES: u64 = 1024 * 1024;

/// The auth files to consult, in order of preference, given an environment lookup.
pub(crate) fn auth_file_paths(env: &dyn Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut paths = Vec::new();
    if let Some(file) = non_empty("REGISTRY_AUTH_FILE") {
        paths.push(file);
    }
    if let Some(dir) = non_empty("XDG_RUNTIME_DIR") {
        paths.push(dir.join("containers").join("auth.json"));
    }
    if let Some(dir) = non_empty("DOCKER_CONFIG") {
        paths.push(dir.join("config.json"));
    } else if let Some(home) = non_empty("HOME") {
        paths.push(home.join(".docker").join("config.json"));
    }
    paths
}

/// The same registry host under the names docker uses for Docker Hub.
fn canonical_host(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
        other => other,
    }
}

/// What an `auths` key applies to: a host (any repository) or a `host/path` prefix.
/// Keys with a scheme (`https://host/v1/`) are docker's legacy form and name a whole host.
fn key_scope(key: &str) -> (String, Option<String>) {
    let (had_scheme, rest) = match key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        Some(rest) => (true, rest),
        None => (false, key),
    };
    let rest = rest.trim_end_matches('/');
    let (host, path) = match rest.split_once('/') {
        Some((host, path)) => (host, Some(path)),
        None => (rest, None),
    };
    let host = canonical_host(host).to_string();
    if had_scheme {
        (host, None)
    } else {
        (host, path.map(str::to_string))
    }
}

/// How well `key` matches `registry`/`repository`: `None` if not at all, else its specificity.
fn key_match(key: &str, registry: &str, repository: &str) -> Option<usize> {
    let (host, path) = key_scope(key);
    if host != canonical_host(registry) {
        return None;
    }
    match path {
        None => Some(0),
        Some(path) if repository == path || repository.starts_with(&format!("{path}/")) => {
            Some(path.len())
        }
        Some(_) => None,
    }
}

/// One `auths` entry's credentials: `auth` (base64 `user:password`) or `username`/`password`.
fn entry_credentials(entry: &serde_json::Value, path: &Path) -> Result<Option<Credentials>, Error> {
    let invalid = |reason: &str| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, reason.to_string()),
        )
    };
    if let Some(auth) = entry
        .get("auth")
        .and_then(serde_json::Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| invalid("an \"auth\" entry is not base64"))?;
        let text =
            String::from_utf8(decoded).map_err(|_| invalid("an \"auth\" entry is not UTF-8"))?;
        let (username, password) = text
            .split_once(':')
            .ok_or_else(|| invalid("an \"auth\" entry is not user:password"))?;
        return Ok(Some(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    let field = |name: &str| entry.get(name).and_then(serde_json::Value::as_str);
    match (field("username"), field("password")) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        })),
        _ => Ok(None),
    }
}

/// Credentials for `registry`/`repository` from one auth file, if it has an entry for them.
/// A missing file is no error; an unreadable or malformed one is (it names the file, never its
/// contents).
pub(crate) fn from_auth_file(
    path: &Path,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, Error> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    if meta.len() > MAX_AUTH_FILE_BYTES {
        return Err(Error::LimitExceeded {
            what: format!("auth file {}", path.display()),
            limit: format!("{MAX_AUTH_FILE_BYTES} bytes"),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        // serde_json's message carries a position, never the text around it.
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        )
    })?;
    let Some(auths) = value.get("auths").and_then(serde_json::Value::as_object) else {
        return Ok(None);
    };
    let mut best: Option<(usize, Credentials)> = None;
    for (key, entry) in auths {
        let Some(rank) = key_match(key, registry, repository) else {
            continue;
        };
        if best.as_ref().is_some_and(|(r, _)| *r >= rank) {
            continue;
        }
        if let Some(creds) = entry_credentials(entry, path)? {
            best = Some((rank, creds));
        }
    }
    Ok(best.map(|(_, c)| c))
}

/// Credentials for `registry`/`repository`: explicit ones win, then the first auth file (in
/// `paths` order) with an entry.
pub(crate) fn lookup(
    explicit: &[(String, Credentials)],
    paths: &[PathBuf],
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, Error> {
    if let Some((_, creds)) = explicit
        .iter()
        .find(|(host, _)| key_match(host, registry, repository) == Some(0))
    {
        return Ok(Some(creds.clone()));
    }
    for path in paths {
        if let Some(creds) = from_auth_file(path, registry, repository)? {
            return Ok(Some(creds));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn check(file: &Path, registry: &str, repository: &str, expected: Option<(&str, &str)>) {
        let got = from_auth_file(file, registry, repository).unwrap();
        let got = got.map(|c| (c.username, c.password));
        let expected = expected.map(|(u, p)| (u.to_string(), p.to_string()));
        assert_eq!(got, expected, "{registry}/{repository}");
    }

    #[test]
    fn finds_entries_by_every_key_form() {
        let dir = tempfile::tempdir().unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let text = format!(
            r#"{{"auths": {{
                "plain.example:5000": {{"auth": "{}"}},
                "https://legacy.example/v1/": {{"auth": "{}"}},
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "split.example": {{"username": "su", "password": "sp"}},
                "scoped.example": {{"auth": "{}"}},
                "scoped.example/team": {{"auth": "{}"}},
                "helper.example": {{}}
            }}, "credsStore": "desktop"}}"#,
            b64("pu:pp:with:colons"),
            b64("lu:lp"),
            b64("hu:hp"),
            b64("host:wide"),
            b64("team:only"),
        );
        let file = write(dir.path(), "config.json", &text);
        check(
            &file,
            "plain.example:5000",
            "a/b",
            Some(("pu", "pp:with:colons")),
        );
        check(&file, "plain.example", "a/b", None);
        check(&file, "legacy.example", "x", Some(("lu", "lp")));
        check(&file, "docker.io", "library/busybox", Some(("hu", "hp")));
        check(&file, "split.example", "x", Some(("su", "sp")));
        check(&file, "scoped.example", "team/app", Some(("team", "only")));
        check(
            &file,
            "scoped.example",
            "teammate/app",
            Some(("host", "wide")),
        );
        check(&file, "helper.example", "x", None);
        check(&file, "other.example", "x", None);
    }

    #[test]
    fn missing_file_is_no_credentials_but_a_broken_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        check(&dir.path().join("absent.json"), "r.example", "x", None);
        let broken = write(
            dir.path(),
            "broken.json",
            r#"{"auths": {"r.example": {"auth": "#,
        );
        let err = from_auth_file(&broken, "r.example", "x").unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        let bad_b64 = write(
            dir.path(),
            "bad.json",
            r#"{"auths": {"r.example": {"auth": "!!secret!!"}}}"#,
        );
        let err = from_auth_file(&bad_b64, "r.example", "x").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn explicit_credentials_win_over_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "auth.json",
            r#"{"auths": {"r.example": {"username": "file", "password": "f"}}}"#,
        );
        let explicit = vec![(
            "r.example".to_string(),
            Credentials {
                username: "flag".into(),
                password: "x".into(),
            },
        )];
        let got = lookup(&explicit, std::slice::from_ref(&file), "r.example", "a").unwrap();
        assert_eq!(got.unwrap().username, "flag");
        let got = lookup(&[], &[dir.path().join("none"), file], "r.example", "a").unwrap();
        assert_eq!(got.unwrap().username, "file");
    }

    #[test]
    fn auth_file_order_follows_podman_then_docker() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let all = env(&[
            ("REGISTRY_AUTH_FILE", "/a/auth.json"),
            ("XDG_RUNTIME_DIR", "/run/user/1"),
            ("DOCKER_CONFIG", "/d"),
            ("HOME", "/h"),
        ]);
        assert_eq!(
            auth_file_paths(&all),
            vec![
                PathBuf::from("/a/auth.json"),
                PathBuf::from("/run/user/1/containers/auth.json"),
                PathBuf::from("/d/config.json"),
            ]
        );
        let home_only = env(&[("HOME", "/h"), ("XDG_RUNTIME_DIR", "")]);
        assert_eq!(
            auth_file_paths(&home_only),
            vec![PathBuf::from("/h/.docker/config.json")]
        );
    }
}
