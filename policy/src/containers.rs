//! containers-policy.json (the `policy.json` of podman, skopeo and CRI-O): strict parsing with
//! containers/image's rules, and conversion into an equivalent Signet [`PolicyDocument`].
//!
//! Semantics kept from containers/image (`signature/policy_config.go`, `policy_eval.go`): unknown
//! fields reject the whole file; in a requirement list every requirement must hold; a
//! `sigstoreSigned` requirement holds when any one signature verified by any of its keys has an
//! accepted identity; docker scopes are looked up as the full reference, then the repository and
//! its namespaces from longest, then `host[:port]`, then `*.domain` wildcards from longest; the `""`
//! scope is the docker transport's default. `fulcio` (CA certificates, OIDC issuer, email SAN;
//! Rekor required), `pki` (CA roots and intermediates, email and/or hostname SAN) and the Rekor
//! public keys (`rekorPublicKey{Path,Paths,Data,Datas}`: when set, a Rekor entry by one of them is
//! required) become Signet `fulcio`/`pki` signers and `rekorKeys`; `…Data` fields are base64 of
//! PEM and are decoded to inline PEM. containers/image reads only simple-signing (`.sig`)
//! signatures, so every converted rule says `formats: [legacy]`. GPG `signedBy` and
//! `signedBaseLayer` are refused as not supported yet rather than silently accepted.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use base64::Engine as _;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostic, Severity, Sink, Source};
use crate::document::{
    self, FulcioSpec, Identity, KeySpec, MaterialSpec, OneOrMany, PkiSpec, PolicyDocument,
    SignatureFormat, Signed, StrictMap,
};
use crate::identity::IdentityRule;
use crate::pattern::{Pattern, PatternKind};
use crate::Error;

/// A containers-policy.json converted to a Signet document.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The equivalent Signet policy (serialize it to write a Signet policy file).
    pub document: PolicyDocument,
    /// Warnings (ignored transports, scopes that can never match).
    pub warnings: Vec<Diagnostic>,
}

/// Convert a containers-policy.json to the equivalent Signet policy document. Key paths are kept
/// as written; inline `keyData` becomes inline `pem`.
pub fn convert(name: &str, text: &str) -> Result<Conversion, Error> {
    let mut sink = Sink::new(Source { name, text });
    let converted = convert_into(&mut sink);
    let has_errors = sink.has_errors();
    let diagnostics = sink.finish();
    match converted {
        Some((document, _)) if !has_errors => Ok(Conversion {
            document,
            warnings: diagnostics
                .into_iter()
                .filter(|d| d.severity == Severity::Warning)
                .collect(),
        }),
        _ => Err(Error::InvalidPolicy {
            file: name.to_string(),
            diagnostics,
        }),
    }
}

/// Rejects duplicate object keys anywhere in a JSON document, as containers/image does.
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NoDuplicates;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates)
            }
            fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates)
            }
            fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates)
            }
            fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates)
            }
            fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates)
            }
            fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
                Ok(NoDuplicates)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
                while seq.next_element::<NoDuplicates>()?.is_some() {}
                Ok(NoDuplicates)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
                let mut seen = HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("duplicate key {key:?}")));
                    }
                    map.next_value::<NoDuplicates>()?;
                }
                Ok(NoDuplicates)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Paths (in the containers file) where each generated key name came from, for diagnostics.
pub(crate) type Origins = BTreeMap<String, Vec<String>>;

enum Req {
    Accept,
    Reject,
    Sigstore(Signed),
}

struct Converter<'s, 'a> {
    sink: &'s mut Sink<'a>,
    keys: Vec<(KeySpec, String)>,
    origins: Origins,
}

pub(crate) fn convert_into(sink: &mut Sink<'_>) -> Option<(PolicyDocument, Origins)> {
    let text = sink.source.text;
    if let Err(e) = serde_json::from_str::<NoDuplicates>(text) {
        let code = if e.is_data() {
            "duplicate-key"
        } else {
            "syntax"
        };
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map(|(m, _)| m.to_string())
            .unwrap_or(message);
        sink.positioned(code, Some(e.line()), Some(e.column()), message);
        return None;
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            sink.positioned("syntax", Some(e.line()), Some(e.column()), e.to_string());
            return None;
        }
    };
    let Value::Object(top) = value else {
        sink.error(
            "invalid-value",
            &[],
            "a containers-policy.json must be a JSON object",
        );
        return None;
    };
    let mut c = Converter {
        sink,
        keys: Vec::new(),
        origins: Origins::new(),
    };
    for key in top.keys() {
        if key != "default" && key != "transports" {
            c.sink.error(
                "unknown-field",
                &[key],
                format!("unknown field {key:?} (expected `default` or `transports`)"),
            );
        }
    }
    let global_default = match top.get("default") {
        None => {
            c.sink.error(
                "missing-field",
                &[],
                "containers-policy.json needs a `default` requirement list",
            );
            None
        }
        Some(list) => c.requirement_list(&["default".to_string()], list),
    };
    let mut docker_default = None;
    let mut scopes = BTreeMap::new();
    match top.get("transports") {
        None | Some(Value::Null) => {}
        Some(Value::Object(transports)) => {
            for (transport, scope_map) in transports {
                let Value::Object(scope_map) = scope_map else {
                    c.sink.error(
                        "invalid-value",
                        &["transports", transport],
                        format!("transport {transport:?} must map scopes to requirement lists"),
                    );
                    continue;
                };
                if transport != "docker" {
                    c.sink.warn(
                        "transport-ignored",
                        &["transports", transport],
                        format!("transport {transport:?} is validated but ignored: Signet verifies registry (docker) images only"),
                    );
                }
                for (scope, list) in scope_map {
                    let path = vec!["transports".to_string(), transport.clone(), scope.clone()];
                    let reqs = c.requirement_list(&path, list);
                    if transport != "docker" {
                        continue;
                    }
                    let Some(reqs) = reqs else { continue };
                    if scope.is_empty() {
                        docker_default = Some(reqs);
                        continue;
                    }
                    if !scope_can_match(scope) {
                        c.sink.warn(
                            "scope-never-matches",
                            &["transports", transport, scope],
                            format!("docker scope {scope:?} is not a reference, repository, namespace, host[:port] or *.domain, so containers/image never matches it; dropped"),
                        );
                        continue;
                    }
                    scopes.insert(scope.clone(), reqs);
                }
            }
        }
        Some(_) => {
            c.sink.error(
                "invalid-value",
                &["transports"],
                "`transports` must be an object",
            );
        }
    }
    let default = docker_default.or(global_default)?;
    let mut doc = PolicyDocument {
        version: Some(1),
        mode: None,
        keys: StrictMap::default(),
        default: Some(default),
        scopes: StrictMap(scopes),
    };
    for (spec, name) in c.keys {
        doc.keys.0.insert(name, spec);
    }
    Some((doc, c.origins))
}

/// containers/image compares scopes literally: one that is not a normalized reference, namespace,
/// host or `*.domain` never matches; in Signet such text might be read as a glob.
fn scope_can_match(scope: &str) -> bool {
    match Pattern::parse(scope) {
        Ok(p) => p.kind() != PatternKind::Glob,
        Err(_) => false,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Converter<'_, '_> {
    fn err(&mut self, code: &'static str, path: &[String], message: String) {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        self.sink.error(code, &p, message);
    }

    /// `value` as an object, or an `invalid-value` error at `path` saying `what` must be one.
    fn object<'v>(
        &mut self,
        path: &[String],
        what: &str,
        value: &'v Value,
    ) -> Option<&'v Map<String, Value>> {
        let Value::Object(obj) = value else {
            self.err(
                "invalid-value",
                path,
                format!("{what} must be an object, not {}", type_name(value)),
            );
            return None;
        };
        Some(obj)
    }

    fn requirement_list(
        &mut self,
        path: &[String],
        list: &Value,
    ) -> Option<document::Requirements> {
        let Value::Array(items) = list else {
            self.err(
                "invalid-value",
                path,
                format!(
                    "a requirement list must be an array, not {}",
                    type_name(list)
                ),
            );
            return None;
        };
        if items.is_empty() {
            self.err(
                "empty-requirements",
                path,
                "a requirement list must not be empty".to_string(),
            );
            return None;
        }
        let mut reqs = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let mut p = path.to_vec();
            p.push(format!("[{i}]"));
            match self.requirement(&p, item) {
                Some(r) => reqs.push(r),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let label = path.last().map(String::as_str).unwrap_or("default");
        let mut out = document::Requirements::default();
        if reqs.iter().any(|r| matches!(r, Req::Reject)) {
            out.reject = Some(if path.len() == 1 {
                "rejected by the containers-policy.json default".to_string()
            } else {
                format!("rejected by containers-policy.json scope {label:?}")
            });
            return Some(out);
        }
        let signed: Vec<Signed> = reqs
            .into_iter()
            .filter_map(|r| match r {
                Req::Sigstore(s) => Some(s),
                _ => None,
            })
            .collect();
        match signed.len() {
            0 => out.accept = Some(true),
            1 => out.signed = signed.into_iter().next().map(OneOrMany::One),
            _ => out.signed = Some(OneOrMany::Many(signed)),
        }
        Some(out)
    }

    fn check_fields(
        &mut self,
        path: &[String],
        obj: &Map<String, Value>,
        allowed: &[&str],
        what: &str,
    ) -> bool {
        let mut ok = true;
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                let mut p = path.to_vec();
                p.push(key.clone());
                self.err(
                    "unknown-field",
                    &p,
                    format!("unknown field {key:?} in {what}"),
                );
                ok = false;
            }
        }
        ok
    }

    fn requirement(&mut self, path: &[String], item: &Value) -> Option<Req> {
        let obj = self.object(path, "a requirement", item)?;
        let kind = match obj.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(other) => {
                self.err(
                    "invalid-value",
                    path,
                    format!(
                        "requirement `type` must be a string, not {}",
                        type_name(other)
                    ),
                );
                return None;
            }
            None => {
                self.err(
                    "missing-field",
                    path,
                    "requirement has no `type`".to_string(),
                );
                return None;
            }
        };
        let mut tpath = path.to_vec();
        tpath.push(kind.to_string());
        match kind {
            "insecureAcceptAnything" => self
                .check_fields(path, obj, &["type"], kind)
                .then_some(Req::Accept),
            "reject" => self
                .check_fields(path, obj, &["type"], kind)
                .then_some(Req::Reject),
            "signedBy" => {
                self.err(
                    "not-supported",
                    &tpath,
                    "not supported yet: signedBy (GPG signatures)".to_string(),
                );
                None
            }
            "signedBaseLayer" => {
                self.err(
                    "not-supported",
                    &tpath,
                    "not supported yet: signedBaseLayer".to_string(),
                );
                None
            }
            "sigstoreSigned" => self.sigstore(path, obj),
            other => {
                self.err(
                    "unknown-requirement",
                    &tpath,
                    format!("unknown policy requirement type {other:?}"),
                );
                None
            }
        }
    }

    fn sigstore(&mut self, path: &[String], obj: &Map<String, Value>) -> Option<Req> {
        const FIELDS: [&str; 12] = [
            "type",
            "keyPath",
            "keyPaths",
            "keyData",
            "keyDatas",
            "fulcio",
            "pki",
            "rekorPublicKeyPath",
            "rekorPublicKeyPaths",
            "rekorPublicKeyData",
            "rekorPublicKeyDatas",
            "signedIdentity",
        ];
        let mut ok = self.check_fields(path, obj, &FIELDS, "sigstoreSigned");
        let sources: Vec<&str> = [
            "keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki",
        ]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
        if sources.len() > 1 {
            self.err(
                "ambiguous-key-source",
                path,
                format!(
                    "sigstoreSigned sets {}; use exactly one",
                    sources.join(" and ")
                ),
            );
            ok = false;
        } else if sources.is_empty() {
            self.err(
                "missing-field",
                path,
                "sigstoreSigned needs one of keyPath, keyPaths, keyData, keyDatas, fulcio or pki"
                    .to_string(),
            );
            ok = false;
        }
        let rekor = self.rekor_keys(path, obj);
        let rekor_keys = match rekor {
            Some(list) => list,
            None => {
                ok = false;
                Vec::new()
            }
        };
        if obj.contains_key("fulcio") && rekor_keys.is_empty() && ok {
            let mut p = path.to_vec();
            p.push("fulcio".to_string());
            self.err(
                "rekor-keys-required",
                &p,
                "fulcio needs one of rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData or rekorPublicKeyDatas".to_string(),
            );
            ok = false;
        }
        let mut names = Vec::new();
        for (field, many) in [
            ("keyPath", false),
            ("keyPaths", true),
            ("keyData", false),
            ("keyDatas", true),
        ] {
            if let Some(v) = obj.get(field) {
                ok &= self.key_strings(path, field, v, many, &rekor_keys, &mut names);
            }
        }
        if let Some(v) = obj.get("fulcio") {
            match self.fulcio(path, v) {
                Some(fulcio) => {
                    let spec = KeySpec {
                        fulcio: Some(fulcio),
                        rekor_keys: rekor_keys.clone(),
                        ..KeySpec::default()
                    };
                    names.push(self.name_for(spec, "fulcio", path, "fulcio"));
                }
                None => ok = false,
            }
        }
        if let Some(v) = obj.get("pki") {
            match self.pki(path, v) {
                Some(pki) => {
                    let spec = KeySpec {
                        pki: Some(pki),
                        rekor_keys: rekor_keys.clone(),
                        ..KeySpec::default()
                    };
                    names.push(self.name_for(spec, "pki", path, "pki"));
                }
                None => ok = false,
            }
        }
        let identity = match obj.get("signedIdentity") {
            None => Some(Identity::MatchRepoDigestOrExact),
            Some(v) => {
                let mut p = path.to_vec();
                p.push("signedIdentity".to_string());
                self.identity(&p, v)
            }
        };
        let identity = identity?;
        if !ok {
            return None;
        }
        names.dedup();
        Some(Req::Sigstore(Signed {
            keys: names,
            threshold: None,
            required: Vec::new(),
            identity: Some(identity),
            annotations: BTreeMap::new(),
            // containers/image reads only simple-signing payloads (`.sig` layers): a bundle,
            // which signs no repository, never satisfies a containers-policy.json requirement.
            formats: Some(vec![SignatureFormat::Legacy]),
        }))
    }

    /// The name of the signer `spec`: the same spec twice is one signer.
    fn name_for(&mut self, spec: KeySpec, prefix: &str, path: &[String], field: &str) -> String {
        if let Some((_, name)) = self.keys.iter().find(|(k, _)| *k == spec) {
            return name.clone();
        }
        let same_kind = self
            .keys
            .iter()
            .filter(|(_, n)| n.starts_with(&format!("{prefix}-")))
            .count();
        let name = format!("{prefix}-{}", same_kind + 1);
        self.keys.push((spec, name.clone()));
        let mut origin = path.to_vec();
        origin.push(field.to_string());
        self.origins.insert(name.clone(), origin);
        name
    }

    /// A base64 `…Data` value decoded to PEM text.
    fn pem_data(&mut self, path: &[String], field: &str, value: &str) -> Option<String> {
        let decoded = base64::engine::general_purpose::STANDARD.decode(value.as_bytes());
        match decoded.ok().and_then(|b| String::from_utf8(b).ok()) {
            Some(pem) if !pem.trim().is_empty() => Some(pem),
            _ => {
                let mut p = path.to_vec();
                p.push(field.to_string());
                self.err(
                    "material-invalid",
                    &p,
                    format!("{field} is not base64 of a PEM text"),
                );
                None
            }
        }
    }

    /// `<base>Path` / `<base>Data` in `obj`: at most one (exactly one when `required`).
    /// `Some(None)` when neither is set and that is allowed; `None` on an error.
    fn path_or_data(
        &mut self,
        path: &[String],
        obj: &Map<String, Value>,
        base: &str,
        required: bool,
    ) -> Option<Option<MaterialSpec>> {
        let path_field = format!("{base}Path");
        let data_field = format!("{base}Data");
        let string = |c: &mut Self, field: &str| -> Option<Option<String>> {
            match obj.get(field) {
                None => Some(None),
                Some(Value::String(s)) if !s.is_empty() => Some(Some(s.clone())),
                Some(other) => {
                    let mut p = path.to_vec();
                    p.push(field.to_string());
                    c.err(
                        "invalid-value",
                        &p,
                        format!(
                            "{field} must be a non-empty string, not {}",
                            type_name(other)
                        ),
                    );
                    None
                }
            }
        };
        let file = string(self, &path_field)?;
        let data = string(self, &data_field)?;
        match (file, data) {
            (Some(_), Some(_)) => {
                self.err(
                    "ambiguous-key-source",
                    path,
                    format!("both {path_field} and {data_field} are set; use one"),
                );
                None
            }
            (Some(file), None) => Some(Some(MaterialSpec {
                path: Some(file),
                pem: None,
            })),
            (None, Some(data)) => {
                let pem = self.pem_data(path, &data_field, &data)?;
                Some(Some(MaterialSpec {
                    path: None,
                    pem: Some(pem),
                }))
            }
            (None, None) if required => {
                self.err(
                    "missing-field",
                    path,
                    format!("one of {path_field} and {data_field} is required"),
                );
                None
            }
            (None, None) => Some(None),
        }
    }

    /// `rekorPublicKeyPath`, `…Paths`, `…Data`, `…Datas`: at most one of the four.
    fn rekor_keys(
        &mut self,
        path: &[String],
        obj: &Map<String, Value>,
    ) -> Option<Vec<MaterialSpec>> {
        const REKOR: [&str; 4] = [
            "rekorPublicKeyPath",
            "rekorPublicKeyPaths",
            "rekorPublicKeyData",
            "rekorPublicKeyDatas",
        ];
        let set: Vec<&str> = REKOR.into_iter().filter(|f| obj.contains_key(*f)).collect();
        if set.len() > 1 {
            self.err(
                "ambiguous-key-source",
                path,
                format!("sigstoreSigned sets {}; use at most one", set.join(" and ")),
            );
            return None;
        }
        let Some(field) = set.first().copied() else {
            return Some(Vec::new());
        };
        let mut p = path.to_vec();
        p.push(field.to_string());
        let value = obj.get(field).unwrap_or(&Value::Null);
        let many = field.ends_with('s');
        let items: Vec<&Value> = match (many, value) {
            (false, v) => vec![v],
            (true, Value::Array(list)) if !list.is_empty() => list.iter().collect(),
            (true, _) => {
                self.err(
                    "invalid-value",
                    &p,
                    format!("{field} must be a non-empty array of strings"),
                );
                return None;
            }
        };
        let mut out = Vec::new();
        for item in items {
            let s = match item {
                Value::String(s) if !s.is_empty() => s,
                other => {
                    self.err(
                        "invalid-value",
                        &p,
                        format!(
                            "{field} entries must be non-empty strings, not {}",
                            type_name(other)
                        ),
                    );
                    return None;
                }
            };
            let spec = if field.starts_with("rekorPublicKeyData") {
                MaterialSpec {
                    path: None,
                    pem: Some(self.pem_data(path, field, s)?),
                }
            } else {
                MaterialSpec {
                    path: Some(s.clone()),
                    pem: None,
                }
            };
            if !out.contains(&spec) {
                out.push(spec);
            }
        }
        Some(out)
    }

    fn sub_object<'v>(
        &mut self,
        path: &[String],
        field: &str,
        value: &'v Value,
        allowed: &[&str],
    ) -> Option<(Vec<String>, &'v Map<String, Value>)> {
        let mut p = path.to_vec();
        p.push(field.to_string());
        let obj = self.object(&p, field, value)?;
        self.check_fields(&p, obj, allowed, field)
            .then_some((p, obj))
    }

    fn string_member(
        &mut self,
        path: &[String],
        obj: &Map<String, Value>,
        field: &str,
    ) -> Option<Option<String>> {
        match obj.get(field) {
            None => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(other) => {
                let mut p = path.to_vec();
                p.push(field.to_string());
                self.err(
                    "invalid-value",
                    &p,
                    format!("{field} must be a string, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// containers/image's `fulcio`: `caPath` or `caData`, `oidcIssuer` and `subjectEmail` (both
    /// required).
    fn fulcio(&mut self, path: &[String], value: &Value) -> Option<FulcioSpec> {
        let (p, obj) = self.sub_object(
            path,
            "fulcio",
            value,
            &["caPath", "caData", "oidcIssuer", "subjectEmail"],
        )?;
        let ca = self.path_or_data(&p, obj, "ca", true);
        let issuer = self.string_member(&p, obj, "oidcIssuer");
        let email = self.string_member(&p, obj, "subjectEmail");
        let (Some(Some(ca)), Some(issuer), Some(email)) = (ca, issuer, email) else {
            return None;
        };
        let mut ok = true;
        for (field, v) in [("oidcIssuer", &issuer), ("subjectEmail", &email)] {
            if v.as_deref().unwrap_or_default().is_empty() {
                self.err(
                    "missing-field",
                    &p,
                    format!("fulcio needs a non-empty {field}"),
                );
                ok = false;
            }
        }
        ok.then(|| FulcioSpec {
            ca,
            oidc_issuer: issuer.unwrap_or_default(),
            subject_email: email.unwrap_or_default(),
        })
    }

    /// containers/image's `pki`: `caRootsPath` or `caRootsData`; optionally `caIntermediatesPath`
    /// or `caIntermediatesData`; at least one of `subjectEmail` and `subjectHostname`.
    fn pki(&mut self, path: &[String], value: &Value) -> Option<PkiSpec> {
        let (p, obj) = self.sub_object(
            path,
            "pki",
            value,
            &[
                "caRootsPath",
                "caRootsData",
                "caIntermediatesPath",
                "caIntermediatesData",
                "subjectEmail",
                "subjectHostname",
            ],
        )?;
        let roots = self.path_or_data(&p, obj, "caRoots", true);
        let intermediates = self.path_or_data(&p, obj, "caIntermediates", false);
        let email = self.string_member(&p, obj, "subjectEmail");
        let hostname = self.string_member(&p, obj, "subjectHostname");
        let (Some(Some(roots)), Some(intermediates), Some(email), Some(hostname)) =
            (roots, intermediates, email, hostname)
        else {
            return None;
        };
        let email = email.filter(|s| !s.is_empty());
        let hostname = hostname.filter(|s| !s.is_empty());
        if email.is_none() && hostname.is_none() {
            self.err(
                "missing-field",
                &p,
                "pki needs at least one of subjectEmail and subjectHostname".to_string(),
            );
            return None;
        }
        Some(PkiSpec {
            ca_roots: roots,
            ca_intermediates: intermediates,
            subject_email: email,
            subject_hostname: hostname,
        })
    }

    fn key_strings(
        &mut self,
        path: &[String],
        field: &str,
        value: &Value,
        many: bool,
        rekor_keys: &[MaterialSpec],
        names: &mut Vec<String>,
    ) -> bool {
        let mut p = path.to_vec();
        p.push(field.to_string());
        let items: Vec<&Value> = match (many, value) {
            (false, v) => vec![v],
            (true, Value::Array(list)) if !list.is_empty() => list.iter().collect(),
            (true, _) => {
                self.err(
                    "invalid-value",
                    &p,
                    format!("{field} must be a non-empty array of strings"),
                );
                return false;
            }
        };
        let mut ok = true;
        for item in items {
            let Value::String(s) = item else {
                self.err(
                    "invalid-value",
                    &p,
                    format!("{field} entries must be strings, not {}", type_name(item)),
                );
                ok = false;
                continue;
            };
            if s.is_empty() {
                self.err("invalid-value", &p, format!("{field} must not be empty"));
                ok = false;
                continue;
            }
            let is_data = field.starts_with("keyData");
            let spec = if is_data {
                let decoded = base64::engine::general_purpose::STANDARD.decode(s.as_bytes());
                match decoded.ok().and_then(|b| String::from_utf8(b).ok()) {
                    Some(pem) => KeySpec {
                        pem: Some(pem),
                        rekor_keys: rekor_keys.to_vec(),
                        ..KeySpec::default()
                    },
                    None => {
                        self.err(
                            "key-invalid-pem",
                            &p,
                            format!("{field} is not base64 of a PEM text"),
                        );
                        ok = false;
                        continue;
                    }
                }
            } else {
                KeySpec {
                    path: Some(s.clone()),
                    rekor_keys: rekor_keys.to_vec(),
                    ..KeySpec::default()
                }
            };
            let name = match self.keys.iter().find(|(k, _)| *k == spec) {
                Some((_, name)) => name.clone(),
                None => {
                    let name = format!("key-{}", self.keys.len() + 1);
                    self.keys.push((spec, name.clone()));
                    let mut origin = p.clone();
                    if !is_data {
                        origin.push(s.clone());
                    }
                    self.origins.insert(name.clone(), origin);
                    name
                }
            };
            names.push(name);
        }
        ok
    }

    fn identity(&mut self, path: &[String], value: &Value) -> Option<Identity> {
        let obj = self.object(path, "signedIdentity", value)?;
        let kind = match obj.get("type") {
            Some(Value::String(t)) => t.clone(),
            _ => {
                self.err(
                    "missing-field",
                    path,
                    "signedIdentity has no string `type`".to_string(),
                );
                return None;
            }
        };
        let string_field = |c: &mut Self, name: &str| -> Option<String> {
            match obj.get(name) {
                Some(Value::String(s)) => Some(s.clone()),
                _ => {
                    let mut p = path.to_vec();
                    p.push(kind.clone());
                    c.err(
                        "missing-field",
                        &p,
                        format!("{kind} needs a string `{name}`"),
                    );
                    None
                }
            }
        };
        let identity = match kind.as_str() {
            "matchExact" => self
                .check_fields(path, obj, &["type"], &kind)
                .then_some(Identity::MatchExact),
            "matchRepoDigestOrExact" => self
                .check_fields(path, obj, &["type"], &kind)
                .then_some(Identity::MatchRepoDigestOrExact),
            "matchRepository" => self
                .check_fields(path, obj, &["type"], &kind)
                .then_some(Identity::MatchRepository),
            "exactReference" => {
                let fields_ok = self.check_fields(path, obj, &["type", "dockerReference"], &kind);
                let reference = string_field(self, "dockerReference")?;
                fields_ok.then_some(Identity::ExactReference { reference })
            }
            "exactRepository" => {
                let fields_ok = self.check_fields(path, obj, &["type", "dockerRepository"], &kind);
                let repository = string_field(self, "dockerRepository")?;
                fields_ok.then_some(Identity::ExactRepository { repository })
            }
            "remapIdentity" => {
                let fields_ok =
                    self.check_fields(path, obj, &["type", "prefix", "signedPrefix"], &kind);
                let prefix = string_field(self, "prefix")?;
                let signed_prefix = string_field(self, "signedPrefix")?;
                fields_ok.then_some(Identity::RemapIdentity {
                    prefix,
                    signed_prefix,
                })
            }
            other => {
                let mut p = path.to_vec();
                p.push(other.to_string());
                self.err(
                    "unknown-identity-rule",
                    &p,
                    format!("unknown signedIdentity type {other:?}"),
                );
                None
            }
        }?;
        if let Err(reason) = IdentityRule::from_document(&identity) {
            self.err("invalid-identity", path, reason);
            return None;
        }
        Some(identity)
    }
}
