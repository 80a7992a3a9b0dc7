//! `signet-gate`, the registry-side gate (`signet serve`): one HTTP(S) server that answers for the trust policy at
//! the places images enter a system — a verifying, read-only registry proxy (OCI distribution pull
//! API), a Kubernetes admission webhook (`/validate`, `/mutate`), a verify API (`/v1/verify`,
//! `/v1/policy`), health and Prometheus endpoints — plus the logic of containerd's image-verifier
//! hook. The gate never decides anything itself: it resolves tags to digests, asks a [`Judge`] for a
//! verdict on one image at one digest, caches cacheable verdicts by content and fails closed on
//! every error.
//!
//! How the CLI runs it:
//!
//! ```no_run
//! # use std::time::Duration;
//! # use signet_gate::{Gate, GateConfig, GateError, Judge};
//! # async fn run<J: Judge>(load_policy: impl Fn() -> Result<J, GateError> + Send + 'static) -> Result<(), GateError> {
//! let text = std::fs::read_to_string("gate.yaml").map_err(|e| GateError::io("gate.yaml", e))?;
//! let config = GateConfig::from_yaml(&text)?;
//! let gate = Gate::new(config, load_policy()?)?;
//! let bound = gate.bind().await?; // listening now; `bound.local_addr()` is known
//! // SIGHUP, or a change to the policy or key files: build a new judge and swap it in (a policy
//! // that fails to load is refused and the old one stays).
//! let reloader = gate.clone();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let files = vec!["policy.yaml".into(), "keys/release.pub".into()];
//! tokio::spawn(async move {
//!     let stopped = async { let _ = stopped.await; };
//!     reloader.keep_policy_fresh(files, Duration::from_secs(2), load_policy, stopped).await
//! });
//! bound.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! let _ = stop.send(());
//! # Ok(()) }
//! ```
//!
//! [`serve`] does `Gate::new`, `bind` and `run` in one call for callers that need no handle.

mod admission;
mod api;
pub mod audit;
mod cache;
pub mod config;
mod containerd;
mod continuous;
mod engine;
pub mod judge;
mod metrics;
mod notify;
mod proxy;
mod reload;
mod server;
mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use signet_oci::{Digest, Reference};

pub use admission::{extract_images, pin_patch, review_images, PodImage};
pub use config::{
    ApiConfig, CacheConfig, ContinuousConfig, GateConfig, Limits, NetworkConfig, Timeouts,
    TlsConfig, Upstream, UpstreamCredentials, UpstreamProxy, WebhookConfig,
};
pub use containerd::{
    containerd_verify, CONTAINERD_DESCRIPTOR_MEDIA_TYPE, CONTAINERD_INPUT_MEDIA_TYPE,
};
pub use continuous::{Assessment, CycleSummary, Standing};
pub use engine::{Decision, Source};
pub use server::{serve, BoundGate, Gate};

/// How a verdict is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A denial blocks: the proxy answers 403, admission denies, containerd's hook exits non-zero.
    Enforce,
    /// A denial lets the image through with a warning (admission `warnings`, a log line).
    Warn,
    /// A denial lets the image through silently; it is only logged, counted and (admission)
    /// recorded in `auditAnnotations`.
    Audit,
}

impl Mode {
    /// `enforce`, `warn` or `audit` (as in metrics labels and JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
        }
    }
}

/// The decision for one image at one digest, as a [`Judge`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The digest judged; must equal the digest the gate asked about (the gate denies otherwise).
    pub digest: Digest,
    /// Whether the policy allows the image.
    pub allowed: bool,
    /// How a denial is applied.
    pub mode: Mode,
    /// Why, in one line (shown to users in 403 bodies, admission messages and logs).
    pub message: String,
    /// The full verdict, returned as is by `/v1/verify`; shared, because a cached judgement's
    /// report goes into every decision that hits it.
    pub report: std::sync::Arc<serde_json::Value>,
    /// Whether the verdict may be cached: true for verified allows and for cryptographic or policy
    /// denials, false for anything transient (a registry that did not answer, a time-out).
    pub cacheable: bool,
    /// The verdict holds only while the wall clock (unix seconds) is before this instant: a
    /// trusted key's `notAfter`, the end of an image's `maxAge`, the scope's `cacheTtl` (see
    /// `signet_policy::Verdict::valid_until`). The gate never caches it past that. `None`: no
    /// time bound beyond the gate's own cache TTL.
    pub valid_until: Option<i64>,
}

impl Judgement {
    /// Whether the image may be used: allowed, or denied in a mode that does not block.
    pub fn admitted(&self) -> bool {
        self.allowed || self.mode != Mode::Enforce
    }
}

/// A Sigstore trusted root the active policy uses: reported by `GET /v1/policy`, and compared
/// on reload, so that a root that changes (a `signet trust update`, or its cache removed and the
/// embedded snapshot used instead) is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRootInUse {
    /// The root the policy names, for people (`Sigstore public-good root`, a file, …).
    pub name: String,
    /// Where it was read from, for people.
    pub source: String,
    /// Whether that is the snapshot embedded in the binary.
    pub embedded: bool,
    /// SHA-256 (hex) of its bytes.
    pub sha256: String,
}

/// What the gate asks for a verdict. The CLI implements it with the real verifier and policy; tests
/// implement it in a few lines.
///
/// Implementations are shared between all requests (hence `Send + Sync + 'static`) and replaced
/// whole on policy reload ([`Gate::reload`]), so they hold the loaded policy and trust roots and
/// nothing that changes while they live.
pub trait Judge: Send + Sync + 'static {
    /// Judge the image `reference`: its upstream name (registry host and repository, with the tag
    /// or digest the caller used) — the name its signatures were made for. `digest` is set when
    /// the caller already resolved it (the gate always does), and the verdict must be about
    /// exactly that digest.
    ///
    /// An `Err` means "could not judge": the gate denies with the error as the reason and never
    /// caches it.
    fn judge(
        &self,
        reference: Reference,
        digest: Option<Digest>,
    ) -> impl Future<Output = Result<Judgement, GateError>> + Send;

    /// A content hash of the active policy and trust roots; part of every cache key, so verdicts
    /// made under another policy are never reused.
    fn policy_hash(&self) -> String;

    /// What the policy says about `reference` from its name alone. The gate asks this before it
    /// resolves a tag or fetches anything: a name no evidence could get allowed is decided
    /// without a request, so the verify API and admission cannot make the gate reach a host the
    /// policy does not trust. The default (for judges without a policy) screens nothing out.
    fn screen(&self, reference: &Reference) -> Screening {
        let _ = reference;
        Screening::Judge
    }

    /// This judge withdrawn because the trust material it was built from changed and no longer
    /// loads (`reason`): a judge that denies every image, so the gate fails closed rather than
    /// keep trusting what was replaced. `None` (the default): the judge cannot be withdrawn and
    /// stays in force.
    fn withdrawn(&self, reason: &str) -> Option<Self>
    where
        Self: Sized,
    {
        let _ = reason;
        None
    }

    /// The Sigstore trusted roots this judge verifies with; none for a withdrawn judge (it
    /// verifies nothing). The default: none.
    fn trust_roots(&self) -> Vec<TrustRootInUse> {
        Vec::new()
    }
}

/// What a [`Judge`] says about an image from its name alone ([`Judge::screen`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Screening {
    /// Evidence could get the image allowed: resolve its digest and judge it.
    Judge,
    /// Nothing the registry could hold would get the image allowed: decide now, without a
    /// request.
    Refuse {
        /// How the denial is applied.
        mode: Mode,
        /// Why, in one line.
        message: String,
        /// The verdict as `/v1/verify` returns it.
        report: serde_json::Value,
    },
}

/// Where the gate and its judge read the time: the wall clock (the policy's `now`, and how long
/// a verdict's `valid_until` leaves) and a monotonic clock (cache expiry). Injected, like the
/// policy crate's `now`, so tests move time instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The wall-clock time now.
    fn wall(&self) -> SystemTime;

    /// A monotonic instant now (never goes back, whatever the wall clock does).
    fn monotonic(&self) -> Instant;

    /// The wall clock as unix seconds; a clock before 1970 is [`GateError::Clock`] ("could not
    /// check"), never 0, at which every key's `notAfter` would hold.
    fn unix_now(&self) -> Result<i64, GateError> {
        signet_oci::clock::unix_seconds(self.wall()).map_err(GateError::Clock)
    }
}

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told ([`ManualClock::advance`]); both its readings move
/// together. Clones share one time, so a test keeps a handle to the clock the gate reads.
#[derive(Debug, Clone)]
pub struct ManualClock {
    wall: SystemTime,
    monotonic: Instant,
    elapsed: Arc<Mutex<Duration>>,
}

impl ManualClock {
    /// A clock whose wall time reads `wall` until advanced.
    pub fn new(wall: SystemTime) -> ManualClock {
        ManualClock {
            wall,
            monotonic: Instant::now(),
            elapsed: Arc::new(Mutex::new(Duration::ZERO)),
        }
    }

    /// Move both readings forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut elapsed = match self.elapsed.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        *elapsed += by;
    }

    fn elapsed(&self) -> Duration {
        match self.elapsed.lock() {
            Ok(e) => *e,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

impl Clock for ManualClock {
    fn wall(&self) -> SystemTime {
        self.wall + self.elapsed()
    }

    fn monotonic(&self) -> Instant {
        self.monotonic + self.elapsed()
    }
}

/// Why the gate could not start, or could not judge an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// The gate's configuration is not valid.
    #[error("invalid gate configuration: {0}")]
    Config(String),
    /// A file (configuration, credentials, certificate) could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The upstream registry failed or answered with an error.
    #[error(transparent)]
    Upstream(#[from] signet_oci::Error),
    /// The verifier could not carry out a verification.
    #[error(transparent)]
    Verifier(#[from] signet_verifier::Error),
    /// The judge could not reach a verdict.
    #[error("{0}")]
    Judge(String),
    /// The clock cannot be used (it reads before 1970): nothing time-bound can be checked.
    #[error(transparent)]
    Clock(signet_oci::Error),
    /// A container engine could not be listed (`signet audit`): missing socket, an answer that
    /// does not parse, a time-out.
    #[error("{0}")]
    Engine(String),
    /// Something took longer than the gate allows.
    #[error("{what} timed out after {seconds} s")]
    Timeout {
        /// What timed out.
        what: String,
        /// The limit.
        seconds: u64,
    },
}

impl GateError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> GateError {
        GateError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `text` on one line, control characters replaced, at most `max` characters: messages from
/// judges and registries end up in HTTP bodies, headers and log lines.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    // The common case, a short message already on one line, is copied as it is: this runs
    // for every decision, cached ones included.
    if text.len() <= max && !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod time_tests;
