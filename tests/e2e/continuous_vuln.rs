//! Continuous verification catches a new CVE (issue 14, item 3): an image admitted with a
//! clean vuln attestation is remembered by the gate; a newer scan of the same image, signed by
//! the same trusted scanner, finds `CVE-2025-41115 CRITICAL`; the next re-judgement cycle flips
//! the verdict to deny — in `GET /v1/audit` naming the CVE, in the gauges, and in exactly one
//! webhook POST — because every trusted, in-age attestation must pass (the clean scan beside it
//! does not outvote it). The image that still passes sends nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use signet_gate::Clock;

use crate::continuous::{assert_one_change, setup, Webhook};
use crate::support::{self, code, keypair, rfc3339, run, s};

/// A real Trivy scan from testdata with every time it states (`scanStartedOn`,
/// `scanFinishedOn`, the report's `CreatedAt`) moved to `finished`, written to `dir`.
fn scan(dir: &Path, name: &str, finished: &str) -> PathBuf {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/attestations")
        .join(name);
    let mut predicate: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    let when = Value::String(finished.to_string());
    predicate["metadata"]["scanStartedOn"] = when.clone();
    predicate["metadata"]["scanFinishedOn"] = when.clone();
    if predicate["scanner"]["result"].get("CreatedAt").is_some() {
        predicate["scanner"]["result"]["CreatedAt"] = when;
    }
    let path = dir.join(format!("scan-{name}"));
    std::fs::write(&path, serde_json::to_vec(&predicate).unwrap()).unwrap();
    path
}

fn attest(key: &Path, predicate: &Path, image: &str) {
    let out = run(&[
        "attest",
        "--key",
        s(key),
        "--predicate",
        s(predicate),
        "--type",
        "vuln",
        "--format",
        "both",
        image,
    ]);
    assert_eq!(
        code(&out),
        0,
        "attest {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_new_critical_scan_flips_the_verdict_within_one_cycle() {
    let hook = Webhook::start(false);
    let setup = setup(&hook.url, |_| {});
    let rt = support::runtime();
    let (scanner, scanner_pub) = keypair(setup.dir(), "scanner");
    let now = setup
        .clock
        .wall()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // app must also carry a scan by `scanner`, nothing above HIGH, no older than a week.
    let policy = format!(
        r#"keys:
  release: {{path: {release}}}
  other: {{path: {other}}}
  scanner: {{path: {scanner}}}
scopes:
  "{host}/app":
    signed: {{keys: [release]}}
    attestations:
      - type: vuln
        keys: [scanner]
        vulnerabilities:
          maxSeverity: high
          maxScanAge: 7d
  "{host}/keep":
    signed: {{keys: [other]}}
"#,
        release = s(&setup.release_pub),
        other = s(&setup.other_pub),
        scanner = s(&scanner_pub),
        host = setup.host,
    );
    std::fs::write(&setup.policy, policy).unwrap();
    setup.gate.reload(setup.judge());

    let tagged = format!("{}/app:v1", setup.host);
    // Scanned an hour ago: OpenSearch 2.19.4 as Trivy saw it, HIGH at worst.
    attest(
        &scanner,
        &scan(
            setup.dir(),
            "trivy-opensearch-2.19.4.cosign-vuln.json",
            &rfc3339(now - 3600),
        ),
        &tagged,
    );
    setup.admit_both(&rt);
    assert_eq!(
        setup.metric("signet_running_images{verdict=\"pass\"}"),
        Some(2.0)
    );
    let first = rt.block_on(setup.gate.rejudge_all());
    assert_eq!((first.judged, first.changed), (2, 0), "nothing changed yet");
    assert!(hook.bodies().is_empty(), "{:?}", hook.bodies());

    // A newer scan by the same trusted scanner lists CRITICAL CVEs (Trivy's Grafana 12.2.0 scan).
    attest(
        &scanner,
        &scan(
            setup.dir(),
            "trivy-grafana-12.2.0.cosign-vuln.json",
            &rfc3339(now - 60),
        ),
        &tagged,
    );
    let cycle = rt.block_on(setup.gate.rejudge_all());
    assert_eq!((cycle.judged, cycle.changed, cycle.unknown), (2, 1, 0));

    let bodies = hook.wait_for(1);
    assert_one_change(
        &bodies,
        &setup.app(),
        "pass",
        "deny",
        "vulnerability-too-severe",
    );

    let app = setup.audit_entry(&setup.app());
    assert_eq!(app["verdict"], "deny", "{app}");
    let message = app["message"].as_str().unwrap();
    assert!(
        message.contains("[vulnerability-too-severe]")
            && message.contains("CVE-2025-41115 CRITICAL in github.com/grafana/grafana 12.2.0"),
        "{app}"
    );
    assert_eq!(setup.audit_entry(&setup.keep())["verdict"], "pass");
    assert_eq!(
        setup.metric("signet_running_images{verdict=\"pass\"}"),
        Some(1.0)
    );
    assert_eq!(
        setup.metric("signet_running_images{verdict=\"deny\"}"),
        Some(1.0)
    );
    assert_eq!(
        setup.metric("signet_running_image_reasons{reason=\"vulnerability-too-severe\"}"),
        Some(1.0)
    );

    // Another cycle with nothing changed sends nothing more.
    let again = rt.block_on(setup.gate.rejudge_all());
    assert_eq!((again.judged, again.changed), (2, 0));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hook.bodies().len(), 1, "{:?}", hook.bodies());
}
