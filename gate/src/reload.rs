//! Policy reload: on `SIGHUP` and whenever one of the watched files (policy, keys) changes, build
//! a new judge and swap it in; a judge that fails to build is refused and the old one stays.
//! Files are polled (modification time and size), which works the same for ConfigMap volumes
//! (whose files change by symlink swap) and plain files, without a watcher crate.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::server::Gate;
use super::Judge;

type Stamp = Option<(SystemTime, u64)>;

fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    paths
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

impl<J: Judge> Gate<J> {
    /// Keep the policy fresh until `stop` completes: every `every`, and on `SIGHUP` (Unix), if
    /// any of `paths` changed (or on every `SIGHUP`), call `load`; on `Ok` the new judge replaces
    /// the old one ([`Gate::reload`]), on `Err` the error is logged and the old judge stays.
    /// The CLI spawns this next to [`super::BoundGate::run`].
    pub async fn keep_policy_fresh<E: std::fmt::Display>(
        &self,
        paths: Vec<PathBuf>,
        every: Duration,
        load: impl Fn() -> Result<J, E> + Send,
        stop: impl Future<Output = ()> + Send,
    ) {
        let mut seen = stamps(&paths);
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
            if !forced && now == seen {
                continue;
            }
            seen = now;
            match load() {
                Ok(judge) => self.reload(judge),
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
