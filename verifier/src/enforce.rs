//! Policy enforcement: load a policy file (and the key files it names) from disk, gather the
//! evidence for an image — verified signatures and, where the policy asks, config facts — and
//! evaluate the pure policy on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use signet_oci::store::ImageStore;
use signet_oci::{Descriptor, Digest, FetchedManifest, Manifest, Reference};
use signet_policy::verdict::SignatureFormat;
use signet_policy::{
    AttestationInput, ConfigFacts, Evidence, Finding, Loaded, Material, Policy, SigstoreRoot,
    Verdict,
};
use signet_sign::keys::PublicKey;

use crate::attest::AttestationChecks;
use crate::signatures::{
    check_layers, read_signature_manifest, LayerChecks, DEFAULT_MAX_SIGNATURES,
};
use crate::Error;

/// Largest policy file read.
pub const MAX_POLICY_BYTES: u64 = 4 * 1024 * 1024;
/// Largest CA-certificate or Rekor-key file a policy may name (a CA bundle of a few hundred
/// certificates).
const MAX_TRUST_FILE_BYTES: u64 = 1024 * 1024;
/// Largest image config blob read for config checks.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// Most child manifests of an index whose configs are checked.
const MAX_CHILDREN: usize = 64;
/// The finding for a key-signed bundle that claims a policy key and fails a check (the code
/// `verify --key` uses for the same refusal).
pub const BUNDLE_REFUSED: &str = "bundle-refused";

/// A policy loaded from a file, with the public keys the verifier tries on every signature.
#[derive(Debug, Clone)]
pub struct PolicyFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The validated policy (and load warnings).
    pub loaded: Loaded,
    /// SHA-256 of the policy text and every key's DER: the content hash the gate caches by.
    pub hash: Digest,
    pub(crate) keys: Vec<PublicKey>,
    key_paths: Vec<PathBuf>,
    /// CA certificate and Rekor key files the policy names, by path as written.
    trust_files: BTreeMap<String, Vec<u8>>,
    /// The Sigstore trusted roots keyless signers name, parsed once.
    trusted_roots: BTreeMap<SigstoreRoot, Arc<signet_keyless::TrustedRoot>>,
    /// The Rekor public keys signers name (`rekorKeys`), parsed once, as the policy names them.
    rekor_keys: Vec<(Material, signet_keyless::pki::RekorKey)>,
}

impl PolicyFile {
    /// The validated policy.
    pub fn policy(&self) -> &Policy {
        &self.loaded.policy
    }

    /// The key and trust-material files the policy read (to watch for changes).
    pub fn key_paths(&self) -> Vec<PathBuf> {
        self.key_paths.clone()
    }

    /// The bytes of a CA-certificate or Rekor-key material the policy names (a file read when
    /// the policy was loaded, or inline PEM). `None` for material the policy does not name.
    pub fn material<'a>(&'a self, material: &'a Material) -> Option<&'a [u8]> {
        match material {
            Material::Path(path) => self.trust_files.get(path).map(Vec::as_slice),
            Material::Pem(pem) => Some(pem.as_bytes()),
        }
    }

    /// The Rekor public keys the policy's signers name (`rekorKeys`, containers-policy.json
    /// `rekorPublicKey…`), parsed, each with the material as the policy names it.
    pub fn rekor_keys(&self) -> &[(Material, signet_keyless::pki::RekorKey)] {
        &self.rekor_keys
    }

    /// The parsed Sigstore trusted root a keyless signer names (loaded with the policy: a file,
    /// or the TUF cache's copy of the instance, else the embedded snapshot).
    pub fn trusted_root(&self, root: &SigstoreRoot) -> Option<&signet_keyless::TrustedRoot> {
        self.trusted_roots.get(root).map(Arc::as_ref)
    }

    /// Every Sigstore trusted root the policy's signers name, as loaded with it.
    pub fn trusted_roots(
        &self,
    ) -> impl Iterator<Item = (&SigstoreRoot, &signet_keyless::TrustedRoot)> {
        self.trusted_roots
            .iter()
            .map(|(name, root)| (name, root.as_ref()))
    }
}

fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    signet_oci::read_at_most(path, limit)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: larger than {limit} bytes", path.display()))
}

/// Read a policy file's text (bounded, UTF-8).
pub fn read_policy_text(path: &Path) -> Result<String, Error> {
    let bytes = read_bounded(path, MAX_POLICY_BYTES).map_err(Error::Invalid)?;
    String::from_utf8(bytes)
        .map_err(|_| Error::Invalid(format!("{}: not UTF-8 text", path.display())))
}

/// The key loader for a policy at `policy_path`: key and trust-material paths are relative to
/// its directory, and each file is size-bounded (the policy crate bounds key PEM further).
pub fn key_loader(policy_path: &Path) -> impl Fn(&str) -> Result<Vec<u8>, String> {
    let base = policy_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    move |key_path: &str| read_bounded(&resolve_key_path(&base, key_path), MAX_TRUST_FILE_BYTES)
}

fn resolve_key_path(base: &Path, key_path: &str) -> PathBuf {
    let candidate = Path::new(key_path);
    if candidate.is_absolute() {
        candidate.to_path_buf()
    } else {
        base.join(candidate)
    }
}

/// Read `path` as a policy (Signet YAML/JSON or containers-policy.json, told apart by content).
/// Key paths in it are relative to the policy file's directory.
pub fn load_policy_file(path: &Path) -> Result<PolicyFile, Error> {
    let text = read_policy_text(path)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let read = std::cell::RefCell::new(Vec::new());
    // Files the policy reads through the loader (keys; CA, Rekor-key and trusted-root files,
    // which it checks for shape), kept so that what is hashed and used below is what was checked.
    let contents = std::cell::RefCell::new(BTreeMap::<PathBuf, Vec<u8>>::new());
    let loader = |key_path: &str| {
        let full = resolve_key_path(&base, key_path);
        read.borrow_mut().push(full.clone());
        let bytes = read_bounded(&full, MAX_TRUST_FILE_BYTES)?;
        contents.borrow_mut().insert(full, bytes.clone());
        Ok(bytes)
    };
    let name = path.display().to_string();
    let loaded = Policy::load(&name, &text, &loader)?;
    let key_paths = read.into_inner();
    let contents = contents.into_inner();
    let mut keys = Vec::new();
    let mut hasher = Digest::sha256(b"").hasher();
    hasher.update(text.as_bytes());
    for trusted in loaded.policy.trusted_keys() {
        hasher.update(trusted.key.spki_der());
        keys.push(trusted.key.signing_public_key().clone());
    }
    let mut key_paths = key_paths;
    // Trust material is part of what the policy means: its content goes into the hash the gate
    // caches verdicts by, so a changed CA file or trusted root is a changed policy. Each entry
    // is length-prefixed so no two different sets of files hash alike.
    let mut trust_files = BTreeMap::new();
    let root_files: Vec<&str> = loaded
        .policy
        .trust_sources()
        .into_iter()
        .filter_map(|s| match s {
            signet_policy::TrustSource::Sigstore(SigstoreRoot::File(p)) => Some(p.as_str()),
            _ => None,
        })
        .collect();
    for written in loaded.policy.trust_files() {
        let full = resolve_key_path(&base, written);
        if root_files.contains(&written) {
            // Trusted-root files are read (bounded), parsed and hashed by the root loader below.
            continue;
        }
        let bytes = match contents.get(&full) {
            Some(bytes) => bytes.clone(),
            None => read_bounded(&full, MAX_TRUST_FILE_BYTES).map_err(|reason| {
                Error::Invalid(format!(
                    "{name}: trust material {written:?} cannot be read: {reason}"
                ))
            })?,
        };
        hasher.update(b"trust-file\0");
        hasher.update(written.as_bytes());
        hasher.update(&(bytes.len() as u64).to_be_bytes());
        hasher.update(&bytes);
        if !key_paths.contains(&full) {
            key_paths.push(full);
        }
        trust_files.insert(written.to_string(), bytes);
    }
    let mut trusted_roots = BTreeMap::new();
    for source in loaded.policy.trust_sources() {
        let signet_policy::TrustSource::Sigstore(root) = source else {
            continue;
        };
        let loaded_root = load_sigstore_root(&base, root, &contents).map_err(|reason| {
            Error::Invalid(format!("{name}: {root} cannot be loaded: {reason}"))
        })?;
        hasher.update(b"trusted-root\0");
        hasher.update(loaded_root.sha256().as_bytes());
        let watched = match loaded_root.source() {
            signet_keyless::TrustSource::File(p) => Some(p.clone()),
            signet_keyless::TrustSource::Cache { path, .. } => Some(path.clone()),
            signet_keyless::TrustSource::Embedded(_) => None,
        };
        if let Some(p) = watched.filter(|p| !key_paths.contains(p)) {
            key_paths.push(p);
        }
        trusted_roots.insert(root.clone(), Arc::new(loaded_root));
    }
    let mut rekor_keys = Vec::new();
    for material in loaded.policy.rekor_keys() {
        let bytes = match material {
            Material::Path(written) => trust_files.get(written).map(Vec::as_slice),
            Material::Pem(pem) => Some(pem.as_bytes()),
        }
        .ok_or_else(|| Error::Invalid(format!("{name}: Rekor key {material} was not read")))?;
        let key = std::str::from_utf8(bytes)
            .map_err(|_| Error::Invalid(format!("{name}: Rekor key {material}: not PEM text")))
            .and_then(|pem| {
                signet_keyless::pki::RekorKey::from_pem(pem)
                    .map_err(|e| Error::Invalid(format!("{name}: Rekor key {material}: {e}")))
            })?;
        rekor_keys.push((material.clone(), key));
    }
    Ok(PolicyFile {
        path: path.to_path_buf(),
        loaded,
        hash: hasher.finish(),
        keys,
        key_paths,
        trust_files,
        trusted_roots,
        rekor_keys,
    })
}

/// A keyless signer's trusted root: a file relative to the policy's folder, or an instance's
/// root from the TUF cache (`signet trust update`), else its embedded snapshot. A cache entry
/// that exists but fails its checks is an error, never a silent fallback.
fn load_sigstore_root(
    base: &Path,
    root: &SigstoreRoot,
    already_read: &BTreeMap<PathBuf, Vec<u8>>,
) -> Result<signet_keyless::TrustedRoot, signet_keyless::KeylessError> {
    let instance = match root {
        SigstoreRoot::File(path) => {
            let full = resolve_key_path(base, path);
            return match already_read.get(&full) {
                Some(json) => signet_keyless::TrustedRoot::from_json(
                    json,
                    signet_keyless::TrustSource::File(full),
                ),
                None => signet_keyless::TrustedRoot::from_file(&full),
            };
        }
        SigstoreRoot::PublicGood => signet_keyless::Instance::PublicGood,
        SigstoreRoot::GitHub => signet_keyless::Instance::GitHub,
    };
    // No usable cache location (no HOME, no XDG_CACHE_HOME) means no cache, not an error.
    let cache = signet_keyless::cache::TufCache::default_location().ok();
    signet_keyless::load_trusted_root(
        None,
        instance,
        cache
            .as_ref()
            .map(|c| c as &dyn signet_keyless::TrustedRootCache),
    )
}

/// The verdict for one image, with the evidence behind it.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    /// The image as named.
    pub image: String,
    /// The reference the policy saw (the image's registry name).
    pub reference: String,
    /// The manifest digest evaluated.
    pub digest: Digest,
    /// The verdict.
    pub verdict: Verdict,
    /// Every candidate signature with its layer checks (identity and annotations are judged per
    /// rule by the policy; see the verdict's findings).
    pub signatures: Vec<LayerChecks>,
    /// Every certificate-signed candidate (legacy keyless layers, bundle referrers) checked
    /// under each trust source the policy names (`crate::keyless::policy_evidence`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificate_signatures: Vec<crate::keyless::KeylessChecks>,
    /// Every key-signed cosign bundle signature referrer with its checks (read where the scope
    /// can count a bundle signature and the policy names keys).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signature_bundles: Vec<AttestationChecks>,
    /// Every candidate attestation with its checks, when the scope requires attestations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<AttestationChecks>,
}

/// Evaluate `policy` for the image in `image` known as `identity`, reading signatures from
/// `signatures`, at unix time `now`.
pub async fn evaluate_image(
    image: &ImageStore,
    signatures: &ImageStore,
    identity: &Reference,
    policy: &PolicyFile,
    now: i64,
) -> Result<PolicyReport, Error> {
    let resolved = image.resolve().await?;
    evaluate_resolved(image, signatures, identity, &resolved, policy, now).await
}

/// [`evaluate_image`] for a manifest already fetched and digest-checked by the caller.
pub async fn evaluate_resolved(
    image: &ImageStore,
    signatures: &ImageStore,
    identity: &Reference,
    resolved: &FetchedManifest,
    policy: &PolicyFile,
    now: i64,
) -> Result<PolicyReport, Error> {
    evaluate_digest(
        image,
        signatures,
        identity,
        &resolved.digest,
        Some(resolved),
        policy,
        now,
    )
    .await
}

/// Evaluate `policy` for the manifest `digest` (already resolved by the caller). The manifest
/// itself is fetched (by digest, checked) only when a config check needs it and `resolved` is
/// not given. A signature-only policy reads the `.sig` manifest and its payloads and, where the
/// scope can count a bundle signature, the image's bundle referrers (listed once per judgement
/// and shared by every reader: key-signed and certificate-signed signature bundles, attestation
/// bundles). A scope whose signers accept only the legacy format reads no referrers.
///
/// Fail closed, as `verify --key`: a key-signed bundle referrer that claims a key the policy
/// names (its hint names it, or it has none, or it cannot be read that far) and fails any check
/// denies the image (finding `bundle-refused`), even beside a good `.sig` layer; a valid bundle
/// by a key the policy does not name is another signer's evidence, not a refusal.
pub async fn evaluate_digest(
    image: &ImageStore,
    signatures: &ImageStore,
    identity: &Reference,
    digest: &Digest,
    resolved: Option<&FetchedManifest>,
    policy: &PolicyFile,
    now: i64,
) -> Result<PolicyReport, Error> {
    let digest = digest.clone();
    let signature_manifest = read_signature_manifest(signatures, &digest)
        .await?
        .map(|(_, manifest)| manifest);
    let candidates = match &signature_manifest {
        None => Vec::new(),
        Some(manifest) => {
            check_layers(
                signatures,
                manifest,
                &digest,
                &policy.keys,
                DEFAULT_MAX_SIGNATURES,
            )
            .await?
        }
    };
    let layers = signature_manifest
        .as_ref()
        .map(|m| m.layers.as_slice())
        .unwrap_or_default();
    // Only layers whose size, digest, strict parse and signature all passed give evidence;
    // with the Rekor keys the policy names, a layer's SET over this key's entry is reported too.
    let mut evidence_signatures: Vec<_> = candidates
        .iter()
        .flat_map(|c| match layers.get(c.index()) {
            Some(layer) => c.evidence_with_rekor(layer, &policy.keys, &policy.rekor_keys),
            None => c.evidence(),
        })
        .collect();
    let mut bundle_reads = crate::attest::BundleReads::new(signatures, &digest);
    let bundle_signatures_count = policy
        .policy()
        .signatures_accept(identity, SignatureFormat::Bundle);
    let (certificate_evidence, certificate_signatures) = crate::keyless::policy_evidence(
        signatures,
        identity,
        &digest,
        signature_manifest.as_ref(),
        bundle_signatures_count.then_some(&mut bundle_reads),
        policy,
        now,
    )
    .await?;
    evidence_signatures.extend(certificate_evidence);
    // Key-signed cosign bundle signatures (`sign --format bundle`).
    let signature_bundles = if bundle_signatures_count && !policy.keys.is_empty() {
        crate::attest::signature_bundles(&mut bundle_reads, &policy.keys).await?
    } else {
        Vec::new()
    };
    for bundle in &signature_bundles {
        evidence_signatures.extend(bundle.signature_evidence(&digest));
    }
    let refusals: Vec<Finding> = signature_bundles
        .iter()
        .filter(|b| !b.passed() && b.claims_one_of(&policy.keys))
        .map(|b| bundle_refusal(policy.policy(), identity, b))
        .collect();
    let needs_facts = policy.policy().needs_config(identity);
    let needs_json = policy.policy().needs_config_json(identity);
    let blobs = if needs_facts || needs_json {
        match resolved {
            Some(resolved) => config_blobs(image, resolved).await?,
            None => {
                let fetched = image.resolve().await?;
                if fetched.digest != digest {
                    return Err(Error::Invalid(format!(
                        "{} now resolves to {}, not the {digest} being evaluated",
                        image.display_name(),
                        fetched.digest
                    )));
                }
                config_blobs(image, &fetched).await?
            }
        }
    } else {
        Vec::new()
    };
    let mut configs = Vec::new();
    let mut config_json = Vec::new();
    for (config_digest, bytes) in &blobs {
        if needs_facts {
            configs.push(
                ConfigFacts::from_config_json(bytes)
                    .map_err(|e| Error::Invalid(format!("config {config_digest}: {e}")))?,
            );
        }
        if needs_json {
            config_json.push(
                serde_json::from_slice::<serde_json::Value>(bytes)
                    .map_err(|e| Error::Invalid(format!("config {config_digest}: {e}")))?,
            );
        }
    }
    // Attestations only for a scope that requires them: `.att` layers and bundle referrers,
    // each checked (envelope, signature by a policy key or a certificate under a trust source
    // the policy names, statement, subject = this digest, predicate type); only a candidate
    // that passed every check is evidence.
    let (attestation_evidence, attestations) = if policy.policy().needs_attestations(identity) {
        let formats: Vec<SignatureFormat> = [SignatureFormat::Legacy, SignatureFormat::Bundle]
            .into_iter()
            .filter(|f| policy.policy().attestations_accept(identity, *f))
            .collect();
        crate::attest::policy_attestations(&mut bundle_reads, &formats, policy, now).await?
    } else {
        (Vec::new(), Vec::new())
    };
    let evidence = Evidence {
        reference: identity.clone(),
        digest: digest.clone(),
        reference_had_digest: identity.digest().is_some(),
        signatures: evidence_signatures,
        configs,
    };
    let mut verdict = signet_policy::evaluate_with_attestations(
        policy.policy(),
        &evidence,
        &AttestationInput {
            attestations: attestation_evidence,
            configs: config_json,
        },
        now,
    );
    refuse(&mut verdict, refusals);
    Ok(PolicyReport {
        image: image.display_name(),
        reference: identity.to_string(),
        digest,
        verdict,
        signatures: candidates,
        certificate_signatures,
        signature_bundles,
        attestations,
    })
}

/// The finding for a key-signed bundle that claims a policy key and failed a check.
fn bundle_refusal(
    policy: &Policy,
    identity: &Reference,
    bundle: &crate::attest::AttestationChecks,
) -> Finding {
    let failed = crate::signatures::failed_checks(&bundle.checks());
    let rule = match policy
        .select(identity)
        .and_then(|i| policy.scope_pattern(i))
    {
        Some(pattern) => format!("scopes.{pattern:?}.signed"),
        None => "default.signed".to_string(),
    };
    Finding {
        code: BUNDLE_REFUSED,
        message: format!(
            "a bundle signature that claims a policy key does not verify, so the image is not trusted: {}: {}",
            crate::verify::bundle_name(bundle),
            failed
        ),
        rule,
    }
}

/// Deny on `refusals` as the policy denies on its own findings: in `enforce` mode the decision
/// is deny; in `warn` and `audit` the image is allowed and would be denied.
fn refuse(verdict: &mut Verdict, refusals: Vec<Finding>) {
    if refusals.is_empty() {
        return;
    }
    verdict.findings.extend(refusals);
    verdict.findings.sort();
    verdict.findings.dedup();
    verdict.would_deny = true;
    if verdict.mode == signet_policy::Mode::Enforce {
        verdict.decision = signet_policy::Decision::Deny;
    }
}

/// Every config blob of the image (one per platform of an index), with its digest.
async fn config_blobs(
    image: &ImageStore,
    resolved: &FetchedManifest,
) -> Result<Vec<(Digest, Vec<u8>)>, Error> {
    let children: Vec<FetchedManifest> = match &resolved.manifest {
        Manifest::Image(_) => vec![resolved.clone()],
        Manifest::Index(index) => {
            let listed: Vec<&Descriptor> =
                index.manifests.iter().filter(|d| d.is_manifest()).collect();
            if listed.len() > MAX_CHILDREN {
                return Err(Error::LimitExceeded {
                    what: format!("index {} with {} manifests", resolved.digest, listed.len()),
                    limit: format!("{MAX_CHILDREN} manifests"),
                });
            }
            let mut fetched = Vec::with_capacity(listed.len());
            for child in listed {
                fetched.push(image.manifest(child).await?);
            }
            fetched
        }
    };
    let mut facts = Vec::with_capacity(children.len());
    for child in children {
        let Manifest::Image(manifest) = &child.manifest else {
            return Err(Error::Invalid(format!(
                "index {} nests another index; config checks need image manifests",
                resolved.digest
            )));
        };
        let bytes = image.blob_bytes(&manifest.config, MAX_CONFIG_BYTES).await?;
        facts.push((manifest.config.digest.clone(), bytes));
    }
    Ok(facts)
}

/// A shared, swappable policy (the gate reloads it; readers keep the one they started with).
pub type SharedPolicy = Arc<PolicyFile>;

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(mode: signet_policy::Mode) -> Verdict {
        Verdict {
            decision: signet_policy::Decision::Allow,
            mode,
            scope: "default".into(),
            would_deny: false,
            findings: Vec::new(),
            valid_until: Some(7),
        }
    }

    fn refusal() -> Finding {
        Finding {
            code: BUNDLE_REFUSED,
            message: "bundle referrer sha256:00: signature: does not verify".into(),
            rule: "default.signed".into(),
        }
    }

    #[test]
    fn a_refusal_denies_in_enforce_mode_and_would_deny_in_the_others() {
        let mut enforced = verdict(signet_policy::Mode::Enforce);
        refuse(&mut enforced, vec![refusal()]);
        assert_eq!(enforced.decision, signet_policy::Decision::Deny);
        assert!(enforced.would_deny);
        assert_eq!(enforced.findings, [refusal()]);
        assert_eq!(
            enforced.valid_until,
            Some(7),
            "the verdict's life is unchanged"
        );
        for mode in [signet_policy::Mode::Warn, signet_policy::Mode::Audit] {
            let mut warned = verdict(mode);
            refuse(&mut warned, vec![refusal(), refusal()]);
            assert_eq!(warned.decision, signet_policy::Decision::Allow);
            assert!(warned.would_deny);
            assert_eq!(warned.findings.len(), 1, "duplicates are dropped");
        }
        let mut untouched = verdict(signet_policy::Mode::Enforce);
        refuse(&mut untouched, Vec::new());
        assert_eq!(untouched, verdict(signet_policy::Mode::Enforce));
    }
}
