//! Manifests and tags: GET/HEAD/PUT/DELETE of manifests, tag lists.

use bytes::Bytes;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};

use crate::manifest::ACCEPT_MANIFESTS;
use crate::{Descriptor, Digest, Error, Manifest, Reference};

use super::transport::{content_type, header_length, next_link, read_bounded, url_host, Access};
use super::{FetchedManifest, RegistryClient, MAX_SMALL_BODY_BYTES, MAX_TAGS, MAX_TAG_PAGES};

impl RegistryClient {
    /// The tag or digest a manifest URL ends in.
    pub(super) fn manifest_tail(reference: &Reference) -> String {
        match (reference.digest(), reference.tag()) {
            (Some(digest), _) => format!("manifests/{digest}"),
            (None, Some(tag)) => format!("manifests/{tag}"),
            (None, None) => "manifests/latest".to_string(),
        }
    }

    /// GET the manifest `reference` names (by digest if it has one, else by tag). The bytes are
    /// size-bounded and, when the reference has a digest, checked against it.
    pub async fn get_manifest(&self, reference: &Reference) -> Result<FetchedManifest, Error> {
        let what = format!("manifest {reference}");
        let url = self.url(reference, &Self::manifest_tail(reference))?;
        let kept = self
            .revalidation
            .as_ref()
            .and_then(|r| r.manifest(url.as_str()));
        if let (Some(kept), Some(_)) = (&kept, reference.digest()) {
            // The digest proves the bytes kept; ask only whether the registry still has them.
            let mut call = Self::call(reference, &what, Access::Pull, Method::HEAD, url.clone());
            call.headers.insert(
                reqwest::header::ACCEPT,
                HeaderValue::from_static(ACCEPT_MANIFESTS),
            );
            let response = self.send(&call).await?;
            if response.status() == StatusCode::OK {
                return Ok(kept.clone());
            }
            if let Some(r) = &self.revalidation {
                r.forget_manifest(url.as_str());
            }
            return Err(self.status_error(&call, response).await);
        }
        let mut call = Self::call(reference, &what, Access::Pull, Method::GET, url.clone());
        call.headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static(ACCEPT_MANIFESTS),
        );
        if let Some(kept) = &kept {
            if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", kept.digest)) {
                call.headers.insert(reqwest::header::IF_NONE_MATCH, etag);
            }
        }
        let mut response = self.send(&call).await?;
        if let (Some(kept), StatusCode::NOT_MODIFIED) = (&kept, response.status()) {
            // The tag still names the bytes kept (whose digest we computed ourselves).
            return Ok(kept.clone());
        }
        if response.status() != StatusCode::OK {
            if let Some(r) = &self.revalidation {
                r.forget_manifest(url.as_str());
            }
            return Err(self.status_error(&call, response).await);
        }
        let declared_type = content_type(response.headers());
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .map(|v| v.to_str().map(str::trim).map(str::to_string));
        let bytes = read_bounded(&mut response, self.options.max_manifest_bytes, &call).await?;
        let digest = match reference.digest() {
            Some(expected) => {
                expected.verify(&what, &bytes)?;
                expected.clone()
            }
            None => {
                let digest = Digest::sha256(&bytes);
                // We never rely on Docker-Content-Digest, but a registry that states a digest
                // its own bytes do not have is not to be believed about anything else either.
                if let Some(header) = header_digest {
                    let claimed: Digest =
                        header.ok().and_then(|h| h.parse().ok()).ok_or_else(|| {
                            Error::Registry {
                                registry: reference.registry().to_string(),
                                message: format!("{what}: malformed Docker-Content-Digest header"),
                            }
                        })?;
                    claimed.verify(&format!("{what} (Docker-Content-Digest)"), &bytes)?;
                }
                digest
            }
        };
        let manifest =
            Manifest::parse(&bytes, declared_type.as_deref(), &what).map_err(|e| match e {
                // serde's reasons quote the offending values: the answer's text, repeated only
                // where registry messages are.
                Error::InvalidManifest { what, reason } if !self.options.registry_messages => {
                    Error::InvalidManifest {
                        what,
                        reason: without_quoted(&reason),
                    }
                }
                other => other,
            })?;
        let media_type = match declared_type {
            Some(t) if is_manifest_type(&t) => t,
            _ => manifest.media_type().to_string(),
        };
        let fetched = FetchedManifest {
            bytes,
            digest,
            media_type,
            manifest,
        };
        if let Some(r) = &self.revalidation {
            r.keep_manifest(url.to_string(), &fetched);
        }
        Ok(fetched)
    }

    /// HEAD the manifest `reference` names: its descriptor, or `None` if it does not exist.
    ///
    /// A HEAD answer has no body to hash, so the descriptor is only as good as the registry's
    /// `Docker-Content-Digest` header; when the registry sends none, this falls back to a GET.
    /// When `reference` has a digest, a header disagreeing with it is an error.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<Descriptor>, Error> {
        let what = format!("manifest {reference}");
        let url = self.url(reference, &Self::manifest_tail(reference))?;
        let mut call = Self::call(reference, &what, Access::Pull, Method::HEAD, url);
        call.headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static(ACCEPT_MANIFESTS),
        );
        let response = self.send(&call).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.status_error(&call, response).await),
        }
        let headers = response.headers();
        let claimed = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<Digest>().ok());
        let (Some(claimed), Some(size), Some(media_type)) = (
            claimed,
            header_length(headers),
            content_type(headers).filter(|t| is_manifest_type(t)),
        ) else {
            let fetched = self.get_manifest(reference).await?;
            let mut descriptor = Descriptor::of(&fetched.media_type, &fetched.bytes);
            descriptor.digest = fetched.digest;
            return Ok(Some(descriptor));
        };
        if let Some(expected) = reference.digest() {
            if &claimed != expected {
                return Err(Error::DigestMismatch {
                    what: format!("{what} (Docker-Content-Digest)"),
                    expected: expected.clone(),
                    actual: claimed,
                });
            }
        }
        if size > self.options.max_manifest_bytes {
            return Err(Error::LimitExceeded {
                what,
                limit: format!("{} bytes", self.options.max_manifest_bytes),
            });
        }
        let mut descriptor = Descriptor::of(&media_type, &[]);
        descriptor.digest = claimed;
        descriptor.size = size;
        Ok(Some(descriptor))
    }

    /// PUT `bytes` as a manifest of `media_type` in `reference`'s repository under `reference`'s
    /// tag (or digest). Returns the digest of `bytes`.
    pub async fn put_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, Error> {
        Ok(self
            .put_manifest_answer(reference, bytes, media_type)
            .await?
            .0)
    }

    /// [`RegistryClient::put_manifest`], also returning the `OCI-Subject` header of the answer:
    /// a registry that implements the referrers API names there the subject it indexed the
    /// manifest under (OCI distribution spec 1.1, "Pushing Manifests with Subject").
    pub async fn put_manifest_answer(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(Digest, Option<String>), Error> {
        let what = format!("manifest {reference}");
        let digest = match reference.digest() {
            Some(expected) => {
                expected.verify(&what, bytes)?;
                expected.clone()
            }
            None => Digest::sha256(bytes),
        };
        // With both, the digest has been checked above and the tag is what the caller wants set.
        let tail = match reference.tag() {
            Some(tag) => format!("manifests/{tag}"),
            None => format!("manifests/{digest}"),
        };
        let url = self.url(reference, &tail)?;
        let mut call = Self::call(reference, &what, Access::Push, Method::PUT, url);
        call.idempotent = true;
        call.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| Error::InvalidManifest {
                what: what.clone(),
                reason: "media type is not a valid header value".into(),
            })?,
        );
        call.body = Some(Bytes::copy_from_slice(bytes));
        let response = self.send(&call).await?;
        if !response.status().is_success() {
            return Err(self.status_error(&call, response).await);
        }
        if let Some(claimed) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<Digest>().ok())
        {
            if claimed.algorithm() == digest.algorithm() && claimed != digest {
                return Err(Error::DigestMismatch {
                    what: format!("{what} (stored by the registry as)"),
                    expected: digest,
                    actual: claimed,
                });
            }
        }
        let subject = response
            .headers()
            .get("oci-subject")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string());
        Ok((digest, subject))
    }

    /// Delete the manifest `reference` names (by digest; registries refuse tags here).
    pub async fn delete_manifest(&self, reference: &Reference) -> Result<(), Error> {
        let what = format!("manifest {reference}");
        let digest = reference.digest().ok_or_else(|| {
            Error::Unsupported(format!("delete {what}: manifests are deleted by digest"))
        })?;
        let url = self.url(reference, &format!("manifests/{digest}"))?;
        let call = Self::call(reference, &what, Access::Push, Method::DELETE, url);
        let response = self.send(&call).await?;
        if !response.status().is_success() {
            return Err(self.status_error(&call, response).await);
        }
        Ok(())
    }

    /// The tags of `reference`'s repository (following `Link` pagination, bounded).
    pub async fn list_tags(&self, reference: &Reference) -> Result<Vec<String>, Error> {
        #[derive(serde::Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let what = format!("tag list of {}", reference.name());
        let first = self.url(reference, "tags/list")?;
        let mut url = first.clone();
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let call = Self::call(reference, &what, Access::Pull, Method::GET, url);
            let mut response = self.send(&call).await?;
            if response.status() != StatusCode::OK {
                return Err(self.status_error(&call, response).await);
            }
            let next = next_link(response.headers());
            let body = read_bounded(&mut response, MAX_SMALL_BODY_BYTES, &call).await?;
            let page: TagList = serde_json::from_slice(&body).map_err(|_| Error::Registry {
                registry: reference.registry().to_string(),
                message: format!("{what}: answer is not a tag list"),
            })?;
            tags.extend(page.tags.unwrap_or_default());
            if tags.len() > MAX_TAGS {
                return Err(Error::LimitExceeded {
                    what,
                    limit: format!("{MAX_TAGS} tags"),
                });
            }
            let Some(next) = next else {
                return Ok(tags);
            };
            url = call.url.join(&next).map_err(|_| Error::Registry {
                registry: reference.registry().to_string(),
                message: format!("{what}: unusable Link header"),
            })?;
            if url_host(&url) != url_host(&first) || url.scheme() != first.scheme() {
                return Err(Error::Registry {
                    registry: reference.registry().to_string(),
                    message: format!("{what}: Link header points to another host"),
                });
            }
        }
        Err(Error::LimitExceeded {
            what,
            limit: format!("{MAX_TAG_PAGES} pages"),
        })
    }
}

/// Whether `media_type` is one of the four manifest types.
pub(super) fn is_manifest_type(media_type: &str) -> bool {
    ACCEPT_MANIFESTS.split(", ").any(|t| t == media_type)
}

/// `text` with every double-quoted run replaced by `"…"` (serde's messages quote the values they
/// refused; field names are in backticks and stay).
fn without_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for c in text.chars() {
        if c == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::without_quoted;

    #[test]
    fn quoted_values_are_dropped_from_reasons() {
        assert_eq!(
            without_quoted(r#"invalid type: string "secret", expected u64 at line 1 column 9"#),
            r#"invalid type: string "…", expected u64 at line 1 column 9"#
        );
        assert_eq!(
            without_quoted("missing field `config`"),
            "missing field `config`"
        );
    }
}
