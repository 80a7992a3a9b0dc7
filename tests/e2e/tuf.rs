//! `signet trust update` against a TUF repository made by python-tuf (PyPI `tuf`, an independent
//! TUF implementation; `testdata/tuf/make_repo.py`) and served on loopback by a small static file
//! server here. A good update fills the cache and the trusted-root loader uses it; root rotation
//! works; an expired timestamp, rolled-back metadata, a mix-and-match snapshot, bad signatures and
//! an oversized file are each refused with the role named, and the cache stays byte for byte as
//! it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use sha2::{Digest, Sha256};

use crate::support::{code, s, signet};

pub(crate) const MAKE_REPO: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/tuf/make_repo.py");
pub(crate) const PUBLIC_GOOD_ROOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/tuf/trusted_root.public-good.json"
);
const SIGNING_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/tuf/signing_config.public-good.json"
);
pub(crate) const GITHUB_ROOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/tuf/trusted_root.github.json"
);

/// A static file server on 127.0.0.1 for one directory: `GET /NAME` answers the file's bytes
/// with a Content-Length, or 404. Stops accepting when dropped.
pub(crate) struct StaticServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl StaticServer {
    fn start(root: PathBuf) -> StaticServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let root = root.clone();
                    thread::spawn(move || serve(stream, &root));
                }
            }
        });
        StaticServer { port, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(mut stream: TcpStream, root: &Path) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let relative = path.trim_start_matches('/');
    let body = if relative
        .split('/')
        .any(|part| part == ".." || part.is_empty())
    {
        None
    } else {
        std::fs::read(root.join(relative)).ok()
    };
    let _ = match body {
        Some(body) => stream
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .and_then(|()| stream.write_all(&body)),
        None => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
}

/// A python-tuf repository in a temp dir, its server, and a cache root for `signet`.
pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) server: StaticServer,
    pub(crate) cache_root: PathBuf,
}

impl Fixture {
    /// Version 1 of every role, listing the public-good trusted root.
    pub(crate) fn new() -> Fixture {
        require_python_tuf();
        let dir = tempfile::Builder::new()
            .prefix("signet-tuf-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let fixture = Fixture {
            server: StaticServer::start(dir.path().join("repo")),
            cache_root: dir.path().join("xdg-cache"),
            dir,
        };
        fixture.make(&["init", "--trusted-root", PUBLIC_GOOD_ROOT]);
        fixture
    }

    /// Run `make_repo.py COMMAND DIR ARGS…`.
    pub(crate) fn make(&self, args: &[&str]) {
        let out = Command::new("python3")
            .arg(MAKE_REPO)
            .arg(args[0])
            .arg(self.dir.path())
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make_repo.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn repo_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("repo").join(name)
    }

    /// `signet trust ARGS…` with this fixture's cache root as `XDG_CACHE_HOME`.
    pub(crate) fn trust(&self, args: &[&str]) -> Output {
        let out = signet()
            .env("XDG_CACHE_HOME", &self.cache_root)
            .arg("trust")
            .args(args)
            .output()
            .unwrap();
        eprintln!(
            "signet trust {args:?} -> {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `signet trust update` from this repository, starting from its version-1 root.
    pub(crate) fn update(&self) -> Output {
        let root = self.dir.path().join("root.json");
        self.trust(&[
            "update",
            "--tuf-url",
            &self.server.url(),
            "--tuf-root",
            s(&root),
        ])
    }

    /// `signet trust status --output json`.
    fn status(&self) -> serde_json::Value {
        let out = self.trust(&["status", "--output", "json"]);
        assert_eq!(code(&out), 0);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every file under the cache root, by path, with its bytes.
    fn cache_contents(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        collect(&self.cache_root, &mut files);
        files
    }

    /// An update that must be refused: exit 2, the refused role named, the cache untouched.
    fn assert_refused(&self, role_and_file: &str, reason: &str) {
        let before = self.cache_contents();
        assert!(!before.is_empty(), "a cache to protect");
        let out = self.update();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), 2, "{stderr}");
        assert!(
            stderr.contains(&format!("TUF update refused: {role_and_file}")),
            "role named: {stderr}"
        );
        assert!(stderr.contains(reason), "reason {reason:?}: {stderr}");
        assert!(
            stderr.contains("the trust cache was left as it was"),
            "{stderr}"
        );
        assert_eq!(
            self.cache_contents(),
            before,
            "the cache is byte for byte as before"
        );
    }
}

fn collect(dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
}

fn require_python_tuf() {
    let out = Command::new("python3")
        .args(["-c", "import tuf.api.metadata, securesystemslib.signer"])
        .output()
        .expect("python3 is required for the TUF tests");
    assert!(
        out.status.success(),
        "python-tuf is required for the TUF tests: pip install tuf ({})",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn sha256_of_file(path: &str) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn trust_update_caches_the_verified_root_for_the_loader() {
    let fx = Fixture::new();
    let status = fx.status();
    assert_eq!(status["cached"], false);

    let out = fx.update();
    assert_eq!(code(&out), 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let public_good = sha256_of_file(PUBLIC_GOOD_ROOT);
    assert!(
        stdout.contains(&format!(
            "public-good trusted root updated: sha256:{public_good}"
        )),
        "{stdout}"
    );
    let status = fx.status();
    assert_eq!(status["cached"], true);
    assert_eq!(status["trusted_root_sha256"], public_good.as_str());
    assert_eq!(
        status["versions"],
        serde_json::json!({"root": 1, "timestamp": 1, "snapshot": 1, "targets": 1})
    );
    assert_eq!(
        status["cache_file"],
        s(&fx.cache_root.join("signet/trust/public-good.json"))
    );

    // Nothing new in the repository: the same root, reported unchanged.
    let out = fx.update();
    assert_eq!(code(&out), 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("trusted root unchanged"));

    // A new trusted root published: the cache follows, and the loader verifying commands use
    // reads it from the cache (not the embedded snapshot).
    assert_eq!(fx.status()["signing_config"], false);
    fx.make(&[
        "publish",
        "--trusted-root",
        GITHUB_ROOT,
        "--signing-config",
        SIGNING_CONFIG,
    ]);
    let out = fx.update();
    assert_eq!(code(&out), 0);
    let github = sha256_of_file(GITHUB_ROOT);
    let status = fx.status();
    assert_eq!(status["trusted_root_sha256"], github.as_str());
    assert_eq!(status["versions"]["timestamp"], 2);
    assert_eq!(status["signing_config"], true);

    let cache = signet_keyless::cache::TufCache::new(fx.cache_root.join("signet"));
    let root =
        signet_keyless::load_trusted_root(None, signet_keyless::Instance::PublicGood, Some(&cache))
            .unwrap();
    assert_eq!(root.sha256(), github);
    let cached = cache
        .read(signet_keyless::Instance::PublicGood)
        .unwrap()
        .unwrap();
    assert_eq!(
        cached.signing_config.as_deref(),
        Some(std::fs::read(SIGNING_CONFIG).unwrap().as_slice())
    );
    // Each instance has its own cache file: public-good's update left github's empty.
    assert!(cache
        .read(signet_keyless::Instance::GitHub)
        .unwrap()
        .is_none());
    assert!(
        matches!(root.source(), signet_keyless::TrustSource::Cache { .. }),
        "{:?}",
        root.source()
    );
}

#[test]
fn trust_update_without_xdg_cache_home_uses_home_dot_cache() {
    let fx = Fixture::new();
    let home = fx.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let root = fx.dir.path().join("root.json");
    let out = signet()
        .env("HOME", &home)
        .args([
            "trust",
            "update",
            "--tuf-url",
            &fx.server.url(),
            "--tuf-root",
            s(&root),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(home.join(".cache/signet/trust/public-good.json").is_file());
}

#[test]
fn trust_update_follows_a_root_rotation() {
    let fx = Fixture::new();
    assert_eq!(code(&fx.update()), 0);
    // Root v2: new root and timestamp keys, signed by the old and the new root keys; the new
    // timestamp is signed only by the new timestamp key, so only a client that took v2 accepts it.
    fx.make(&["rotate-root"]);
    fx.make(&["publish", "--trusted-root", GITHUB_ROOT]);
    assert_eq!(code(&fx.update()), 0);
    let status = fx.status();
    assert_eq!(status["versions"]["root"], 2);
    assert_eq!(
        status["trusted_root_sha256"],
        sha256_of_file(GITHUB_ROOT).as_str()
    );

    // A client with no cache walks the chain from its version-1 root as well.
    let fresh = Fixture {
        dir: tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
        server: StaticServer::start(fx.dir.path().join("repo")),
        cache_root: fx.dir.path().join("fresh-cache"),
    };
    let out = fresh.trust(&[
        "update",
        "--tuf-url",
        &fresh.server.url(),
        "--tuf-root",
        s(&fx.dir.path().join("root.json")),
    ]);
    assert_eq!(code(&out), 0);
    assert_eq!(fresh.status()["versions"]["root"], 2);
}

#[test]
fn trust_update_refuses_an_expired_timestamp() {
    let fx = Fixture::new();
    assert_eq!(code(&fx.update()), 0);
    fx.make(&["expired-timestamp"]);
    fx.assert_refused(
        "timestamp metadata (timestamp.json)",
        "timestamp metadata expired at",
    );

    // A valid root rotation followed by an expired timestamp: root v2 verified, then the update
    // refused. Nothing of it may reach the cache (a write-through cache would keep root v2).
    fx.make(&["rotate-root"]);
    fx.make(&["expired-timestamp"]);
    fx.assert_refused(
        "timestamp metadata (timestamp.json)",
        "timestamp metadata expired at",
    );
    assert_eq!(fx.status()["versions"]["root"], 1);
}

#[test]
fn trust_update_refuses_rolled_back_metadata() {
    let fx = Fixture::new();
    let timestamp_v1 = std::fs::read(fx.repo_file("timestamp.json")).unwrap();
    fx.make(&["publish", "--trusted-root", GITHUB_ROOT]);
    assert_eq!(code(&fx.update()), 0);
    assert_eq!(fx.status()["versions"]["timestamp"], 2);

    // The repository (or a mirror) serves the version-1 timestamp again: validly signed, unexpired,
    // and older than the cached version 2.
    let timestamp_v2 = std::fs::read(fx.repo_file("timestamp.json")).unwrap();
    std::fs::write(fx.repo_file("timestamp.json"), &timestamp_v1).unwrap();
    fx.assert_refused(
        "timestamp metadata (timestamp.json)",
        "rollback detected for timestamp: trusted version 2 > new version 1",
    );

    // A new timestamp (version 3) that pins snapshot version 1 after version 2 was cached.
    std::fs::write(fx.repo_file("timestamp.json"), &timestamp_v2).unwrap();
    fx.make(&["old-snapshot"]);
    fx.assert_refused(
        "snapshot (via timestamp) metadata (timestamp.json)",
        "trusted version 2 > new version 1",
    );
}

#[test]
fn trust_update_refuses_a_mix_and_match_snapshot() {
    let fx = Fixture::new();
    assert_eq!(code(&fx.update()), 0);
    // The snapshot pins targets version 2 by length and hash; the 2.targets.json served is
    // another validly signed version 2.
    fx.make(&["mix-and-match", "--trusted-root", GITHUB_ROOT]);
    fx.assert_refused("targets metadata (2.targets.json)", "mix-and-match");
}

#[test]
fn trust_update_refuses_bad_signatures_role_by_role() {
    let fx = Fixture::new();
    assert_eq!(code(&fx.update()), 0);
    for (role, file) in [
        ("timestamp", "timestamp.json"),
        ("snapshot", "2.snapshot.json"),
        ("targets", "2.targets.json"),
    ] {
        let before = fx.cache_contents();
        let versions: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fx.dir.path().join("state.json")).unwrap())
                .unwrap();
        fx.make(&["bad-signature", "--role", role]);
        // Each round bumps the versions; the file name follows the state.
        let file = match role {
            "snapshot" => format!(
                "{}.snapshot.json",
                versions["snapshot"].as_u64().unwrap() + 1
            ),
            "targets" => format!("{}.targets.json", versions["targets"].as_u64().unwrap() + 1),
            _ => file.to_string(),
        };
        fx.assert_refused(
            &format!("{role} metadata ({file})"),
            &format!("signature threshold not met for role {role}: 0/1 valid signatures"),
        );
        assert_eq!(fx.cache_contents(), before);
    }
}

#[test]
fn trust_update_refuses_oversized_metadata_and_plain_http_elsewhere() {
    let fx = Fixture::new();
    assert_eq!(code(&fx.update()), 0);
    let before = fx.cache_contents();
    // 64 KiB of timestamp: far over the 16 KiB bound; refused before it is read in full.
    let mut big = std::fs::read(fx.repo_file("timestamp.json")).unwrap();
    big.resize(64 * 1024, b' ');
    std::fs::write(fx.repo_file("timestamp.json"), big).unwrap();
    let out = fx.update();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 2);
    assert!(
        stderr.contains("TUF repository:") && stderr.contains("larger than 16384 bytes"),
        "{stderr}"
    );
    assert_eq!(fx.cache_contents(), before);

    // Plain HTTP to anything but loopback is refused before any connection.
    let out = fx.trust(&["update", "--tuf-url", "http://tuf.example.invalid"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 2);
    assert!(
        stderr.contains("plain HTTP only to a loopback address"),
        "{stderr}"
    );
    assert_eq!(fx.cache_contents(), before);
}

#[test]
fn trust_update_of_the_github_instance_fills_its_own_cache_file() {
    let fx = Fixture::new();
    let root = fx.dir.path().join("root.json");
    let out = fx.trust(&[
        "update",
        "--instance",
        "github",
        "--tuf-url",
        &fx.server.url(),
        "--tuf-root",
        s(&root),
        "--output",
        "json",
    ]);
    assert_eq!(code(&out), 0);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["instance"], "github");
    assert_eq!(doc["changed"], true);
    assert_eq!(
        doc["cache_file"],
        s(&fx.cache_root.join("signet/trust/github.json"))
    );
    assert_eq!(fx.status()["cached"], false, "public-good untouched");
    let out = fx.trust(&["status", "--instance", "github", "--output", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        status["trusted_root_sha256"],
        sha256_of_file(PUBLIC_GOOD_ROOT).as_str()
    );

    let out = fx.trust(&["update", "--instance", "staging"]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown Sigstore instance \"staging\""));
}

#[test]
fn trust_update_gives_up_on_a_silent_repository() {
    let fx = Fixture::new();
    assert_eq!(code(&fx.update()), 0);
    let before = fx.cache_contents();
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let root = fx.dir.path().join("root.json");
    let started = std::time::Instant::now();
    let out = fx.trust(&[
        "update",
        "--timeout",
        "1",
        "--tuf-url",
        &format!("http://127.0.0.1:{port}"),
        "--tuf-root",
        s(&root),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 2);
    assert!(
        stderr.contains("TUF repository:") && stderr.contains("timed out"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(fx.cache_contents(), before);
}

/// `signet verify-blob` of a public-good cosign bundle (no `--trusted-root`), with this fixture's
/// cache: (exit code, its JSON report or stderr).
fn verify_blob_with_cache(fx: &Fixture) -> (i32, String) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/tuf");
    let out = signet()
        .env("XDG_CACHE_HOME", &fx.cache_root)
        .args([
            "verify-blob",
            "--bundle",
            &format!("{dir}/cosign-v3-blob.sigstore.json"),
            "--certificate-identity",
            "w.vollprecht@gmail.com",
            "--certificate-oidc-issuer",
            "https://github.com/login/oauth",
            "--output",
            "json",
            &format!("{dir}/cosign-v3-blob.txt"),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("verify-blob -> {:?}: {text}", out.status.code());
    (code(&out), text)
}

#[test]
fn verify_blob_uses_the_root_trust_update_cached() {
    let fx = Fixture::new();
    // The repository first publishes GitHub's root as public-good's: once cached, verify-blob of a
    // public-good bundle must use it, and so fail (its Fulcio and Rekor are not in that root).
    fx.make(&["publish", "--trusted-root", GITHUB_ROOT]);
    let (exit, _) = verify_blob_with_cache(&fx);
    assert_eq!(exit, 0, "before any update: the embedded public-good root");
    assert_eq!(code(&fx.update()), 0);
    let (exit, text) = verify_blob_with_cache(&fx);
    assert_eq!(exit, 12, "the cached (GitHub) root is used: {text}");

    // Public-good's root published and fetched: verified, against the cached root.
    fx.make(&["publish", "--trusted-root", PUBLIC_GOOD_ROOT]);
    assert_eq!(code(&fx.update()), 0);
    let (exit, text) = verify_blob_with_cache(&fx);
    assert_eq!(exit, 0, "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        report["trustedRoot"]["sha256"],
        sha256_of_file(PUBLIC_GOOD_ROOT).as_str()
    );
    let source = report["trustedRoot"]["source"].as_str().unwrap();
    assert!(
        source.starts_with("public-good root from the TUF cache")
            && source.ends_with("signet/trust/public-good.json"),
        "{source}"
    );
}

#[test]
fn an_altered_cache_fails_closed() {
    let fx = Fixture::new();
    assert_eq!(code(&fx.update()), 0);
    // Swap the cached trusted root for another (valid) one: it no longer matches the hash the
    // cached targets metadata pins. Neither status nor verify-blob may use it, nor fall back to
    // the embedded root.
    let path = fx.cache_root.join("signet/trust/public-good.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state["targets"]["trusted_root.json"] =
        serde_json::Value::String(std::fs::read_to_string(GITHUB_ROOT).unwrap());
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();

    let out = fx.trust(&["status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 2);
    assert!(
        stderr.contains("trusted_root.json does not match the hash targets.json pins"),
        "{stderr}"
    );
    let (exit, text) = verify_blob_with_cache(&fx);
    assert_eq!(exit, 2, "{text}");
    assert!(
        text.contains("trusted_root.json does not match the hash targets.json pins"),
        "{text}"
    );

    // Junk is refused the same way; `trust update` says how to recover.
    std::fs::write(&path, b"not json").unwrap();
    let out = fx.update();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 2);
    assert!(
        stderr.contains("not a signet trust cache")
            && stderr.contains("remove it and run `signet trust update`"),
        "{stderr}"
    );
    std::fs::remove_file(&path).unwrap();
    assert_eq!(code(&fx.update()), 0);
}

#[test]
fn trust_update_refuses_a_redirect_to_plain_http_elsewhere() {
    let fx = Fixture::new();
    // A loopback repository that redirects every request to plain HTTP on another host.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut line = String::new();
            let _ = BufReader::new(stream.try_clone().unwrap()).read_line(&mut line);
            let _ = stream.write_all(
                b"HTTP/1.1 302 Found\r\nLocation: http://tuf.example.invalid/x.json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let root = fx.dir.path().join("root.json");
    let out = fx.trust(&[
        "update",
        "--tuf-url",
        &format!("http://127.0.0.1:{port}"),
        "--tuf-root",
        s(&root),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 2);
    assert!(
        stderr.contains("redirect to plain HTTP (not loopback) refused"),
        "{stderr}"
    );
    assert!(
        fx.cache_contents().values().all(|bytes| bytes.is_empty()),
        "only the empty lock file"
    );
}
