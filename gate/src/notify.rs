//! Webhook notifications of verdict changes: each change is queued (bounded: when full, the
//! change is dropped and counted, never waited for) and one worker task `POST`s them in order,
//! each attempt under `timeout_seconds`, retrying with doubling back-off (1 s, 2 s, … at most
//! 60 s). A webhook that hangs or fails holds up only this worker: re-judging, requests and the
//! server never wait for it.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use tokio::sync::mpsc;

use super::config::WebhookConfig;
use super::continuous::Standing;
use super::metrics::{Metrics, NotificationLabels};
use super::{GateError, Mode};

/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A change of verdict, as sent.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Change {
    pub(crate) image: String,
    pub(crate) digest: String,
    pub(crate) from: Standing,
    pub(crate) to: Standing,
    pub(crate) mode: Mode,
    pub(crate) reasons: Vec<String>,
    pub(crate) message: String,
    pub(crate) policy_hash: Option<String>,
    pub(crate) changed_at: String,
    /// While `to` is `unknown`: the last verdict that could be had.
    pub(crate) last_known: Option<Standing>,
}

/// The queue and, until the first change, the worker's end of it (the worker starts on the
/// first change, inside the runtime; the gate may be built outside one).
pub(crate) struct Notifier {
    tx: mpsc::Sender<Change>,
    idle: Mutex<Option<(mpsc::Receiver<Change>, Worker)>>,
}

struct Worker {
    client: reqwest::Client,
    url: reqwest::Url,
    retries: u32,
}

impl Notifier {
    pub(crate) fn new(config: &WebhookConfig) -> Result<Notifier, GateError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| GateError::Config(format!("continuous.webhook.url: {e}")))?;
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(config.timeout_seconds))
            .connect_timeout(Duration::from_secs(config.timeout_seconds))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("signet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GateError::Config(format!("continuous.webhook: {e}")))?;
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        Ok(Notifier {
            tx,
            idle: Mutex::new(Some((
                rx,
                Worker {
                    client,
                    url,
                    retries: config.retries,
                },
            ))),
        })
    }

    /// Queue `change`; never waits. A full queue drops it (counted as `dropped`).
    pub(crate) fn send(&self, change: Change, metrics: &Metrics) {
        let counter = metrics.notifications.clone();
        if let Ok(mut idle) = self.idle.lock() {
            if let (Some((rx, worker)), Ok(runtime)) =
                (idle.take(), tokio::runtime::Handle::try_current())
            {
                runtime.spawn(worker.run(rx, counter.clone()));
            }
        }
        if self.tx.try_send(change).is_err() {
            counter.get_or_create(&[("outcome", "dropped")]).inc();
            tracing::warn!(
                target: "signet::gate::continuous",
                "notification queue full; a verdict change was not sent"
            );
        }
    }
}

impl Worker {
    async fn run(
        self,
        mut rx: mpsc::Receiver<Change>,
        counter: Family<NotificationLabels, Counter>,
    ) {
        while let Some(change) = rx.recv().await {
            let outcome = if self.deliver(&change).await {
                "sent"
            } else {
                "failed"
            };
            counter.get_or_create(&[("outcome", outcome)]).inc();
        }
    }

    /// POST `change`, retrying; whether a 2xx answer came.
    async fn deliver(&self, change: &Change) -> bool {
        // Serialising this struct cannot fail: every map key is a string.
        let body = serde_json::to_vec(change).unwrap_or_default();
        let mut backoff = Duration::from_secs(1);
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            let request = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            let why = match request.send().await {
                Ok(answer) if answer.status().is_success() => return true,
                Ok(answer) => format!("HTTP {}", answer.status().as_u16()),
                Err(e) if e.is_timeout() => "timed out".to_string(),
                Err(_) => "could not connect".to_string(),
            };
            tracing::warn!(
                target: "signet::gate::continuous",
                image = %change.image, attempt = attempt + 1, why = %why,
                "verdict change notification failed"
            );
        }
        false
    }
}
