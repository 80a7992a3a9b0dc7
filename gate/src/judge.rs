//! The gate's [`Judge`](crate::Judge) backed by the real engine: a policy file evaluated on
//! evidence fetched from the upstream registry. Swapped whole on policy reload.

use std::sync::Arc;

use signet_oci::store::ImageStore;
use signet_oci::{Digest, Reference, RegistryClient};
use signet_policy::{Decision, Prejudgement};

use crate::{GateError, Judge, Judgement, Mode, Screening};
use signet_verifier::enforce::{evaluate_digest, PolicyFile};

/// Judges images with a loaded policy, reading images and signatures through `client`.
#[derive(Clone)]
pub struct PolicyJudge {
    policy: Arc<PolicyFile>,
    client: RegistryClient,
    clock: fn() -> i64,
}

impl PolicyJudge {
    /// A judge for `policy` that reaches upstream registries with `client`.
    pub fn new(policy: PolicyFile, client: RegistryClient) -> PolicyJudge {
        PolicyJudge {
            policy: Arc::new(policy),
            client,
            clock: unix_now,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &PolicyFile {
        &self.policy
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
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
            (self.clock)(),
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
        })
    }

    fn policy_hash(&self) -> String {
        self.policy.hash.to_string()
    }

    fn screen(&self, reference: &Reference) -> Screening {
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
