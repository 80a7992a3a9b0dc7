//! Credentials as users keep them (issue 13, items 1, 2 and 7): docker's `credsStore` and
//! `credHelpers` run through the real `docker-credential-pass` (Debian's
//! golang-docker-credential-helpers, over `pass` with a throwaway gpg key) against the htpasswd
//! and token registries; identity tokens exchanged by the refresh-token grant at the suite's
//! token server; the tests' own helpers that hang, fail, print junk or hold nothing; helper names
//! that are paths; malformed config files; and `signet serve`, which runs a helper only when its
//! config names one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::support::{self, code, free_port, signet, TestRegistry};

/// A `pass` store under a throwaway gpg key, with `docker-credential-pass` able to use it.
struct PassStore {
    gnupg: PathBuf,
    store: PathBuf,
    _dir: tempfile::TempDir,
}

impl PassStore {
    fn new() -> PassStore {
        for tool in ["gpg", "pass", "docker-credential-pass"] {
            assert!(
                which(tool),
                "{tool} is missing: apt-get install -y gnupg pass golang-docker-credential-helpers"
            );
        }
        // gpg-agent's socket path must stay short: a directory directly under /tmp.
        let dir = tempfile::Builder::new()
            .prefix("sgpg")
            .tempdir_in("/tmp")
            .unwrap();
        let gnupg = dir.path().join("g");
        let store = dir.path().join("s");
        std::fs::create_dir(&gnupg).unwrap();
        std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700)).unwrap();
        let pass = PassStore {
            gnupg,
            store,
            _dir: dir,
        };
        let out = pass
            .command("gpg")
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(["--quick-generate-key", "signet-e2e <e2e@signet.invalid>"])
            .args(["default", "default", "1d"])
            .output()
            .unwrap();
        assert!(out.status.success(), "gpg: {out:?}");
        let out = pass
            .command("pass")
            .args(["init", "e2e@signet.invalid"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pass init: {out:?}");
        pass
    }

    /// `program` with this store's environment.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        self.env(&mut cmd);
        cmd
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("GNUPGHOME", &self.gnupg)
            .env("PASSWORD_STORE_DIR", &self.store);
    }

    /// `docker-credential-pass store` for `server_url`.
    fn store(&self, server_url: &str, username: &str, secret: &str) {
        let mut child = self
            .command("docker-credential-pass")
            .arg("store")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let input =
            serde_json::json!({"ServerURL": server_url, "Username": username, "Secret": secret});
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.to_string().as_bytes())
            .unwrap();
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker-credential-pass store: {out:?}"
        );
    }
}

impl Drop for PassStore {
    fn drop(&mut self) {
        // The agent gpg started for this home; ours to end.
        let _ = self
            .command("gpgconf")
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A docker config directory holding `config.json` = `json`.
fn docker_config(json: &serde_json::Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    dir
}

/// A directory of executable scripts `docker-credential-NAME` (name, body).
fn helper_dir(helpers: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in helpers {
        let path = dir.path().join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `signet digest IMAGE` with `DOCKER_CONFIG` = `config`, `PATH` starting with `path` (if
/// given), the pass store's environment (if given) and extra `args`.
fn digest(
    image: &str,
    config: &Path,
    path: Option<&Path>,
    pass: Option<&PassStore>,
    args: &[&str],
) -> std::process::Output {
    let mut cmd = signet();
    cmd.env("DOCKER_CONFIG", config)
        .arg("digest")
        .arg(image)
        .args(args);
    if let Some(dir) = path {
        cmd.env("PATH", path_with(dir));
    }
    if let Some(pass) = pass {
        pass.env(&mut cmd);
    }
    let out = cmd.output().unwrap();
    eprintln!(
        "signet digest {image}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn docker_credential_pass_serves_creds_store_and_cred_helpers() {
    let basic = TestRegistry::start_with_htpasswd("helper-user", "helper-pass-1");
    let token = TestRegistry::start_with_token_auth("token-user", "token-pass-2");
    let mut digests = Vec::new();
    for (reg, user, pass) in [
        (&basic, "helper-user", "helper-pass-1"),
        (&token, "token-user", "token-pass-2"),
    ] {
        let client = support::client_with_credentials(reg, user, pass);
        digests.push(support::push_sample_image_with(reg, "team/app:v1", &client));
    }
    let pass = PassStore::new();
    pass.store(&basic.host(), "helper-user", "helper-pass-1");
    pass.store(&token.host(), "token-user", "token-pass-2");
    let images = [
        format!("{}/team/app:v1", basic.host()),
        format!("{}/team/app:v1", token.host()),
    ];

    // Without a helper: refused (the control).
    let none = docker_config(&serde_json::json!({"auths": {}}));
    for image in &images {
        let out = digest(image, none.path(), None, Some(&pass), &[]);
        assert_eq!(code(&out), 2);
        assert!(stderr(&out).contains("authentication failed"), "{out:?}");
    }
    // credsStore: the store helper for every registry.
    let store = docker_config(&serde_json::json!({"credsStore": "pass"}));
    for (image, expected) in images.iter().zip(&digests) {
        let out = digest(image, store.path(), None, Some(&pass), &[]);
        assert_eq!(code(&out), 0, "{out:?}");
        assert_eq!(stdout(&out), expected.to_string());
    }
    assert!(token.token_requests() > 0);
    // credHelpers: the per-registry helper comes before the file's own (wrong) entry.
    let wrong = base64::engine::general_purpose::STANDARD.encode("helper-user:wrong");
    let helpers = docker_config(&serde_json::json!({
        "credHelpers": {basic.host(): "pass", token.host(): "pass"},
        "auths": {basic.host(): {"auth": wrong}},
    }));
    for (image, expected) in images.iter().zip(&digests) {
        let out = digest(image, helpers.path(), None, Some(&pass), &[]);
        assert_eq!(code(&out), 0, "{out:?}");
        assert_eq!(stdout(&out), expected.to_string());
    }
    // A server the store holds nothing for: the helper's "not found" is anonymous access,
    // which the registry refuses (not a helper error).
    let other = TestRegistry::start_with_htpasswd("x", "y");
    let out = digest(
        &format!("{}/team/app:v1", other.host()),
        store.path(),
        None,
        Some(&pass),
        &[],
    );
    assert_eq!(code(&out), 2);
    let text = stderr(&out);
    assert!(text.contains("authentication failed"), "{text}");
    assert!(!text.contains("credential helper"), "{text}");
}

#[test]
fn identity_tokens_are_exchanged_by_the_refresh_token_grant() {
    let reg = TestRegistry::start_with_token_auth("id-user", "id-pass-3");
    let client = support::client_with_credentials(&reg, "id-user", "id-pass-3");
    let expected = support::push_sample_image_with(&reg, "team/app:v1", &client);
    let image = format!("{}/team/app:v1", reg.host());
    assert_eq!(reg.refresh_grants(), 0);

    // From config.json, as `docker login` leaves it for ACR: an identitytoken beside a
    // placeholder user.
    let placeholder =
        base64::engine::general_purpose::STANDARD.encode("00000000-0000-0000-0000-000000000000:");
    let config = docker_config(&serde_json::json!({"auths": {reg.host(): {
        "auth": placeholder, "identitytoken": reg.identity_token()}}}));
    let out = digest(&image, config.path(), None, None, &[]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout(&out), expected.to_string());
    let after_config = reg.refresh_grants();
    assert!(after_config >= 1, "the POST grant was not used");

    // From a helper answering `<token>` as user name.
    let pass = PassStore::new();
    pass.store(&reg.host(), "<token>", &reg.identity_token());
    let store = docker_config(&serde_json::json!({"credsStore": "pass"}));
    let out = digest(&image, store.path(), None, Some(&pass), &[]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout(&out), expected.to_string());
    assert!(reg.refresh_grants() > after_config);

    // A wrong identity token: the token service's refusal, and the token never shown.
    let config = docker_config(&serde_json::json!({"auths": {reg.host(): {
        "identitytoken": "revoked-identity-token"}}}));
    let out = digest(&image, config.path(), None, None, &[]);
    assert_eq!(code(&out), 2);
    let text = stderr(&out);
    assert!(text.contains("token service refused (HTTP 401"), "{text}");
    assert!(!text.contains("revoked-identity-token"), "{text}");
}

#[test]
fn helpers_that_hang_fail_or_print_junk_end_in_one_line_naming_them() {
    let reg = TestRegistry::start_with_htpasswd("u", "p");
    let image = format!("{}/team/app:v1", reg.host());
    let helpers = helper_dir(&[
        ("hang", "exec sleep 60"),
        (
            "fail",
            "echo 'Secret: leaked-secret-1'; echo 'leaked-secret-1' >&2; exit 3",
        ),
        ("junk", "echo 'Username=u Secret=leaked-secret-2'"),
        (
            "huge",
            "head -c 1000000 /dev/zero | tr '\\0' 'x'; echo leaked-secret-3",
        ),
    ]);
    for (name, expected) in [
        (
            "hang",
            "credential helper docker-credential-hang: did not answer within 2s",
        ),
        (
            "fail",
            "credential helper docker-credential-fail: failed (exit status: 3)",
        ),
        (
            "junk",
            "credential helper docker-credential-junk: answer is not the helper protocol's JSON",
        ),
        (
            "huge",
            "credential helper docker-credential-huge: answered more than 65536 bytes",
        ),
        (
            "absent",
            "credential helper docker-credential-absent: not found on PATH",
        ),
    ] {
        let config = docker_config(&serde_json::json!({"credsStore": name}));
        let started = Instant::now();
        let out = digest(
            &image,
            config.path(),
            Some(helpers.path()),
            None,
            &["--timeout", "2"],
        );
        assert!(started.elapsed() < Duration::from_secs(15), "{name}");
        assert_eq!(code(&out), 2, "{name}");
        let text = stderr(&out);
        assert_eq!(text.lines().count(), 1, "{name}: one line: {text}");
        assert!(text.starts_with("signet: error: "), "{text}");
        assert!(text.contains(expected), "{name}: {text}");
        assert!(!text.contains("leaked-secret"), "{name}: {text}");
    }
}

#[test]
fn helper_names_that_are_paths_are_refused_and_nothing_runs() {
    let reg = TestRegistry::start_with_htpasswd("u", "p");
    let image = format!("{}/team/app:v1", reg.host());
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("ran");
    // Were the name used as given, `docker-credential-../evil` would be this script.
    let trap = work.path().join("docker-credential-..");
    std::fs::create_dir(&trap).unwrap();
    let evil = trap.join("evil");
    std::fs::write(
        &evil,
        format!("#!/bin/sh\ntouch {}\necho '{{}}'\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (config, field) in [
        (
            serde_json::json!({"credsStore": "../evil"}),
            "credsStore".to_string(),
        ),
        (
            serde_json::json!({"credHelpers": {reg.host(): "../evil"}}),
            format!("credHelpers.{:?}", reg.host()),
        ),
        (
            serde_json::json!({"credsStore": evil.display().to_string()}),
            "credsStore".to_string(),
        ),
    ] {
        let dir = docker_config(&config);
        let mut cmd = signet();
        let out = cmd
            .current_dir(work.path())
            .env("DOCKER_CONFIG", dir.path())
            .args(["digest", &image])
            .output()
            .unwrap();
        assert_eq!(code(&out), 2);
        let text = stderr(&out);
        assert!(
            text.contains(&format!(
                "{}/config.json: {field}: credential helper name",
                dir.path().display()
            )),
            "{text}"
        );
        assert!(text.contains("refused"), "{text}");
        assert!(!marker.exists(), "the helper ran");
    }
}

#[test]
fn malformed_config_files_name_the_file_and_the_field() {
    let reg = TestRegistry::start_with_htpasswd("u", "p");
    let image = format!("{}/team/app:v1", reg.host());
    for (config, expected) in [
        (
            serde_json::json!({"auths": {reg.host(): {"auth": 5}}}),
            format!("auths.{:?}.auth: is not a string", reg.host()),
        ),
        (
            serde_json::json!({"auths": {reg.host(): {"auth": "!!not-base64-secret"}}}),
            format!("auths.{:?}.auth: is not base64", reg.host()),
        ),
        (
            serde_json::json!({"credHelpers": ["pass"]}),
            "credHelpers: is not a JSON object".to_string(),
        ),
    ] {
        let dir = docker_config(&config);
        let out = digest(&image, dir.path(), None, None, &[]);
        assert_eq!(code(&out), 2);
        let text = stderr(&out);
        assert!(
            text.contains(&format!("{}/config.json: {expected}", dir.path().display())),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }
}

/// `signet serve --config` on a free port, with the environment `edit` sets; ready.
struct Serve {
    child: std::process::Child,
    port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(config: &Path, edit: impl FnOnce(&mut Command)) -> Serve {
        let mut cmd = signet();
        cmd.args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        edit(&mut cmd);
        let yaml = std::fs::read_to_string(config).unwrap();
        let port: u16 = yaml
            .lines()
            .find_map(|l| l.strip_prefix("listen: 127.0.0.1:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let serve = Serve {
            child: cmd.spawn().unwrap(),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::blocking::get(format!("http://127.0.0.1:{port}/readyz"))
            .map_or(true, |r| !r.status().is_success())
        {
            assert!(
                Instant::now() < deadline,
                "signet serve did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        serve
    }

    fn status(&self, path: &str) -> u16 {
        reqwest::blocking::get(format!("http://127.0.0.1:{}{path}", self.port))
            .unwrap()
            .status()
            .as_u16()
    }
}

#[test]
fn the_gate_runs_a_helper_only_when_its_config_names_one() {
    let reg = TestRegistry::start_with_htpasswd("gate-user", "gate-pass-4");
    let client = support::client_with_credentials(&reg, "gate-user", "gate-pass-4");
    support::push_sample_image_with(&reg, "team/app:v1", &client);
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("helper-ran");
    let helpers = helper_dir(&[(
        "marker",
        &format!(
            "cat >/dev/null; echo run >> {}; echo '{{\"Username\":\"gate-user\",\"Secret\":\"gate-pass-4\"}}'",
            marker.display()
        ),
    )]);
    // A docker config in the gate's environment naming the helper: never to be read.
    let docker = docker_config(&serde_json::json!({"credsStore": "marker"}));
    let policy = work.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "default:\n  reject: only listed registries\nscopes:\n  \"{}/team\":\n    accept: true\n",
            reg.host()
        ),
    )
    .unwrap();
    let write_config = |name: &str, helper: Option<&str>| {
        let path = work.path().join(name);
        let helper_line = helper
            .map(|h| format!("    credential_helper: {h}\n"))
            .unwrap_or_default();
        std::fs::write(
            &path,
            format!(
                "listen: 127.0.0.1:{}\npolicy: {}\nupstreams:\n  - url: http://{}\n{helper_line}",
                free_port(),
                policy.display(),
                reg.host()
            ),
        )
        .unwrap();
        path
    };
    let env = |cmd: &mut Command| {
        cmd.env("DOCKER_CONFIG", docker.path())
            .env("PATH", path_with(helpers.path()));
    };

    let unnamed = Serve::start(&write_config("plain.yaml", None), env);
    assert_ne!(unnamed.status("/v2/team/app/manifests/v1"), 200);
    assert!(
        !marker.exists(),
        "the gate ran a helper its config does not name"
    );
    drop(unnamed);

    let named = Serve::start(&write_config("named.yaml", Some("marker")), env);
    assert_eq!(named.status("/v2/team/app/manifests/v1"), 200);
    assert!(marker.exists(), "the configured helper was not asked");
}
