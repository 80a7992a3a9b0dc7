//! The validated policy: loading a document (Signet YAML/JSON or containers-policy.json, told apart
//! by content), checking it with every diagnostic collected, and the scope index used to select
//! requirements for a reference.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use signet_oci::Reference;

use crate::config::{parse_cache_ttl, parse_duration, parse_rfc3339, PlatformSpec};
use crate::diagnostic::{Diagnostic, Severity, Sink, Source};
use crate::document::{self, DigestRule, Mode, PolicyDocument};
use crate::identity::IdentityRule;
use crate::key::{KeyId, PublicKey, TrustedKey};
use crate::pattern::{Pattern, ScopeIndex};
use crate::signer::{CertificateSigner, SignerOptions};
use crate::tree::{self, Node};
use crate::trust::{Material, SigstoreRoot, TrustSource};
use crate::verdict::SignatureFormat;
use crate::Error;

/// Largest policy document accepted.
pub const MAX_POLICY_LEN: usize = 4 * 1024 * 1024;

/// Reads a key file named in a policy: gets the path exactly as written and returns the bytes or a
/// message. The caller decides how relative paths resolve (normally against the policy's folder).
pub type KeyLoader<'a> = &'a dyn Fn(&str) -> Result<Vec<u8>, String>;

/// Which language a policy document is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Signet policy in YAML.
    SignetYaml,
    /// Signet policy in JSON.
    SignetJson,
    /// containers-policy.json (podman, skopeo, CRI-O).
    ContainersPolicy,
}

/// Tell the formats apart by content: a JSON object whose `default` is an array, or that has
/// `transports`, is a containers-policy.json; other JSON is a Signet policy in JSON; anything else
/// is YAML.
pub fn detect_format(text: &str) -> Format {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if !trimmed.starts_with('{') {
        return Format::SignetYaml;
    }
    match serde_json::from_str::<serde_json::Value>(trimmed) {
        Ok(serde_json::Value::Object(map))
            if map.get("default").is_some_and(|d| d.is_array())
                || map.contains_key("transports") =>
        {
            Format::ContainersPolicy
        }
        _ => Format::SignetJson,
    }
}

/// A policy ready for evaluation.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) keys: BTreeMap<String, TrustedKey>,
    /// Certificate signers (keyless, PKI, Fulcio), in the same namespace as `keys`.
    pub(crate) certificates: BTreeMap<String, CertificateSigner>,
    /// `rekorKeys` and `formats` of every signer that sets them.
    pub(crate) options: BTreeMap<String, SignerOptions>,
    pub(crate) default: Requirements,
    pub(crate) default_is_builtin: bool,
    pub(crate) patterns: Vec<Pattern>,
    pub(crate) scopes: Vec<Requirements>,
    pub(crate) index: ScopeIndex,
    pub(crate) format: Format,
}

/// What a policy says about an image from its name alone ([`Policy::prejudge`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prejudgement {
    /// Evidence (signatures, configuration) could make the policy allow the image: fetch it and
    /// evaluate.
    NeedsEvidence,
    /// The scope that applies rejects every image, whatever evidence there is.
    Rejected {
        /// The scope's pattern, or the default's label.
        scope: String,
        /// The scope's rejection message.
        message: String,
        /// How the scope's denials are applied.
        mode: Mode,
    },
}

/// A loaded policy plus the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The policy.
    pub policy: Policy,
    /// Warning-level diagnostics (errors make loading fail).
    pub warnings: Vec<Diagnostic>,
}

/// Requirements for one scope (or the default), validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirements {
    pub(crate) signatures: SignatureRule,
    pub(crate) digest_pinned: bool,
    pub(crate) config: ConfigRules,
    pub(crate) mode: Mode,
    /// `cacheTtl` in seconds: how long a verdict in this scope may be reused.
    pub(crate) cache_ttl: Option<u64>,
    /// Attestation requirements (`attestation.rs`).
    pub(crate) attestations: Vec<crate::attestation::AttestationRule>,
}

/// How signatures are judged.
#[derive(Debug, Clone, PartialEq)]
pub enum SignatureRule {
    /// Every image is rejected with this message.
    Reject(String),
    /// Every image is accepted as far as signatures go.
    Accept,
    /// Every listed rule must hold.
    Signed(Vec<SignedRule>),
}

/// One `signed` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedRule {
    pub(crate) keys: Vec<String>,
    pub(crate) threshold: usize,
    pub(crate) required: Vec<String>,
    pub(crate) identity: IdentityRule,
    /// Whether `identity` was written out: then a signature that signs no reference (a bundle)
    /// cannot satisfy it.
    pub(crate) identity_explicit: bool,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) formats: Option<Vec<SignatureFormat>>,
}

/// Image configuration checks, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigRules {
    pub(crate) forbid_root_user: bool,
    pub(crate) forbid_secrets: bool,
    pub(crate) max_age: Option<(u64, String)>,
    pub(crate) platforms: Option<(Vec<PlatformSpec>, Vec<String>)>,
}

impl ConfigRules {
    /// Whether any check is on (then the verifier must fetch config blobs).
    pub fn any(&self) -> bool {
        self.forbid_root_user
            || self.forbid_secrets
            || self.max_age.is_some()
            || self.platforms.is_some()
    }
}

impl Policy {
    /// Load a policy in any supported format (see [`detect_format`]). `name` is used in
    /// diagnostics. Key files are read through `loader`. Fails with [`Error::InvalidPolicy`]
    /// holding every diagnostic when any is an error.
    pub fn load(name: &str, text: &str, loader: KeyLoader<'_>) -> Result<Loaded, Error> {
        let (policy, diagnostics) = load_inner(name, text, loader);
        loaded_or_invalid(name.to_string(), policy, diagnostics)
    }

    /// Build a policy from a Signet document (for example the output of
    /// [`crate::containers::convert`]). `source` is only used to place diagnostics.
    pub fn from_document(
        doc: &PolicyDocument,
        source: Source<'_>,
        loader: KeyLoader<'_>,
    ) -> Result<Loaded, Error> {
        let name = source.name.to_string();
        let mut sink = Sink::new(source);
        let policy = build(doc, &mut sink, loader, &BTreeMap::new(), Format::SignetYaml);
        loaded_or_invalid(name, policy, sink.finish())
    }

    /// The policy `signet verify --key` applies: every image must carry at least one signature by
    /// any of `keys` whose signed identity `identity` accepts and whose payload carries
    /// `annotations`. Built in memory so that the command line and policy files are judged by the
    /// one engine ([`crate::evaluate`]). The keys are named `key-1`, `key-2`, … in findings.
    pub fn for_keys(
        keys: &[signet_sign::keys::PublicKey],
        identity: IdentityRule,
        annotations: BTreeMap<String, String>,
    ) -> Result<Policy, Error> {
        let mut trusted = BTreeMap::new();
        for (i, key) in keys.iter().enumerate() {
            let name = format!("key-{}", i + 1);
            // The policy's key type is built from PEM only; a key that was already parsed
            // round-trips, and anything else is refused rather than skipped.
            let key = PublicKey::from_pem(key.to_pem().as_bytes()).map_err(|reason| {
                Error::InvalidPolicy {
                    file: "--key".into(),
                    diagnostics: vec![Diagnostic {
                        severity: Severity::Error,
                        code: "key-invalid-pem",
                        message: format!("key {name:?}: {reason}"),
                        file: "--key".into(),
                        line: None,
                        column: None,
                        path: String::new(),
                    }],
                }
            })?;
            trusted.insert(
                name.clone(),
                TrustedKey {
                    name,
                    key,
                    not_after: None,
                },
            );
        }
        let rule = SignedRule {
            keys: trusted.keys().cloned().collect(),
            threshold: 1,
            required: Vec::new(),
            identity,
            // The command line always names an identity rule: a signature that signs no
            // reference (a bundle) cannot meet it.
            identity_explicit: true,
            annotations,
            formats: None,
        };
        Ok(Policy {
            keys: trusted,
            certificates: BTreeMap::new(),
            options: BTreeMap::new(),
            default: Requirements {
                signatures: SignatureRule::Signed(vec![rule]),
                digest_pinned: false,
                config: ConfigRules::default(),
                mode: Mode::Enforce,
                cache_ttl: None,
                attestations: Vec::new(),
            },
            default_is_builtin: false,
            patterns: Vec::new(),
            scopes: Vec::new(),
            index: ScopeIndex::build(&[]),
            format: Format::SignetYaml,
        })
    }

    /// Which format the policy was written in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Every key the policy trusts, by name; the verifier tries these on each signature.
    pub fn trusted_keys(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.values()
    }

    /// Every certificate signer (keyless, PKI, Fulcio), by name.
    pub fn certificate_signers(&self) -> impl Iterator<Item = &CertificateSigner> {
        self.certificates.values()
    }

    /// Every trust source a certificate signer names, once each: the verifier loads each, checks
    /// every certificate signature under each, and reports the sources it verified under in
    /// [`crate::CertificateEvidence::trust`].
    pub fn trust_sources(&self) -> Vec<&TrustSource> {
        let mut out: Vec<&TrustSource> = self.certificates.values().map(|c| &c.trust).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every Rekor public key a signer names (`rekorKeys`), once each: the verifier checks a
    /// signature's Rekor entry with each and reports the one that verified in
    /// [`crate::TlogEvidence::log`].
    pub fn rekor_keys(&self) -> Vec<&Material> {
        let mut out: Vec<&Material> = self
            .options
            .values()
            .flat_map(|o| o.rekor_keys.iter())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every file of trust material the policy names (CA certificates, Rekor keys, trusted
    /// roots), paths as written, once each. Key files are not included: the policy read those
    /// through its loader. The verifier reads these (bounded) and hashes their content into the
    /// policy's identity, so a changed CA file is a changed policy.
    pub fn trust_files(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for source in self.trust_sources() {
            match source {
                TrustSource::Sigstore(SigstoreRoot::File(path)) => out.push(path.as_str()),
                TrustSource::Sigstore(_) => {}
                TrustSource::Authority(ca) => {
                    for m in std::iter::once(&ca.roots).chain(ca.intermediates.iter()) {
                        if let Material::Path(path) = m {
                            out.push(path.as_str());
                        }
                    }
                }
            }
        }
        for m in self.rekor_keys() {
            if let Material::Path(path) = m {
                out.push(path.as_str());
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The key with this id, if trusted under any name.
    pub fn key_by_id(&self, id: &KeyId) -> Option<&TrustedKey> {
        self.keys.values().find(|k| k.key.id() == id)
    }

    /// Whether the requirements for `reference` include configuration checks, so the verifier
    /// only fetches config blobs when they matter.
    pub fn needs_config(&self, reference: &Reference) -> bool {
        self.requirements_for(reference).1.config.any()
    }

    /// Whether the requirements for `reference` include attestation requirements, so the
    /// verifier only reads attestations when they matter.
    pub fn needs_attestations(&self, reference: &Reference) -> bool {
        !self.requirements_for(reference).1.attestations.is_empty()
    }

    /// Whether a signature stored in `format` can count for `reference`: some `signed` entry of
    /// the scope that applies accepts the format (its `formats`) and names a signer that does
    /// (the signer's `formats`). A scope that accepts anything, or rejects everything, counts no
    /// signature. The verifier reads no bundle referrers for signatures where they cannot count.
    pub fn signatures_accept(&self, reference: &Reference, format: SignatureFormat) -> bool {
        match &self.requirements_for(reference).1.signatures {
            SignatureRule::Signed(rules) => rules.iter().any(|r| self.rule_accepts(r, format)),
            SignatureRule::Accept | SignatureRule::Reject(_) => false,
        }
    }

    /// Whether an attestation stored in `format` (legacy `.att` or bundle referrer) can count for
    /// an attestation requirement of the scope that applies to `reference` (the signers' `formats`).
    pub fn attestations_accept(&self, reference: &Reference, format: SignatureFormat) -> bool {
        self.requirements_for(reference)
            .1
            .attestations
            .iter()
            .any(|a| self.rule_accepts(&a.signed, format))
    }

    fn rule_accepts(&self, rule: &SignedRule, format: SignatureFormat) -> bool {
        let accepts =
            |formats: Option<&Vec<SignatureFormat>>| formats.is_none_or(|f| f.contains(&format));
        accepts(rule.formats.as_ref())
            && rule
                .keys
                .iter()
                .any(|name| accepts(self.options.get(name).and_then(|o| o.formats.as_ref())))
    }

    /// Whether an attestation condition for `reference` reads the image config as JSON.
    pub fn needs_config_json(&self, reference: &Reference) -> bool {
        self.requirements_for(reference)
            .1
            .attestations
            .iter()
            .any(|r| r.uses_config())
    }

    /// Index of the most specific scope matching `reference`, or `None` for the default. Equally
    /// specific matches (which lint reports) are broken by the smaller pattern text, so the result
    /// is deterministic.
    pub fn select(&self, reference: &Reference) -> Option<usize> {
        let mut best: Option<usize> = None;
        self.index.candidates(&self.patterns, reference, |i| {
            best = Some(match best {
                None => i,
                Some(b) => {
                    if self.beats(i, b) {
                        i
                    } else {
                        b
                    }
                }
            });
        });
        best
    }

    /// Whether scope `a` wins over scope `b`.
    pub(crate) fn beats(&self, a: usize, b: usize) -> bool {
        let (pa, pb) = (&self.patterns[a], &self.patterns[b]);
        match pa.specificity().cmp(&pb.specificity()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => pa.as_str() < pb.as_str(),
        }
    }

    /// The label and requirements that apply to `reference`.
    pub(crate) fn requirements_for(&self, reference: &Reference) -> (String, &Requirements) {
        match self.select(reference) {
            Some(i) => (self.patterns[i].as_str().to_string(), &self.scopes[i]),
            None => (self.default_label().to_string(), &self.default),
        }
    }

    pub(crate) fn default_label(&self) -> &'static str {
        if self.default_is_builtin {
            "default (built-in reject)"
        } else {
            "default"
        }
    }

    /// Number of scopes.
    pub fn scope_count(&self) -> usize {
        self.patterns.len()
    }

    /// The pattern of scope `index`.
    pub fn scope_pattern(&self, index: usize) -> Option<&str> {
        self.patterns.get(index).map(Pattern::as_str)
    }

    /// What the policy says about `reference` from its name alone, before any evidence is
    /// fetched: whether the scope that applies (or the default) rejects every image whatever its
    /// signatures. The gate asks this before it contacts a registry, so that a name the policy
    /// can never allow costs no request (and cannot make the gate fetch an arbitrary host).
    pub fn prejudge(&self, reference: &Reference) -> Prejudgement {
        let (scope, req) = self.requirements_for(reference);
        match &req.signatures {
            SignatureRule::Reject(message) => Prejudgement::Rejected {
                scope,
                message: message.clone(),
                mode: req.mode,
            },
            SignatureRule::Accept | SignatureRule::Signed(_) => Prejudgement::NeedsEvidence,
        }
    }
}

/// Check a policy without keeping it: every diagnostic, errors and warnings, in source order.
pub fn lint(name: &str, text: &str, loader: KeyLoader<'_>) -> Vec<Diagnostic> {
    load_inner(name, text, loader).1
}

fn load_inner(name: &str, text: &str, loader: KeyLoader<'_>) -> (Option<Policy>, Vec<Diagnostic>) {
    let mut sink = Sink::new(Source { name, text });
    if text.len() > MAX_POLICY_LEN {
        sink.error(
            "too-large",
            &[],
            format!(
                "policy is {} bytes, over the {MAX_POLICY_LEN}-byte limit",
                text.len()
            ),
        );
        return (None, sink.finish());
    }
    let format = detect_format(text);
    let policy = match format {
        Format::ContainersPolicy => {
            let converted = crate::containers::convert_into(&mut sink);
            match converted {
                Some((doc, origins)) if !sink.has_errors() => {
                    build(&doc, &mut sink, loader, &origins, format)
                }
                _ => None,
            }
        }
        Format::SignetYaml | Format::SignetJson => match parse_document_into(&mut sink, format) {
            Some(doc) => build(&doc, &mut sink, loader, &BTreeMap::new(), format),
            None => None,
        },
    };
    (policy, sink.finish())
}

/// A policy when there is one and no diagnostic is an error; otherwise every diagnostic.
fn loaded_or_invalid(
    file: String,
    policy: Option<Policy>,
    diagnostics: Vec<Diagnostic>,
) -> Result<Loaded, Error> {
    match policy {
        Some(policy) if !diagnostics.iter().any(|d| d.severity == Severity::Error) => Ok(Loaded {
            policy,
            warnings: diagnostics,
        }),
        _ => Err(Error::InvalidPolicy { file, diagnostics }),
    }
}

/// Deepest `[`/`{` nesting a YAML policy may have (real policies use two or three).
const MAX_FLOW_NESTING: usize = 64;

/// The 1-based line and column where flow collections (`[`, `{`) first nest deeper than `max`,
/// skipping quoted strings and comments.
fn flow_nesting_beyond(text: &str, max: usize) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    // A quote opens a quoted scalar only where a scalar can start (an apostrophe inside a plain
    // scalar, as in `reject: don't`, does not).
    let mut previous = ' ';
    for c in text.chars() {
        column += 1;
        let before = std::mem::replace(&mut previous, c);
        if c == '\n' {
            line += 1;
            column = 0;
            comment = false;
            continue;
        }
        if comment {
            continue;
        }
        let scalar_start = before.is_whitespace() || matches!(before, ':' | '[' | '{' | ',' | '-');
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if scalar_start => quote = Some(c),
            (None, '#') if before.is_whitespace() => comment = true,
            (None, '[' | '{') => {
                depth += 1;
                if depth > max {
                    return Some((line, column));
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Parse a Signet policy document (YAML or JSON) without validating it further.
pub fn parse_document(name: &str, text: &str) -> Result<PolicyDocument, Vec<Diagnostic>> {
    let mut sink = Sink::new(Source { name, text });
    let format = detect_format(text);
    match parse_document_into(&mut sink, format) {
        Some(doc) => Ok(doc),
        None => Err(sink.finish()),
    }
}

fn parse_document_into(sink: &mut Sink<'_>, format: Format) -> Option<PolicyDocument> {
    let text = sink.source.text;
    // Codes come from structure, never from the wording of a parser's message: text that does
    // not make a value tree is `syntax`; then keys, fields and types are checked on the tree.
    let tree: Node = if format == Format::SignetJson {
        match serde_json::from_str::<Node>(text) {
            Ok(tree) => tree,
            Err(e) => {
                let message = strip_position(&e.to_string());
                sink.positioned("syntax", Some(e.line()), Some(e.column()), message);
                return None;
            }
        }
    } else if text.trim().is_empty() {
        return Some(PolicyDocument::default());
    } else if let Some((line, column)) = flow_nesting_beyond(text, MAX_FLOW_NESTING) {
        // The YAML parser is quadratic in flow nesting (`[[[[…`): refuse before it starts.
        sink.positioned(
            "too-deep",
            Some(line),
            Some(column),
            format!("brackets nested deeper than {MAX_FLOW_NESTING} levels"),
        );
        return None;
    } else {
        match serde_yaml_ng::from_str::<Node>(text) {
            Ok(tree) => tree,
            Err(e) => {
                let (line, column) = match e.location() {
                    Some(loc) => (Some(loc.line()), Some(loc.column())),
                    None => (None, None),
                };
                sink.positioned("syntax", line, column, strip_position(&e.to_string()));
                return None;
            }
        }
    };
    // A document of nothing but comments is an empty policy.
    let tree = match tree {
        Node::Null => Node::Map(Vec::new()),
        other => other,
    };
    let problems = tree::key_problems(&tree);
    if !problems.is_empty() {
        for (code, path, message) in problems {
            sink.error(code, &at(&path), message);
        }
        return None;
    }
    let (result, unknown) = tree::document(&tree);
    for (path, field, expected) in &unknown {
        let mut p: Vec<&str> = path.iter().map(String::as_str).collect();
        p.push(field);
        sink.error(
            "unknown-field",
            &p,
            format!("unknown field `{field}`, expected one of {expected}"),
        );
    }
    match result {
        Ok(doc) => Some(doc),
        Err(e) => {
            let path = at(&e.path);
            match &e.kind {
                // Placed at the name as written, not at the field holding it.
                tree::Kind::UnknownVariant { variant, .. } => {
                    sink.error_at_value(e.code(), &path, variant, e.message.clone())
                }
                _ => sink.error(e.code(), &path, e.message.clone()),
            }
            None
        }
    }
}

/// Parsers append " at line L column C"; the diagnostic carries the position separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

type Origins = BTreeMap<String, Vec<String>>;

fn key_path<'a>(origins: &'a Origins, name: &'a str, field: &'a str) -> Vec<&'a str> {
    match origins.get(name) {
        Some(path) => path.iter().map(String::as_str).collect(),
        None => vec!["keys", name, field],
    }
}

pub(crate) fn build(
    doc: &PolicyDocument,
    sink: &mut Sink<'_>,
    loader: KeyLoader<'_>,
    origins: &Origins,
    format: Format,
) -> Option<Policy> {
    if let Some(v) = doc.version {
        if v != 1 {
            sink.error(
                "unsupported-version",
                &["version"],
                format!("policy version {v} is not supported; use 1"),
            );
        }
    }
    let global_mode = doc.mode.unwrap_or(Mode::Enforce);

    let mut keys = BTreeMap::new();
    let mut certificates = BTreeMap::new();
    let mut options = BTreeMap::new();
    let mut seen_ids: BTreeMap<KeyId, String> = BTreeMap::new();
    for (name, spec) in &doc.keys.0 {
        if name.is_empty() {
            sink.error("invalid-key-name", &["keys"], "key names must not be empty");
            continue;
        }
        let Some(kind) = crate::signer::signer_kind(name, spec, sink, origins) else {
            continue;
        };
        let not_after_early = match &spec.not_after {
            None => Ok(None),
            Some(text) => parse_rfc3339(text).map(Some),
        };
        let mut cx = crate::signer::Cx {
            sink: &mut *sink,
            origins,
            loader,
        };
        if let Some(o) = crate::signer::options(name, spec, &kind, &mut cx) {
            if o != SignerOptions::default() {
                options.insert(name.clone(), o);
            }
        }
        if kind != crate::signer::Kind::Key {
            if let Some(mut signer) = crate::signer::certificate(name, spec, &kind, &mut cx) {
                match not_after_early {
                    Ok(t) => signer.not_after = t,
                    Err(reason) => sink.error(
                        "invalid-date",
                        &["keys", name, "notAfter"],
                        format!("key {name:?} notAfter: {reason}"),
                    ),
                }
                certificates.insert(name.clone(), signer);
            }
            continue;
        }
        let pem = match (&spec.path, &spec.pem) {
            (Some(path), None) => match loader(path) {
                Ok(bytes) => Some(bytes),
                Err(reason) => {
                    sink.error(
                        "key-unreadable",
                        &key_path(origins, name, "path"),
                        format!("key {name:?}: cannot read {path:?}: {reason}"),
                    );
                    None
                }
            },
            (None, Some(pem)) => Some(pem.as_bytes().to_vec()),
            _ => {
                sink.error(
                    "key-source-invalid",
                    &key_path(origins, name, ""),
                    format!("key {name:?} must have exactly one of `path` and `pem`"),
                );
                None
            }
        };
        let not_after = match &spec.not_after {
            None => None,
            Some(text) => match parse_rfc3339(text) {
                Ok(t) => Some(t),
                Err(reason) => {
                    sink.error(
                        "invalid-date",
                        &["keys", name, "notAfter"],
                        format!("key {name:?} notAfter: {reason}"),
                    );
                    None
                }
            },
        };
        let Some(pem) = pem else { continue };
        let field = if spec.path.is_some() { "path" } else { "pem" };
        match PublicKey::from_pem(&pem) {
            Ok(key) => {
                if let Some(other) = seen_ids.get(key.id()) {
                    sink.warn(
                        "duplicate-key-material",
                        &key_path(origins, name, field),
                        format!("keys {other:?} and {name:?} are the same public key; they count as one signer"),
                    );
                } else {
                    seen_ids.insert(key.id().clone(), name.clone());
                }
                keys.insert(
                    name.clone(),
                    TrustedKey {
                        name: name.clone(),
                        key,
                        not_after,
                    },
                );
            }
            Err(reason) => sink.error(
                "key-invalid-pem",
                &key_path(origins, name, field),
                format!("key {name:?}: {reason}"),
            ),
        }
    }
    let key_names: BTreeSet<&str> = doc.keys.0.keys().map(String::as_str).collect();
    let mut used: BTreeSet<String> = BTreeSet::new();

    let default = match &doc.default {
        Some(req) => requirements(
            req,
            &["default"],
            sink,
            &keys,
            &key_names,
            &mut used,
            global_mode,
        ),
        None => Some(Requirements {
            signatures: SignatureRule::Reject(
                "no scope matches this image and the policy has no default".into(),
            ),
            digest_pinned: false,
            config: ConfigRules::default(),
            mode: global_mode,
            cache_ttl: None,
            attestations: Vec::new(),
        }),
    };

    let mut patterns = Vec::new();
    let mut scopes = Vec::new();
    let mut all_patterns = Vec::new();
    for (text, req) in &doc.scopes.0 {
        let pattern = match Pattern::parse(text) {
            Ok(p) => Some(p),
            Err(reason) => {
                sink.error(
                    "invalid-pattern",
                    &["scopes", text],
                    format!("scope {text:?}: {reason}"),
                );
                None
            }
        };
        if let Some(p) = &pattern {
            all_patterns.push(p.clone());
            if !p.looks_normalized() {
                sink.warn(
                    "pattern-not-normalized",
                    &["scopes", text],
                    format!("scope {text:?} does not start with a registry host; references are matched normalized (docker.io/library/busybox), so it never matches"),
                );
            }
        }
        let req = requirements(
            req,
            &["scopes", text],
            sink,
            &keys,
            &key_names,
            &mut used,
            global_mode,
        );
        if let (Some(p), Some(r)) = (pattern, req) {
            patterns.push(p);
            scopes.push(r);
        }
    }
    check_ties(&all_patterns, sink);
    for name in key_names {
        if !used.contains(name) {
            sink.warn(
                "unused-key",
                &["keys", name],
                format!("key {name:?} is not used by any requirement"),
            );
        }
    }
    let default = default?;
    if sink.has_errors() {
        return None;
    }
    let index = ScopeIndex::build(&patterns);
    Some(Policy {
        keys,
        certificates,
        options,
        default,
        default_is_builtin: doc.default.is_none(),
        patterns,
        scopes,
        index,
        format,
    })
}

/// Equally specific patterns that can match the same reference make the winner depend on an
/// arbitrary tie-break; refuse them.
fn check_ties(patterns: &[Pattern], sink: &mut Sink<'_>) {
    let mut groups: BTreeMap<(bool, usize, usize), Vec<&Pattern>> = BTreeMap::new();
    for p in patterns {
        let s = p.specificity();
        groups
            .entry((s.full_reference, s.literal, s.wildcards))
            .or_default()
            .push(p);
    }
    for group in groups.values() {
        for (i, a) in group.iter().enumerate() {
            for b in &group[i + 1..] {
                let trivially_disjoint =
                    a.kind() == b.kind() && !matches!(a.kind(), crate::pattern::PatternKind::Glob);
                if !trivially_disjoint && a.overlaps(b) {
                    let (first, second) = if a.as_str() < b.as_str() {
                        (a, b)
                    } else {
                        (b, a)
                    };
                    sink.error(
                        "tied-scopes",
                        &["scopes", second.as_str()],
                        format!(
                            "scopes {:?} and {:?} are equally specific and can match the same image; make one more specific",
                            first.as_str(),
                            second.as_str()
                        ),
                    );
                }
            }
        }
    }
}

fn at(p: &[String]) -> Vec<&str> {
    p.iter().map(String::as_str).collect()
}

fn requirements(
    req: &document::Requirements,
    base: &[&str],
    sink: &mut Sink<'_>,
    keys: &BTreeMap<String, TrustedKey>,
    key_names: &BTreeSet<&str>,
    used: &mut BTreeSet<String>,
    global_mode: Mode,
) -> Option<Requirements> {
    let path = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let label = base.last().copied().unwrap_or("default");
    let set = [
        req.reject.is_some(),
        req.accept.is_some(),
        req.signed.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    let mut ok = true;
    if set == 0 {
        sink.error(
            "missing-signature-rule",
            &at(&path(&[])),
            format!("{label:?} must set one of `reject`, `accept` or `signed`"),
        );
        ok = false;
    } else if set > 1 {
        sink.error(
            "conflicting-requirements",
            &at(&path(&[])),
            format!("{label:?} sets more than one of `reject`, `accept` and `signed`"),
        );
        ok = false;
    }
    if req.accept == Some(false) {
        sink.error(
            "invalid-value",
            &at(&path(&["accept"])),
            "`accept` can only be true; use `reject` or `signed`",
        );
        ok = false;
    }
    if req.accept == Some(true) {
        sink.warn(
            "accept-anything",
            &at(&path(&["accept"])),
            format!("{label:?} accepts any image without checking signatures"),
        );
    }
    let mut signed_rules = Vec::new();
    if let Some(signed) = &req.signed {
        let items = signed.items();
        if items.is_empty() {
            sink.error(
                "no-keys",
                &at(&path(&["signed"])),
                "`signed` is an empty list",
            );
            ok = false;
        }
        for (i, s) in items.into_iter().enumerate() {
            let idx = format!("[{i}]");
            let mut rule_ok = true;
            if s.keys.is_empty() {
                sink.error(
                    "no-keys",
                    &at(&path(&["signed", &idx, "keys"])),
                    "`signed.keys` lists no keys",
                );
                rule_ok = false;
            }
            let mut distinct = BTreeSet::new();
            for name in &s.keys {
                used.insert(name.clone());
                if !key_names.contains(name.as_str()) {
                    sink.error(
                        "unknown-key",
                        &at(&path(&["signed", &idx, "keys", name])),
                        format!("key {name:?} is not defined under `keys`"),
                    );
                    rule_ok = false;
                } else if let Some(k) = keys.get(name) {
                    distinct.insert(format!("key {}", k.key.id()));
                } else {
                    // A certificate signer (or a key that failed to load): one signer per name.
                    distinct.insert(format!("name {name}"));
                }
            }
            for name in &s.required {
                if !s.keys.contains(name) {
                    sink.error(
                        "required-key-not-listed",
                        &at(&path(&["signed", &idx, "required", name])),
                        format!("required key {name:?} must also be listed in `keys`"),
                    );
                    rule_ok = false;
                }
            }
            let threshold = s.threshold.unwrap_or(1) as usize;
            let available = distinct.len();
            if threshold == 0 || threshold > available {
                sink.error(
                    "threshold-invalid",
                    &at(&path(&["signed", &idx, "threshold"])),
                    format!("threshold {threshold} must be between 1 and the number of distinct signers ({available})"),
                );
                rule_ok = false;
            }
            let identity = match &s.identity {
                None => Some(IdentityRule::MatchRepository),
                Some(d) => match IdentityRule::from_document(d) {
                    Ok(r) => Some(r),
                    Err(reason) => {
                        sink.error(
                            "invalid-identity",
                            &at(&path(&["signed", &idx, "identity"])),
                            reason,
                        );
                        None
                    }
                },
            };
            if let Some(list) = &s.formats {
                rule_ok &=
                    crate::signer::formats_ok(list, &at(&path(&["signed", &idx, "formats"])), sink);
            }
            match identity {
                Some(identity) if rule_ok => signed_rules.push(SignedRule {
                    keys: s.keys.clone(),
                    threshold,
                    required: s.required.clone(),
                    identity,
                    identity_explicit: s.identity.is_some(),
                    annotations: s.annotations.clone(),
                    formats: s.formats.clone(),
                }),
                _ => ok = false,
            }
        }
    }
    let mut config = ConfigRules::default();
    if let Some(c) = &req.config {
        config.forbid_root_user = c.forbid_root_user.unwrap_or(false);
        config.forbid_secrets = c.forbid_secrets.unwrap_or(false);
        if let Some(text) = &c.max_age {
            match parse_duration(text) {
                Ok(secs) => config.max_age = Some((secs, text.clone())),
                Err(reason) => {
                    sink.error(
                        "invalid-duration",
                        &at(&path(&["config", "maxAge"])),
                        reason,
                    );
                    ok = false;
                }
            }
        }
        if let Some(list) = &c.platforms {
            if list.is_empty() {
                sink.error(
                    "invalid-platform",
                    &at(&path(&["config", "platforms"])),
                    "an empty platform list allows nothing",
                );
                ok = false;
            }
            let mut specs = Vec::new();
            for p in list {
                match PlatformSpec::parse(p) {
                    Ok(s) => specs.push(s),
                    Err(reason) => {
                        sink.error(
                            "invalid-platform",
                            &at(&path(&["config", "platforms", p])),
                            reason,
                        );
                        ok = false;
                    }
                }
            }
            config.platforms = Some((specs, list.clone()));
        }
    }
    let cache_ttl = match req.cache_ttl.as_deref().map(parse_cache_ttl) {
        None => None,
        Some(Ok(secs)) => Some(secs),
        Some(Err(reason)) => {
            sink.error("invalid-duration", &at(&path(&["cacheTtl"])), reason);
            ok = false;
            None
        }
    };
    let attestations =
        crate::attestation::rules(&req.attestations, base, sink, keys, key_names, used);
    if !ok {
        return None;
    }
    let attestations = attestations?;
    let signatures = if let Some(message) = &req.reject {
        SignatureRule::Reject(if message.trim().is_empty() {
            format!("images in {label:?} are rejected by policy")
        } else {
            message.clone()
        })
    } else if req.accept == Some(true) {
        SignatureRule::Accept
    } else {
        SignatureRule::Signed(signed_rules)
    };
    Some(Requirements {
        signatures,
        digest_pinned: req.digest == Some(DigestRule::Pinned),
        config,
        mode: req.mode.unwrap_or(global_mode),
        cache_ttl,
        attestations,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn formats_a_scope_can_count_decide_what_the_verifier_reads() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/policies/");
        let text = r#"
keys:
  a: {path: keys/keyA.pub}
  legacy: {path: keys/keyB.pub, formats: [legacy]}
  bundled: {path: keys/keyR.pub, formats: [bundle]}
scopes:
  "reg.io/any":
    signed: {keys: [a]}
  "reg.io/rule-legacy":
    signed: {keys: [a], formats: [legacy]}
  "reg.io/signer-legacy":
    signed: {keys: [legacy]}
    attestations:
      - {type: vuln, keys: [bundled]}
  "reg.io/open":
    accept: true
"#;
        let policy = Policy::load("p.yaml", text, &|p| {
            std::fs::read(format!("{dir}{p}")).map_err(|e| e.to_string())
        })
        .unwrap()
        .policy;
        let at = |r: &str| -> Reference { r.parse().unwrap() };
        let (legacy, bundle) = (SignatureFormat::Legacy, SignatureFormat::Bundle);
        assert!(policy.signatures_accept(&at("reg.io/any/x"), legacy));
        assert!(policy.signatures_accept(&at("reg.io/any/x"), bundle));
        assert!(policy.signatures_accept(&at("reg.io/rule-legacy/x"), legacy));
        assert!(!policy.signatures_accept(&at("reg.io/rule-legacy/x"), bundle));
        assert!(!policy.signatures_accept(&at("reg.io/signer-legacy/x"), bundle));
        assert!(!policy.attestations_accept(&at("reg.io/signer-legacy/x"), legacy));
        assert!(policy.attestations_accept(&at("reg.io/signer-legacy/x"), bundle));
        assert!(!policy.attestations_accept(&at("reg.io/any/x"), bundle));
        assert!(!policy.signatures_accept(&at("reg.io/open/x"), bundle));
    }

    #[test]
    fn prejudge_names_what_no_evidence_can_allow() {
        let text = r#"
default:
  reject: "only listed registries"
scopes:
  "registry.example.com":
    accept: true
  "registry.example.com/blocked":
    reject: "blocked"
    mode: audit
"#;
        let policy = Policy::load("p.yaml", text, &|_| Err("no keys".into()))
            .unwrap()
            .policy;
        let at = |r: &str| policy.prejudge(&r.parse().unwrap());
        assert_eq!(
            at("registry.example.com/app:1"),
            Prejudgement::NeedsEvidence
        );
        assert_eq!(
            at("127.0.0.1:9/anything:1"),
            Prejudgement::Rejected {
                scope: "default".into(),
                message: "only listed registries".into(),
                mode: Mode::Enforce,
            }
        );
        assert_eq!(
            at("registry.example.com/blocked/x"),
            Prejudgement::Rejected {
                scope: "registry.example.com/blocked".into(),
                message: "blocked".into(),
                mode: Mode::Audit,
            }
        );
        // Without a default, the built-in one rejects.
        let open = Policy::load("p.yaml", "scopes:\n  \"a.io\": {accept: true}\n", &|_| {
            Err("no keys".into())
        })
        .unwrap()
        .policy;
        assert!(matches!(
            open.prejudge(&"b.io/x".parse().unwrap()),
            Prejudgement::Rejected { .. }
        ));
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_the_yaml_parser_sees_it() {
        let deep = format!("default: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let diagnostics = lint("deep.yaml", &deep, &|_| Err("no keys".into()));
        assert!(
            diagnostics
                .iter()
                .any(|d| d.code == "too-deep" && d.line == Some(1) && d.column == Some(74)),
            "{diagnostics:?}"
        );
        assert_eq!(flow_nesting_beyond(&"[".repeat(65), 64), Some((1, 65)));
        assert_eq!(flow_nesting_beyond(&"{a: ".repeat(64), 64), None);
        // Brackets inside quoted scalars and comments do not count; apostrophes in plain
        // scalars do not open quotes.
        let quoted = format!("reject: '{}'\n# {}\n", "[".repeat(100), "{".repeat(100));
        assert_eq!(flow_nesting_beyond(&quoted, 64), None);
        let plain = format!("reject: don't\nx: {}", "[".repeat(65));
        assert_eq!(flow_nesting_beyond(&plain, 64), Some((2, 68)));
    }
}
