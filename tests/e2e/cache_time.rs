//! Verdicts never outlive their truth, end to end: the gate with the real engine (`PolicyJudge`)
//! in front of a real `docker-registry`, an image signed by `signet sign`, and the gate's clock
//! injected, so time moves without sleeping. A key that retires while its allow is cached stops
//! counting at its `notAfter`; a deleted signature keeps working until the TTL, as documented.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use signet_gate::judge::PolicyJudge;
use signet_gate::{Gate, GateConfig, ManualClock, Source};
use signet_oci::{Digest, RegistryClient};

use crate::support::{
    self, code, keypair, push_sample_image, rfc3339, run, s, whole_second_now, TestRegistry,
};

#[test]
fn rfc3339_of_known_instants() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_780_272_000), "2026-06-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_399), "2000-02-28T23:59:59Z");
    assert_eq!(rfc3339(951_868_800), "2000-03-01T00:00:00Z");
}

/// A registry holding `app:v1` signed by a fresh key, a policy file trusting that key (retired
/// at `not_after` when given), and a gate on `clock` judging with that policy.
struct Setup {
    reg: TestRegistry,
    _dir: tempfile::TempDir,
    digest: Digest,
    gate: Gate<PolicyJudge>,
}

fn setup(clock: &ManualClock, not_after: Option<u64>, ttl_seconds: u64) -> Setup {
    setup_with(clock, not_after, ttl_seconds, "", "", false)
}

/// [`setup`] with `signed_extra` added to the scope's `signed` map (`, identity: matchExact`) and
/// `scope_extra` (YAML lines, indented four spaces) to the scope; `sign_tag`: the signature names
/// `app:v1` (tag included) rather than the repository.
fn setup_with(
    clock: &ManualClock,
    not_after: Option<u64>,
    ttl_seconds: u64,
    signed_extra: &str,
    scope_extra: &str,
    sign_tag: bool,
) -> Setup {
    let reg = TestRegistry::start();
    let digest = push_sample_image(&reg, "app:v1");
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "release");
    let image = format!("{}/app:v1", reg.host());
    let mut sign = vec!["sign", "--key", s(&key), &image];
    if sign_tag {
        sign.extend(["--signed-identity", "reference"]);
    }
    assert_eq!(code(&run(&sign)), 0);
    let not_after = not_after
        .map(|t| format!(", notAfter: \"{}\"", rfc3339(t)))
        .unwrap_or_default();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "keys:\n  release: {{path: {}{not_after}}}\nscopes:\n  \"{}/app\":\n    signed: {{keys: [release]{signed_extra}}}\n{scope_extra}",
            s(&public),
            reg.host()
        ),
    )
    .unwrap();
    let mut config = GateConfig::simple(
        policy.clone(),
        "127.0.0.1:0".parse().unwrap(),
        &format!("http://{}", reg.host()),
    )
    .unwrap();
    config.cache.ttl_seconds = ttl_seconds;
    let client = RegistryClient::new(config.registry_options().unwrap()).unwrap();
    let file = signet_verifier::enforce::load_policy_file(&policy).unwrap();
    let judge = PolicyJudge::new(file, client).with_clock(Arc::new(clock.clone()));
    let gate = Gate::with_clock(config, judge, Arc::new(clock.clone())).unwrap();
    Setup {
        reg,
        _dir: dir,
        digest,
        gate,
    }
}

#[test]
fn a_cached_allow_ends_at_the_keys_not_after() {
    let (start, now) = whole_second_now();
    let clock = ManualClock::new(start);
    let setup = setup(&clock, Some(now + 10), 300);
    let image = format!("{}/app@{}", setup.reg.host(), setup.digest);
    let rt = support::runtime();

    let first = rt.block_on(setup.gate.decide(&image, Source::Api));
    assert!(first.allowed && !first.cached && !first.error, "{first:?}");
    let answer = first.to_json();
    assert_eq!(
        answer["report"]["verdict"]["valid_until"],
        serde_json::json!(now + 10),
        "{answer}"
    );
    assert_eq!(
        answer["policy_hash"],
        serde_json::json!(setup.gate.policy_hash()),
        "{answer}"
    );

    clock.advance(Duration::from_secs(9));
    let hit = rt.block_on(setup.gate.decide(&image, Source::Api));
    assert!(hit.allowed && hit.cached, "{hit:?}");

    // At notAfter the cached allow is gone: the gate judges again, with the real engine, and
    // the key no longer counts (the cache TTL is 300 s).
    clock.advance(Duration::from_secs(1));
    let after = rt.block_on(setup.gate.decide(&image, Source::Api));
    assert!(!after.allowed && !after.cached && !after.error, "{after:?}");
    assert!(after.message.contains("[key-expired]"), "{}", after.message);
}

#[test]
fn a_deleted_signature_keeps_working_until_the_ttl_then_is_denied() {
    let (start, _) = whole_second_now();
    let clock = ManualClock::new(start);
    let setup = setup(&clock, None, 60);
    let image = format!("{}/app@{}", setup.reg.host(), setup.digest);
    let rt = support::runtime();
    assert!(rt.block_on(setup.gate.decide(&image, Source::Api)).allowed);

    // Replace the signature manifest with one that holds no signature (as deleting it would).
    push_sample_image(&setup.reg, &format!("app:{}", setup.digest.signature_tag()));

    // What the README says: the allow lasts up to the TTL after the signature is gone…
    clock.advance(Duration::from_secs(59));
    let stale = rt.block_on(setup.gate.decide(&image, Source::Api));
    assert!(stale.allowed && stale.cached, "{stale:?}");
    // … and not a second longer.
    clock.advance(Duration::from_secs(1));
    let fresh = rt.block_on(setup.gate.decide(&image, Source::Api));
    assert!(!fresh.allowed && !fresh.cached && !fresh.error, "{fresh:?}");
    assert!(
        fresh.message.contains("[no-valid-signature]"),
        "{}",
        fresh.message
    );
}

/// The verdict depends on how the image was named (by digest or by tag, and which tag): a verdict
/// on one name of a digest must not answer for another name of it.
#[test]
fn a_verdict_on_one_name_of_a_digest_does_not_answer_for_another() {
    let (start, _) = whole_second_now();
    let clock = ManualClock::new(start);
    let rt = support::runtime();

    // `digest: pinned`: allowed by digest, denied by tag.
    let setup = setup_with(&clock, None, 300, "", "    digest: pinned\n", false);
    let by_digest = format!("{}/app@{}", setup.reg.host(), setup.digest);
    let by_tag = format!("{}/app:v1", setup.reg.host());
    let pinned = rt.block_on(setup.gate.decide(&by_digest, Source::Api));
    assert!(pinned.allowed, "{pinned:?}");
    let tagged = rt.block_on(setup.gate.decide(&by_tag, Source::Api));
    assert_eq!(tagged.digest.as_ref(), Some(&setup.digest));
    assert!(!tagged.allowed && !tagged.cached, "{tagged:?}");
    assert!(
        tagged.message.contains("[digest-not-pinned]"),
        "{}",
        tagged.message
    );

    // `matchExact`: the signature names app:v1; the same manifest tagged v2 was not signed as v2.
    let setup = setup_with(&clock, None, 300, ", identity: matchExact", "", true);
    let client = support::client();
    rt.block_on(async {
        let v1 = client
            .get_manifest(&setup.reg.reference("app:v1"))
            .await
            .unwrap();
        client
            .put_manifest(&setup.reg.reference("app:v2"), &v1.bytes, &v1.media_type)
            .await
            .unwrap();
    });
    let v1 = rt.block_on(
        setup
            .gate
            .decide(&format!("{}/app:v1", setup.reg.host()), Source::Api),
    );
    assert!(v1.allowed, "{v1:?}");
    let v2 = rt.block_on(
        setup
            .gate
            .decide(&format!("{}/app:v2", setup.reg.host()), Source::Api),
    );
    assert_eq!(v2.digest, v1.digest);
    assert!(!v2.allowed && !v2.cached, "{v2:?}");
    assert!(v2.message.contains("[identity-mismatch]"), "{}", v2.message);
}
