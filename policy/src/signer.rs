//! Certificate signers as the policy holds them (validated from `keys` entries with `keyless`,
//! `pki` or `fulcio`), the per-signer options every entry may carry (`rekorKeys`, `formats`), and
//! the one decision "does this verified signature come from this signer?". Pure: the verifier
//! did the cryptography and reports, in [`SignatureEvidence`], which trust source and log key
//! it used; this compares.

use std::collections::BTreeMap;

use crate::certificate::{CertificateIdentity, GitHubRequirements, Match, Mismatch};
use crate::diagnostic::Sink;
use crate::document::{Instance, KeySpec, MaterialSpec};
use crate::policy::KeyLoader;
use crate::trust::{CertificateAuthority, LogSource, Material, SigstoreRoot, TrustSource};
use crate::verdict::{CertificateEvidence, SignatureEvidence, SignatureFormat};

/// What a certificate must say to be this signer.
#[derive(Debug, Clone)]
pub enum CertificateRequirement {
    /// Keyless: subject and issuer (exact or anchored pattern), GitHub workflow claims.
    Keyless(CertificateIdentity),
    /// containers-policy.json `fulcio`: the OIDC issuer and an email SAN, both exactly.
    Fulcio {
        /// The issuer.
        issuer: String,
        /// The email SAN.
        email: String,
    },
    /// Private PKI: an email SAN and/or a DNS SAN, exactly (at least one is set).
    Pki {
        /// The email SAN, when required.
        email: Option<String>,
        /// The DNS SAN, when required.
        hostname: Option<String>,
    },
}

/// A certificate signer under its policy name.
#[derive(Debug, Clone)]
pub struct CertificateSigner {
    /// The name the policy gives it.
    pub name: String,
    /// The trust source its certificates must chain to.
    pub trust: TrustSource,
    /// What the certificate must say.
    pub requirement: CertificateRequirement,
    /// Signatures by this signer count only while `now < not_after` (unix seconds).
    pub not_after: Option<i64>,
}

impl CertificateSigner {
    /// Whether the signer may vouch for an image at `now` (unix seconds).
    pub fn is_valid_at(&self, now: i64) -> bool {
        self.not_after.is_none_or(|end| now < end)
    }
}

/// Options any signer (key or certificate) may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignerOptions {
    /// Non-empty: a Rekor entry verified by one of these keys is required.
    pub rekor_keys: Vec<Material>,
    /// `Some`: only these formats count.
    pub formats: Option<Vec<SignatureFormat>>,
}

/// Why a signature does not count for a signer (after trust and identity matched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OptionRefusal {
    /// The signature's format is not among those allowed.
    Format(SignatureFormat),
    /// No Rekor entry, or one from a log the signer does not name.
    Tlog,
}

impl SignerOptions {
    /// Whether `sig` meets these options.
    pub(crate) fn check(&self, sig: &SignatureEvidence) -> Result<(), OptionRefusal> {
        if let Some(formats) = &self.formats {
            if !formats.contains(&sig.format) {
                return Err(OptionRefusal::Format(sig.format));
            }
        }
        if !self.rekor_keys.is_empty() {
            let logged = sig.tlog.as_ref().is_some_and(|t| match &t.log {
                LogSource::RekorKey(m) => self.rekor_keys.contains(m),
                LogSource::Sigstore(_) => false,
            });
            if !logged {
                return Err(OptionRefusal::Tlog);
            }
        }
        Ok(())
    }
}

/// Why a certificate is not this signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertificateRefusal {
    /// Verified under another trust source than the signer's.
    Trust,
    /// The claims do not name the signer.
    Identity(String),
}

impl CertificateSigner {
    /// Whether the verified certificate `cert` is this signer.
    pub(crate) fn matches(&self, cert: &CertificateEvidence) -> Result<(), CertificateRefusal> {
        if cert.trust != self.trust {
            return Err(CertificateRefusal::Trust);
        }
        match &self.requirement {
            CertificateRequirement::Keyless(identity) => identity
                .matches(&cert.claims)
                .map_err(|m: Mismatch| CertificateRefusal::Identity(m.to_string())),
            CertificateRequirement::Fulcio { issuer, email } => {
                if cert.claims.issuer.as_deref() != Some(issuer.as_str()) {
                    return Err(CertificateRefusal::Identity(format!(
                        "certificate issuer {} is not {issuer:?}",
                        shown(cert.claims.issuer.as_deref())
                    )));
                }
                if !cert.emails.iter().any(|e| e == email) {
                    return Err(CertificateRefusal::Identity(format!(
                        "certificate emails {} do not include {email:?}",
                        list(&cert.emails)
                    )));
                }
                Ok(())
            }
            CertificateRequirement::Pki { email, hostname } => {
                if let Some(email) = email {
                    if !cert.emails.iter().any(|e| e == email) {
                        return Err(CertificateRefusal::Identity(format!(
                            "certificate emails {} do not include {email:?}",
                            list(&cert.emails)
                        )));
                    }
                }
                if let Some(hostname) = hostname {
                    if !cert.hostnames.iter().any(|h| h == hostname) {
                        return Err(CertificateRefusal::Identity(format!(
                            "certificate hostnames {} do not include {hostname:?}",
                            list(&cert.hostnames)
                        )));
                    }
                }
                Ok(())
            }
        }
    }

    /// The requirement in words (for `explain`).
    pub(crate) fn describe(&self) -> String {
        let who = match &self.requirement {
            CertificateRequirement::Keyless(id) => {
                let mut s = format!("keyless subject {} issuer {}", id.subject, id.issuer);
                let g = &id.github;
                for (claim, value) in [
                    ("repository", &g.repository),
                    ("ref", &g.git_ref),
                    ("sha", &g.sha),
                    ("trigger", &g.trigger),
                    ("name", &g.name),
                ] {
                    if let Some(value) = value {
                        s.push_str(&format!(" github.{claim} {value:?}"));
                    }
                }
                s
            }
            CertificateRequirement::Fulcio { issuer, email } => {
                format!("Fulcio certificate for {email:?} issuer {issuer:?}")
            }
            CertificateRequirement::Pki { email, hostname } => {
                let mut parts = Vec::new();
                if let Some(e) = email {
                    parts.push(format!("email {e:?}"));
                }
                if let Some(h) = hostname {
                    parts.push(format!("hostname {h:?}"));
                }
                format!("PKI certificate with {}", parts.join(" and "))
            }
        };
        format!("{who} under {}", self.trust)
    }
}

fn shown(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{:?}", v.chars().take(200).collect::<String>()),
        None => "(none)".to_string(),
    }
}

fn list(values: &[String]) -> String {
    let shown: Vec<String> = values
        .iter()
        .take(8)
        .map(|v| format!("{:?}", v.chars().take(200).collect::<String>()))
        .collect();
    format!("[{}]", shown.join(", "))
}

/// Which kind of signer a `keys` entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `path` or `pem`.
    Key,
    /// `keyless`.
    Keyless,
    /// `pki`.
    Pki,
    /// `fulcio`.
    Fulcio,
}

type Origins = BTreeMap<String, Vec<String>>;

/// Where to report a problem with field `fields` of signer `name`: the field path in a Signet
/// document, or the place in the containers-policy.json it was converted from.
fn spot<'a>(origins: &'a Origins, name: &'a str, fields: &[&'a str]) -> Vec<&'a str> {
    match origins.get(name) {
        Some(path) => path.iter().map(String::as_str).collect(),
        None => {
            let mut p = vec!["keys", name];
            p.extend_from_slice(fields);
            p
        }
    }
}

/// The kind of the entry, or an error when it sets none or several of `path`/`pem`, `keyless`,
/// `pki`, `fulcio`.
pub(crate) fn signer_kind(
    name: &str,
    spec: &KeySpec,
    sink: &mut Sink<'_>,
    origins: &Origins,
) -> Option<Kind> {
    let mut kinds = Vec::new();
    if spec.path.is_some() || spec.pem.is_some() {
        kinds.push(Kind::Key);
    }
    if spec.keyless.is_some() {
        kinds.push(Kind::Keyless);
    }
    if spec.pki.is_some() {
        kinds.push(Kind::Pki);
    }
    if spec.fulcio.is_some() {
        kinds.push(Kind::Fulcio);
    }
    match kinds.as_slice() {
        [Kind::Key] => Some(Kind::Key),
        [one] => Some(*one),
        _ => {
            sink.error(
                "key-source-invalid",
                &spot(origins, name, &[]),
                format!("key {name:?} must have exactly one of `path`, `pem`, `keyless`, `pki` and `fulcio`"),
            );
            None
        }
    }
}

/// What a piece of trust material must look like. Only its shape is checked here (a PEM block of
/// the right label, a JSON object); parsing and every cryptographic check are the verifier's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// PEM `CERTIFICATE` blocks.
    Certificates,
    /// A PEM `PUBLIC KEY`.
    PublicKey,
    /// A `trusted_root.json` (a JSON object).
    TrustedRoot,
}

impl Expect {
    fn check(self, bytes: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
        let ok = match self {
            Expect::Certificates => text.contains("-----BEGIN CERTIFICATE-----"),
            Expect::PublicKey => text.contains("-----BEGIN PUBLIC KEY-----"),
            Expect::TrustedRoot => text.trim_start().starts_with('{'),
        };
        if ok {
            Ok(())
        } else {
            Err(match self {
                Expect::Certificates => "holds no PEM CERTIFICATE block".to_string(),
                Expect::PublicKey => "holds no PEM PUBLIC KEY block".to_string(),
                Expect::TrustedRoot => "is not a JSON trusted root".to_string(),
            })
        }
    }
}

/// Check that trust material is there and has the expected shape: a file through the policy's
/// loader (the same one that reads key files), inline PEM as written. Lint reports a missing
/// CA file with its position instead of the verifier failing later.
pub(crate) fn check_material(
    material: &Material,
    expect: Expect,
    loader: KeyLoader<'_>,
    what: &str,
    path: &[&str],
    sink: &mut Sink<'_>,
) -> bool {
    // A file's diagnostics are placed at the file name as written: list entries (`rekorKeys`)
    // have no key of their own to find.
    let report = |sink: &mut Sink<'_>, code: &'static str, message: String| match material {
        Material::Path(file) => sink.error_at_value(code, path, file, message),
        Material::Pem(_) => sink.error(code, path, message),
    };
    let result = match material {
        Material::Path(file) => match loader(file) {
            Ok(bytes) => expect
                .check(&bytes)
                .map_err(|why| format!("{file:?} {why}")),
            Err(reason) => {
                report(
                    sink,
                    "trust-material-unreadable",
                    format!("{what}: cannot read {file:?}: {reason}"),
                );
                return false;
            }
        },
        Material::Pem(pem) => expect
            .check(pem.as_bytes())
            .map_err(|why| format!("inline PEM {why}")),
    };
    match result {
        Ok(()) => true,
        Err(why) => {
            report(sink, "material-invalid", format!("{what}: {why}"));
            false
        }
    }
}

/// A material as the policy names it: exactly one of `path` and `pem`, neither empty, readable
/// and of the expected shape.
fn material(
    spec: &MaterialSpec,
    name: &str,
    fields: &[&str],
    expect: Expect,
    cx: &mut Cx<'_, '_, '_>,
) -> Option<Material> {
    let sink = &mut *cx.sink;
    let origins = cx.origins;
    let found = match (&spec.path, &spec.pem) {
        (Some(path), None) if !path.is_empty() => Some(Material::Path(path.clone())),
        (None, Some(pem)) if !pem.trim().is_empty() => Some(Material::Pem(pem.clone())),
        _ => None,
    };
    match found {
        Some(m) => {
            let mut at = spot(origins, name, fields);
            if origins.get(name).is_none() {
                at.push(if matches!(m, Material::Path(_)) {
                    "path"
                } else {
                    "pem"
                });
            }
            let what = format!("key {name:?} {}", fields.join("."));
            check_material(&m, expect, cx.loader, &what, &at, sink).then_some(m)
        }
        None => {
            sink.error(
                "material-invalid",
                &spot(origins, name, fields),
                format!(
                    "key {name:?} {}: needs exactly one non-empty `path` or `pem`",
                    fields.join(".")
                ),
            );
            None
        }
    }
}

/// What building a signer needs: where diagnostics go, where converted entries came from, and
/// the policy's file loader.
pub(crate) struct Cx<'s, 'a, 'l> {
    /// The diagnostics.
    pub(crate) sink: &'s mut Sink<'a>,
    /// Origins of entries converted from a containers-policy.json.
    pub(crate) origins: &'s Origins,
    /// Reads files named in the policy.
    pub(crate) loader: KeyLoader<'l>,
}

/// `rekorKeys` and `formats` of an entry.
pub(crate) fn options(
    name: &str,
    spec: &KeySpec,
    kind: &Kind,
    cx: &mut Cx<'_, '_, '_>,
) -> Option<SignerOptions> {
    let origins = cx.origins;
    let mut ok = true;
    let mut rekor_keys = Vec::new();
    if !spec.rekor_keys.is_empty() && *kind == Kind::Keyless {
        cx.sink.error(
            "rekor-keys-with-trusted-root",
            &spot(origins, name, &["rekorKeys"]),
            format!("key {name:?}: a keyless signer's transparency logs come from its trusted root; `rekorKeys` is for `path`/`pem`, `pki` and `fulcio` signers"),
        );
        ok = false;
    }
    for (i, m) in spec.rekor_keys.iter().enumerate() {
        let idx = format!("[{i}]");
        match material(m, name, &["rekorKeys", &idx], Expect::PublicKey, cx) {
            Some(m) if !rekor_keys.contains(&m) => rekor_keys.push(m),
            Some(_) => {}
            None => ok = false,
        }
    }
    if *kind == Kind::Fulcio && spec.rekor_keys.is_empty() {
        cx.sink.error(
            "rekor-keys-required",
            &spot(origins, name, &["fulcio"]),
            format!("key {name:?}: a `fulcio` signer needs `rekorKeys` (its certificates are checked at the Rekor entry's time)"),
        );
        ok = false;
    }
    let formats = match &spec.formats {
        None => None,
        Some(list) => {
            ok &= formats_ok(list, &spot(origins, name, &["formats"]), cx.sink);
            Some(list.clone())
        }
    };
    ok.then_some(SignerOptions {
        rekor_keys,
        formats,
    })
}

/// A `formats` list must name at least one format, each once.
pub(crate) fn formats_ok(list: &[SignatureFormat], path: &[&str], sink: &mut Sink<'_>) -> bool {
    let mut seen = Vec::new();
    for f in list {
        if seen.contains(f) {
            sink.error(
                "invalid-formats",
                path,
                format!("format {:?} is listed twice", f.as_str()),
            );
            return false;
        }
        seen.push(*f);
    }
    if list.is_empty() {
        sink.error(
            "invalid-formats",
            path,
            "an empty `formats` list accepts no signature",
        );
        return false;
    }
    true
}

fn pattern_or_exact(
    exact: &Option<String>,
    pattern: &Option<String>,
    what: (&str, &str),
    name: &str,
    sink: &mut Sink<'_>,
    origins: &Origins,
) -> Option<Match> {
    let (exact_field, pattern_field) = what;
    match (exact, pattern) {
        (Some(v), None) if !v.is_empty() => Some(Match::Exact(v.clone())),
        (None, Some(p)) => match Match::pattern(p) {
            Ok(m) => Some(m),
            Err(e) => {
                let reason = match &e {
                    crate::Error::InvalidPattern { reason, .. } => reason.clone(),
                    other => other.to_string(),
                };
                sink.error(
                    "invalid-certificate-pattern",
                    &spot(origins, name, &["keyless", pattern_field]),
                    format!("key {name:?} keyless.{pattern_field}: {reason}"),
                );
                None
            }
        },
        _ => {
            sink.error(
                "certificate-identity-invalid",
                &spot(origins, name, &["keyless"]),
                format!("key {name:?}: keyless needs exactly one of `{exact_field}` and `{pattern_field}`, not empty"),
            );
            None
        }
    }
}

/// The certificate signer of a `keyless`, `pki` or `fulcio` entry.
pub(crate) fn certificate(
    name: &str,
    spec: &KeySpec,
    kind: &Kind,
    cx: &mut Cx<'_, '_, '_>,
) -> Option<CertificateSigner> {
    let origins = cx.origins;
    let (trust, requirement) = match (kind, &spec.keyless, &spec.pki, &spec.fulcio) {
        (Kind::Keyless, Some(k), _, _) => {
            let subject = pattern_or_exact(
                &k.subject,
                &k.subject_pattern,
                ("subject", "subjectPattern"),
                name,
                cx.sink,
                origins,
            );
            let issuer = pattern_or_exact(
                &k.issuer,
                &k.issuer_pattern,
                ("issuer", "issuerPattern"),
                name,
                cx.sink,
                origins,
            );
            let root = match (&k.instance, &k.trusted_root) {
                (None, None) | (Some(Instance::PublicGood), None) => Some(SigstoreRoot::PublicGood),
                (Some(Instance::Github), None) => Some(SigstoreRoot::GitHub),
                (None, Some(path)) if !path.is_empty() => Some(SigstoreRoot::File(path.clone())),
                _ => {
                    cx.sink.error(
                        "trusted-root-invalid",
                        &spot(origins, name, &["keyless", "trustedRoot"]),
                        format!("key {name:?}: keyless takes `instance` or a non-empty `trustedRoot` file, not both"),
                    );
                    None
                }
            };
            let root = match root {
                Some(SigstoreRoot::File(path)) => {
                    let what = format!("key {name:?} keyless.trustedRoot");
                    check_material(
                        &Material::Path(path.clone()),
                        Expect::TrustedRoot,
                        cx.loader,
                        &what,
                        &spot(origins, name, &["keyless", "trustedRoot"]),
                        cx.sink,
                    )
                    .then_some(SigstoreRoot::File(path))
                }
                other => other,
            };
            let mut github = GitHubRequirements::default();
            let mut github_ok = true;
            if let Some(g) = &k.github {
                for (claim, value, slot) in [
                    ("repository", &g.repository, &mut github.repository),
                    ("ref", &g.git_ref, &mut github.git_ref),
                    ("sha", &g.sha, &mut github.sha),
                    ("trigger", &g.trigger, &mut github.trigger),
                    ("name", &g.name, &mut github.name),
                ] {
                    match value {
                        Some(v) if v.is_empty() => {
                            cx.sink.error(
                                "certificate-identity-invalid",
                                &spot(origins, name, &["keyless", "github", claim]),
                                format!("key {name:?}: github.{claim} must not be empty"),
                            );
                            github_ok = false;
                        }
                        Some(v) => *slot = Some(v.clone()),
                        None => {}
                    }
                }
                if *g == crate::document::GitHubSpec::default() {
                    cx.sink.warn(
                        "empty-github-claims",
                        &spot(origins, name, &["keyless", "github"]),
                        format!("key {name:?}: `github` names no claim"),
                    );
                }
            }
            let (Some(subject), Some(issuer), Some(root), true) =
                (subject, issuer, root, github_ok)
            else {
                return None;
            };
            (
                TrustSource::Sigstore(root),
                CertificateRequirement::Keyless(CertificateIdentity {
                    subject,
                    issuer,
                    github,
                }),
            )
        }
        (Kind::Pki, _, Some(p), _) => {
            let roots = material(
                &p.ca_roots,
                name,
                &["pki", "caRoots"],
                Expect::Certificates,
                cx,
            );
            let intermediates = match &p.ca_intermediates {
                None => Some(None),
                Some(m) => material(
                    m,
                    name,
                    &["pki", "caIntermediates"],
                    Expect::Certificates,
                    cx,
                )
                .map(Some),
            };
            let nonempty = |v: &Option<String>| v.as_ref().filter(|s| !s.is_empty()).cloned();
            let email = nonempty(&p.subject_email);
            let hostname = nonempty(&p.subject_hostname);
            let subject_ok = if email.is_none() && hostname.is_none() {
                cx.sink.error(
                    "certificate-identity-invalid",
                    &spot(origins, name, &["pki"]),
                    format!("key {name:?}: pki needs `subjectEmail` and/or `subjectHostname`"),
                );
                false
            } else {
                true
            };
            let (Some(roots), Some(intermediates), true) = (roots, intermediates, subject_ok)
            else {
                return None;
            };
            (
                TrustSource::Authority(CertificateAuthority {
                    roots,
                    intermediates,
                    fulcio: false,
                }),
                CertificateRequirement::Pki { email, hostname },
            )
        }
        (Kind::Fulcio, _, _, Some(f)) => {
            let roots = material(&f.ca, name, &["fulcio", "ca"], Expect::Certificates, cx);
            let mut ok = true;
            for (field, value) in [
                ("oidcIssuer", &f.oidc_issuer),
                ("subjectEmail", &f.subject_email),
            ] {
                if value.is_empty() {
                    cx.sink.error(
                        "certificate-identity-invalid",
                        &spot(origins, name, &["fulcio", field]),
                        format!("key {name:?}: fulcio.{field} must not be empty"),
                    );
                    ok = false;
                }
            }
            let (Some(roots), true) = (roots, ok) else {
                return None;
            };
            (
                TrustSource::Authority(CertificateAuthority {
                    roots,
                    intermediates: None,
                    fulcio: true,
                }),
                CertificateRequirement::Fulcio {
                    issuer: f.oidc_issuer.clone(),
                    email: f.subject_email.clone(),
                },
            )
        }
        _ => return None,
    };
    Some(CertificateSigner {
        name: name.to_string(),
        trust,
        requirement,
        not_after: None,
    })
}
