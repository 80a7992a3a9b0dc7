//! Where registry credentials come from, resolved as docker and crane do: explicit ones first
//! (flags, the gate's config), then a helper the caller names, then the auth files podman and
//! docker write (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), each file asked in turn: its
//! per-registry helper (`credHelpers`), then its store (`credsStore`), then its `auths` entries.
//! Helpers run only from these files or when named by the caller (the gate reads no auth files).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;

use super::helpers::{self, CredentialHelper};
use super::{Credentials, IDENTITY_TOKEN_USER};
use crate::reference::DOCKER_HUB;
use crate::Error;

/// Auth files larger than this are refused rather than parsed.
const MAX_AUTH_FILE_BYTES: u64 = 1024 * 1024;
/// The key docker stores Docker Hub's credentials under, in `auths` and in helpers.
pub(crate) const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

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

/// The server URL a credential helper is asked about: docker's legacy key for Docker Hub (where
/// `docker login` stores it), the registry's `host[:port]` otherwise.
pub(crate) fn helper_server_url(registry: &str) -> &str {
    if canonical_host(registry) == DOCKER_HUB {
        DOCKER_HUB_AUTH_KEY
    } else {
        registry
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

/// A field path as the error names it: `auths."r.example".auth`.
fn field(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            if p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                (*p).to_string()
            } else {
                format!("{:?}", p.chars().take(100).collect::<String>())
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// An error naming the file and the field, never the field's value.
fn invalid(path: &Path, field: &str, reason: &str) -> Error {
    Error::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{field}: {reason}"),
        ),
    )
}

/// One auth file as far as credentials go.
#[derive(Default)]
struct AuthFile {
    /// `credHelpers`: registry key → helper.
    helpers: Vec<(String, CredentialHelper)>,
    /// `credsStore`.
    store: Option<CredentialHelper>,
    /// `auths`: key → credentials (`None`: an entry without any, e.g. left by a helper login).
    auths: Vec<(String, Option<Credentials>)>,
}

/// An optional string member of `object`, or an error naming it when it is of another type.
fn string_member<'a>(
    object: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
    path: &Path,
    at: &[&str],
) -> Result<Option<&'a str>, Error> {
    match object.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => {
            let mut parts = at.to_vec();
            parts.push(name);
            Err(invalid(path, &field(&parts), "is not a string"))
        }
    }
}

/// One `auths` entry's credentials: `identitytoken` (kept as user [`IDENTITY_TOKEN_USER`]), else
/// `auth` (base64 `user:password`), else `username`/`password`.
fn entry_credentials(
    entry: &serde_json::Value,
    key: &str,
    path: &Path,
) -> Result<Option<Credentials>, Error> {
    let at = ["auths", key];
    let Some(entry) = entry.as_object() else {
        return Err(invalid(path, &field(&at), "is not a JSON object"));
    };
    if let Some(token) = string_member(entry, "identitytoken", path, &at)?.filter(|t| !t.is_empty())
    {
        return Ok(Some(Credentials {
            username: IDENTITY_TOKEN_USER.to_string(),
            password: token.to_string(),
        }));
    }
    if let Some(auth) = string_member(entry, "auth", path, &at)?.filter(|a| !a.is_empty()) {
        let here = field(&["auths", key, "auth"]);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| invalid(path, &here, "is not base64"))?;
        let text = String::from_utf8(decoded).map_err(|_| invalid(path, &here, "is not UTF-8"))?;
        let (username, password) = text
            .split_once(':')
            .ok_or_else(|| invalid(path, &here, "is not user:password"))?;
        return Ok(Some(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    let username = string_member(entry, "username", path, &at)?;
    let password = string_member(entry, "password", path, &at)?;
    match (username, password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        })),
        _ => Ok(None),
    }
}

/// A helper named at `at` in `path`, validated.
fn helper_at(name: &str, path: &Path, at: &[&str]) -> Result<CredentialHelper, Error> {
    CredentialHelper::new(name).map_err(|why| invalid(path, &field(at), &why))
}

/// Read and check one auth file. A missing file is `None`; an unreadable or malformed one is an
/// error naming the file and the field at fault, never a value.
fn read_auth_file(path: &Path) -> Result<Option<AuthFile>, Error> {
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
    let Some(top) = value.as_object() else {
        return Err(invalid(path, "(top level)", "is not a JSON object"));
    };
    let mut file = AuthFile::default();
    if let Some(name) = string_member(top, "credsStore", path, &[])?.filter(|n| !n.is_empty()) {
        file.store = Some(helper_at(name, path, &["credsStore"])?);
    }
    match top.get("credHelpers") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(helpers)) => {
            for (key, name) in helpers {
                let at = ["credHelpers", key.as_str()];
                let Some(name) = name.as_str() else {
                    return Err(invalid(path, &field(&at), "is not a string"));
                };
                file.helpers
                    .push((key.clone(), helper_at(name, path, &at)?));
            }
        }
        Some(_) => return Err(invalid(path, "credHelpers", "is not a JSON object")),
    }
    match top.get("auths") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(auths)) => {
            for (key, entry) in auths {
                file.auths
                    .push((key.clone(), entry_credentials(entry, key, path)?));
            }
        }
        Some(_) => return Err(invalid(path, "auths", "is not a JSON object")),
    }
    Ok(Some(file))
}

/// Where one auth file says the credentials for `registry`/`repository` are.
#[derive(Debug)]
pub(crate) enum Found {
    /// In the file itself.
    Credentials(Credentials),
    /// Ask this helper (from `credHelpers`, else `credsStore`); fall back to `then` (the file's
    /// own entry, if any) when it holds none.
    Helper {
        helper: CredentialHelper,
        then: Option<Credentials>,
    },
}

/// What one auth file says about `registry`/`repository`: its helper for the registry, else its
/// store, else its most specific `auths` entry.
pub(crate) fn from_auth_file(
    path: &Path,
    registry: &str,
    repository: &str,
) -> Result<Option<Found>, Error> {
    let Some(file) = read_auth_file(path)? else {
        return Ok(None);
    };
    let mut best: Option<(usize, Credentials)> = None;
    for (key, creds) in file.auths {
        let Some(rank) = key_match(&key, registry, repository) else {
            continue;
        };
        if best.as_ref().is_some_and(|(r, _)| *r >= rank) {
            continue;
        }
        if let Some(creds) = creds {
            best = Some((rank, creds));
        }
    }
    let entry = best.map(|(_, c)| c);
    let helper = file
        .helpers
        .into_iter()
        .find(|(key, _)| key_match(key, registry, "") == Some(0))
        .map(|(_, helper)| helper)
        .or(file.store);
    Ok(match (helper, entry) {
        (Some(helper), then) => Some(Found::Helper { helper, then }),
        (None, Some(creds)) => Some(Found::Credentials(creds)),
        (None, None) => None,
    })
}

/// Where credentials may come from, besides the auth files.
pub(crate) struct Sources<'a> {
    /// Given explicitly, by registry host; these win.
    pub(crate) explicit: &'a [(String, Credentials)],
    /// Helpers named explicitly, by registry host (the gate's config).
    pub(crate) helpers: &'a [(String, CredentialHelper)],
    /// Auth files, in order of preference.
    pub(crate) files: &'a [PathBuf],
    /// Time-out for each helper run.
    pub(crate) timeout: Duration,
}

/// Credentials for `registry`/`repository`: explicit ones win, then an explicitly named helper,
/// then the first auth file (in order) that yields any.
pub(crate) async fn lookup(
    sources: &Sources<'_>,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, Error> {
    if let Some((_, creds)) = sources
        .explicit
        .iter()
        .find(|(host, _)| key_match(host, registry, repository) == Some(0))
    {
        return Ok(Some(creds.clone()));
    }
    let server_url = helper_server_url(registry);
    if let Some((_, helper)) = sources
        .helpers
        .iter()
        .find(|(host, _)| key_match(host, registry, repository) == Some(0))
    {
        return helpers::get(helper, server_url, registry, sources.timeout).await;
    }
    for path in sources.files {
        match from_auth_file(path, registry, repository)? {
            None => {}
            Some(Found::Credentials(creds)) => return Ok(Some(creds)),
            Some(Found::Helper { helper, then }) => {
                tracing::debug!(helper = %helper, registry, file = %path.display(), "asking credential helper");
                match helpers::get(&helper, server_url, registry, sources.timeout).await? {
                    Some(creds) => return Ok(Some(creds)),
                    None => {
                        if let Some(creds) = then {
                            return Ok(Some(creds));
                        }
                    }
                }
            }
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

    fn found(file: &Path, registry: &str, repository: &str) -> Option<(String, String)> {
        match from_auth_file(file, registry, repository).unwrap() {
            None => None,
            Some(Found::Credentials(c)) => Some((c.username, c.password)),
            Some(Found::Helper { helper, then }) => Some((
                format!("helper:{}", helper.name()),
                then.map(|c| c.username).unwrap_or_default(),
            )),
        }
    }

    fn check(file: &Path, registry: &str, repository: &str, expected: Option<(&str, &str)>) {
        let expected = expected.map(|(u, p)| (u.to_string(), p.to_string()));
        assert_eq!(
            found(file, registry, repository),
            expected,
            "{registry}/{repository}"
        );
    }

    fn sources(files: &[PathBuf]) -> Sources<'_> {
        Sources {
            explicit: &[],
            helpers: &[],
            files,
            timeout: Duration::from_secs(5),
        }
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
                "token.example": {{"auth": "{}", "identitytoken": "refresh-me"}},
                "helper.example": {{}}
            }}}}"#,
            b64("pu:pp:with:colons"),
            b64("lu:lp"),
            b64("hu:hp"),
            b64("host:wide"),
            b64("team:only"),
            b64("00000000-0000-0000-0000-000000000000:"),
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
        // Docker Hub: stored under docker's legacy key, asked for under any of its names.
        check(&file, "docker.io", "library/busybox", Some(("hu", "hp")));
        check(
            &file,
            "index.docker.io",
            "library/busybox",
            Some(("hu", "hp")),
        );
        check(&file, "split.example", "x", Some(("su", "sp")));
        check(&file, "scoped.example", "team/app", Some(("team", "only")));
        check(
            &file,
            "scoped.example",
            "teammate/app",
            Some(("host", "wide")),
        );
        // An identity token wins over the entry's user name (ACR's form).
        check(&file, "token.example", "x", Some(("<token>", "refresh-me")));
        check(&file, "helper.example", "x", None);
        check(&file, "other.example", "x", None);
    }

    #[test]
    fn helpers_come_first_per_registry_then_the_store_then_auths() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "config.json",
            r#"{"credsStore": "desktop",
                "credHelpers": {"123.dkr.ecr.example": "ecr-login", "https://index.docker.io/v1/": "hub"},
                "auths": {"123.dkr.ecr.example": {"username": "u", "password": "p"},
                          "plain.example": {"username": "pu", "password": "pp"}}}"#,
        );
        check(
            &file,
            "123.dkr.ecr.example",
            "app",
            Some(("helper:ecr-login", "u")),
        );
        check(&file, "docker.io", "library/a", Some(("helper:hub", "")));
        check(&file, "plain.example", "x", Some(("helper:desktop", "pu")));
        check(&file, "other.example", "x", Some(("helper:desktop", "")));
        assert_eq!(helper_server_url("docker.io"), DOCKER_HUB_AUTH_KEY);
        assert_eq!(
            helper_server_url("registry-1.docker.io"),
            DOCKER_HUB_AUTH_KEY
        );
        assert_eq!(helper_server_url("r.example:5000"), "r.example:5000");
    }

    #[test]
    fn helper_names_with_paths_are_refused_naming_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        for (text, field_name) in [
            (r#"{"credsStore": "../../../bin/sh"}"#, "credsStore"),
            (r#"{"credsStore": "/tmp/evil"}"#, "credsStore"),
            (
                r#"{"credHelpers": {"r.example": "x/../../y"}}"#,
                "credHelpers.\"r.example\"",
            ),
            (
                r#"{"credHelpers": {"r.example": ".."}}"#,
                "credHelpers.\"r.example\"",
            ),
        ] {
            let file = write(dir.path(), "config.json", text);
            let err = from_auth_file(&file, "r.example", "x").unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, Error::Io { .. }), "{message}");
            assert!(message.contains("config.json"), "{message}");
            assert!(message.contains(field_name), "{message}");
            assert!(message.contains("refused"), "{message}");
        }
    }

    #[test]
    fn malformed_files_name_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        check(&dir.path().join("absent.json"), "r.example", "x", None);
        for (text, expected) in [
            (r#"{"auths": {"r.example": {"auth": "#, "EOF while parsing"),
            (
                r#"["not", "an", "object"]"#,
                "(top level): is not a JSON object",
            ),
            (r#"{"auths": []}"#, "auths: is not a JSON object"),
            (
                r#"{"auths": {"r.example": 7}}"#,
                "auths.\"r.example\": is not a JSON object",
            ),
            (
                r#"{"auths": {"r.example": {"auth": "!!secret!!"}}}"#,
                "auths.\"r.example\".auth: is not base64",
            ),
            (
                r#"{"auths": {"r.example": {"auth": 12}}}"#,
                "auths.\"r.example\".auth: is not a string",
            ),
            (
                r#"{"auths": {"r.example": {"username": "u", "password": ["secret"]}}}"#,
                "auths.\"r.example\".password: is not a string",
            ),
            (r#"{"credsStore": 1}"#, "credsStore: is not a string"),
            (
                r#"{"credHelpers": "pass"}"#,
                "credHelpers: is not a JSON object",
            ),
            (
                r#"{"credHelpers": {"r.example": true}}"#,
                "credHelpers.\"r.example\": is not a string",
            ),
        ] {
            let file = write(dir.path(), "broken.json", text);
            let err = from_auth_file(&file, "r.example", "x").unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, Error::Io { .. }), "{message}");
            assert!(message.contains("broken.json"), "{message}");
            assert!(message.contains(expected), "{text}: {message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[tokio::test]
    async fn explicit_credentials_win_over_files() {
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
        let files = [file.clone()];
        let with_flag = Sources {
            explicit: &explicit,
            ..sources(&files)
        };
        let got = lookup(&with_flag, "r.example", "a").await.unwrap();
        assert_eq!(got.unwrap().username, "flag");
        let files = [dir.path().join("none"), file];
        let got = lookup(&sources(&files), "r.example", "a").await.unwrap();
        assert_eq!(got.unwrap().username, "file");
    }

    #[tokio::test]
    async fn a_missing_helper_is_one_line_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "config.json",
            r#"{"credsStore": "signet-test-absent-helper"}"#,
        );
        let files = [file];
        let err = lookup(&sources(&files), "r.example", "a")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "registry r.example: authentication failed: credential helper \
             docker-credential-signet-test-absent-helper: not found on PATH"
        );
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
