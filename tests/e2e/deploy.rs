//! The Kubernetes manifests in `deploy/kubernetes/`, checked (issue 13, item 6): they pass the
//! real Kubernetes schemas in strict mode (`kubernetes-validate` from PyPI, pinned in
//! scripts/test.sh), and the webhook configurations' service, port, paths and CA wiring agree
//! with the Service, the Deployment, the gate's configuration and what `signet serve` answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use signet_gate::GateConfig;

use crate::support::{self, free_port, signet, TestRegistry};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// The files `kustomization.yaml` applies, in its order.
fn manifest_files() -> Vec<PathBuf> {
    let text = std::fs::read_to_string(deploy_dir().join("kustomization.yaml")).unwrap();
    let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
    doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| deploy_dir().join(r.as_str().unwrap()))
        .collect()
}

/// Every document of every manifest.
fn documents() -> Vec<Value> {
    let mut out = Vec::new();
    for file in manifest_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = <Value as serde::Deserialize>::deserialize(doc).unwrap();
            if !value.is_null() {
                out.push(value);
            }
        }
    }
    out
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in deploy/kubernetes"))
}

fn kubernetes_validate(files: &[PathBuf]) -> std::process::Output {
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(files)
        .output()
        .expect("kubernetes-validate is missing: python3 -m pip install kubernetes-validate");
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn kubernetes_manifests_pass_the_strict_schemas() {
    let files = manifest_files();
    assert!(files.len() >= 7, "{files:?}");
    let out = kubernetes_validate(&files);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for resource in [
        "deployment/signet-gate",
        "service/signet-gate",
        "mutatingwebhookconfiguration/signet-gate",
        "validatingwebhookconfiguration/signet-gate",
    ] {
        assert!(
            text.contains(&format!("passed for resource {resource}")),
            "{resource}: {text}"
        );
    }
    // The control: strict mode refuses a field the schema does not have.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("service.yaml");
    let service = std::fs::read_to_string(deploy_dir().join("service.yaml")).unwrap();
    std::fs::write(
        &broken,
        service.replace("spec:\n", "spec:\n  sessionAffinityTypo: ClientIP\n"),
    )
    .unwrap();
    let out = kubernetes_validate(&[broken]);
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("'sessionAffinityTypo' was unexpected"),
        "{text}"
    );
}

#[test]
fn webhook_configurations_match_what_signet_serve_serves() {
    let docs = documents();
    let service = kind(&docs, "Service");
    let deployment = kind(&docs, "Deployment");
    let configmap = kind(&docs, "ConfigMap");
    let gate_yaml = configmap["data"]["gate.yaml"].as_str().unwrap();
    // The configuration shipped is one the gate accepts (strict: unknown fields refused).
    let config = GateConfig::from_yaml(gate_yaml).unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let https = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "https")
        .expect("a container port named https");
    assert_eq!(
        https["containerPort"].as_u64().unwrap(),
        u64::from(config.listen.port()),
        "the container port is where gate.yaml listens"
    );
    // The container runs `signet serve --config` on the mounted gate.yaml.
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[..2], ["serve", "--config"]);
    let mounts = container["volumeMounts"].as_array().unwrap();
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let mounted_file = |path: &Path| -> &Value {
        let mount = mounts
            .iter()
            .find(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{} is in no volume mount", path.display()));
        volumes.iter().find(|v| v["name"] == mount["name"]).unwrap()
    };
    let config_volume = mounted_file(Path::new(args[2]));
    assert_eq!(
        config_volume["configMap"]["name"],
        configmap["metadata"]["name"]
    );
    let policy = config.policy.clone().unwrap();
    assert!(mounted_file(&policy)["configMap"].is_object());
    // TLS: the files gate.yaml names come from the Secret the webhooks' CA is injected from.
    let tls = config.tls.clone().expect("gate.yaml serves TLS");
    let secret_volume = mounted_file(&tls.cert);
    let secret = secret_volume["secret"]["secretName"].as_str().unwrap();
    assert_eq!(tls.cert.file_name().unwrap(), "tls.crt");
    assert_eq!(tls.key.file_name().unwrap(), "tls.key");
    assert_eq!(
        mounted_file(&tls.key)["name"],
        secret_volume["name"],
        "certificate and key come from one Secret"
    );
    let namespace = service["metadata"]["namespace"].as_str().unwrap();
    // Probes ask paths the gate serves, on its https port.
    let mut probe_paths = Vec::new();
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        if let Some(get) = container[probe]["httpGet"].as_object() {
            assert_eq!(get["port"], "https", "{probe}");
            assert_eq!(get["scheme"], "HTTPS", "{probe}");
            probe_paths.push(get["path"].as_str().unwrap().to_string());
        }
    }
    assert!(!probe_paths.is_empty());

    let mut webhook_paths = Vec::new();
    for kind_name in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let config = kind(&docs, kind_name);
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            format!("{namespace}/{secret}"),
            "{kind_name}: the CA comes from the gate's own TLS Secret"
        );
        for webhook in config["webhooks"].as_array().unwrap() {
            let client = &webhook["clientConfig"];
            assert!(client.get("caBundle").is_some(), "{kind_name}: caBundle");
            let svc = &client["service"];
            assert_eq!(svc["name"], service["metadata"]["name"], "{kind_name}");
            assert_eq!(svc["namespace"], namespace, "{kind_name}");
            let port = svc["port"].as_u64().unwrap();
            let service_port = service["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["port"].as_u64() == Some(port))
                .unwrap_or_else(|| panic!("{kind_name}: no Service port {port}"));
            assert_eq!(
                service_port["targetPort"], https["name"],
                "{kind_name}: the Service port leads to the gate's https port"
            );
            assert_eq!(webhook["failurePolicy"], "Fail", "{kind_name} fails closed");
            webhook_paths.push(svc["path"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(webhook_paths, ["/mutate", "/validate"]);

    // What `signet serve` answers on those paths.
    let reg = TestRegistry::start();
    support::push_sample_image(&reg, "team/app:v1");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "default:\n  reject: only listed\nscopes:\n  \"{}/team\":\n    accept: true\n",
            reg.host()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = signet()
        .arg("serve")
        .arg("--policy")
        .arg(&policy)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &format!("http://{}", reg.host())])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "signet serve did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for path in &probe_paths {
        let status = http.get(format!("{base}{path}")).send().unwrap().status();
        assert_eq!(status, 200, "probe {path}");
    }
    let image = format!("{}/team/app:v1", reg.host());
    for (i, path) in webhook_paths.iter().enumerate() {
        let uid = format!("uid-{i}");
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE",
                "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                    "spec": {"containers": [{"name": "app", "image": image}]}}}});
        let response = http
            .post(format!("{base}{path}"))
            .json(&review)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let answer: Value = response.json().unwrap();
        assert_eq!(answer["kind"], "AdmissionReview", "{path}");
        assert_eq!(answer["response"]["uid"], uid, "{path}");
        assert_eq!(answer["response"]["allowed"], true, "{path}: {answer}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
