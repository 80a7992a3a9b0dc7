//! Shared harness: a real registry on a free loopback port, and helpers to run the binary.
//!
//! Each [`TestRegistry`] is Debian's `docker-registry` (distribution 2.8) serving a fresh temporary
//! storage directory on `127.0.0.1:<free port>`, without auth, with htpasswd basic auth, or with
//! token auth from a small token server in this process (ES256 JWTs whose self-signed certificate,
//! made with the `openssl` CLI, is the registry's `rootcertbundle`). The registry is killed when
//! the value is dropped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use signet_oci::registry::Credentials;
use signet_oci::{Descriptor, Digest, Reference, RegistryClient, RegistryOptions};

/// Where Debian installs distribution's registry.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// The `service` (JWT audience) of token-auth registries.
pub const TOKEN_SERVICE: &str = "signet-test-registry";
/// The issuer of the test token server's JWTs.
pub const TOKEN_ISSUER: &str = "signet-test-issuer";
/// The host name a TLS registry's certificate is made out to (resolved to 127.0.0.1 by
/// [`TestRegistry::tls_options`], so the client does not treat it as loopback and speaks https).
pub const TLS_NAME: &str = "registry.signet.test";
/// How long a registry may take to answer `GET /v2/` after start.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `docker-registry` with its own storage; killed on drop.
pub struct TestRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    storage: PathBuf,
    token_server: Option<TokenServer>,
    ca_file: Option<PathBuf>,
}

impl TestRegistry {
    /// A registry without authentication.
    pub fn start() -> TestRegistry {
        Self::start_with_auth(|_| String::new(), None)
    }

    /// A registry without authentication serving https only, with a certificate for
    /// [`TLS_NAME`] and `127.0.0.1` issued by a CA made with the `openssl` CLI at start
    /// ([`TestRegistry::ca_file`]).
    pub fn start_with_tls() -> TestRegistry {
        Self::start_with_tls_and(&[], None)
    }

    /// [`TestRegistry::start_with_tls`] whose certificate also names `extra_ips`, demanding
    /// basic credentials `user`/`pass` when given.
    pub fn start_with_tls_and(
        extra_ips: &[std::net::IpAddr],
        basic: Option<(&str, &str)>,
    ) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        run_openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=signet-test-ca",
            "-days",
            "2",
            "-keyout",
            &path("ca-key.pem"),
            "-out",
            &path("ca.pem"),
        ]);
        run_openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={TLS_NAME}"),
            "-keyout",
            &path("server-key.pem"),
            "-out",
            &path("server.csr"),
        ]);
        std::fs::write(
            dir.path().join("ext.cnf"),
            format!(
                "subjectAltName=DNS:{TLS_NAME},IP:127.0.0.1{}\n",
                extra_ips
                    .iter()
                    .map(|ip| format!(",IP:{ip}"))
                    .collect::<String>()
            ),
        )
        .unwrap();
        run_openssl(&[
            "x509",
            "-req",
            "-in",
            &path("server.csr"),
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca-key.pem"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &path("ext.cnf"),
            "-out",
            &path("server.pem"),
        ]);
        let tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            path("server.pem"),
            path("server-key.pem")
        );
        let basic = basic.map(|(u, p)| (u.to_string(), p.to_string()));
        let mut reg = Self::start_with_config(
            move |reg_dir| match &basic {
                // At column 0: a top-level key after the `http:` block.
                Some((user, pass)) => format!("{tls}{}", htpasswd_yaml(reg_dir, user, pass)),
                None => tls.clone(),
            },
            None,
            true,
        );
        let ca = reg.dir.path().join("ca.pem");
        std::fs::copy(dir.path().join("ca.pem"), &ca).unwrap();
        reg.ca_file = Some(ca);
        reg
    }

    /// A registry that demands HTTP basic credentials `user`/`pass` (bcrypt htpasswd file made
    /// with Debian's `htpasswd` from apache2-utils).
    pub fn start_with_htpasswd(user: &str, pass: &str) -> TestRegistry {
        let (user, pass) = (user.to_string(), pass.to_string());
        Self::start_with_auth(move |dir| htpasswd_yaml(dir, &user, &pass), None)
    }

    /// A registry using the distribution token flow: its realm is a token server in this process
    /// that grants the requested scopes to `user`/`pass`, an empty-access token to anonymous
    /// callers, and 401 to wrong credentials.
    pub fn start_with_token_auth(user: &str, pass: &str) -> TestRegistry {
        let server = TokenServer::start(user, pass);
        let realm = format!("http://127.0.0.1:{}/token", server.port);
        let cert = server.cert_path.clone();
        Self::start_with_auth(
            move |_| {
                format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    cert.display()
                )
            },
            Some(server),
        )
    }

    fn start_with_auth(
        auth: impl Fn(&Path) -> String,
        token_server: Option<TokenServer>,
    ) -> TestRegistry {
        Self::start_with_config(auth, token_server, false)
    }

    /// Start with `extra(dir)` appended to the config (inside `http:` when `tls`, else at the
    /// top level).
    fn start_with_config(
        extra: impl Fn(&Path) -> String,
        token_server: Option<TokenServer>,
        tls: bool,
    ) -> TestRegistry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install Debian's docker-registry: apt-get install -y docker-registry"
        );
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let extra_yaml = extra(dir.path());
        // A free port can be taken between our probe and the registry's bind: try a few.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{extra_yaml}",
                    storage.display()
                ),
            )
            .unwrap();
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            if wait_ready(&mut child, port, tls) {
                return TestRegistry {
                    child,
                    port,
                    dir,
                    storage,
                    token_server,
                    ca_file: None,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("docker-registry did not start; its log:\n{last_log}");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's storage root (`docker/registry/v2/...` lives below it).
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// Where the registry keeps the bytes of blob (or manifest) `digest`.
    pub fn blob_data_path(&self, digest: &Digest) -> PathBuf {
        self.storage
            .join("docker/registry/v2/blobs")
            .join(digest.algorithm().as_str())
            .join(&digest.hex()[..2])
            .join(digest.hex())
            .join("data")
    }

    /// `127.0.0.1:PORT/<repo_and_tag>` parsed.
    pub fn reference(&self, repo_and_tag: &str) -> Reference {
        format!("{}/{repo_and_tag}", self.host()).parse().unwrap()
    }

    /// The identity token (OAuth2 refresh token) the token server accepts for the user, in the
    /// refresh-token grant (`POST`, `grant_type=refresh_token`).
    pub fn identity_token(&self) -> String {
        self.token_server
            .as_ref()
            .map(|s| s.identity_token.clone())
            .expect("not a token-auth registry")
    }

    /// How many refresh-token grants (`POST`) the token server answered.
    pub fn refresh_grants(&self) -> usize {
        self.token_server
            .as_ref()
            .map_or(0, |s| s.refresh_grants.load(Ordering::SeqCst))
    }

    /// How many token requests the token server answered (0 without token auth).
    pub fn token_requests(&self) -> usize {
        self.token_server
            .as_ref()
            .map_or(0, |s| s.requests.load(Ordering::SeqCst))
    }

    /// The CA certificate (PEM) of a [`TestRegistry::start_with_tls`] registry.
    pub fn ca_file(&self) -> &Path {
        self.ca_file.as_deref().expect("not a TLS registry")
    }

    /// `registry.signet.test:PORT`: how to name a TLS registry so the client uses https.
    pub fn tls_host(&self) -> String {
        format!("{TLS_NAME}:{}", self.port)
    }

    /// [`test_options`] resolving [`TLS_NAME`] to 127.0.0.1 and trusting [`TestRegistry::ca_file`].
    pub fn tls_options(&self) -> RegistryOptions {
        RegistryOptions {
            ca_files: vec![self.ca_file().to_path_buf()],
            resolve: vec![(TLS_NAME.to_string(), [127, 0, 0, 1].into())],
            ..test_options()
        }
    }

    /// A scratch directory that lives as long as the registry.
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `GET /v2/` until it answers 200 or 401 (any HTTP answer from a TLS port, where Go
/// answers plain HTTP with 400); false if the registry exits or time runs out.
fn wait_ready(child: &mut Child, port: u16, tls: bool) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let request = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
            let mut answer = [0u8; 12];
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_exact(&mut answer).is_ok()
            {
                let status = &answer[9..12];
                if status == b"200" || status == b"401" || (tls && answer.starts_with(b"HTTP/1.")) {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A tokio runtime for tests that call the async library directly.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Options for tests: no auth files (the developer's own must not leak in), short time-outs,
/// one retry.
pub fn test_options() -> RegistryOptions {
    RegistryOptions {
        use_auth_files: false,
        timeout: Duration::from_secs(10),
        retries: 1,
        ..RegistryOptions::default()
    }
}

/// A client with [`test_options`].
pub fn client() -> RegistryClient {
    RegistryClient::new(test_options()).unwrap()
}

/// A client with [`test_options`] and explicit credentials for `reg`.
pub fn client_with_credentials(reg: &TestRegistry, user: &str, pass: &str) -> RegistryClient {
    let mut options = test_options();
    options.credentials = vec![(
        reg.host(),
        Credentials {
            username: user.into(),
            password: pass.into(),
        },
    )];
    RegistryClient::new(options).unwrap()
}

/// A `signet` command with a clean environment: a fresh empty HOME (and XDG dirs below it), PATH
/// kept, nothing else inherited, so no user configuration or credentials leak in.
pub fn signet() -> Command {
    let home = tempfile::Builder::new()
        .prefix("signet-e2e-home-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
    cmd.env_clear()
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_RUNTIME_DIR", home.join("run"));
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    if let Some(tmp) = std::env::var_os("TMPDIR") {
        cmd.env("TMPDIR", tmp);
    }
    cmd
}

/// Deterministic pseudo-random bytes (xorshift) from `seed`.
pub fn sample_bytes(seed: &str, len: usize) -> Vec<u8> {
    let mut state = seed.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A deterministic uncompressed tar holding one file.
fn sample_tar(name: &str, contents: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(contents.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    builder
        .append_data(&mut header, name, contents)
        .expect("build tar");
    builder.into_inner().expect("finish tar")
}

/// A small OCI image (two uncompressed tar layers, a config naming their diff IDs): the manifest
/// bytes and the blobs (config first). Same `seed`, same bytes.
pub fn sample_image(seed: &str) -> (Vec<u8>, Vec<(Descriptor, Vec<u8>)>) {
    let layers: Vec<Vec<u8>> = (0..2)
        .map(|i| {
            sample_tar(
                &format!("file{i}.bin"),
                &sample_bytes(&format!("{seed}/{i}"), 1000 + 500 * i),
            )
        })
        .collect();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| Digest::sha256(l).to_string())
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"org.example.seed": seed}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_desc = Descriptor::of(signet_oci::manifest::OCI_CONFIG, &config);
    let layer_descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| Descriptor::of("application/vnd.oci.image.layer.v1.tar", l))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": signet_oci::manifest::OCI_MANIFEST,
        "config": config_desc,
        "layers": layer_descs,
    }))
    .unwrap();
    let mut blobs = vec![(config_desc, config)];
    blobs.extend(layer_descs.into_iter().zip(layers));
    (manifest, blobs)
}

/// Push [`sample_image`]`(repo_and_tag)` to `reg` as `repo_and_tag` with the library client;
/// returns the manifest digest. Call from synchronous test code (it runs its own runtime).
pub fn push_sample_image(reg: &TestRegistry, repo_and_tag: &str) -> Digest {
    push_sample_image_with(reg, repo_and_tag, &client())
}

/// [`push_sample_image`] with a given client (for registries that need credentials).
pub fn push_sample_image_with(
    reg: &TestRegistry,
    repo_and_tag: &str,
    client: &RegistryClient,
) -> Digest {
    push_sample_image_at(client, &reg.reference(repo_and_tag), repo_and_tag)
}

/// Push [`sample_image`]`(seed)` to `reference` (any registry, any tag) with `client`; returns
/// the manifest digest. Call from synchronous test code (it runs its own runtime).
pub fn push_sample_image_at(client: &RegistryClient, reference: &Reference, seed: &str) -> Digest {
    let (manifest, blobs) = sample_image(seed);
    runtime().block_on(async {
        for (_, bytes) in blobs {
            client
                .put_blob(reference, bytes::Bytes::from(bytes))
                .await
                .unwrap();
        }
        client
            .put_manifest(reference, &manifest, signet_oci::manifest::OCI_MANIFEST)
            .await
            .unwrap()
    })
}

/// An in-process token server for the distribution token flow (one thread, one request per
/// connection).
struct TokenServer {
    port: u16,
    cert_path: PathBuf,
    requests: Arc<AtomicUsize>,
    refresh_grants: Arc<AtomicUsize>,
    identity_token: String,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    fn start(user: &str, pass: &str) -> TokenServer {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("token-key.pem");
        let cert_path = dir.path().join("token-cert.pem");
        run_openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            key_path.to_str().unwrap(),
        ]);
        run_openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            key_path.to_str().unwrap(),
            "-subj",
            "/CN=signet-test-token-issuer",
            "-days",
            "2",
            "-out",
            cert_path.to_str().unwrap(),
        ]);
        let key_pem = std::fs::read_to_string(&key_path).unwrap();
        let secret = <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&key_pem)
            .expect("openssl wrote a PKCS#8 P-256 key");
        let signing_key = p256::ecdsa::SigningKey::from(secret);
        // x5c carries base64 DER, which is exactly the PEM body without its armour.
        let cert_b64: String = std::fs::read_to_string(&cert_path)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let refresh_grants = Arc::new(AtomicUsize::new(0));
        let identity_token = format!("{pass}-identity-token");
        let (user, pass) = (user.to_string(), pass.to_string());
        let (thread_requests, thread_stop) = (requests.clone(), stop.clone());
        let (thread_grants, thread_identity) = (refresh_grants.clone(), identity_token.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                thread_requests.fetch_add(1, Ordering::SeqCst);
                let account = Account {
                    user: &user,
                    pass: &pass,
                    identity_token: &thread_identity,
                    refresh_grants: &thread_grants,
                };
                serve_token(stream, &account, &signing_key, &cert_b64);
            }
        });
        TokenServer {
            port,
            cert_path,
            requests,
            refresh_grants,
            identity_token,
            stop,
            _dir: dir,
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The `auth:` section for basic credentials `user`/`pass` (a bcrypt htpasswd file in `dir`,
/// made with Debian's `htpasswd` from apache2-utils).
fn htpasswd_yaml(dir: &Path, user: &str, pass: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, pass])
        .output()
        .expect("run htpasswd (install Debian's apache2-utils)");
    assert!(out.status.success(), "htpasswd failed: {out:?}");
    let file = dir.join("htpasswd");
    std::fs::write(&file, &out.stdout).unwrap();
    format!(
        "auth:\n  htpasswd:\n    realm: signet-test\n    path: {}\n",
        file.display()
    )
}

fn run_openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?} failed: {out:?}");
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(mut stream: TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Who the token server grants access to, and how.
struct Account<'a> {
    user: &'a str,
    pass: &'a str,
    /// Accepted as `refresh_token` in the OAuth2 refresh-token grant.
    identity_token: &'a str,
    refresh_grants: &'a AtomicUsize,
}

/// Answer one token request: 401 for wrong credentials, else a JWT granting the requested
/// scopes to the right user and nothing to anonymous callers. A `POST` is the OAuth2
/// refresh-token grant (distribution token spec): `grant_type=refresh_token` with the
/// account's identity token, the scopes space-separated; the answer's field is `access_token`.
fn serve_token(
    mut stream: TcpStream,
    account: &Account<'_>,
    key: &p256::ecdsa::SigningKey,
    cert_b64: &str,
) {
    let (user, pass) = (account.user, account.pass);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head_end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(head.len(), |i| i + 4);
    let mut body = head.split_off(head_end);
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("");
    if head.starts_with("POST ") {
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0)
            .min(64 * 1024);
        while body.len() < length {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&buf[..n]),
            }
        }
        let form = String::from_utf8_lossy(&body).into_owned();
        let field = |name: &str| {
            form.split('&')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| percent_decode(v))
        };
        if field("grant_type").as_deref() != Some("refresh_token") {
            respond(
                stream,
                "400 Bad Request",
                r#"{"error":"unsupported_grant_type"}"#,
            );
            return;
        }
        if field("refresh_token").as_deref() != Some(account.identity_token) {
            respond(stream, "401 Unauthorized", r#"{"error":"invalid_grant"}"#);
            return;
        }
        account.refresh_grants.fetch_add(1, Ordering::SeqCst);
        let scopes: Vec<String> = field("scope")
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let token = grant(user, &scopes, key, cert_b64);
        let body = serde_json::json!({"access_token": token, "expires_in": 300}).to_string();
        respond(stream, "200 OK", &body);
        return;
    }
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let scopes: Vec<String> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .filter(|(k, _)| *k == "scope")
        .map(|(_, v)| percent_decode(v))
        .collect();
    let given = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        if !name.eq_ignore_ascii_case("authorization") {
            return None;
        }
        let encoded = value.trim().strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (u, p) = text.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    });
    let subject = match &given {
        Some((u, p)) if u == user && p == pass => u.clone(),
        Some(_) => {
            respond(
                stream,
                "401 Unauthorized",
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#,
            );
            return;
        }
        None => String::new(),
    };
    let token = grant(&subject, &scopes, key, cert_b64);
    let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
    respond(stream, "200 OK", &body);
}

/// A JWT for `subject` granting `scopes` (nothing when `subject` is empty: anonymous).
fn grant(
    subject: &str,
    scopes: &[String],
    key: &p256::ecdsa::SigningKey,
    cert_b64: &str,
) -> String {
    let access: Vec<serde_json::Value> = if subject.is_empty() {
        Vec::new()
    } else {
        scopes
            .iter()
            .filter_map(|scope| {
                let (kind, rest) = scope.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(serde_json::json!({
                    "type": kind,
                    "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [cert_b64]});
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER,
        "sub": subject,
        "aud": TOKEN_SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature: p256::ecdsa::Signature =
        p256::ecdsa::signature::Signer::sign(key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&signature.to_bytes()))
}

/// The password every e2e key pair is encrypted with (given as `SIGNET_PASSWORD`).
pub const KEY_PASSWORD: &str = "e2e-password";

/// Run `signet ARGS` (clean environment, `SIGNET_PASSWORD` set), echo what it printed into the
/// test log, and return its output.
pub fn run(args: &[&str]) -> std::process::Output {
    let out = signet()
        .env("SIGNET_PASSWORD", KEY_PASSWORD)
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "signet {args:?} -> {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The exit code of a finished command (-1 if killed by a signal).
pub fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// A path as `&str` for command arguments.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Generate a key pair named `name` in `dir` with `signet generate-key-pair`; returns
/// (private key file, public key file).
pub fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    let out = run(&["generate-key-pair", "--output-key-prefix", s(&prefix)]);
    assert_eq!(code(&out), 0, "generate-key-pair {name}");
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// Copy the directory tree `from` to `to` (test fixtures are copied before anything writes to them).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A one-file tar archive (deterministic), e.g. a root filesystem to `docker import`.
pub fn tar_of(name: &str, contents: &[u8]) -> Vec<u8> {
    sample_tar(name, contents)
}

/// An in-process gate on a free loopback port in front of an upstream registry, judged by `J`;
/// stopped on drop.
pub struct RunningGate<J: signet_gate::Judge + Clone> {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The judge the gate asks (a clone sharing its state).
    pub judge: J,
    /// The gate itself, for its metrics.
    pub gate: signet_gate::Gate<J>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<J: signet_gate::Judge + Clone + Default> RunningGate<J> {
    /// A gate with the simple configuration in front of `upstream` (`host:port`), running on
    /// `rt`, with a default `J`.
    pub fn start(rt: &tokio::runtime::Runtime, upstream: &str) -> Self {
        Self::start_with(rt, upstream, |_| {})
    }

    /// [`RunningGate::start`] with the simple configuration changed by `adjust`.
    pub fn start_with(
        rt: &tokio::runtime::Runtime,
        upstream: &str,
        adjust: impl FnOnce(&mut signet_gate::GateConfig),
    ) -> Self {
        let mut config = signet_gate::GateConfig::simple(
            "unused-policy.yaml".into(),
            "127.0.0.1:0".parse().unwrap(),
            &format!("http://{upstream}"),
        )
        .unwrap();
        adjust(&mut config);
        let judge = J::default();
        let gate = signet_gate::Gate::new(config, judge.clone()).unwrap();
        let bound = rt.block_on(gate.bind()).unwrap();
        let host = format!("127.0.0.1:{}", bound.local_addr().port());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(bound.run(async move {
            let _ = rx.await;
        }));
        RunningGate {
            url: format!("http://{host}"),
            host,
            judge,
            gate,
            stop: Some(tx),
        }
    }
}

impl<J: signet_gate::Judge + Clone> RunningGate<J> {
    /// `HOST:PORT/<repo_and_tag>` of the proxy, parsed.
    pub fn reference(&self, repo_and_tag: &str) -> Reference {
        format!("{}/{repo_and_tag}", self.host).parse().unwrap()
    }

    /// The value of the metrics sample `name` (the whole sample name, labels included), or ""
    /// when it is absent.
    pub fn metric(&self, name: &str) -> String {
        self.gate
            .metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string))
            .unwrap_or_default()
    }
}

impl<J: signet_gate::Judge + Clone> Drop for RunningGate<J> {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A daemon of a test's own (containerd, dockerd), its files in a temporary directory and its
/// stderr in `NAME.log` there. Stopped with SIGTERM, so that what it started (dockerd's
/// containerd) stops with it; SIGKILL after 20 s.
pub struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Start `program` (from the Debian package `package`) with the arguments `args(dir)`
    /// gives, and wait up to 30 s until `ready(&daemon)`.
    pub fn start(
        program: &str,
        package: &str,
        args: impl FnOnce(&Path) -> Vec<String>,
        ready: impl Fn(&Daemon) -> bool,
    ) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(format!("{program}.log"));
        let child = Command::new(program)
            .args(args(dir.path()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("run {program} (apt-get install -y {package}): {e}"));
        let daemon = Daemon { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(&daemon) {
            assert!(
                Instant::now() < deadline,
                "{program} did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    /// `name` inside the daemon's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Whole seconds now, as a time and as Unix seconds: an injected clock started on a second
/// makes a `notAfter` (seconds) fall exactly where the test advances to.
pub fn whole_second_now() -> (SystemTime, u64) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (UNIX_EPOCH + Duration::from_secs(secs), secs)
}

/// `unix` as RFC 3339 UTC (days to civil date, as in Howard Hinnant's `civil_from_days`).
pub fn rfc3339(unix: u64) -> String {
    let (days, secs) = ((unix / 86_400) as i64, unix % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A containerd of the test's own (root, state and socket in its directory, the CRI plugin off),
/// driven with `ctr`. containerd needs root; see `serve::containerd_pulls_through_the_gate`.
pub struct Containerd(Daemon);

impl Containerd {
    /// Start it and wait until `ctr version` answers.
    pub fn start() -> Containerd {
        let daemon = Daemon::start(
            "containerd",
            "containerd",
            |p| {
                let config = p.join("config.toml");
                std::fs::write(
                    &config,
                    format!(
                        "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                         [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
                        root = p.join("root").display(),
                        state = p.join("state").display(),
                        sock = p.join("c.sock").display(),
                    ),
                )
                .unwrap();
                vec!["--config".into(), s(&config).into()]
            },
            |d| ctr(d, &["version"]).status.success(),
        );
        Containerd(daemon)
    }

    /// `ctr --address SOCKET ARGS`.
    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        ctr(&self.0, args)
    }

    /// Its socket.
    pub fn socket(&self) -> PathBuf {
        self.0.path("c.sock")
    }

    /// A `--hosts-dir` for `registry` holding `hosts_toml`.
    pub fn hosts_dir(&self, name: &str, registry: &str, hosts_toml: &str) -> PathBuf {
        let dir = self.0.path(name);
        std::fs::create_dir_all(dir.join(registry)).unwrap();
        std::fs::write(dir.join(registry).join("hosts.toml"), hosts_toml).unwrap();
        dir
    }
}

fn ctr(daemon: &Daemon, args: &[&str]) -> std::process::Output {
    Command::new("ctr")
        .arg("--address")
        .arg(daemon.path("c.sock"))
        .args(args)
        .output()
        .expect("run ctr (apt-get install -y containerd)")
}

/// A Docker engine of the test's own: Debian's dockerd with its data, run state and socket in its
/// directory, no networking set-up and vfs storage, its containers in containerd namespace
/// `namespace` (and its plugins in `namespace-plugins`).
pub struct DockerEngine(Daemon);

impl DockerEngine {
    /// Start it and wait until `docker version` answers.
    pub fn start(namespace: &str) -> DockerEngine {
        let daemon = Daemon::start(
            "dockerd",
            "docker.io",
            |p| {
                let mut args = vec![
                    format!("--host=unix://{}", p.join("d.sock").display()),
                    format!("--data-root={}", p.join("data").display()),
                    format!("--exec-root={}", p.join("x").display()),
                    format!("--pidfile={}", p.join("dockerd.pid").display()),
                ];
                args.extend(
                    [
                        "--iptables=false",
                        "--ip6tables=false",
                        "--bridge=none",
                        "--storage-driver=vfs",
                    ]
                    .map(String::from),
                );
                args.push(format!("--containerd-namespace={namespace}"));
                args.push(format!(
                    "--containerd-plugins-namespace={namespace}-plugins"
                ));
                args
            },
            |d| docker(d, &["version"]).status.success(),
        );
        DockerEngine(daemon)
    }

    /// `docker ARGS` against this engine (its own client configuration).
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        docker(&self.0, args)
    }

    /// Its socket.
    pub fn socket(&self) -> PathBuf {
        self.0.path("d.sock")
    }
}

fn docker(daemon: &Daemon, args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .env(
            "DOCKER_HOST",
            format!("unix://{}", daemon.path("d.sock").display()),
        )
        .env("DOCKER_CONFIG", daemon.path("client"))
        .args(args)
        .output()
        .expect("run docker (apt-get install -y docker.io)")
}

/// `signet serve` as a child process on a loopback port, killed on drop.
pub struct SignetServe {
    child: Child,
    port: u16,
}

impl Drop for SignetServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SignetServe {
    /// `signet serve ARGS --listen 127.0.0.1:PORT` on a free port, as set up by `edit`, ready.
    pub fn start(args: &[&str], edit: impl FnOnce(&mut Command)) -> SignetServe {
        let port = free_port();
        SignetServe::start_on(
            port,
            &[args, &["--listen", &format!("127.0.0.1:{port}")]].concat(),
            edit,
        )
    }

    /// `signet serve ARGS` listening on `port` (as ARGS say), as set up by `edit`; returns once
    /// `/readyz` answers 2xx (at most 15 s).
    pub fn start_on(port: u16, args: &[&str], edit: impl FnOnce(&mut Command)) -> SignetServe {
        let mut command = signet();
        command
            .arg("serve")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        edit(&mut command);
        let gate = SignetServe {
            child: command.spawn().unwrap(),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !serve_http()
            .get(gate.url("/readyz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                Instant::now() < deadline,
                "signet serve did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        gate
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Stop it with SIGTERM, as a service manager does, and wait (at most 30 s) for its exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "signet serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `POST /v1/verify` for `image`, with `token` as bearer if given: status and JSON answer.
    pub fn verify(&self, image: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = serve_http()
            .post(self.url("/v1/verify"))
            .header("Content-Type", "application/json")
            .body(serde_json::json!({ "image": image }).to_string());
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap())
    }
}

/// A blocking HTTP client for talking to `signet serve` (60 s timeout).
pub fn serve_http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// An AdmissionReview (v1) creating Pod `p` in `default`, with one container `c` running `image`.
pub fn pod_review(uid: &str, image: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "default",
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        }
    })
}
