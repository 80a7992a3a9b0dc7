//! The proxy serves the OCI 1.1 referrers API (issue 12, item 4) in front of Debian's
//! `docker-registry`, which lacks it: built from the `sha256-<hex>` tag index Signet writes,
//! only for subjects the gate admits, only inert artifacts naming the subject, filtered by
//! `artifactType`. Then Signet's own referrers-API client (`signet verify`, `verify-attestation`,
//! `ImageStore::referrers`) reaches the bundles through the gate by the API — a recording
//! forwarder in front of the gate shows no tag-schema request from the client. In front of an
//! upstream with the API ([`crate::referrers::RefServer`]) the gate asks the API, every page.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{json, Value};
use signet_gate::{GateError, Judge, Judgement, Mode};
use signet_oci::manifest::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use signet_oci::referrers::ReferrersSource;
use signet_oci::{Descriptor, Digest, ImageStore, Reference};

use crate::support::{self, code, keypair, run, s, TestRegistry};

const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const NOTE: &str = "application/vnd.example.note.v1";

/// Allows the digests in its set, denies every other (as a policy does with unsigned images).
#[derive(Clone, Default)]
struct DigestJudge {
    allowed: Arc<Mutex<HashSet<Digest>>>,
}

impl Judge for DigestJudge {
    async fn judge(
        &self,
        _reference: Reference,
        digest: Option<Digest>,
    ) -> Result<Judgement, GateError> {
        let digest = digest.ok_or_else(|| GateError::Judge("no digest".into()))?;
        let allowed = self.allowed.lock().unwrap().contains(&digest);
        Ok(Judgement {
            digest,
            allowed,
            mode: Mode::Enforce,
            message: if allowed {
                "signed"
            } else {
                "no valid signature"
            }
            .into(),
            report: Arc::new(Value::Null),
            cacheable: true,
            valid_until: None,
        })
    }

    fn policy_hash(&self) -> String {
        "digest-judge".into()
    }
}

/// A TCP forwarder to `target` that records the request line of every `GET`/`HEAD` it passes.
struct Recorder {
    host: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start(target: String) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_in, mut c_out) = (server, client);
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 << 10];
                    let mut pending = Vec::new();
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 || s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        // Requests without bodies (GET, HEAD): their lines are all there is.
                        pending.extend_from_slice(&buf[..n]);
                        while let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
                            let line = String::from_utf8_lossy(&pending[..end]).to_string();
                            pending.drain(..end + 2);
                            if line.starts_with("GET ") || line.starts_with("HEAD ") {
                                seen.lock().unwrap().push(line);
                            }
                        }
                    }
                    let _ = s_out.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_in, &mut c_out);
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Recorder { host, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

async fn get(url: &str) -> (u16, Option<String>, Option<String>, Value) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .header("accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (ctype, filters) = (header("content-type"), header("oci-filters-applied"));
    let status = response.status().as_u16();
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, ctype, filters, body)
}

fn types(index: &Value) -> Vec<String> {
    let mut found: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap_or("").to_string())
        .collect();
    found.sort();
    found
}

/// Push a referrer of `subject` (through the tag schema, as the registry lacks the API):
/// one layer of `layer_type`, config `config` of `config_type`.
async fn push_referrer(
    store: &ImageStore,
    reference: &Reference,
    subject: &Digest,
    artifact: &str,
    (config_type, config): (&str, &[u8]),
    (layer_type, layer): (&str, &[u8]),
) -> Descriptor {
    let client = support::client();
    client
        .put_blob(reference, Bytes::copy_from_slice(config))
        .await
        .unwrap();
    client
        .put_blob(reference, Bytes::copy_from_slice(layer))
        .await
        .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact,
        "config": Descriptor::of(config_type, config),
        "layers": [Descriptor::of(layer_type, layer)],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": 1},
    }))
    .unwrap();
    store
        .push_referrer(subject, &manifest, OCI_MANIFEST)
        .await
        .unwrap()
}

#[test]
fn the_gate_serves_the_referrers_api_for_admitted_subjects_only() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let signed = support::push_sample_image(&reg, "team/app:v1");
    let unsigned = support::push_sample_image(&reg, "team/app:v2");
    let image = format!("{}/team/app@{signed}", reg.host());

    let out = run(&["sign", "--key", s(&key), "--format", "bundle", &image]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let predicate = dir.path().join("scan.json");
    std::fs::write(&predicate, br#"{"scanner":{"uri":"pkg:github/aquasecurity/trivy","version":"0.50.0","result":{"Results":[]}},"metadata":{"scanStartedOn":"2026-01-01T00:00:00Z","scanFinishedOn":"2026-01-01T00:01:00Z"}}"#).unwrap();
    let out = run(&[
        "attest",
        "--key",
        s(&key),
        "--predicate",
        s(&predicate),
        "--type",
        "vuln",
        "--format",
        "bundle",
        &image,
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));

    let rt = support::runtime();
    let upstream_ref = reg.reference(&format!("team/app@{signed}"));
    let upstream = ImageStore::Registry {
        client: support::client(),
        reference: upstream_ref.clone(),
    };
    // The registry lacks the API: Signet wrote the tag schema.
    let direct = rt.block_on(upstream.referrers(&signed, None)).unwrap();
    assert_eq!(direct.source, ReferrersSource::TagSchema);
    assert_eq!(direct.descriptors.len(), 2);
    // Two more referrers: an inert note (listed), and a runnable image naming the subject
    // (never listed: the proxy would not pass it through as an artifact).
    let note = rt.block_on(push_referrer(
        &upstream,
        &upstream_ref,
        &signed,
        NOTE,
        ("application/vnd.oci.empty.v1+json", b"{}"),
        ("application/vnd.in-toto+json", br#"{"note":"reviewed"}"#),
    ));
    let runnable = rt.block_on(push_referrer(
        &upstream,
        &upstream_ref,
        &signed,
        "application/vnd.example.sneaky",
        (
            OCI_CONFIG,
            br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/sh"]}}"#,
        ),
        (
            "application/vnd.oci.image.layer.v1.tar",
            &support::tar_of("x", b"x"),
        ),
    ));
    assert_eq!(
        rt.block_on(upstream.referrers(&signed, None))
            .unwrap()
            .descriptors
            .len(),
        4
    );

    let gate = support::RunningGate::<DigestJudge>::start(&rt, &reg.host());
    gate.judge.allowed.lock().unwrap().insert(signed.clone());
    let url = |digest: &Digest, query: &str| {
        format!("{}/v2/team/app/referrers/{digest}{query}", gate.url)
    };

    // All inert referrers, as an OCI index; the runnable one is left out.
    let (status, ctype, filters, index) = rt.block_on(get(&url(&signed, "")));
    assert_eq!(status, 200, "{index}");
    assert_eq!(ctype.as_deref(), Some(OCI_INDEX));
    assert_eq!(filters, None);
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(types(&index), [BUNDLE, BUNDLE, NOTE]);
    let listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&note.digest.to_string().as_str()));
    assert!(!listed.contains(&runnable.digest.to_string().as_str()));
    let predicates: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["annotations"]["dev.sigstore.bundle.predicateType"].as_str())
        .collect();
    assert!(predicates.contains(&"https://cosign.sigstore.dev/attestation/vuln/v1"));

    // The artifactType filter, acknowledged.
    let query = format!("?artifactType={}", BUNDLE.replace('+', "%2B"));
    let (status, _, filters, index) = rt.block_on(get(&url(&signed, &query)));
    assert_eq!(status, 200);
    assert_eq!(filters.as_deref(), Some("artifactType"));
    assert_eq!(types(&index), [BUNDLE, BUNDLE]);
    let (_, _, filters, index) = rt.block_on(get(&url(&signed, &format!("?artifactType={NOTE}"))));
    assert_eq!(filters.as_deref(), Some("artifactType"));
    assert_eq!(types(&index), [NOTE]);

    // A subject the gate denies: 403 with the reason, nothing listed.
    let (status, _, _, body) = rt.block_on(get(&url(&unsigned, "")));
    assert_eq!(status, 403);
    assert_eq!(body["errors"][0]["code"], "DENIED");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("not trusted: no valid signature"),
        "{message}"
    );
    // A digest the upstream does not have: no referrers.
    let unknown: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
    let (status, ctype, _, index) = rt.block_on(get(&url(&unknown, "")));
    assert_eq!(status, 200);
    assert_eq!(ctype.as_deref(), Some(OCI_INDEX));
    assert_eq!(index["manifests"], json!([]));
    // Not a digest at all.
    let (status, _, _, body) = rt.block_on(get(&format!(
        "{}/v2/team/app/referrers/sha256:zz",
        gate.url
    )));
    assert_eq!(
        (status, &body["errors"][0]["code"]),
        (400, &json!("DIGEST_INVALID"))
    );

    // Signet's own client through the gate: the library reads the API, and the listed
    // referrers are then served by digest; the runnable one is not (it is judged as an image).
    let through = ImageStore::Registry {
        client: support::client(),
        reference: gate.reference(&format!("team/app@{signed}")),
    };
    let found = rt.block_on(through.referrers(&signed, None)).unwrap();
    assert_eq!(found.source, ReferrersSource::Api);
    assert_eq!(found.descriptors.len(), 3);
    for descriptor in &found.descriptors {
        rt.block_on(through.manifest(descriptor)).unwrap();
    }
    let err = rt.block_on(through.manifest(&runnable)).unwrap_err();
    assert!(err.to_string().contains("no valid signature"), "{err}");

    // The CLI's verification through the gate, behind a recorder: the bundle attestation is
    // found by the referrers API, never by the `sha256-<hex>` tag. (`verify --key` reads
    // legacy `.sig` layers only; `verify-attestation --key` reads bundle referrers.)
    let recorder = Recorder::start(gate.host.clone());
    let via = format!("{}/team/app@{signed}", recorder.host);
    let out = run(&[
        "verify-attestation",
        "--key",
        s(&public),
        "--type",
        "vuln",
        &via,
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("https://cosign.sigstore.dev/attestation/vuln/v1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines = recorder.lines();
    let api = format!("/v2/team/app/referrers/{signed}");
    assert!(lines.iter().any(|l| l.contains(&api)), "{lines:?}");
    // The tag schema's tag exactly (cosign's `.att` tag may be read: it is not a referrer).
    let tag = format!("/manifests/{} ", signed.tag_form());
    assert!(!lines.iter().any(|l| l.contains(&tag)), "{lines:?}");
}

/// With an upstream that has the referrers API, the gate asks it (every page) and never reads
/// the tag schema; what it lists is still only the inert artifacts naming the subject.
#[test]
fn the_gate_uses_the_upstreams_referrers_api_when_it_has_one() {
    use crate::referrers::{Api, RefServer};

    let server = RefServer::start(Api::Pages(2));
    let image = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": Descriptor::of(OCI_CONFIG, br#"{"os":"linux"}"#),
        "layers": [Descriptor::of("application/vnd.oci.image.layer.v1.tar", b"rootfs")],
    }))
    .unwrap();
    let subject: Digest = server
        .manifest(Some("v1"), &image, OCI_MANIFEST)
        .parse()
        .unwrap();
    let store = ImageStore::Registry {
        client: support::client(),
        reference: format!("{}/app@{subject}", server.host()).parse().unwrap(),
    };
    let rt = support::runtime();
    let referrer = |artifact: &str, layer_type: &str, seed: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact,
            "config": Descriptor::of("application/vnd.oci.empty.v1+json", b"{}"),
            "layers": [Descriptor::of(layer_type, seed.as_bytes())],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": image.len()},
        }))
        .unwrap()
    };
    for (artifact, layer_type, seed) in [
        (BUNDLE, BUNDLE, "one"),
        (BUNDLE, BUNDLE, "two"),
        (NOTE, "application/vnd.in-toto+json", "three"),
        (NOTE, "application/vnd.oci.image.layer.v1.tar", "runnable"),
    ] {
        rt.block_on(store.push_referrer(
            &subject,
            &referrer(artifact, layer_type, seed),
            OCI_MANIFEST,
        ))
        .unwrap();
    }
    assert!(
        !server.has_tag(&subject.tag_form()),
        "the API acknowledged them"
    );

    let gate = support::RunningGate::<DigestJudge>::start(&rt, &server.host());
    gate.judge.allowed.lock().unwrap().insert(subject.clone());
    server.reset_requests();
    let url = format!("{}/v2/app/referrers/{subject}", gate.url);
    let (status, ctype, _, index) = rt.block_on(get(&url));
    assert_eq!(status, 200, "{index}");
    assert_eq!(ctype.as_deref(), Some(OCI_INDEX));
    assert_eq!(types(&index), [BUNDLE, BUNDLE, NOTE]);
    let requests = server.requests();
    let pages = requests
        .iter()
        .filter(|r| r.contains("/referrers/"))
        .count();
    assert_eq!(pages, 2, "four referrers in pages of two: {requests:?}");
    assert!(
        !requests.iter().any(|r| r.contains(&subject.tag_form())),
        "{requests:?}"
    );
    let (_, _, filters, index) = rt.block_on(get(&format!("{url}?artifactType={NOTE}")));
    assert_eq!(filters.as_deref(), Some("artifactType"));
    assert_eq!(types(&index), [NOTE]);
}
