//! Issue 12, the policy's judgement fails closed on key-signed cosign bundles exactly as
//! `signet verify --key` does (`attest::verify_with_a_key_reads_bundle_signatures_and_fails_closed_on_a_bad_one`):
//! a bundle referrer that claims a key the policy names (its hint names it, or it has none, or it
//! cannot be read that far) and fails any check refuses the image with `bundle-refused`, even
//! beside a good `.sig` layer by that key — under `verify --policy`, `policy explain --evaluate`,
//! the admission webhook and the verify API alike. A valid bundle by a key the policy does not
//! name is another signer's evidence, not a refusal. A scope whose signers accept only the
//! legacy format reads no referrers at all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use signet_oci::store::ImageStore;
use signet_oci::ImageLocation;
use signet_sign::dsse::{Envelope, INTOTO_PAYLOAD_TYPE};
use signet_sign::intoto::{PredicateType, Statement};

use crate::support::{
    self, client, code, keypair, run, runtime, s, serve_http, SignetServe, TestRegistry,
    KEY_PASSWORD,
};

const SIGN_V1: &str = "https://sigstore.dev/cosign/sign/v1";
const REFUSED: &str = "bundle-refused";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A loopback relay in front of `upstream` that records each registry request line.
struct Relay {
    host: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    fn start(upstream: String) -> Relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let Ok(mut server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut back_to_client, mut from_server) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = client.read(&mut buf) {
                        for line in String::from_utf8_lossy(&buf[..n]).split("\r\n") {
                            if line.ends_with(" HTTP/1.1") && line.contains(" /v2/") {
                                seen.lock().unwrap().push(line.to_string());
                            }
                        }
                        if server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = from_server.read(&mut buf) {
                        if back_to_client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Relay { host, requests }
    }

    /// The requests made so far, then forget them.
    fn take(&self) -> Vec<String> {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

/// A bundle referrer of `image` claiming `signing`'s key (its hint) whose statement was changed
/// after signing, pushed beside whatever the image already has.
fn push_tampered_bundle(image: &str, signing: &signet_sign::SigningKey) {
    let location: ImageLocation = image.parse().unwrap();
    let store = ImageStore::open(&location, &client()).unwrap();
    runtime().block_on(async {
        let subject = store.resolve().await.unwrap();
        let statement = Statement::for_image(
            None,
            &subject.digest,
            PredicateType::uri(SIGN_V1).unwrap(),
            serde_json::json!({}),
        );
        let mut envelope =
            Envelope::sign(signing, INTOTO_PAYLOAD_TYPE, statement.to_bytes().unwrap());
        envelope.payload = String::from_utf8(envelope.payload)
            .unwrap()
            .replace("\"predicate\":{}", "\"predicate\":{\"x\":1}")
            .into_bytes();
        signet_verifier::bundle_sign::push_bundle(
            &store,
            &subject,
            &envelope,
            &signing.public_key(),
            &PredicateType::uri(SIGN_V1).unwrap(),
            "2026-01-01T00:00:00Z",
        )
        .await
        .unwrap();
    });
}

fn policy(dir: &Path, name: &str, public: &Path, signed_extra: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "keys:\n  k: {{path: {}}}\ndefault:\n  signed: {{keys: [k]{signed_extra}}}\n",
            s(public)
        ),
    )
    .unwrap();
    path
}

fn admit(gate: &SignetServe, image: &str) -> Value {
    let review = support::pod_review("6f1d2c3b-0a9e-4d8c-8b7a-1e2f3a4b5c6d", image);
    let answer: Value = serve_http()
        .post(gate.url("/validate"))
        .json(&review)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        answer["response"]["uid"], "6f1d2c3b-0a9e-4d8c-8b7a-1e2f3a4b5c6d",
        "{answer}"
    );
    answer["response"].clone()
}

fn finding_codes(verdict: &Value) -> Vec<String> {
    verdict["findings"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|x| x["code"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_failing_bundle_claiming_a_policy_key_denies_the_image_beside_a_good_sig() {
    let reg = TestRegistry::start();
    let relay = Relay::start(reg.host());
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let (other_key, _) = keypair(dir.path(), "other");
    let signing = signet_sign::keys::read_private_key_file(&key, KEY_PASSWORD.as_bytes())
        .unwrap()
        .key;

    // Signed in both formats by K: the .sig layer and the bundle both verify.
    support::push_sample_image(&reg, "fc/good:v1");
    let good = format!("{}/fc/good:v1", relay.host);
    let signed = run(&["sign", "--key", s(&key), "--format", "both", &good]);
    assert_eq!(code(&signed), 0, "{}", stderr(&signed));

    // The same, then a bundle claiming K whose statement was changed after signing.
    support::push_sample_image(&reg, "fc/tampered:v1");
    let tampered = format!("{}/fc/tampered:v1", relay.host);
    let signed = run(&["sign", "--key", s(&key), "--format", "both", &tampered]);
    assert_eq!(code(&signed), 0, "{}", stderr(&signed));
    push_tampered_bundle(&tampered, &signing);

    // A good .sig by K beside a valid bundle by a key the policy does not name.
    support::push_sample_image(&reg, "fc/cosigned:v1");
    let cosigned = format!("{}/fc/cosigned:v1", relay.host);
    assert_eq!(code(&run(&["sign", "--key", s(&key), &cosigned])), 0);
    let other = run(&[
        "sign",
        "--key",
        s(&other_key),
        "--format",
        "bundle",
        &cosigned,
    ]);
    assert_eq!(code(&other), 0, "{}", stderr(&other));

    let any_format = policy(dir.path(), "any.yaml", &public, "");
    let verify = |policy: &Path, image: &str| {
        run(&["verify", "--policy", s(policy), "--output", "json", image])
    };

    // verify --policy.
    let out = verify(&any_format, &good);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = verify(&any_format, &cosigned);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = verify(&any_format, &tampered);
    assert_eq!(code(&out), 12, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("[{REFUSED}]")),
        "{}",
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"]["decision"], "deny", "{report}");
    assert_eq!(
        finding_codes(&report["verdict"]),
        [REFUSED],
        "the .sig layer verified, so the refusal is the only finding: {report}"
    );
    let message = report["verdict"]["findings"][0]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("bundle referrer sha256:")
            && message.contains("signature: the DSSE signature does not verify"),
        "the refusal names the referrer and the failed check: {message}"
    );

    // policy explain --evaluate: the same verdict.
    let out = run(&[
        "policy",
        "explain",
        "--policy",
        s(&any_format),
        "--evaluate",
        &tampered,
    ]);
    assert_eq!(code(&out), 12, "{}", stderr(&out));
    let explained: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        finding_codes(&explained["evaluation"]["verdict"]),
        [REFUSED],
        "{explained}"
    );

    // A scope whose signers accept only the legacy format never reads referrers: the tampered
    // bundle is not seen, and the good .sig allows the image.
    let legacy_only = policy(dir.path(), "legacy.yaml", &public, ", formats: [legacy]");
    relay.take();
    let out = verify(&legacy_only, &tampered);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let requests = relay.take();
    assert!(!requests.is_empty(), "the relay saw the decision");
    // The referrers API, or the `sha256-<hex>` tag index (the `.sig` tag is `sha256-<hex>.sig`).
    let reads_referrers = |r: &String| {
        r.contains("/referrers/") || (r.contains("/manifests/sha256-") && !r.contains(".sig HTTP"))
    };
    assert!(
        !requests.iter().any(reads_referrers),
        "no referrers read under formats: [legacy]: {requests:#?}"
    );

    // The gate: admission webhook and verify API.
    let gate = SignetServe::start(
        &[
            "--policy",
            s(&any_format),
            "--upstream",
            &format!("http://{}", relay.host),
        ],
        |_| {},
    );
    let denied = admit(&gate, &tampered);
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["status"]["code"], 403, "{denied}");
    let message = denied["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("[{REFUSED}]")) && message.contains("fc/tampered"),
        "{message}"
    );
    let (status, verdict) = gate.verify(&tampered, None);
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["allowed"], false, "{verdict}");
    assert_eq!(verdict["error"], false, "{verdict}");
    assert!(verdict.to_string().contains(REFUSED), "{verdict}");
    for image in [&good, &cosigned] {
        let allowed = admit(&gate, image);
        assert_eq!(allowed["allowed"], true, "{image}: {allowed}");
        let (status, verdict) = gate.verify(image, None);
        assert_eq!(status, 200, "{verdict}");
        assert_eq!(verdict["allowed"], true, "{image}: {verdict}");
    }
}
