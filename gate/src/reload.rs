//! Policy reload: on `SIGHUP` and whenever one of the watched files (policy, keys, trust
//! material) changes, build a new judge and swap it in.
//!
//! Files are polled (modification time, size and, on Unix, inode), which works the same for
//! ConfigMap volumes (whose files change by symlink swap), plain files and the TUF cache (which
//! `signet trust update` replaces by rename), without a watcher crate. A path that does not exist
//! yet is watched too: the TUF cache file of every Sigstore instance is watched from the start,
//! so a `signet trust update` run after the gate started is picked up even when no cache
//! existed at start.
//!
//! When a new judge fails to build, what changed decides: after a change of the policy or its
//! keys only, the old judge stays (a typo must not take the gate down); after a change of a
//! TUF cache file, the old judge was built on trust material that has since been replaced, so it
//! is withdrawn ([`Judge::withdrawn`]) and every image is denied until the material loads again
//! (fail closed, never a fall back to the older or embedded trusted root).

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::server::Gate;
use super::Judge;

/// Modification time, size and inode; `None` when the file does not exist.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    paths
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            #[cfg(unix)]
            let inode = std::os::unix::fs::MetadataExt::ino(&meta);
            #[cfg(not(unix))]
            let inode = 0;
            Some((meta.modified().ok()?, meta.len(), inode))
        })
        .collect()
}

/// The TUF cache file of every Sigstore instance (`signet trust update`'s output) in the default
/// cache location, whether it exists yet or not. None when there is no cache location.
pub fn trust_cache_files() -> Vec<PathBuf> {
    match signet_keyless::cache::default_cache_root() {
        Ok(root) => [
            signet_keyless::Instance::PublicGood,
            signet_keyless::Instance::GitHub,
        ]
        .into_iter()
        .map(|i| signet_keyless::cache::cache_file(&root, i))
        .collect(),
        Err(_) => Vec::new(),
    }
}

impl<J: Judge> Gate<J> {
    /// Keep the policy fresh until `stop` completes: every `every`, and on `SIGHUP` (Unix), if
    /// any of `paths` or of the TUF cache files ([`trust_cache_files`]) changed (or on every
    /// `SIGHUP`), call `load`; on `Ok` the new judge replaces the old one ([`Gate::reload`]), on
    /// `Err` the error is logged and the old judge stays — unless a TUF cache file changed since
    /// the active judge was built: then it is withdrawn and the gate denies every image.
    /// The CLI spawns this next to [`super::BoundGate::run`].
    pub async fn keep_policy_fresh<E: std::fmt::Display>(
        &self,
        paths: Vec<PathBuf>,
        every: Duration,
        load: impl Fn() -> Result<J, E> + Send,
        stop: impl Future<Output = ()> + Send,
    ) {
        self.keep_fresh(paths, trust_cache_files(), every, load, stop)
            .await
    }

    /// [`Gate::keep_policy_fresh`] with the trust files named (tests give their own).
    pub(crate) async fn keep_fresh<E: std::fmt::Display>(
        &self,
        mut paths: Vec<PathBuf>,
        trust: Vec<PathBuf>,
        every: Duration,
        load: impl Fn() -> Result<J, E> + Send,
        stop: impl Future<Output = ()> + Send,
    ) {
        paths.retain(|p| !trust.contains(p));
        let mut seen = stamps(&paths);
        let mut seen_trust = stamps(&trust);
        // The trust files as they were when the active judge was built.
        let mut trust_in_force = seen_trust.clone();
        let mut ticker = tokio::time::interval(every.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        #[cfg(unix)]
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| tracing::warn!(target: "signet::gate", error = %e, "cannot watch SIGHUP"))
            .ok();
        tokio::pin!(stop);
        loop {
            #[cfg(unix)]
            let hup = async {
                match hangup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let hup = std::future::pending::<()>();
            let forced = tokio::select! {
                () = &mut stop => return,
                _ = ticker.tick() => false,
                () = hup => true,
            };
            let now = stamps(&paths);
            let now_trust = stamps(&trust);
            if !forced && now == seen && now_trust == seen_trust {
                continue;
            }
            seen = now;
            seen_trust = now_trust;
            match load() {
                Ok(judge) => {
                    trust_in_force = seen_trust.clone();
                    self.reload(judge);
                }
                Err(e) if seen_trust != trust_in_force => {
                    let reason = format!("the trust material changed and does not load: {e}");
                    match self.active().judge.withdrawn(&reason) {
                        Some(withdrawn) => {
                            tracing::error!(
                                target: "signet::gate",
                                error = %e,
                                "trust material refused; denying every image until it loads"
                            );
                            // Withdrawn once per change: the next change loads again.
                            trust_in_force = seen_trust.clone();
                            self.reload(withdrawn);
                        }
                        None => tracing::error!(
                            target: "signet::gate",
                            error = %e,
                            policy_hash = %self.policy_hash(),
                            "trust material refused; keeping the active policy"
                        ),
                    }
                }
                Err(e) => tracing::error!(
                    target: "signet::gate",
                    error = %e,
                    policy_hash = %self.policy_hash(),
                    "new policy refused; keeping the active one"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::judge::PolicyJudge;
    use crate::{GateConfig, Source};
    use signet_oci::{RegistryClient, RegistryOptions};

    const ACCEPT_ANYTHING: &str = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;

    fn config() -> GateConfig {
        GateConfig::simple(
            "policy.json".into(),
            "127.0.0.1:0".parse().unwrap(),
            "http://127.0.0.1:9",
        )
        .unwrap()
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..300 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting until {what}");
    }

    /// `signet trust update` after the gate started: a TUF cache file that did not exist at
    /// start is watched, its arrival reloads the policy; a broken one withdraws the policy (every
    /// image denied, without a request), and a good one afterwards restores it.
    #[tokio::test]
    async fn a_trust_cache_written_after_start_is_picked_up_and_a_broken_one_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.json");
        std::fs::write(&policy, ACCEPT_ANYTHING).unwrap();
        let cache = dir.path().join("signet/trust/public-good.json");
        let client = RegistryClient::new(RegistryOptions::default()).unwrap();
        let loads = Arc::new(AtomicUsize::new(0));
        // What `signet serve` does: the policy loads its Sigstore roots from the cache, and a
        // cache that exists but does not verify is an error.
        let load = {
            let (policy, cache, client, loads) =
                (policy.clone(), cache.clone(), client.clone(), loads.clone());
            move || -> Result<PolicyJudge, String> {
                loads.fetch_add(1, Ordering::SeqCst);
                if let Ok(text) = std::fs::read_to_string(&cache) {
                    if text.starts_with("broken") {
                        return Err(format!("{}: not a TUF cache", cache.display()));
                    }
                }
                let file = signet_verifier::enforce::load_policy_file(&policy)
                    .map_err(|e| e.to_string())?;
                Ok(PolicyJudge::new(file, client.clone()))
            }
        };
        let gate = Gate::new(config(), load().unwrap()).unwrap();
        let original = gate.policy_hash();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let watcher = {
            let (gate, policy, cache) = (gate.clone(), policy.clone(), cache.clone());
            tokio::spawn(async move {
                gate.keep_fresh(
                    vec![policy],
                    vec![cache],
                    Duration::from_millis(20),
                    load,
                    async {
                        let _ = rx.await;
                    },
                )
                .await;
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(loads.load(Ordering::SeqCst), 1, "nothing changed yet");

        std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
        std::fs::write(&cache, "{\"trusted_root\":\"v2\"}").unwrap();
        until("the new cache file is loaded", || {
            loads.load(Ordering::SeqCst) == 2
        })
        .await;
        until("the reload is counted", || {
            gate.metrics_text()
                .contains("signet_gate_policy_reloads_total 1\n")
        })
        .await;
        assert_eq!(gate.policy_hash(), original);

        std::fs::write(&cache, "broken: truncated by a full disk").unwrap();
        until("the policy is withdrawn", || {
            gate.policy_hash() == format!("{original}+withdrawn")
        })
        .await;
        let decision = gate.decide("registry.example/app:v1", Source::Api).await;
        assert!(!decision.allowed && !decision.admitted(), "{decision:?}");
        assert!(
            decision.message.contains("[trust-material-invalid]")
                && decision.message.contains("not a TUF cache"),
            "{}",
            decision.message
        );

        // A policy edit that fails while the trust is broken keeps denying.
        std::fs::write(&policy, "{").unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(gate.policy_hash(), format!("{original}+withdrawn"));

        std::fs::write(&policy, ACCEPT_ANYTHING).unwrap();
        std::fs::write(&cache, "{\"trusted_root\":\"v3\"}").unwrap();
        until("the policy is restored", || gate.policy_hash() == original).await;
        tx.send(()).unwrap();
        watcher.await.unwrap();
    }

    /// A policy edit that does not load leaves the judge in force when no trust file changed.
    #[tokio::test]
    async fn a_bad_policy_edit_alone_keeps_the_active_policy() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.json");
        std::fs::write(&policy, ACCEPT_ANYTHING).unwrap();
        let client = RegistryClient::new(RegistryOptions::default()).unwrap();
        let load = {
            let policy = policy.clone();
            move || -> Result<PolicyJudge, String> {
                let file = signet_verifier::enforce::load_policy_file(&policy)
                    .map_err(|e| e.to_string())?;
                Ok(PolicyJudge::new(file, client.clone()))
            }
        };
        let gate = Gate::new(config(), load().unwrap()).unwrap();
        let original = gate.policy_hash();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let watcher = {
            let (gate, policy) = (gate.clone(), policy.clone());
            let trust = dir.path().join("trust/public-good.json");
            tokio::spawn(async move {
                gate.keep_fresh(
                    vec![policy],
                    vec![trust],
                    Duration::from_millis(20),
                    load,
                    async {
                        let _ = rx.await;
                    },
                )
                .await;
            })
        };
        tokio::time::sleep(Duration::from_millis(60)).await;
        std::fs::write(&policy, "{").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(gate.policy_hash(), original);
        assert!(gate
            .metrics_text()
            .contains("signet_gate_policy_reloads_total 0\n"));
        tx.send(()).unwrap();
        watcher.await.unwrap();
    }
}
