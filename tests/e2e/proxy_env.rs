//! HTTP proxies for registry traffic (issue 13, items 3 and 7), through Debian's real
//! `tinyproxy` on loopback: `HTTPS_PROXY` goes through a `CONNECT` tunnel (the proxy sees the
//! host and nothing of the exchange, credentials included), `HTTP_PROXY` carries plain-HTTP
//! registries but never their credentials, `NO_PROXY` exceptions and loopback go direct, a proxy
//! that hangs ends within the time-out, and the gate takes its proxy from its config only.
//!
//! Loopback is never proxied (Go's rule), so the registries (listening on 127.0.0.1 like every
//! test server) are named [`TLS_NAME`], which resolves to 127.0.0.1 only inside private mount
//! namespaces whose `/etc/hosts` is a bind-mounted copy ([`with_private_hosts`]): tinyproxy, and
//! the `signet` processes meant to go direct, run there. Nothing listens on or connects to a
//! non-loopback address.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::support::{self, code, free_port, signet, TestRegistry, TLS_NAME};

/// A hosts file naming [`TLS_NAME`] as 127.0.0.1 (written once, kept for the test run).
fn private_hosts() -> &'static Path {
    static HOSTS: OnceLock<PathBuf> = OnceLock::new();
    HOSTS.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("signet-e2e-hosts-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let file = dir.join("hosts");
        std::fs::write(
            &file,
            format!("127.0.0.1 localhost\n127.0.0.1 {TLS_NAME}\n"),
        )
        .unwrap();
        file
    })
}

/// `cmd` run in a private mount namespace whose `/etc/hosts` is [`private_hosts`], so
/// [`TLS_NAME`] resolves to 127.0.0.1 there and nowhere else (needs root). The environment
/// `cmd` sets is carried over; `cmd` must clear the rest (as [`signet`] does) or set none.
/// `exec` keeps the child's pid that of the wrapped program, so killing the child kills it.
fn with_private_hosts(cmd: &Command) -> Command {
    let mut wrapped = Command::new("/usr/bin/unshare");
    wrapped
        .args(["-m", "/bin/sh", "-c"])
        .arg("/usr/bin/mount --bind \"$0\" /etc/hosts && exec \"$@\"")
        .arg(private_hosts())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if cmd.get_envs().next().is_some() {
        wrapped.env_clear();
    }
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            wrapped.env(key, value);
        }
    }
    wrapped
}

/// `registry.signet.test:PORT` for a plain-HTTP registry: a name Signet proxies.
fn named_host(reg: &TestRegistry) -> String {
    let port = reg.host().rsplit_once(':').unwrap().1.to_string();
    format!("{TLS_NAME}:{port}")
}

/// Push the sample image `team/app:v1` to a TLS registry (by its TLS name), with basic
/// credentials if given.
fn push_tls(reg: &TestRegistry, basic: Option<(&str, &str)>) -> signet_oci::Digest {
    let mut options = reg.tls_options();
    if let Some((user, pass)) = basic {
        options.credentials = vec![(
            reg.tls_host(),
            signet_oci::registry::Credentials {
                username: user.into(),
                password: pass.into(),
            },
        )];
    }
    let pusher = signet_oci::RegistryClient::new(options).unwrap();
    let reference: signet_oci::Reference =
        format!("{}/team/app:v1", reg.tls_host()).parse().unwrap();
    let (manifest, blobs) = support::sample_image("proxy-tls");
    support::runtime().block_on(async {
        for (_, bytes) in blobs {
            pusher
                .put_blob(&reference, bytes::Bytes::from(bytes))
                .await
                .unwrap();
        }
        pusher
            .put_manifest(&reference, &manifest, signet_oci::manifest::OCI_MANIFEST)
            .await
            .unwrap()
    })
}

/// Copy both ways between `a` and `b` until either closes, recording what `a` sent.
fn splice(a: TcpStream, b: TcpStream, record: Option<Arc<Mutex<Vec<u8>>>>) {
    let (mut a_read, mut b_write) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let forward = std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match a_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(r) = &record {
                        r.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    if b_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = b_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut b_read, mut a_write) = (b, a);
    let _ = std::io::copy(&mut b_read, &mut a_write);
    let _ = a_write.shutdown(std::net::Shutdown::Write);
    let _ = forward.join();
}

/// A TCP relay listening on 127.0.0.1 that connects each client to `target`, counting
/// connections and recording what clients sent.
struct Relay {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Relay {
    fn start(target: std::net::SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (count, record) = (connections.clone(), sent.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let record = record.clone();
                std::thread::spawn(move || {
                    if let Ok(server) = TcpStream::connect(target) {
                        splice(client, server, Some(record));
                    }
                });
            }
        });
        Relay {
            addr,
            connections,
            sent,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn sent_text(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned()
    }
}

/// Debian's tinyproxy on a loopback port, logging every connection and request, resolving
/// [`TLS_NAME`] to 127.0.0.1 ([`with_private_hosts`]).
struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    fn start() -> Tinyproxy {
        assert!(
            Path::new("/usr/bin/tinyproxy").exists(),
            "tinyproxy is missing: apt-get install -y tinyproxy"
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("tinyproxy.log");
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("tinyproxy.conf");
            // No ConnectPort line: CONNECT to any port (the registries' ports are random).
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Connect\nMaxClients 50\nAllow 127.0.0.1\n",
                    log.display()
                ),
            )
            .unwrap();
            let mut tinyproxy = Command::new("/usr/bin/tinyproxy");
            tinyproxy.arg("-d").arg("-c").arg(&config);
            let mut child = with_private_hosts(&tinyproxy)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Tinyproxy {
                        child,
                        port,
                        log,
                        _dir: dir,
                    };
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("tinyproxy did not start");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Client → recorder → tinyproxy: what the proxy was sent, recorded.
fn recorded_proxy() -> (Tinyproxy, Relay) {
    let proxy = Tinyproxy::start();
    let recorder = Relay::start(([127, 0, 0, 1], proxy.port).into());
    (proxy, recorder)
}

/// `signet ARGS` with `env` set, stdin `input`.
fn run(args: &[&str], env: &[(&str, String)], input: Option<&str>) -> std::process::Output {
    run_with(signet(), args, env, input)
}

/// [`run`] where [`TLS_NAME`] resolves to 127.0.0.1 ([`with_private_hosts`]): for going direct.
fn run_resolving(
    args: &[&str],
    env: &[(&str, String)],
    input: Option<&str>,
) -> std::process::Output {
    let mut cmd = signet();
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with(with_private_hosts(&cmd), args, &[], input)
}

fn run_with(
    mut cmd: Command,
    args: &[&str],
    env: &[(&str, String)],
    input: Option<&str>,
) -> std::process::Output {
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = input {
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "signet {args:?} {env:?}: {:?}\nstdout: {}\nstderr: {}",
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
fn https_goes_through_a_connect_tunnel_the_proxy_cannot_read() {
    let reg = TestRegistry::start_with_tls_and(&[], Some(("tls-user", "tunnel-secret-5")));
    let host = reg.tls_host();
    let expected = push_tls(&reg, Some(("tls-user", "tunnel-secret-5")));
    let (proxy, recorder) = recorded_proxy();
    let image = format!("{host}/team/app:v1");
    let ca = reg.ca_file().display().to_string();
    let env = vec![("HTTPS_PROXY", format!("http://{}", recorder.addr))];
    let out = run(
        &[
            "digest",
            &image,
            "--ca-file",
            &ca,
            "--registry-username",
            "tls-user",
            "--registry-password-stdin",
        ],
        &env,
        Some("tunnel-secret-5\n"),
    );
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), expected.to_string());
    // Through the proxy, as a tunnel: the proxy saw CONNECT and then only TLS.
    let log = proxy.log();
    assert!(log.contains(&format!("CONNECT {host} HTTP/1.1")), "{log}");
    let sent = recorder.sent_text();
    assert!(
        sent.starts_with(&format!("CONNECT {host} HTTP/1.1\r\n")),
        "{sent:.200}"
    );
    assert!(
        !sent.contains("tunnel-secret-5"),
        "the password crossed the proxy"
    );
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "tls-user:tunnel-secret-5",
    );
    assert!(!sent.contains(&basic), "the credentials crossed the proxy");
    assert!(
        !sent.to_ascii_lowercase().contains("authorization"),
        "{sent:.300}"
    );

    // NO_PROXY names the host: direct, the proxy sees nothing more.
    let before = recorder.connections();
    let env = vec![
        ("HTTPS_PROXY", format!("http://{}", recorder.addr)),
        ("NO_PROXY", format!("example.com,{TLS_NAME}")),
    ];
    let out = run_resolving(
        &[
            "digest",
            &image,
            "--ca-file",
            &ca,
            "--registry-username",
            "tls-user",
            "--registry-password-stdin",
        ],
        &env,
        Some("tunnel-secret-5\n"),
    );
    assert_eq!(code(&out), 0);
    assert_eq!(recorder.connections(), before);
}

#[test]
fn plain_http_goes_through_http_proxy_but_never_with_credentials() {
    let open = TestRegistry::start();
    let expected = support::push_sample_image(&open, "team/app:v1");
    let locked = TestRegistry::start_with_htpasswd("plain-user", "plain-secret-6");
    let pusher = support::client_with_credentials(&locked, "plain-user", "plain-secret-6");
    support::push_sample_image_with(&locked, "team/app:v1", &pusher);
    let (proxy, recorder) = recorded_proxy();
    let via = vec![("HTTP_PROXY", format!("http://{}", recorder.addr))];

    let open_host = named_host(&open);
    let out = run(
        &[
            "digest",
            &format!("{open_host}/team/app:v1"),
            "--allow-http-registry",
            &open_host,
        ],
        &via,
        None,
    );
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), expected.to_string());
    let log = proxy.log();
    assert!(
        log.contains(&format!("GET http://{open_host}/v2/team/app/manifests/v1")),
        "{log}"
    );

    // Credentials for a plain-HTTP registry behind the proxy: refused, and never sent.
    let locked_host = named_host(&locked);
    let image = format!("{locked_host}/team/app:v1");
    let args = [
        "digest",
        &image,
        "--allow-http-registry",
        &locked_host,
        "--registry-username",
        "plain-user",
        "--registry-password-stdin",
    ];
    let out = run(&args, &via, Some("plain-secret-6\n"));
    assert_eq!(code(&out), 2);
    let text = stderr(&out);
    assert!(
        text.contains(&format!(
            "credentials are not sent over plain HTTP through proxy http://{}; list {locked_host} in NO_PROXY",
            recorder.addr
        )),
        "{text}"
    );
    let sent = recorder.sent_text();
    assert!(
        !sent.contains("plain-secret-6"),
        "the password crossed the proxy"
    );
    assert!(
        !sent.to_ascii_lowercase().contains("authorization:"),
        "{sent}"
    );
    // Listed in NO_PROXY, the same pull goes direct and succeeds.
    let mut direct = via.clone();
    direct.push(("no_proxy", locked_host.clone()));
    let out = run_resolving(&args, &direct, Some("plain-secret-6\n"));
    assert_eq!(code(&out), 0);

    // Loopback is never proxied: a dead proxy does not matter.
    let dead = vec![
        ("HTTP_PROXY", format!("http://127.0.0.1:{}", free_port())),
        ("HTTPS_PROXY", format!("http://127.0.0.1:{}", free_port())),
    ];
    let out = run(
        &["digest", &format!("{}/team/app:v1", open.host())],
        &dead,
        None,
    );
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), expected.to_string());
    // The control: the same dead proxy for a proxied destination fails, naming the proxy.
    let out = run(
        &[
            "digest",
            &format!("{open_host}/team/app:v1"),
            "--allow-http-registry",
            &open_host,
        ],
        &dead,
        None,
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("registry "), "{}", stderr(&out));
}

#[test]
fn a_proxy_that_hangs_or_answers_garbage_ends_within_the_time_out() {
    for garbage in [None, Some("SSH-2.0-OpenSSH_9.2 not a proxy\r\n")] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if let Some(text) = garbage {
                    let _ = stream.write_all(text.as_bytes());
                }
                held.push(stream);
            }
        });
        let env = vec![("HTTPS_PROXY", format!("127.0.0.1:{port}"))];
        let started = Instant::now();
        let out = run(
            &["digest", "ghcr.io/signet-e2e/none:v1", "--timeout", "2"],
            &env,
            None,
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(code(&out), 2);
        let text = stderr(&out);
        assert!(
            text.contains("registry ghcr.io: manifest ghcr.io/signet-e2e/none:v1: "),
            "{text}"
        );
    }
    // A proxy URL that is not one: named by its variable, its value (a password) never shown.
    let env = vec![(
        "HTTPS_PROXY",
        "socks5://me:proxy-secret@127.0.0.1:1".to_string(),
    )];
    let out = run(&["digest", "ghcr.io/signet-e2e/none:v1"], &env, None);
    assert_eq!(code(&out), 2);
    let text = stderr(&out);
    assert!(
        text.contains("HTTPS_PROXY: proxy scheme \"socks5\" is not supported"),
        "{text}"
    );
    assert!(!text.contains("proxy-secret"), "{text}");
}

/// `signet serve --config FILE` (FILE written from `yaml` with a free listen port), ready,
/// resolving [`TLS_NAME`] to 127.0.0.1 ([`with_private_hosts`]).
struct Serve {
    child: Child,
    port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(dir: &Path, yaml: &str, env: &[(&str, String)]) -> Serve {
        let port = free_port();
        let config = dir.join(format!("gate-{port}.yaml"));
        std::fs::write(&config, format!("listen: 127.0.0.1:{port}\n{yaml}")).unwrap();
        let mut cmd = signet();
        cmd.args(["serve", "--config"]).arg(&config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // Resolving TLS_NAME itself, for the upstream it reaches without a proxy.
        let child = with_private_hosts(&cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let serve = Serve { child, port };
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
fn the_gate_takes_its_proxy_from_its_config_not_its_environment() {
    let reg = TestRegistry::start_with_tls_and(&[], None);
    push_tls(&reg, None);
    let host = reg.tls_host();
    let (proxy, recorder) = recorded_proxy();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!("default:\n  reject: only listed registries\nscopes:\n  \"{host}/team\":\n    accept: true\n"),
    )
    .unwrap();
    let base = format!(
        "policy: {}\nupstreams:\n  - url: https://{host}\n    ca_file: {}\n",
        policy.display(),
        reg.ca_file().display()
    );
    // The environment's proxy is dead; the gate ignores it.
    let dead = vec![("HTTPS_PROXY", format!("http://127.0.0.1:{}", free_port()))];
    let plain = Serve::start(dir.path(), &base, &dead);
    assert_eq!(plain.status("/v2/team/app/manifests/v1"), 200);
    assert_eq!(recorder.connections(), 0);
    drop(plain);

    let proxied = Serve::start(
        dir.path(),
        &format!(
            "{base}network:\n  proxy:\n    https: http://{}\n",
            recorder.addr
        ),
        &dead,
    );
    assert_eq!(proxied.status("/v2/team/app/manifests/v1"), 200);
    assert!(recorder.connections() > 0);
    let log = proxy.log();
    assert!(log.contains(&format!("CONNECT {host} HTTP/1.1")), "{log}");
}
