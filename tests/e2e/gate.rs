//! The gate (`signet_gate`) in front of a real `docker-registry`, with an in-test judge
//! that allows repositories under `allowed/`, admits `warn/` with a warning and denies the rest:
//! byte-identical pulls of allowed images, 403 for denied ones, signature tags passing through,
//! pushes refused, an unreachable upstream denied, a corrupted blob cut off, tags pinned by the
//! mutating webhook, platform manifests covered by their index's verdict, blob streams bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};
use signet_gate::{Gate, GateConfig, GateError, Judge, Judgement, Mode};
use signet_oci::manifest::{OCI_INDEX, OCI_MANIFEST, SIMPLE_SIGNING};
use signet_oci::{Descriptor, Digest, Reference, RegistryClient};

use crate::support::{self, TestRegistry};

/// Allows `allowed/…`, admits `warn/…` in warn mode, denies everything else; remembers what it
/// was asked.
#[derive(Clone, Default)]
struct TestJudge {
    asked: Arc<Mutex<Vec<Asked>>>,
}

/// One question put to the judge: the reference as text and the digest.
type Asked = (String, Option<Digest>);

impl Judge for TestJudge {
    async fn judge(
        &self,
        reference: Reference,
        digest: Option<Digest>,
    ) -> Result<Judgement, GateError> {
        self.asked
            .lock()
            .unwrap()
            .push((reference.to_string(), digest.clone()));
        let digest = digest.ok_or_else(|| GateError::Judge("no digest".into()))?;
        let repo = reference.repository();
        Ok(Judgement {
            digest,
            allowed: repo.starts_with("allowed/"),
            mode: if repo.starts_with("warn/") {
                Mode::Warn
            } else {
                Mode::Enforce
            },
            message: if repo.starts_with("allowed/") {
                "signed by the test key".into()
            } else {
                "no valid signature".into()
            },
            report: std::sync::Arc::new(json!({"repository": repo})),
            cacheable: true,
            valid_until: None,
        })
    }

    fn policy_hash(&self) -> String {
        "test-policy".into()
    }
}

impl TestJudge {
    fn calls(&self) -> usize {
        self.asked.lock().unwrap().len()
    }
}

/// A gate on a free loopback port in front of the upstream, judged by [`TestJudge`].
type RunningGate = support::RunningGate<TestJudge>;

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn get(url: &str) -> reqwest::Response {
    http()
        .get(url)
        .header("accept", signet_oci::manifest::ACCEPT_MANIFESTS)
        .send()
        .await
        .unwrap()
}

async fn json_of(response: reqwest::Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn allowed_images_pull_byte_identical_denied_ones_get_403() {
    let reg = TestRegistry::start();
    let allowed = support::push_sample_image(&reg, "allowed/app:v1");
    let denied = support::push_sample_image(&reg, "denied/app:v1");
    let (manifest, blobs) = support::sample_image("allowed/app:v1");
    let rt = support::runtime();
    let gate = RunningGate::start(&rt, &reg.host());
    rt.block_on(async {
        let url = &gate.url;
        let v2 = get(&format!("{url}/v2/")).await;
        assert_eq!(v2.status(), 200);
        assert_eq!(
            v2.headers()["docker-distribution-api-version"],
            "registry/2.0"
        );

        // By tag: the exact bytes, the upstream's media type, the digest.
        let r = get(&format!("{url}/v2/allowed/app/manifests/v1")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], OCI_MANIFEST);
        assert_eq!(
            r.headers()["docker-content-digest"],
            allowed.to_string().as_str()
        );
        assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_slice());
        // The judge was asked about the upstream name, at the digest served.
        let asked = gate.judge.asked.lock().unwrap().clone();
        assert_eq!(
            asked,
            vec![(
                format!("{}/allowed/app:v1", reg.host()),
                Some(allowed.clone())
            )]
        );
        // HEAD and by digest.
        let head = http()
            .head(format!("{url}/v2/allowed/app/manifests/v1"))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(
            head.headers()["docker-content-digest"],
            allowed.to_string().as_str()
        );
        assert_eq!(
            head.headers()["content-length"],
            manifest.len().to_string().as_str()
        );
        let r = get(&format!("{url}/v2/allowed/app/manifests/{allowed}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_slice());
        // By digest is another question than by tag (a policy may pin digests, or accept a
        // signature for one tag only); asked again, each is answered from the cache.
        assert_eq!(gate.judge.calls(), 2, "judged by tag, then by digest");
        let r = get(&format!("{url}/v2/allowed/app/manifests/{allowed}")).await;
        assert_eq!(r.status(), 200);
        let r = get(&format!("{url}/v2/allowed/app/manifests/v1")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(gate.judge.calls(), 2, "both verdicts were cached");

        // Blobs: identical bytes; HEAD states the size.
        for (desc, bytes) in &blobs {
            let r = get(&format!("{url}/v2/allowed/app/blobs/{}", desc.digest)).await;
            assert_eq!(r.status(), 200);
            assert_eq!(
                r.headers()["docker-content-digest"],
                desc.digest.to_string().as_str()
            );
            assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());
            let head = http()
                .head(format!("{url}/v2/allowed/app/blobs/{}", desc.digest))
                .send()
                .await
                .unwrap();
            assert_eq!(
                head.headers()["content-length"],
                bytes.len().to_string().as_str()
            );
        }

        // A registry client pulls through the proxy as from any registry.
        let client = support::client();
        let through = gate.reference("allowed/app:v1");
        let fetched = client.get_manifest(&through).await.unwrap();
        assert_eq!(fetched.bytes, manifest);
        for (desc, bytes) in &blobs {
            assert_eq!(
                &client
                    .get_blob_bytes(&through, desc, 1 << 20)
                    .await
                    .unwrap(),
                bytes
            );
        }
        let tags = client.list_tags(&through).await.unwrap();
        assert_eq!(tags, vec!["v1".to_string()]);

        // Denied: 403 with the OCI DENIED error and why, by tag and by digest.
        for path in [
            "denied/app/manifests/v1".to_string(),
            format!("denied/app/manifests/{denied}"),
        ] {
            let r = get(&format!("{url}/v2/{path}")).await;
            assert_eq!(r.status(), 403, "{path}");
            let body = json_of(r).await;
            assert_eq!(body["errors"][0]["code"], "DENIED");
            let message = body["errors"][0]["message"].as_str().unwrap();
            assert!(
                message.contains("no valid signature") && message.contains(&denied.to_string()),
                "{message}"
            );
        }
        let err = client
            .get_manifest(&gate.reference("denied/app:v1"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no valid signature"), "{err}");

        // containerd mirror requests name the registry mirrored in ?ns=.
        let r = get(&format!(
            "{url}/v2/allowed/app/manifests/v1?ns={}",
            reg.host()
        ))
        .await;
        assert_eq!(r.status(), 200);
        let r = get(&format!("{url}/v2/allowed/app/manifests/v1?ns=quay.io")).await;
        assert_eq!(r.status(), 404);
        assert_eq!(json_of(r).await["errors"][0]["code"], "NAME_UNKNOWN");

        // Unknown tags stay unknown (nothing to judge).
        let r = get(&format!("{url}/v2/allowed/app/manifests/nope")).await;
        assert_eq!(r.status(), 404);
        assert_eq!(json_of(r).await["errors"][0]["code"], "MANIFEST_UNKNOWN");

        let metrics = gate.gate.metrics_text();
        assert!(
            metrics.contains(
                "signet_gate_decisions_total{source=\"proxy\",result=\"deny\",mode=\"enforce\"}"
            ),
            "{metrics}"
        );
    });
}

/// Push a cosign-style signature manifest (one simple-signing layer) for `signed` under its
/// `sha256-<hex>.sig` tag in `repo`; returns (manifest digest, payload).
async fn push_signature(
    client: &RegistryClient,
    reg: &TestRegistry,
    repo: &str,
    signed: &Digest,
) -> (Digest, Vec<u8>) {
    let reference = reg.reference(&format!("{repo}:{}", signed.signature_tag()));
    let payload = serde_json::to_vec(
        &json!({"critical": {"image": {"docker-manifest-digest": signed.to_string()}}}),
    )
    .unwrap();
    let config =
        br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    client
        .put_blob(&reference, Bytes::from(payload.clone()))
        .await
        .unwrap();
    client
        .put_blob(&reference, Bytes::from(config.clone()))
        .await
        .unwrap();
    let mut layer = Descriptor::of(SIMPLE_SIGNING, &payload);
    layer.annotations = Some(
        [(
            "dev.cosignproject.cosign/signature".to_string(),
            "MEUCIQ==".to_string(),
        )]
        .into(),
    );
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": Descriptor::of(signet_oci::manifest::OCI_CONFIG, &config),
        "layers": [layer],
    }))
    .unwrap();
    let digest = client
        .put_manifest(&reference, &manifest, OCI_MANIFEST)
        .await
        .unwrap();
    (digest, payload)
}

#[test]
fn signature_tags_pass_through_unjudged_and_runnable_images_under_them_do_not() {
    // (Signature artifacts pass only for an image the gate admits: tests/e2e/proxy_edges.rs.)
    let reg = TestRegistry::start();
    let signed = support::push_sample_image(&reg, "allowed/app:v1");
    let denied = support::push_sample_image(&reg, "denied/app:v1");
    let disguised = support::push_sample_image(&reg, "denied/app:v2");
    let rt = support::runtime();
    let gate = RunningGate::start(&rt, &reg.host());
    rt.block_on(async {
        let client = support::client();
        let (sig_digest, payload) = push_signature(&client, &reg, "allowed/app", &signed).await;
        let tag = signed.signature_tag();
        let r = get(&format!("{}/v2/allowed/app/manifests/{tag}", gate.url)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["docker-content-digest"],
            sig_digest.to_string().as_str()
        );
        // Its payload blob, and the manifest again by digest.
        let through = gate.reference(&format!("allowed/app:{tag}"));
        let fetched = client.get_manifest(&through).await.unwrap();
        assert_eq!(fetched.digest, sig_digest);
        let layer = match &fetched.manifest {
            signet_oci::Manifest::Image(m) => m.layers[0].clone(),
            other => panic!("not an image manifest: {other:?}"),
        };
        assert_eq!(
            client
                .get_blob_bytes(&through, &layer, 1 << 20)
                .await
                .unwrap(),
            payload
        );
        let r = get(&format!(
            "{}/v2/allowed/app/manifests/{sig_digest}",
            gate.url
        ))
        .await;
        assert_eq!(r.status(), 200);
        // The image signed was judged (once; then cached), the signature manifest never.
        let asked = gate.judge.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert_eq!(asked[0].1.as_ref(), Some(&signed));

        // The signatures of a denied image are not served.
        push_signature(&client, &reg, "denied/app", &denied).await;
        let tag = denied.signature_tag();
        let r = get(&format!("{}/v2/denied/app/manifests/{tag}", gate.url)).await;
        assert_eq!(r.status(), 403);
        assert_eq!(gate.judge.calls(), 2);

        // A runnable image tagged like a signature is judged like any image.
        let fake_tag = disguised.signature_tag();
        let (manifest, _) = support::sample_image("denied/app:v2");
        client
            .put_manifest(
                &reg.reference(&format!("denied/app:{fake_tag}")),
                &manifest,
                OCI_MANIFEST,
            )
            .await
            .unwrap();
        let r = get(&format!("{}/v2/denied/app/manifests/{fake_tag}", gate.url)).await;
        assert_eq!(r.status(), 403);
        assert_eq!(gate.judge.calls(), 3);
    });
}

#[test]
fn pushes_and_deletes_are_refused() {
    let reg = TestRegistry::start();
    let digest = support::push_sample_image(&reg, "allowed/app:v1");
    let rt = support::runtime();
    let gate = RunningGate::start(&rt, &reg.host());
    rt.block_on(async {
        let client = support::client();
        let through = gate.reference("allowed/app:v2");
        let err = client
            .put_blob(&through, Bytes::from_static(b"new layer"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("405")
                || err.to_string().contains("UNSUPPORTED")
                || err.to_string().contains("read-only"),
            "{err}"
        );
        let err = client
            .put_manifest(&through, b"{}", OCI_MANIFEST)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
        for (method, path) in [
            ("PUT", "allowed/app/manifests/v1".to_string()),
            ("DELETE", format!("allowed/app/manifests/{digest}")),
            ("PATCH", "allowed/app/blobs/uploads/x".to_string()),
            ("DELETE", format!("allowed/app/blobs/{digest}")),
        ] {
            let r = http()
                .request(method.parse().unwrap(), format!("{}/v2/{path}", gate.url))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 405, "{method} {path}");
            assert_eq!(json_of(r).await["errors"][0]["code"], "UNSUPPORTED");
        }
        // Nothing changed upstream.
        assert_eq!(
            support::client()
                .list_tags(&reg.reference("allowed/app:v1"))
                .await
                .unwrap(),
            vec!["v1"]
        );
    });
}

#[test]
fn an_unreachable_upstream_means_deny() {
    let nowhere = format!("127.0.0.1:{}", support::free_port());
    let rt = support::runtime();
    let gate = RunningGate::start(&rt, &nowhere);
    rt.block_on(async {
        let r = get(&format!("{}/v2/allowed/app/manifests/v1", gate.url)).await;
        assert_eq!(r.status(), 502);
        let body = json_of(r).await;
        assert_eq!(body["errors"][0]["code"], "DENIED");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with("not verified: upstream failed"), "{message}");
        let digest = Digest::sha256(b"x");
        let r = get(&format!("{}/v2/allowed/app/blobs/{digest}", gate.url)).await;
        assert_eq!(r.status(), 502);
        // Admission of a tag there cannot resolve it: denied.
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
                        "object": {"spec": {"containers": [{"name": "a", "image": format!("{nowhere}/allowed/app:v1")}]}}}});
        let answer = json_of(http().post(format!("{}/validate", gate.url)).body(review.to_string()).send().await.unwrap()).await;
        assert_eq!(answer["response"]["allowed"], false);
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains("cannot resolve"), "{message}");
        assert_eq!(gate.judge.calls(), 0);
    });
}

/// Read a blob through the proxy: (bytes received, whether the transfer ended in an error).
async fn read_blob(url: &str) -> (Vec<u8>, bool) {
    let response = get(url).await;
    assert_eq!(response.status(), 200, "{url}");
    let mut stream = response.bytes_stream();
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => got.extend_from_slice(&c),
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

#[test]
fn a_corrupted_upstream_blob_is_cut_off() {
    // 600 KiB spans several chunks and is hashed in line; 6 MiB is hashed on the blocking pool
    // while its chunks are already on their way (signet_oci::stream), so the last one must still
    // wait for the digest.
    for size in [600 * 1024, 6 << 20] {
        corrupted_blob_is_cut_off(size);
    }
}

fn corrupted_blob_is_cut_off(size: usize) {
    let reg = TestRegistry::start();
    let rt = support::runtime();
    let big = support::sample_bytes("big layer", size);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer = Descriptor::of("application/vnd.oci.image.layer.v1.tar", &big);
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": Descriptor::of(signet_oci::manifest::OCI_CONFIG, &config), "layers": [layer]}))
    .unwrap();
    rt.block_on(async {
        let client = support::client();
        let reference = reg.reference("allowed/big:v1");
        client
            .put_blob(&reference, Bytes::from(big.clone()))
            .await
            .unwrap();
        client
            .put_blob(&reference, Bytes::from(config))
            .await
            .unwrap();
        client
            .put_manifest(&reference, &manifest, OCI_MANIFEST)
            .await
            .unwrap();
    });
    let gate = RunningGate::start(&rt, &reg.host());
    let blob_url = format!("{}/v2/allowed/big/blobs/{}", gate.url, layer.digest);
    rt.block_on(async {
        // Intact, before and after the manifest told the gate its size.
        let (got, broken) = read_blob(&blob_url).await;
        assert!(!broken && got == big);
        assert_eq!(
            get(&format!("{}/v2/allowed/big/manifests/v1", gate.url))
                .await
                .status(),
            200
        );
        let (got, broken) = read_blob(&blob_url).await;
        assert!(!broken && got == big);
    });
    // One byte flipped near the end, in the registry's own storage.
    flip_byte(&reg.blob_data_path(&layer.digest), big.len() - 10);
    rt.block_on(async {
        let (got, broken) = read_blob(&blob_url).await;
        assert!(broken, "the transfer must fail");
        assert!(
            got.len() < big.len(),
            "never completed: {} of {} bytes",
            got.len(),
            big.len()
        );
        assert_eq!(
            got,
            big[..got.len()],
            "what came through is the start of the blob"
        );
        // A registry client through the proxy sees an error, never a completed blob.
        let err = support::client()
            .get_blob_bytes(&gate.reference("allowed/big:v1"), &layer, 16 << 20)
            .await
            .unwrap_err();
        // The transfer broke off (the gate cut it): never a completed blob, never a refusal.
        assert!(
            matches!(err, signet_oci::Error::Registry { .. })
                && err.to_string().contains("reading failed after")
                && err.to_string().contains(&layer.digest.to_string()),
            "{err:?}"
        );
    });
    // A fresh gate (size unknown: probed) cuts it off too.
    let fresh = RunningGate::start(&rt, &reg.host());
    rt.block_on(async {
        let (got, broken) = read_blob(&format!(
            "{}/v2/allowed/big/blobs/{}",
            fresh.url, layer.digest
        ))
        .await;
        assert!(broken && got.len() < big.len());
        assert!(gate
            .gate
            .metrics_text()
            .contains("signet_gate_blobs_cut_off_total 2\n"));
    });
}

#[test]
fn blob_streams_are_bounded_and_the_extra_one_gets_429() {
    let reg = TestRegistry::start();
    let rt = support::runtime();
    // Larger than what socket buffers on both sides hold, so an unread download stays open.
    let big = support::sample_bytes("bounded streams", 24 << 20);
    let layer = Descriptor::of("application/vnd.oci.image.layer.v1.tar", &big);
    rt.block_on(async {
        support::client()
            .put_blob(&reg.reference("allowed/big:v1"), Bytes::from(big.clone()))
            .await
            .unwrap();
    });
    let gate = RunningGate::start_with(&rt, &reg.host(), |c| {
        c.limits.max_blob_streams = 1;
        c.timeouts.upstream_seconds = 1;
    });
    let url = format!("{}/v2/allowed/big/blobs/{}", gate.url, layer.digest);
    let metric = |name: &str| -> String {
        let text = gate.gate.metrics_text();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string))
            .unwrap_or_default()
    };
    rt.block_on(async {
        // One download started and left unread holds the only place.
        let first = get(&url).await;
        assert_eq!(first.status(), 200);
        assert_eq!(metric("signet_gate_blob_streams"), "1");
        let second = get(&url).await;
        assert_eq!(second.status(), 429);
        assert_eq!(second.headers()["retry-after"], "1");
        let body = json_of(second).await;
        assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS", "{body}");
        assert!(body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("limits.max_blob_streams"));
        assert_eq!(metric("signet_gate_blob_streams_refused_total"), "1");
        // The client going away gives the place back.
        drop(first);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while metric("signet_gate_blob_streams") != "0" {
            assert!(
                std::time::Instant::now() < deadline,
                "the place was not given back"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let (got, broken) = read_blob(&url).await;
        assert!(!broken && got == big);
        // A finished download gives it back too.
        let (got, broken) = read_blob(&url).await;
        assert!(!broken && got == big);
        assert_eq!(metric("signet_gate_blob_streams"), "0");
    });
}

fn admission_review(uid: &str, image: &str) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "operation": "CREATE",
            "object": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}}})
}

#[test]
fn the_mutating_webhook_pins_tags_to_the_digest_judged_now() {
    let reg = TestRegistry::start();
    let first = support::push_sample_image(&reg, "allowed/app:v1");
    let denied = support::push_sample_image(&reg, "denied/app:v1");
    let rt = support::runtime();
    let gate = RunningGate::start(&rt, &reg.host());
    let image = format!("{}/allowed/app:v1", reg.host());
    let mutate = |uid: &str, image: &str| {
        let body = admission_review(uid, image).to_string();
        let url = format!("{}/mutate", gate.url);
        rt.block_on(async move { json_of(http().post(url).body(body).send().await.unwrap()).await })
    };
    let patched_image = |answer: &Value| -> String {
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(answer["response"]["patch"].as_str().unwrap())
            .unwrap();
        let patch: Value = serde_json::from_slice(&patch).unwrap();
        assert_eq!(patch[0]["op"], "replace");
        assert_eq!(patch[0]["path"], "/spec/template/spec/containers/0/image");
        patch[0]["value"].as_str().unwrap().to_string()
    };
    let answer = mutate("m1", &image);
    assert_eq!(answer["response"]["uid"], "m1");
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(patched_image(&answer), format!("{image}@{first}"));

    // The tag moves: the next review pins the new digest (tags are resolved every time).
    let moved = support::push_sample_image_at(
        &support::client(),
        &reg.reference("allowed/app:v1"),
        "allowed/app:v1-rebuilt",
    );
    assert_ne!(moved, first);
    assert_eq!(
        patched_image(&mutate("m2", &image)),
        format!("{image}@{moved}")
    );

    // A denied image is denied by the mutating webhook too, and nothing is patched.
    let answer = mutate("m3", &format!("{}/denied/app:v1", reg.host()));
    assert_eq!(answer["response"]["allowed"], false);
    assert!(answer["response"].get("patch").is_none());
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("denied/app:v1") && message.contains("no valid signature"),
        "{message}"
    );
    let asked = gate.judge.asked.lock().unwrap().clone();
    assert!(asked.contains(&(format!("{}/denied/app:v1", reg.host()), Some(denied))));
}

/// Push an index of two sample images to `repo:tag`; returns (index digest, child digests).
async fn push_index(
    client: &RegistryClient,
    reg: &TestRegistry,
    repo: &str,
    tag: &str,
) -> (Digest, Vec<Digest>) {
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (manifest, blobs) = support::sample_image(&format!("{repo}/{arch}"));
        let reference = reg.reference(&format!("{repo}:{tag}"));
        for (_, bytes) in blobs {
            client
                .put_blob(&reference, Bytes::from(bytes))
                .await
                .unwrap();
        }
        let digest = client
            .put_manifest(
                &reference.with_digest(Digest::sha256(&manifest)),
                &manifest,
                OCI_MANIFEST,
            )
            .await
            .unwrap();
        let mut desc = Descriptor::of(OCI_MANIFEST, &manifest);
        desc.platform =
            Some(serde_json::from_value(json!({"os": "linux", "architecture": arch})).unwrap());
        children.push((digest, desc));
    }
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>()}))
    .unwrap();
    let digest = client
        .put_manifest(&reg.reference(&format!("{repo}:{tag}")), &index, OCI_INDEX)
        .await
        .unwrap();
    (digest, children.into_iter().map(|(d, _)| d).collect())
}

#[test]
fn platform_manifests_are_covered_by_their_index_verdict() {
    let reg = TestRegistry::start();
    let rt = support::runtime();
    let gate = RunningGate::start(&rt, &reg.host());
    rt.block_on(async {
        let client = support::client();
        let (index, children) = push_index(&client, &reg, "allowed/multi", "v1").await;
        let (_, denied_children) = push_index(&client, &reg, "denied/multi", "v1").await;
        let r = get(&format!("{}/v2/allowed/multi/manifests/v1", gate.url)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], OCI_INDEX);
        assert_eq!(
            r.headers()["docker-content-digest"],
            index.to_string().as_str()
        );
        for child in &children {
            let r = get(&format!("{}/v2/allowed/multi/manifests/{child}", gate.url)).await;
            assert_eq!(r.status(), 200, "{child}");
        }
        assert_eq!(gate.judge.calls(), 1, "only the index was judged");
        assert_eq!(
            get(&format!("{}/v2/denied/multi/manifests/v1", gate.url))
                .await
                .status(),
            403
        );
        for child in &denied_children {
            assert_eq!(
                get(&format!("{}/v2/denied/multi/manifests/{child}", gate.url))
                    .await
                    .status(),
                403
            );
        }
    });
}

#[test]
fn upstream_credentials_come_from_the_password_file() {
    let reg = TestRegistry::start_with_htpasswd("puller", "s3cret-pass");
    let pusher = support::client_with_credentials(&reg, "puller", "s3cret-pass");
    let digest = support::push_sample_image_with(&reg, "allowed/app:v1", &pusher);
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret-pass\n").unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0\nupstreams:\n  - url: http://{}\n    credentials: {{username: puller, password_file: {}}}\n",
        reg.host(),
        password.display()
    );
    let start = |yaml: &str| {
        let gate = Gate::new(GateConfig::from_yaml(yaml).unwrap(), TestJudge::default()).unwrap();
        let bound = rt.block_on(gate.bind()).unwrap();
        let url = format!("http://{}", bound.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(bound.run(async move {
            let _ = rx.await;
        }));
        (url, tx)
    };
    let (with, _stop_with) = start(&yaml);
    let (without, _stop_without) = start(&format!(
        "listen: 127.0.0.1:0\nupstreams: [{{url: 'http://{}'}}]\n",
        reg.host()
    ));
    rt.block_on(async {
        let r = get(&format!("{with}/v2/allowed/app/manifests/v1")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["docker-content-digest"],
            digest.to_string().as_str()
        );
        let r = get(&format!("{without}/v2/allowed/app/manifests/v1")).await;
        assert_eq!(r.status(), 502);
        let body = json_of(r).await;
        assert_eq!(body["errors"][0]["code"], "DENIED");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("authentication failed"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    });
    // A missing password file stops the gate from starting.
    let missing = yaml.replace(&password.display().to_string(), "/nonexistent/password");
    let err = Gate::new(
        GateConfig::from_yaml(&missing).unwrap(),
        TestJudge::default(),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("/nonexistent/password"), "{err}");
}

#[test]
fn warn_mode_serves_and_http2_works() {
    let reg = TestRegistry::start();
    let digest = support::push_sample_image(&reg, "warn/app:v1");
    let rt = support::runtime();
    let gate = RunningGate::start(&rt, &reg.host());
    rt.block_on(async {
        // Denied in warn mode: served (and counted as a denial).
        let r = get(&format!("{}/v2/warn/app/manifests/v1", gate.url)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["docker-content-digest"],
            digest.to_string().as_str()
        );
        let metrics = gate.gate.metrics_text();
        assert!(
            metrics.contains(
                "signet_gate_decisions_total{source=\"proxy\",result=\"deny\",mode=\"warn\"} 1"
            ),
            "{metrics}"
        );
        // HTTP/2 without TLS (prior knowledge), as some clients speak it.
        let h2 = reqwest::Client::builder()
            .no_proxy()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let r = h2
            .get(format!("{}/v2/warn/app/manifests/{digest}", gate.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), 200);
    });
}

#[test]
fn shutdown_lets_transfers_finish_and_then_stops_listening() {
    let reg = TestRegistry::start();
    let rt = support::runtime();
    let big = support::sample_bytes("shutdown", 16 * 1024 * 1024);
    let layer = Descriptor::of("application/octet-stream", &big);
    rt.block_on(async {
        support::client()
            .put_blob(&reg.reference("allowed/big:v1"), Bytes::from(big.clone()))
            .await
            .unwrap();
    });
    let config = GateConfig::simple(
        "p".into(),
        "127.0.0.1:0".parse().unwrap(),
        &format!("http://{}", reg.host()),
    )
    .unwrap();
    let gate = Gate::new(config, TestJudge::default()).unwrap();
    let bound = rt.block_on(gate.bind()).unwrap();
    let addr = bound.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = rt.spawn(bound.run(async move {
        let _ = rx.await;
    }));
    rt.block_on(async {
        let response = get(&format!(
            "http://{addr}/v2/allowed/big/blobs/{}",
            layer.digest
        ))
        .await;
        assert_eq!(response.status(), 200);
        assert!(gate.is_ready());
        let mut stream = response.bytes_stream();
        let mut got = Vec::new();
        got.extend_from_slice(&stream.next().await.unwrap().unwrap());
        // Shut down mid-transfer, then read the rest slowly.
        tx.send(()).unwrap();
        while let Some(chunk) = stream.next().await {
            got.extend_from_slice(&chunk.expect("an open transfer is not cut by shutdown"));
            tokio::time::sleep(std::time::Duration::from_micros(200)).await;
        }
        assert!(got == big, "{} of {} bytes", got.len(), big.len());
        tokio::time::timeout(std::time::Duration::from_secs(10), running)
            .await
            .expect("run returns once transfers are done")
            .unwrap()
            .unwrap();
        assert!(!gate.is_ready());
        let refused = tokio::net::TcpStream::connect(addr)
            .await
            .expect_err("no longer listening");
        assert_eq!(
            refused.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{refused}"
        );
    });
}
