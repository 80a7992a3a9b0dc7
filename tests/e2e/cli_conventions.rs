//! The command-line conventions people expect (issue 13, item 5), on the built binary:
//! `--version` names the commit, completions load in a real bash, man pages render, `--color`
//! and `NO_COLOR` decide colour.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use crate::support::{code, signet};

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn version_names_the_commit() {
    let out = signet().arg("--version").output().unwrap();
    assert_eq!(code(&out), 0);
    let line = text(&out);
    let line = line.trim();
    let rest = line
        .strip_prefix(&format!("signet {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line}"));
    // This checkout has its .git: the commit is known (a clean copy says `unknown`).
    let in_git = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .is_ok_and(|o| o.status.success());
    if in_git {
        assert_eq!(rest.len(), 12, "{line}");
        assert!(rest.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
    } else {
        assert_eq!(rest, "unknown");
    }
    // Subcommands say the same.
    let out = signet().args(["verify", "--version"]).output().unwrap();
    assert!(
        text(&out).contains(&format!("(commit {rest})")),
        "{}",
        text(&out)
    );
}

#[test]
fn completions_for_every_shell_and_bash_loads_them() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = signet().args(["completion", shell]).output().unwrap();
        assert_eq!(code(&out), 0, "{shell}");
        let script = text(&out);
        // fish writes long flags without their dashes (`-l allow-http-registry`).
        for word in ["verify", "generate-key-pair", "allow-http-registry"] {
            assert!(script.contains(word), "{shell}: {word}");
        }
    }
    let out = signet().args(["completion", "tcsh"]).output().unwrap();
    assert_eq!(code(&out), 2);
    // A real bash sources it and completes `signet ver` to the verify commands.
    let script = text(&signet().args(["completion", "bash"]).output().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signet.bash");
    std::fs::write(&file, script).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(signet ver); COMP_CWORD=1; COMP_LINE='signet ver'; COMP_POINT=10; _signet signet ver signet; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let words = text(&out);
    assert!(words.lines().any(|w| w == "verify"), "{words}");
    assert!(!words.lines().any(|w| w == "sign"), "{words}");
}

#[test]
fn man_pages_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = signet()
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    for page in [
        "signet.1",
        "signet-verify.1",
        "signet-policy-lint.1",
        "signet-serve.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }
    let lint = std::fs::read_to_string(dir.path().join("signet-policy-lint.1")).unwrap();
    assert!(
        lint.contains("signet policy lint"),
        "the synopsis names the whole command"
    );
    let top = text(&signet().arg("man").output().unwrap());
    assert!(top.contains(".TH signet 1"), "{top:.200}");
}

#[test]
fn color_follows_the_flag_and_no_color() {
    let help = |args: &[&str], no_color: Option<&str>| {
        let mut cmd = signet();
        cmd.args(args);
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(code(&out), 0, "{args:?}");
        text(&out).contains('\u{1b}')
    };
    assert!(help(&["--color", "always", "--help"], None));
    assert!(
        help(&["--help", "--color=always"], Some("1")),
        "the flag wins"
    );
    assert!(!help(&["--color", "never", "--help"], None));
    assert!(!help(&["--help"], Some("1")));
    // Not a terminal: no colour by default.
    assert!(!help(&["--help"], None));
    // Usage errors follow it too.
    let out = signet()
        .args(["--color", "always", "no-such-command"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains('\u{1b}'));
    let out = signet()
        .env("NO_COLOR", "1")
        .arg("no-such-command")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains('\u{1b}'));
}

/// `signet ARGS` with `input` on stdin, `SIGNET_PASSWORD` set and `TMPDIR` = `tmp`.
fn with_stdin(args: &[&str], input: &[u8], tmp: &std::path::Path) -> std::process::Output {
    use std::io::Write as _;
    let mut child = signet()
        .env("SIGNET_PASSWORD", crate::support::KEY_PASSWORD)
        .env("TMPDIR", tmp)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

#[test]
fn a_dash_reads_a_file_argument_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = crate::support::keypair(dir.path(), "stdin");
    let key_bytes = std::fs::read(&key).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let from_file = with_stdin(
        &["public-key", "--key", key.to_str().unwrap()],
        b"",
        tmp.path(),
    );
    assert_eq!(code(&from_file), 0, "{from_file:?}");
    for args in [
        &["public-key", "--key", "-"][..],
        &["public-key", "--key=-"][..],
    ] {
        let out = with_stdin(args, &key_bytes, tmp.path());
        assert_eq!(code(&out), 0, "{args:?}: {out:?}");
        assert_eq!(out.stdout, from_file.stdout, "{args:?}");
    }
    // The private copy of stdin is gone when the command ends.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    // Stdin is read once: not for two inputs, not besides --registry-password-stdin.
    let out = with_stdin(
        &["verify", "--key", "-", "--key", "-", "oci:/nonexistent"],
        b"x",
        tmp.path(),
    );
    assert_eq!(code(&out), 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only one input can be read from stdin"),
        "{out:?}"
    );
    let out = with_stdin(
        &[
            "verify",
            "--key",
            "-",
            "--registry-username",
            "u",
            "--registry-password-stdin",
            "127.0.0.1:1/a:b",
        ],
        b"x",
        tmp.path(),
    );
    assert_eq!(code(&out), 2);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--key -: stdin is already read by --registry-password-stdin"),
        "{out:?}"
    );
    // A key from stdin that is not one: the usual error, about the key.
    let out = with_stdin(&["public-key", "--key", "-"], b"not a key", tmp.path());
    assert_eq!(code(&out), 2, "{out:?}");
}

#[test]
fn copy_reports_in_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    crate::support::copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/images/single"),
        &source,
    );
    let destination = dir.path().join("dst");
    let src = format!("oci:{}", source.display());
    let dst = format!("oci:{}", destination.display());
    let out = signet()
        .args(["copy", "--output", "json", &src, &dst])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["source"], src.as_str());
    assert_eq!(doc["destination"], dst.as_str());
    assert!(
        doc["digest"].as_str().unwrap().starts_with("sha256:"),
        "{doc}"
    );
    assert!(doc["blobsCopied"].as_u64().unwrap() >= 1, "{doc}");
    assert_eq!(doc["blobsPresent"], 0, "{doc}");
    // The digest is the source's.
    let digest = signet().args(["digest", &src]).output().unwrap();
    assert_eq!(
        doc["digest"].as_str().unwrap(),
        String::from_utf8_lossy(&digest.stdout).trim()
    );
}

#[test]
fn sign_reports_in_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("img");
    crate::support::copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/images/single"),
        &layout,
    );
    let (key, _) = crate::support::keypair(dir.path(), "json");
    let image = format!("oci:{}", layout.display());
    let sign = || {
        signet()
            .env("SIGNET_PASSWORD", crate::support::KEY_PASSWORD)
            .args(["sign", "--key", key.to_str().unwrap()])
            .args([
                "--identity",
                "registry.example/app:v1",
                "--output",
                "json",
                &image,
            ])
            .output()
            .unwrap()
    };
    let out = sign();
    assert_eq!(code(&out), 0, "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = signet().args(["digest", &image]).output().unwrap();
    let digest = String::from_utf8_lossy(&digest.stdout).trim().to_string();
    assert_eq!(doc["image"], image.as_str());
    assert_eq!(doc["signatures"][0]["digest"], digest.as_str(), "{doc}");
    assert_eq!(
        doc["signatures"][0]["dockerReference"], "registry.example/app",
        "{doc}"
    );
    assert_eq!(doc["signatures"][0]["added"], true, "{doc}");
    assert_eq!(doc["bundles"], serde_json::json!([]));
    // Signing again adds nothing, and says so.
    let again: serde_json::Value = serde_json::from_slice(&sign().stdout).unwrap();
    assert_eq!(again["signatures"][0]["added"], false, "{again}");
}

#[test]
fn key_pairs_report_in_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("k");
    let out = signet()
        .env("SIGNET_PASSWORD", crate::support::KEY_PASSWORD)
        .args([
            "generate-key-pair",
            "--output",
            "json",
            "--output-key-prefix",
        ])
        .arg(&prefix)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let private = doc["privateKey"].as_str().unwrap();
    let public = doc["publicKey"].as_str().unwrap();
    assert!(
        private.ends_with("k.key") && std::path::Path::new(private).exists(),
        "{doc}"
    );
    assert!(
        public.ends_with("k.pub") && std::path::Path::new(public).exists(),
        "{doc}"
    );
}
