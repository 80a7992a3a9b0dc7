//! Blob uploads: existence checks, monolithic and chunked uploads.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::{Descriptor, Digest, DigestHasher, Error, Reference};

use super::transport::{Access, Call};
use super::{ByteStream, RegistryClient};

impl RegistryClient {
    pub(super) async fn blob_exists(
        &self,
        reference: &Reference,
        digest: &Digest,
        access: Access,
    ) -> Result<bool, Error> {
        let what = format!("blob {digest} in {reference}");
        let url = self.url(reference, &format!("blobs/{digest}"))?;
        let call = Self::call(reference, &what, access, Method::HEAD, url);
        let response = self.send(&call).await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(&call, response).await),
        }
    }

    /// Start an upload session: the URL to PATCH or PUT to.
    pub(super) async fn start_upload(
        &self,
        reference: &Reference,
        what: &str,
    ) -> Result<Url, Error> {
        let url = self.url(reference, "blobs/uploads/")?;
        let call = Self::call(reference, what, Access::Push, Method::POST, url);
        let response = self.send(&call).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(&call, response).await);
        }
        Self::location(&call, &response)
    }

    /// The `Location` of an upload answer, resolved against the request URL.
    pub(super) fn location(call: &Call<'_>, response: &reqwest::Response) -> Result<Url, Error> {
        response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| call.url.join(v).ok())
            .ok_or_else(|| Error::Registry {
                registry: call.reference.registry().to_string(),
                message: format!("{}: upload answer without a usable Location", call.what),
            })
    }

    /// Finish an upload at `location` with `body` (possibly empty) as the last bytes.
    pub(super) async fn finish_upload(
        &self,
        reference: &Reference,
        what: &str,
        mut location: Url,
        digest: &Digest,
        body: Bytes,
    ) -> Result<(), Error> {
        location
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let mut call = Self::call(reference, what, Access::Push, Method::PUT, location);
        call.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        call.body = Some(body);
        let response = self.send(&call).await?;
        if response.status() != StatusCode::CREATED {
            return Err(self.status_error(&call, response).await);
        }
        Ok(())
    }

    /// Upload `bytes` as a blob to `reference`'s repository in one request (skipped if present).
    pub async fn put_blob(&self, reference: &Reference, bytes: Bytes) -> Result<Digest, Error> {
        let digest = Digest::sha256(&bytes);
        if self.blob_exists(reference, &digest, Access::Push).await? {
            return Ok(digest);
        }
        let what = format!("blob {digest} upload to {reference}");
        let location = self.start_upload(reference, &what).await?;
        self.finish_upload(reference, &what, location, &digest, bytes)
            .await?;
        Ok(digest)
    }

    /// Upload a blob of known digest and size from a stream, in chunks (skipped if present).
    ///
    /// The bytes are hashed and counted as they pass; if they do not match `descriptor` the upload
    /// is abandoned before the registry is asked to commit it.
    pub async fn put_blob_stream(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        stream: ByteStream,
    ) -> Result<(), Error> {
        if self
            .blob_exists(reference, &descriptor.digest, Access::Push)
            .await?
        {
            return Ok(());
        }
        let what = format!("blob {} upload to {reference}", descriptor.digest);
        let location = self.start_upload(reference, &what).await?;
        let result = self
            .upload_chunks(reference, descriptor, stream, &what, location.clone())
            .await;
        if result.is_err() {
            // Best effort: let the registry free the half-done session.
            let call = Self::call(reference, &what, Access::Push, Method::DELETE, location);
            let _ = self.send(&call).await;
        }
        result
    }

    pub(super) async fn upload_chunks(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        mut stream: ByteStream,
        what: &str,
        mut location: Url,
    ) -> Result<(), Error> {
        let mut hasher = DigestHasher::new(descriptor.digest.algorithm());
        let mut sent: u64 = 0;
        let mut buffer = BytesMut::new();
        // Once the stream has said None it must not be polled again.
        let mut exhausted = false;
        loop {
            while !exhausted && buffer.len() < self.chunk_bytes {
                match stream.next().await {
                    Some(chunk) => {
                        let chunk = chunk?;
                        hasher.update(&chunk);
                        buffer.extend_from_slice(&chunk);
                        let total = sent + buffer.len() as u64;
                        if total > descriptor.size {
                            return Err(Error::SizeMismatch {
                                what: what.to_string(),
                                expected: descriptor.size,
                                actual: total,
                            });
                        }
                    }
                    None => exhausted = true,
                }
            }
            if buffer.is_empty() {
                break;
            }
            let take = buffer.len().min(self.chunk_bytes);
            let chunk = buffer.split_to(take).freeze();
            let start = sent;
            let end = sent + chunk.len() as u64 - 1;
            let mut call = Self::call(reference, what, Access::Push, Method::PATCH, location);
            call.headers.insert(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            call.headers.insert(
                HeaderName::from_static("content-range"),
                HeaderValue::from_str(&format!("{start}-{end}")).map_err(|_| Error::Registry {
                    registry: reference.registry().to_string(),
                    message: format!("{what}: bad content range"),
                })?,
            );
            call.body = Some(chunk.clone());
            let response = self.send(&call).await?;
            if response.status() != StatusCode::ACCEPTED {
                return Err(self.status_error(&call, response).await);
            }
            location = Self::location(&call, &response)?;
            sent += chunk.len() as u64;
        }
        if sent != descriptor.size {
            return Err(Error::SizeMismatch {
                what: what.to_string(),
                expected: descriptor.size,
                actual: sent,
            });
        }
        let actual = hasher.finish();
        if actual != descriptor.digest {
            return Err(Error::DigestMismatch {
                what: what.to_string(),
                expected: descriptor.digest.clone(),
                actual,
            });
        }
        self.finish_upload(reference, what, location, &descriptor.digest, Bytes::new())
            .await
    }
}
