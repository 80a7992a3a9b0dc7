//! A hand-written, deliberately hostile registry for `hostile.rs`: std `TcpListener` and one thread
//! per connection on 127.0.0.1, speaking just enough of the distribution API (`/v2/`, manifests by
//! tag and digest, blobs, uploads that are accepted and thrown away) and misbehaving in one way per
//! [`Misbehaviour`]. A real registry cannot be made to lie, stall or reset, hence this server.
//!
//! Endless and huge bodies are generated as they are written (never held in memory); every writer
//! stops when the client goes away, and the accept loop stops when the server is dropped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

/// One way of misbehaving; applied to every answer of the kind it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Serve the content faithfully.
    Honest,
    /// Manifests fetched by digest come back as other (valid) manifest bytes.
    WrongBytesForDigest,
    /// Manifests carry a `Docker-Content-Digest` header naming other bytes.
    LyingDigestHeader,
    /// Manifests and blobs declare half their length in `Content-Length`, then the whole body
    /// follows and junk after it without end.
    BodyLongerThanLength,
    /// Manifests and blobs have no `Content-Length` and a body without end (connection-delimited).
    EndlessBody,
    /// Manifest answers (status line, headers and body) trickle out one byte per second.
    SlowManifest,
    /// Blob bodies trickle out one byte per second (headers and manifests at full speed).
    SlowBlob,
    /// Every request under `/v2/<repo>/` is redirected to a URL that redirects back.
    RedirectLoop,
    /// Blob answers stop after half the body and the connection is dropped.
    ResetMidBlob,
    /// Every request under `/v2/<repo>/` answers 500.
    ServerError,
    /// `HEAD` of a manifest answers for the stored one, `GET` serves the manifest stored under
    /// `GET <key>` instead (a registry telling one client one thing and another another).
    HeadDiffersFromGet,
}

/// What the server holds: manifests by tag and by digest, and blobs by digest. A blob may be
/// virtual: `size` zero bytes generated while they are sent.
#[derive(Clone, Default)]
pub struct Content {
    /// Manifest bytes and media type by tag or digest (`sha256:…`).
    pub manifests: HashMap<String, (Vec<u8>, String)>,
    /// Blob bytes by digest.
    pub blobs: HashMap<String, Vec<u8>>,
    /// Blobs made of this many zero bytes, by (declared) digest.
    pub zero_blobs: HashMap<String, u64>,
    /// For [`Misbehaviour::WrongBytesForDigest`] and lookups of digests the content does not hold:
    /// answer requests for the first digest with the manifest stored under the second key.
    pub aliases: HashMap<String, String>,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Content {
    /// Store a blob; returns its digest.
    pub fn blob(&mut self, bytes: Vec<u8>) -> String {
        let digest = sha256(&bytes);
        self.blobs.insert(digest.clone(), bytes);
        digest
    }

    /// Store a manifest under its digest (and `tag`, if given); returns its digest.
    pub fn manifest(&mut self, tag: Option<&str>, bytes: Vec<u8>, media_type: &str) -> String {
        let digest = sha256(&bytes);
        self.manifests
            .insert(digest.clone(), (bytes.clone(), media_type.to_string()));
        if let Some(tag) = tag {
            self.manifests
                .insert(tag.to_string(), (bytes, media_type.to_string()));
        }
        digest
    }
}

/// A running hostile registry; stops accepting when dropped.
pub struct HostileServer {
    port: u16,
    stop: Arc<AtomicBool>,
    /// Requests seen (all connections).
    pub requests: Arc<AtomicUsize>,
}

struct Shared {
    content: Content,
    mode: Misbehaviour,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

impl HostileServer {
    /// Serve `content`, misbehaving as `mode` says.
    pub fn start(content: Content, mode: Misbehaviour) -> HostileServer {
        Self::start_with(mode, |_| (content, ())).0
    }

    /// Bind a port, then serve the content `make` builds for the server's `host` (content that
    /// names its own registry, like signed payloads, needs it), misbehaving as `mode` says.
    /// Returns the server and what else `make` returned.
    pub fn start_with<T>(
        mode: Misbehaviour,
        make: impl FnOnce(&str) -> (Content, T),
    ) -> (HostileServer, T) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let (content, extra) = make(&format!("127.0.0.1:{port}"));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            content,
            mode,
            stop: stop.clone(),
            requests: requests.clone(),
        });
        thread::spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let shared = shared.clone();
                        thread::spawn(move || {
                            let _ = serve_connection(stream, &shared);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        (
            HostileServer {
                port,
                stop,
                requests,
            },
            extra,
        )
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Request {
    method: String,
    path: String,
}

/// Read one request head (and drop its body); `None` when the client closed the connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut length: u64 = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Ok(None);
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink())?;
    Ok(Some(Request { method, path }))
}

/// The answer being written: for a HEAD request everything after the header block is dropped
/// (an answer to HEAD has no body, and a stray one would corrupt the next answer).
struct Out {
    stream: TcpStream,
    head_only: bool,
    /// The last bytes written, to find the end of the header block.
    tail: [u8; 4],
    headers_done: bool,
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.headers_done {
            return if self.head_only {
                Ok(buf.len())
            } else {
                self.stream.write(buf)
            };
        }
        // Headers go out byte by byte until the blank line, so the split is exact.
        let n = self.stream.write(&buf[..1])?;
        self.tail = [self.tail[1], self.tail[2], self.tail[3], buf[0]];
        self.headers_done = &self.tail == b"\r\n\r\n";
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    while let Some(request) = read_request(&mut reader)? {
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let mut out = Out {
            stream: stream.try_clone()?,
            head_only: request.method == "HEAD",
            tail: [0; 4],
            headers_done: false,
        };
        if !answer(&mut out, &request, shared)? {
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    Ok(())
}

/// A body: bytes in memory, or `len` zero bytes made on the fly.
enum Body<'a> {
    Bytes(&'a [u8]),
    Zeros(u64),
}

impl Body<'_> {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::Zeros(n) => *n,
        }
    }
}

fn head(status: &str, headers: &[(&str, String)]) -> String {
    let mut text = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text
}

fn simple(
    out: &mut Out,
    status: &str,
    extra: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<bool> {
    let mut headers = extra.to_vec();
    headers.push(("Content-Length", body.len().to_string()));
    headers.push(("Content-Type", "application/json".into()));
    out.write_all(head(status, &headers).as_bytes())?;
    out.write_all(body)?;
    Ok(true)
}

fn not_found(out: &mut Out) -> std::io::Result<bool> {
    simple(
        out,
        "404 Not Found",
        &[],
        br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#,
    )
}

/// Write `body` in pieces, stopping early (`Ok(false)`) if the client went away.
fn write_body(out: &mut Out, body: &Body<'_>, limit: Option<u64>) -> std::io::Result<()> {
    let total = limit.unwrap_or(body.len()).min(body.len());
    match body {
        Body::Bytes(b) => out.write_all(&b[..total as usize]),
        Body::Zeros(_) => {
            let chunk = vec![0u8; 64 * 1024];
            let mut left = total;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                out.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            Ok(())
        }
    }
}

fn endless(out: &mut Out, filler: u8) -> std::io::Result<()> {
    let chunk = vec![filler; 64 * 1024];
    loop {
        out.write_all(&chunk)?;
    }
}

fn drip(out: &mut Out, bytes: &[u8]) -> std::io::Result<()> {
    for b in bytes {
        out.write_all(&[*b])?;
        out.flush()?;
        thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

/// Answer one request; `Ok(false)` closes the connection.
fn answer(out: &mut Out, request: &Request, shared: &Shared) -> std::io::Result<bool> {
    let mode = shared.mode;
    let path = request.path.split('?').next().unwrap_or("");
    if path == "/v2/" || path == "/v2" {
        return simple(out, "200 OK", &[], b"{}");
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return not_found(out);
    };
    if mode == Misbehaviour::ServerError {
        return simple(
            out,
            "500 Internal Server Error",
            &[],
            br#"{"errors":[{"code":"UNKNOWN","message":"hostile: always 500"}]}"#,
        );
    }
    if mode == Misbehaviour::RedirectLoop && (request.method == "GET" || request.method == "HEAD") {
        // Alternate between two URLs so a client that only detects self-redirects still loops.
        let next = if request.path.ends_with("?loop=1") {
            format!("{path}?loop=2")
        } else {
            format!("{path}?loop=1")
        };
        return simple(out, "307 Temporary Redirect", &[("Location", next)], b"");
    }
    // Uploads are accepted and thrown away: the paths that write must get past them.
    if let Some(idx) = rest.find("/blobs/uploads/") {
        let repo = &rest[..idx];
        let location = format!("/v2/{repo}/blobs/uploads/hostile-upload");
        return match request.method.as_str() {
            "POST" | "PATCH" => simple(
                out,
                "202 Accepted",
                &[("Location", location), ("Range", "0-0".into())],
                b"",
            ),
            "PUT" => simple(out, "201 Created", &[], b""),
            _ => simple(out, "204 No Content", &[], b""),
        };
    }
    if let Some(idx) = rest.rfind("/manifests/") {
        let key = &rest[idx + "/manifests/".len()..];
        return match request.method.as_str() {
            "PUT" => simple(out, "201 Created", &[], b""),
            "DELETE" => simple(out, "202 Accepted", &[], b""),
            method => manifest(out, method == "HEAD", key, shared),
        };
    }
    if let Some(idx) = rest.rfind("/blobs/") {
        let key = &rest[idx + "/blobs/".len()..];
        return blob(out, request.method == "HEAD", key, shared);
    }
    not_found(out)
}

fn manifest(out: &mut Out, is_head: bool, key: &str, shared: &Shared) -> std::io::Result<bool> {
    let mode = shared.mode;
    let content = &shared.content;
    let lookup = match content.aliases.get(key) {
        Some(target)
            if mode == Misbehaviour::WrongBytesForDigest
                || !content.manifests.contains_key(key) =>
        {
            target.as_str()
        }
        _ => key,
    };
    let get_key = format!("GET {lookup}");
    let lookup = match content.manifests.contains_key(&get_key) {
        true if mode == Misbehaviour::HeadDiffersFromGet && !is_head => get_key.as_str(),
        _ => lookup,
    };
    let Some((bytes, media_type)) = content.manifests.get(lookup) else {
        return not_found(out);
    };
    let true_digest = sha256(bytes);
    let header_digest = if mode == Misbehaviour::LyingDigestHeader {
        sha256(b"not these bytes")
    } else {
        true_digest
    };
    let mut headers = vec![
        ("Content-Type", media_type.clone()),
        ("Docker-Content-Digest", header_digest),
    ];
    match mode {
        Misbehaviour::BodyLongerThanLength => {
            headers.push(("Content-Length", (bytes.len() / 2).to_string()));
            out.write_all(head("200 OK", &headers).as_bytes())?;
            if !is_head {
                out.write_all(bytes)?;
                endless(out, b'x')?;
            }
            Ok(false)
        }
        Misbehaviour::EndlessBody => {
            headers.push(("Connection", "close".into()));
            out.write_all(head("200 OK", &headers).as_bytes())?;
            if !is_head {
                out.write_all(bytes)?;
                endless(out, b' ')?;
            }
            Ok(false)
        }
        Misbehaviour::SlowManifest => {
            headers.push(("Content-Length", bytes.len().to_string()));
            let mut all = head("200 OK", &headers).into_bytes();
            if !is_head {
                all.extend_from_slice(bytes);
            }
            drip(out, &all)?;
            Ok(true)
        }
        _ => {
            headers.push(("Content-Length", bytes.len().to_string()));
            out.write_all(head("200 OK", &headers).as_bytes())?;
            if !is_head {
                out.write_all(bytes)?;
            }
            Ok(true)
        }
    }
}

fn blob(out: &mut Out, is_head: bool, key: &str, shared: &Shared) -> std::io::Result<bool> {
    let content = &shared.content;
    let body = match (content.blobs.get(key), content.zero_blobs.get(key)) {
        (Some(bytes), _) => Body::Bytes(bytes),
        (None, Some(len)) => Body::Zeros(*len),
        (None, None) => {
            return simple(
                out,
                "404 Not Found",
                &[],
                br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}"#,
            )
        }
    };
    let mut headers = vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Docker-Content-Digest", key.to_string()),
    ];
    match shared.mode {
        Misbehaviour::BodyLongerThanLength => {
            headers.push(("Content-Length", (body.len() / 2).to_string()));
            out.write_all(head("200 OK", &headers).as_bytes())?;
            if !is_head {
                write_body(out, &body, None)?;
                endless(out, b'x')?;
            }
            Ok(false)
        }
        Misbehaviour::EndlessBody => {
            headers.push(("Connection", "close".into()));
            out.write_all(head("200 OK", &headers).as_bytes())?;
            if !is_head {
                write_body(out, &body, None)?;
                endless(out, 0)?;
            }
            Ok(false)
        }
        Misbehaviour::SlowBlob => {
            headers.push(("Content-Length", body.len().to_string()));
            out.write_all(head("200 OK", &headers).as_bytes())?;
            if !is_head {
                match body {
                    Body::Bytes(b) => drip(out, b)?,
                    Body::Zeros(n) => drip(out, &vec![0; n.min(1 << 20) as usize])?,
                }
            }
            Ok(true)
        }
        Misbehaviour::ResetMidBlob => {
            headers.push(("Content-Length", body.len().to_string()));
            out.write_all(head("200 OK", &headers).as_bytes())?;
            if !is_head {
                write_body(out, &body, Some(body.len() / 2))?;
                out.flush()?;
                return Ok(false);
            }
            Ok(true)
        }
        _ => {
            headers.push(("Content-Length", body.len().to_string()));
            out.write_all(head("200 OK", &headers).as_bytes())?;
            if !is_head {
                write_body(out, &body, None)?;
            }
            Ok(true)
        }
    }
}
