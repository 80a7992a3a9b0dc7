//! The OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`), bounded and validated. The
//! store-level view (API, tag-schema fallback, layouts, writing) is `crate::referrers`.

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};

use crate::manifest::OCI_INDEX;
use crate::{Descriptor, Digest, Error, Manifest, Reference};

use super::transport::{next_link, read_bounded, url_host, Access};
use super::RegistryClient;

/// Most pages of one referrers answer followed.
const MAX_REFERRER_PAGES: usize = 16;

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
                StatusCode::OK => {}
                // Only the first page tells whether the API exists.
                StatusCode::NOT_FOUND if page == 0 => return Ok(None),
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
