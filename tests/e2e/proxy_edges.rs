//! The proxy's edges (issue 10, item 5): the blob size probe stays inside
//! `limits.max_blob_streams`; signature artifacts pass through only under a signature tag, only
//! for a subject the gate would admit, only in an inert shape no container engine could run.
//! The gate runs in-process with a judge that allows a set of digests and denies the rest (as a
//! real policy does with unsigned images).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{json, Value};
use signet_gate::{GateError, Judge, Judgement, Mode};
use signet_oci::manifest::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, SIMPLE_SIGNING};
use signet_oci::{Descriptor, Digest, Reference, RegistryClient};

use crate::hostile_server::{Content, HostileServer, Misbehaviour};
use crate::support::{self, code, run, s, TestRegistry};

/// Allows the digests in its set, denies every other; counts what it was asked.
#[derive(Clone, Default)]
struct DigestJudge {
    allowed: Arc<Mutex<HashSet<Digest>>>,
    asked: Arc<Mutex<Vec<Digest>>>,
}

impl Judge for DigestJudge {
    async fn judge(
        &self,
        _reference: Reference,
        digest: Option<Digest>,
    ) -> Result<Judgement, GateError> {
        let digest = digest.ok_or_else(|| GateError::Judge("no digest".into()))?;
        self.asked.lock().unwrap().push(digest.clone());
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

impl DigestJudge {
    fn allow(&self, digest: &Digest) {
        self.allowed.lock().unwrap().insert(digest.clone());
    }

    fn was_asked(&self, digest: &Digest) -> bool {
        self.asked.lock().unwrap().contains(digest)
    }
}

/// A gate on a free loopback port in front of the upstream, judged by [`DigestJudge`].
type RunningGate = support::RunningGate<DigestJudge>;

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn send(method: reqwest::Method, url: &str) -> reqwest::Response {
    http()
        .request(method, url)
        .header("accept", signet_oci::manifest::ACCEPT_MANIFESTS)
        .send()
        .await
        .unwrap()
}

async fn get(url: &str) -> reqwest::Response {
    send(reqwest::Method::GET, url).await
}

/// GET, through `gate`, the manifest under `team/app`'s signature tag for `subject`.
async fn get_signature_of(gate: &RunningGate, subject: &Digest) -> reqwest::Response {
    get(&format!(
        "{}/v2/team/app/manifests/{}",
        gate.url,
        subject.signature_tag()
    ))
    .await
}

async fn error_of(response: reqwest::Response) -> (String, String) {
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    (
        body["errors"][0]["code"].as_str().unwrap_or("").to_string(),
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}

#[test]
fn the_blob_size_probe_waits_for_a_stream_place_and_opens_no_extra_upstream_get() {
    // No manifest is fetched through the gate, so it knows no blob size and must probe.
    let mut content = Content::default();
    let big = support::sample_bytes("proxy-edges/big", 16 << 20);
    let small = support::sample_bytes("proxy-edges/small", 1000);
    let big_digest = content.blob(big);
    let small_digest = content.blob(small.clone());
    let upstream = HostileServer::start(content, Misbehaviour::Honest);
    let rt = support::runtime();
    let gate = RunningGate::start_with(&rt, &upstream.host(), |c| {
        c.limits.max_blob_streams = 1;
        c.timeouts.upstream_seconds = 1;
    });
    let blob_url = |digest: &str| format!("{}/v2/team/app/blobs/{digest}", gate.url);
    rt.block_on(async {
        // One download started and left unread holds the only place.
        let first = get(&blob_url(&big_digest)).await;
        assert_eq!(first.status(), 200);
        assert_eq!(gate.metric("signet_gate_blob_streams"), "1");
        let before = upstream.requests.load(Ordering::SeqCst);

        // Neither a HEAD nor a GET of a blob of unknown size reaches the upstream meanwhile.
        for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
            let r = send(method.clone(), &blob_url(&small_digest)).await;
            assert_eq!(r.status(), 429, "{method}");
            assert_eq!(r.headers()["retry-after"], "1", "{method}");
            if method == reqwest::Method::GET {
                let (code, message) = error_of(r).await;
                assert_eq!(code, "TOOMANYREQUESTS");
                assert!(message.contains("limits.max_blob_streams"), "{message}");
            }
        }
        assert_eq!(
            upstream.requests.load(Ordering::SeqCst),
            before,
            "no upstream request while every stream place is taken"
        );
        assert_eq!(gate.metric("signet_gate_blob_streams_refused_total"), "2");

        // Once the place is free, HEAD sizes the blob and GET serves it.
        drop(first);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while gate.metric("signet_gate_blob_streams") != "0" {
            assert!(std::time::Instant::now() < deadline, "place not given back");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let head = send(reqwest::Method::HEAD, &blob_url(&small_digest)).await;
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["content-length"], "1000");
        let got = get(&blob_url(&small_digest)).await;
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.unwrap().as_ref(), small.as_slice());
    });
}

/// Push `config` and `layers` (media type, bytes) as an OCI image manifest at `repo:tag`;
/// returns its digest and bytes.
async fn push_manifest(
    client: &RegistryClient,
    reg: &TestRegistry,
    repo_and_tag: &str,
    config: (&str, Vec<u8>),
    layers: Vec<(&str, Vec<u8>)>,
) -> (Digest, Vec<u8>) {
    let reference = reg.reference(repo_and_tag);
    client
        .put_blob(&reference, Bytes::from(config.1.clone()))
        .await
        .unwrap();
    let mut descriptors = Vec::new();
    for (media_type, bytes) in &layers {
        client
            .put_blob(&reference, Bytes::from(bytes.clone()))
            .await
            .unwrap();
        descriptors.push(Descriptor::of(media_type, bytes));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": Descriptor::of(config.0, &config.1),
        "layers": descriptors,
    }))
    .unwrap();
    let digest = client
        .put_manifest(&reference, &manifest, OCI_MANIFEST)
        .await
        .unwrap();
    (digest, manifest)
}

/// A cosign simple-signing payload claiming `digest`.
fn payload(digest: &Digest) -> Vec<u8> {
    serde_json::to_vec(&json!({"critical": {"identity": {"docker-reference": "x"}, "image": {"docker-manifest-digest": digest.to_string()}, "type": "cosign container image signature"}, "optional": null})).unwrap()
}

/// The inert config cosign (and Signet) write into a signature manifest.
fn inert_config(layers: &[&[u8]]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| Digest::sha256(l).to_string())
        .collect();
    serde_json::to_vec(&json!({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}})).unwrap()
}

#[test]
fn a_runnable_image_dressed_up_as_a_signature_is_refused() {
    let reg = TestRegistry::start();
    let allowed = support::push_sample_image(&reg, "team/app:v1");
    let rt = support::runtime();
    let gate = RunningGate::start(&rt, &reg.host());
    gate.judge.allow(&allowed);
    rt.block_on(async {
        let client = support::client();
        // An unsigned, runnable image: a real platform, an entrypoint, a tar layer; only the
        // layer's media type says "signature". Pushed under the allowed image's `.sig` tag.
        let (_, blobs) = support::sample_image("team/app:evil");
        let tar = blobs[1].1.clone();
        let runnable_config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": ["/file0.bin"]},
            "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&tar).to_string()]},
        }))
        .unwrap();
        let tag = allowed.signature_tag();
        let (dressed, _) = push_manifest(
            &client,
            &reg,
            &format!("team/app:{tag}"),
            (OCI_CONFIG, runnable_config),
            vec![(SIMPLE_SIGNING, tar.clone())],
        )
        .await;
        let r = get(&format!("{}/v2/team/app/manifests/{tag}", gate.url)).await;
        assert_eq!(r.status(), 403, "a runnable image is not a signature");
        let (code, message) = error_of(r).await;
        assert_eq!(code, "DENIED");
        assert!(message.contains("not trusted"), "{message}");
        // It was judged as the image it is (and, unsigned, denied).
        assert!(gate.judge.was_asked(&dressed));
        // Nor does it pass by digest.
        let r = get(&format!("{}/v2/team/app/manifests/{dressed}", gate.url)).await;
        assert_eq!(r.status(), 403);

        // Image layer media types are never a signature artifact, whatever the config says.
        let (dressed, _) = push_manifest(
            &client,
            &reg,
            &format!("team/app:{tag}"),
            (OCI_CONFIG, inert_config(&[&tar])),
            vec![("application/vnd.oci.image.layer.v1.tar", tar.clone())],
        )
        .await;
        let r = get(&format!("{}/v2/team/app/manifests/{tag}", gate.url)).await;
        assert_eq!(r.status(), 403);
        assert!(gate.judge.was_asked(&dressed));

        // An inert signature artifact for the allowed image passes.
        let p = payload(&allowed);
        let (sig, sig_bytes) = push_manifest(
            &client,
            &reg,
            &format!("team/app:{tag}"),
            (OCI_CONFIG, inert_config(&[&p])),
            vec![(SIMPLE_SIGNING, p.clone())],
        )
        .await;
        let r = get(&format!("{}/v2/team/app/manifests/{tag}", gate.url)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), sig_bytes.as_slice());
        assert!(!gate.judge.was_asked(&sig), "a signature is not judged");
        assert_eq!(gate.metric("signet_gate_passthrough_total"), "1");
    });
}

#[test]
fn signature_artifacts_pass_only_for_subjects_the_gate_admits() {
    let reg = TestRegistry::start();
    let allowed = support::push_sample_image(&reg, "team/app:v1");
    let denied = support::push_sample_image(&reg, "team/app:v2");
    let rt = support::runtime();
    let gate = RunningGate::start(&rt, &reg.host());
    gate.judge.allow(&allowed);
    rt.block_on(async {
        let client = support::client();
        for subject in [&allowed, &denied] {
            let p = payload(subject);
            push_manifest(
                &client,
                &reg,
                &format!("team/app:{}", subject.signature_tag()),
                (OCI_CONFIG, inert_config(&[&p])),
                vec![(SIMPLE_SIGNING, p.clone())],
            )
            .await;
        }
        let r = get_signature_of(&gate, &allowed).await;
        assert_eq!(r.status(), 200);
        let r = get_signature_of(&gate, &denied).await;
        assert_eq!(r.status(), 403, "signatures of a denied image are not served");
        let (code, message) = error_of(r).await;
        assert_eq!(code, "DENIED");
        assert!(
            message.contains(&denied.to_string()) && message.contains("no valid signature"),
            "{message}"
        );

        // Attestations (`.att`, DSSE) of the allowed image pass; the same under a tag that is
        // not a signature tag is judged as an image (and denied).
        let envelope = r#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}"#;
        let att_tag = allowed.signature_tag().replace(".sig", ".att");
        let (att, _) = push_manifest(
            &client,
            &reg,
            &format!("team/app:{att_tag}"),
            (OCI_CONFIG, inert_config(&[envelope.as_bytes()])),
            vec![("application/vnd.dsse.envelope.v1+json", envelope.as_bytes().to_vec())],
        )
        .await;
        let r = get(&format!("{}/v2/team/app/manifests/{att_tag}", gate.url)).await;
        assert_eq!(r.status(), 200);
        let other = envelope.replace("e30=", "e319");
        push_manifest(
            &client,
            &reg,
            "team/app:attestation",
            (OCI_CONFIG, inert_config(&[other.as_bytes()])),
            vec![("application/vnd.dsse.envelope.v1+json", other.into_bytes())],
        )
        .await;
        let r = get(&format!("{}/v2/team/app/manifests/attestation", gate.url)).await;
        assert_eq!(r.status(), 403);

        // The referrers tag schema: an index of artifacts at `sha256-<hex>`; its artifacts pass
        // by digest (the subject still judged), and only those.
        let empty = b"{}".to_vec();
        let bundle = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#.to_vec();
        let (referrer, _) = push_manifest(
            &client,
            &reg,
            "team/app:referrer",
            ("application/vnd.oci.empty.v1+json", empty.clone()),
            vec![("application/vnd.dev.sigstore.bundle.v0.3+json", bundle)],
        )
        .await;
        let referrers_tag = allowed.signature_tag().trim_end_matches(".sig").to_string();
        let referrer_size = client
            .get_manifest(&reg.reference(&format!("team/app@{referrer}")))
            .await
            .unwrap()
            .bytes
            .len();
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": referrer.to_string(), "size": referrer_size,
                           "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}],
        }))
        .unwrap();
        client
            .put_manifest(
                &reg.reference(&format!("team/app:{referrers_tag}")),
                &index,
                OCI_INDEX,
            )
            .await
            .unwrap();
        let r = get(&format!("{}/v2/team/app/manifests/{referrers_tag}", gate.url)).await;
        assert_eq!(r.status(), 200);
        let r = get(&format!("{}/v2/team/app/manifests/{referrer}", gate.url)).await;
        assert_eq!(r.status(), 200, "an artifact the referrers index named");
        let r = get(&format!("{}/v2/team/app/manifests/{att}", gate.url)).await;
        assert_eq!(r.status(), 200, "an artifact served under its `.att` tag");
        assert!(!gate.judge.was_asked(&referrer) && !gate.judge.was_asked(&att));
    });
}

#[test]
fn a_signet_signature_passes_for_an_allowed_image_and_not_for_a_denied_one() {
    let reg = TestRegistry::start();
    let allowed = support::push_sample_image(&reg, "team/app:v1");
    let denied = support::push_sample_image(&reg, "team/app:v2");
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = support::keypair(dir.path(), "release");
    for tag in ["v1", "v2"] {
        let image = format!("{}/team/app:{tag}", reg.host());
        assert_eq!(code(&run(&["sign", "--key", s(&key), &image])), 0);
    }
    let rt = support::runtime();
    let gate = RunningGate::start(&rt, &reg.host());
    gate.judge.allow(&allowed);
    rt.block_on(async {
        let client = support::client();
        let upstream = client
            .get_manifest(&reg.reference(&format!("team/app:{}", allowed.signature_tag())))
            .await
            .unwrap();
        let r = get_signature_of(&gate, &allowed).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap(), upstream.bytes);
        // Its payload and config blobs come through too.
        let through: Reference = format!(
            "{}/team/app:{}",
            gate.url.trim_start_matches("http://"),
            allowed.signature_tag()
        )
        .parse()
        .unwrap();
        let signet_oci::Manifest::Image(m) = &upstream.manifest else {
            panic!("not an image manifest")
        };
        for d in std::iter::once(&m.config).chain(&m.layers) {
            client.get_blob_bytes(&through, d, 1 << 20).await.unwrap();
        }
        let r = get_signature_of(&gate, &denied).await;
        assert_eq!(r.status(), 403);
    });
}
