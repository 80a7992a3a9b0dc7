//! The OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`), bounded and validated. The
//! store-level view (API, tag-schema fallback, layouts, writing) is `crate::referrers`.
//!
//! A registry without the API (it answers 404, as Debian's distribution 2.8 does) is remembered
//! for [`REFERRERS_API_ABSENT_FOR`] by the client and its clones, so the long-lived client the
//! gate shares goes straight to the tag schema instead of asking again on every judgement; after
//! that the API is asked again, so an upgraded registry is noticed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};

use crate::manifest::OCI_INDEX;
use crate::{Descriptor, Digest, Error, Manifest, Reference};

use super::transport::{next_link, read_bounded, url_host, Access};
use super::RegistryClient;

/// Most pages of one referrers answer followed.
const MAX_REFERRER_PAGES: usize = 16;
/// How long a registry's 404 to the referrers API is believed before the API is asked again.
pub const REFERRERS_API_ABSENT_FOR: Duration = Duration::from_secs(3600);
/// Most registries remembered as lacking the API (one entry per registry host).
const MAX_REMEMBERED_REGISTRIES: usize = 1024;

/// Registries (by host as references name them) whose referrers API answered 404, and when.
#[derive(Debug, Default)]
pub(super) struct ReferrersApiMemory {
    absent_since: Mutex<HashMap<String, Instant>>,
}

impl ReferrersApiMemory {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        match self.absent_since.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Whether `registry` answered 404 less than [`REFERRERS_API_ABSENT_FOR`] before `now`.
    fn known_absent(&self, registry: &str, now: Instant) -> bool {
        self.lock()
            .get(registry)
            .is_some_and(|since| now.saturating_duration_since(*since) < REFERRERS_API_ABSENT_FOR)
    }

    fn remember_absent(&self, registry: &str, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_REMEMBERED_REGISTRIES && !map.contains_key(registry) {
            // Stale entries go first; if none, the oldest: forgetting costs one request.
            map.retain(|_, since| now.saturating_duration_since(*since) < REFERRERS_API_ABSENT_FOR);
            if map.len() >= MAX_REMEMBERED_REGISTRIES {
                if let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(registry.to_string(), now);
    }

    fn forget(&self, registry: &str) {
        self.lock().remove(registry);
    }
}

impl RegistryClient {
    /// The referrers of `subject` in `reference`'s repository through the referrers API,
    /// filtered to `artifact_type` when given; `Ok(None)` when the registry does not implement
    /// the API (it answers 404). Every page is size-bounded (the manifest limit) and must be an
    /// image index; when the registry states a `Docker-Content-Digest` for a page, the page's
    /// bytes must have it. At most `max` descriptors are accepted, each checked by
    /// [`crate::referrers::validate_referrer`]; the filter is applied here as well, since a
    /// registry may ignore it.
    pub async fn get_referrers(
        &self,
        reference: &Reference,
        subject: &Digest,
        artifact_type: Option<&str>,
        max: usize,
    ) -> Result<Option<Vec<Descriptor>>, Error> {
        let what = format!("referrers of {subject} in {}", reference.name());
        let registry_error = |message: &str| Error::Registry {
            registry: reference.registry().to_string(),
            message: format!("{what}: {message}"),
        };
        let registry = reference.registry().to_string();
        if self.referrers_api.known_absent(&registry, Instant::now()) {
            return Ok(None);
        }
        let mut first = self.url(reference, &format!("referrers/{subject}"))?;
        if let Some(wanted) = artifact_type {
            first.query_pairs_mut().append_pair("artifactType", wanted);
        }
        let mut url = first.clone();
        let mut found = Vec::new();
        for page in 0..MAX_REFERRER_PAGES {
            let mut call = Self::call(reference, &what, Access::Pull, Method::GET, url);
            call.headers
                .insert(reqwest::header::ACCEPT, HeaderValue::from_static(OCI_INDEX));
            let mut response = self.send(&call).await?;
            match response.status() {
                StatusCode::OK if page == 0 => self.referrers_api.forget(&registry),
                StatusCode::OK => {}
                // Only the first page tells whether the API exists.
                StatusCode::NOT_FOUND if page == 0 => {
                    self.referrers_api
                        .remember_absent(&registry, Instant::now());
                    return Ok(None);
                }
                _ => return Err(self.status_error(&call, response).await),
            }
            let next = next_link(response.headers());
            let header_digest = response
                .headers()
                .get("docker-content-digest")
                .map(|v| v.to_str().map(str::trim).map(str::to_string));
            let bytes = read_bounded(&mut response, self.options.max_manifest_bytes, &call).await?;
            // The answer has no digest of its own to check; when the registry states one, it
            // must be the digest of these bytes.
            if let Some(header) = header_digest {
                let claimed: Digest = header
                    .ok()
                    .and_then(|h| h.parse().ok())
                    .ok_or_else(|| registry_error("malformed Docker-Content-Digest header"))?;
                claimed.verify(&format!("{what} (Docker-Content-Digest)"), &bytes)?;
            }
            let index = match Manifest::parse(&bytes, Some(OCI_INDEX), &what)? {
                Manifest::Index(index) => index,
                Manifest::Image(_) => return Err(registry_error("answer is not an image index")),
            };
            for descriptor in index.manifests {
                crate::referrers::validate_referrer(
                    &descriptor,
                    self.options.max_manifest_bytes,
                    &what,
                )?;
                if artifact_type
                    .is_none_or(|t| crate::referrers::artifact_type(&descriptor) == Some(t))
                {
                    found.push(descriptor);
                }
                if found.len() > max {
                    return Err(Error::LimitExceeded {
                        what,
                        limit: format!("{max} referrers"),
                    });
                }
            }
            let Some(next) = next else {
                return Ok(Some(found));
            };
            url = call
                .url
                .join(&next)
                .map_err(|_| registry_error("unusable Link header"))?;
            if url_host(&url) != url_host(&first) || url.scheme() != first.scheme() {
                return Err(registry_error("Link header points to another host"));
            }
        }
        Err(Error::LimitExceeded {
            what,
            limit: format!("{MAX_REFERRER_PAGES} pages"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_api_is_believed_for_an_hour_then_asked_again() {
        let memory = ReferrersApiMemory::default();
        let start = Instant::now();
        assert!(!memory.known_absent("reg.io", start));
        memory.remember_absent("reg.io", start);
        assert!(memory.known_absent("reg.io", start));
        assert!(memory.known_absent("reg.io", start + Duration::from_secs(3599)));
        assert!(!memory.known_absent("reg.io", start + REFERRERS_API_ABSENT_FOR));
        assert!(!memory.known_absent("other.io", start), "per registry");
        memory.forget("reg.io");
        assert!(!memory.known_absent("reg.io", start));
    }

    #[test]
    fn the_memory_is_bounded() {
        let memory = ReferrersApiMemory::default();
        let start = Instant::now();
        for i in 0..MAX_REMEMBERED_REGISTRIES + 10 {
            memory.remember_absent(&format!("r{i}.io"), start + Duration::from_millis(i as u64));
        }
        assert_eq!(memory.lock().len(), MAX_REMEMBERED_REGISTRIES);
        // The newest is kept, the oldest made room.
        let newest = format!("r{}.io", MAX_REMEMBERED_REGISTRIES + 9);
        assert!(memory.known_absent(&newest, start));
        assert!(!memory.lock().contains_key("r0.io"));
    }
}
