//! The gate's [`Judge`](crate::Judge) backed by the real engine: a policy file evaluated on
//! evidence fetched from the upstream registry. Swapped whole on policy reload.

use std::sync::Arc;

use signet_oci::store::ImageStore;
use signet_oci::{Digest, Reference, RegistryClient};
use signet_policy::{Decision, Prejudgement};

use crate::{Clock, GateError, Judge, Judgement, Mode, Screening, SystemClock, TrustRootInUse};
use signet_keyless::TrustSource;
use signet_verifier::enforce::{evaluate_digest, PolicyFile};

/// Judges images with a loaded policy, reading images and signatures through `client`.
#[derive(Clone)]
pub struct PolicyJudge {
    policy: Arc<PolicyFile>,
    client: RegistryClient,
    clock: Arc<dyn Clock>,
    /// Set when the trust material changed and no longer loads: every image is denied.
    withdrawn: Option<Arc<str>>,
}

impl PolicyJudge {
    /// A judge for `policy` that reaches upstream registries with `client`, on the system clock.
    pub fn new(policy: PolicyFile, client: RegistryClient) -> PolicyJudge {
        PolicyJudge {
            policy: Arc::new(policy),
            client,
            clock: Arc::new(SystemClock),
            withdrawn: None,
        }
    }

    /// This judge reading the time from `clock` (give it the gate's, see [`crate::Gate::with_clock`]).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> PolicyJudge {
        PolicyJudge { clock, ..self }
    }

    /// The policy in force.
    pub fn policy(&self) -> &PolicyFile {
        &self.policy
    }
}

fn convert_mode(mode: signet_policy::Mode) -> Mode {
    match mode {
        signet_policy::Mode::Enforce => Mode::Enforce,
        signet_policy::Mode::Warn => Mode::Warn,
        signet_policy::Mode::Audit => Mode::Audit,
    }
}

impl Judge for PolicyJudge {
    async fn judge(
        &self,
        reference: Reference,
        digest: Option<Digest>,
    ) -> Result<Judgement, GateError> {
        if let Some(reason) = &self.withdrawn {
            return Err(GateError::Judge(format!("policy withdrawn: {reason}")));
        }
        // Read first: a clock before 1970 is "could not check", before any request is made.
        let now = self.clock.unix_now()?;
        let digest = match digest {
            Some(digest) => digest,
            None => self.client.get_manifest(&reference).await?.digest,
        };
        let store = ImageStore::Registry {
            client: self.client.clone(),
            reference: reference.with_digest(digest.clone()),
        };
        // Fetch the manifest by digest (hashed on arrival) even though only signatures may be
        // checked: a registry that serves other bytes for this digest is refused here rather
        // than trusted to the runtime's own digest check.
        let resolved = store.resolve().await?;
        let report = evaluate_digest(
            &store,
            &store,
            &reference,
            &digest,
            Some(&resolved),
            &self.policy,
            now,
        )
        .await?;
        let verdict = &report.verdict;
        let allowed = verdict.decision == Decision::Allow && !verdict.would_deny;
        let message = if verdict.findings.is_empty() {
            format!("allowed by {}", verdict.scope)
        } else {
            let reasons: Vec<String> = verdict
                .findings
                .iter()
                .map(|f| format!("[{}] {}", f.code, f.message))
                .collect();
            format!(
                "{} by {}: {}",
                if allowed { "allowed" } else { "denied" },
                verdict.scope,
                reasons.join("; ")
            )
        };
        Ok(Judgement {
            digest,
            allowed,
            mode: convert_mode(verdict.mode),
            message,
            report: std::sync::Arc::new(
                serde_json::to_value(&report).map_err(|e| GateError::Judge(e.to_string()))?,
            ),
            cacheable: true,
            valid_until: verdict.valid_until,
        })
    }

    /// The content hash of the policy: its text, its keys and the trust material its certificate
    /// signers name (CA and Rekor-key files, trusted roots; see `load_policy_file`). Verdicts are
    /// cached under it, so a changed CA file is a changed policy.
    fn policy_hash(&self) -> String {
        match &self.withdrawn {
            None => self.policy.hash.to_string(),
            Some(_) => format!("{}+withdrawn", self.policy.hash),
        }
    }

    fn withdrawn(&self, reason: &str) -> Option<PolicyJudge> {
        Some(PolicyJudge {
            withdrawn: Some(Arc::from(reason)),
            ..self.clone()
        })
    }

    fn trust_roots(&self) -> Vec<TrustRootInUse> {
        if self.withdrawn.is_some() {
            return Vec::new();
        }
        self.policy
            .trusted_roots()
            .map(|(name, root)| TrustRootInUse {
                name: name.to_string(),
                source: root.source().to_string(),
                embedded: matches!(root.source(), TrustSource::Embedded(_)),
                sha256: root.sha256().to_string(),
            })
            .collect()
    }

    fn screen(&self, reference: &Reference) -> Screening {
        if let Some(reason) = &self.withdrawn {
            let message = format!("denied: [trust-material-invalid] {reason}");
            return Screening::Refuse {
                mode: Mode::Enforce,
                report: serde_json::json!({
                    "reference": reference.to_string(),
                    "verdict": {"decision": "deny", "findings": [{"code": "trust-material-invalid", "message": reason.as_ref()}]},
                }),
                message,
            };
        }
        match self.policy.loaded.policy.prejudge(reference) {
            Prejudgement::NeedsEvidence => Screening::Judge,
            Prejudgement::Rejected {
                scope,
                message,
                mode,
            } => Screening::Refuse {
                mode: convert_mode(mode),
                message: format!("denied by {scope}: [rejected-by-policy] {message}"),
                report: serde_json::json!({
                    "reference": reference.to_string(),
                    "verdict": {
                        "decision": if mode == signet_policy::Mode::Enforce { "deny" } else { "allow" },
                        "would_deny": true,
                        "scope": scope,
                        "mode": convert_mode(mode),
                        "findings": [{"code": "rejected-by-policy", "message": message}],
                    },
                    "resolved": false,
                }),
            },
        }
    }
}

#[cfg(test)]
mod trust_material_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_cache_key_changes_with_the_ca_file_not_only_the_policy_text() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/cosign-real");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("roots.pem");
        std::fs::copy(format!("{fixtures}/pki_root_crts.pem"), &ca).unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            "keys:\n  build:\n    pki:\n      caRoots: {path: roots.pem}\n      subjectEmail: a@b.example\ndefault:\n  signed: {keys: [build]}\n",
        )
        .unwrap();
        let judge = |path: &std::path::Path| {
            let client = RegistryClient::new(Default::default()).unwrap();
            PolicyJudge::new(
                signet_verifier::enforce::load_policy_file(path).unwrap(),
                client,
            )
        };
        let before = judge(&policy).policy_hash();
        assert_eq!(judge(&policy).policy_hash(), before);
        std::fs::copy(format!("{fixtures}/fulcio_v1.crt.pem"), &ca).unwrap();
        assert_ne!(judge(&policy).policy_hash(), before);
    }
}
