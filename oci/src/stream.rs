//! Verified blob streams: bytes pass through hashed and counted, and the stream ends in an error
//! instead of a clean end when they exceed, fall short of, or do not hash to their descriptor — so
//! no caller ever sees a completed bad blob.

use bytes::Bytes;
use futures_util::StreamExt as _;

use crate::registry::ByteStream;
use crate::{Descriptor, Digest, DigestHasher, Error};

/// Blobs at least this large are hashed on the blocking pool beside the stream (see
/// [`StreamHasher`]); smaller ones are not worth a thread hand-off.
const HASH_ELSEWHERE_FROM: u64 = 4 << 20;

/// Bytes collected before a batch is hashed. HTTP/2 and TLS deliver chunks of 16 KiB, and a
/// thread hand-off for each would cost more than hashing them in line; 1 MiB batches made a
/// proxied pull 2% quicker than 256 KiB ones (bench/README.md) for at most ~2 MiB held per stream.
const HASH_BATCH: usize = 1 << 20;

/// Wrap `stream` so that it hashes and counts what passes through and ends in an error (instead of
/// a clean end) if the content exceeds, falls short of, or does not hash to `descriptor`.
///
/// Large blobs are hashed on the blocking pool while their chunks are already handed on, so that
/// whoever consumes the stream (a socket, a file) works while the hash is computed; the end of
/// the stream still waits for the digest.
pub fn verified_stream(stream: ByteStream, descriptor: &Descriptor, what: String) -> ByteStream {
    // The blocking pool belongs to a runtime; outside one, hash in line.
    let elsewhere =
        descriptor.size >= HASH_ELSEWHERE_FROM && tokio::runtime::Handle::try_current().is_ok();
    struct State {
        inner: ByteStream,
        hasher: StreamHasher,
        expected: Digest,
        size: u64,
        expected_size: u64,
        what: String,
        done: bool,
    }
    let state = State {
        inner: stream,
        hasher: StreamHasher::new(&descriptor.digest, elsewhere),
        expected: descriptor.digest.clone(),
        size: 0,
        expected_size: descriptor.size,
        what,
        done: false,
    };
    let size_mismatch = |s: &State| Error::SizeMismatch {
        what: s.what.clone(),
        expected: s.expected_size,
        actual: s.size,
    };
    let hashing_failed = |s: &State| {
        Error::io(
            s.what.clone(),
            std::io::Error::other("the hashing task failed"),
        )
    };
    Box::pin(futures_util::stream::unfold(
        state,
        move |mut s| async move {
            if s.done {
                return None;
            }
            let failure = match s.inner.next().await {
                Some(Ok(chunk)) => {
                    s.size += chunk.len() as u64;
                    if s.size > s.expected_size {
                        size_mismatch(&s)
                    } else if s.hasher.update(&chunk).await {
                        return Some((Ok(chunk), s));
                    } else {
                        hashing_failed(&s)
                    }
                }
                Some(Err(e)) => e,
                None if s.size != s.expected_size => size_mismatch(&s),
                None => match s.hasher.finish().await {
                    Some(actual) if actual == s.expected => return None,
                    Some(actual) => Error::DigestMismatch {
                        what: s.what.clone(),
                        expected: s.expected.clone(),
                        actual,
                    },
                    None => hashing_failed(&s),
                },
            };
            s.done = true;
            Some((Err(failure), s))
        },
    ))
}

/// The hash of one stream, computed in line or, for large blobs, on the blocking pool in batches
/// of at least [`HASH_BATCH`] bytes. A batch must be hashed before the next one starts, which
/// bounds the bytes held to about two batches, paces the stream to the hash and holds no thread
/// while the stream is idle.
struct StreamHasher {
    state: HasherState,
    elsewhere: bool,
    /// Chunks not yet handed to the blocking pool (only when hashing elsewhere).
    batch: Vec<Bytes>,
    batch_bytes: usize,
}

enum HasherState {
    // Boxed: a SHA-512 state is large, and the state moves with every batch.
    Ready(Box<DigestHasher>),
    Busy(tokio::task::JoinHandle<Box<DigestHasher>>),
    Failed,
}

impl StreamHasher {
    fn new(digest: &Digest, elsewhere: bool) -> StreamHasher {
        StreamHasher {
            state: HasherState::Ready(Box::new(digest.hasher())),
            elsewhere,
            batch: Vec::new(),
            batch_bytes: 0,
        }
    }

    /// The hasher, once any batch under way is done; `None` if hashing failed.
    async fn take(&mut self) -> Option<Box<DigestHasher>> {
        match std::mem::replace(&mut self.state, HasherState::Failed) {
            HasherState::Ready(hasher) => Some(hasher),
            HasherState::Busy(task) => task.await.ok(),
            HasherState::Failed => None,
        }
    }

    /// Feed `chunk`; false if hashing failed.
    async fn update(&mut self, chunk: &Bytes) -> bool {
        if !self.elsewhere {
            let HasherState::Ready(hasher) = &mut self.state else {
                return false;
            };
            hasher.update(chunk);
            return true;
        }
        self.batch_bytes += chunk.len();
        self.batch.push(chunk.clone());
        if self.batch_bytes < HASH_BATCH {
            return true;
        }
        let Some(mut hasher) = self.take().await else {
            return false;
        };
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.state = HasherState::Busy(tokio::task::spawn_blocking(move || {
            for bytes in &batch {
                hasher.update(bytes);
            }
            hasher
        }));
        true
    }

    /// The digest of everything fed; `None` if hashing failed.
    async fn finish(&mut self) -> Option<Digest> {
        let mut hasher = self.take().await?;
        // Less than one batch is left: hashing it here is quicker than a hand-off.
        for bytes in std::mem::take(&mut self.batch) {
            hasher.update(&bytes);
        }
        Some((*hasher).finish())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn chunked(content: &[u8], chunk: usize) -> ByteStream {
        let chunks: Vec<Result<Bytes, Error>> = content
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Box::pin(futures_util::stream::iter(chunks))
    }

    /// Everything the stream yields: the bytes before the first error, and that error.
    async fn drain(mut stream: ByteStream) -> (Vec<u8>, Option<Error>) {
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(e) => {
                    assert!(stream.next().await.is_none(), "an error ends the stream");
                    return (out, Some(e));
                }
            }
        }
        (out, None)
    }

    fn content(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    // Small blobs are hashed in line, large ones (>= HASH_ELSEWHERE_FROM) on the blocking pool,
    // fed by HTTP/2-sized chunks (batched) and by hyper-sized ones.
    const CASES: [(usize, usize); 4] = [
        (1000, 64),
        (5 << 20, 16 << 10),
        (5 << 20, 400 << 10),
        ((4 << 20) + 1, 1 << 20),
    ];

    #[tokio::test]
    async fn matching_content_ends_cleanly() {
        for (size, chunk) in CASES {
            let bytes = content(size);
            let descriptor = Descriptor::of("application/octet-stream", &bytes);
            let (out, error) = drain(verified_stream(
                chunked(&bytes, chunk),
                &descriptor,
                "blob".into(),
            ))
            .await;
            assert!(error.is_none(), "{size}/{chunk}: {error:?}");
            assert!(out == bytes, "{size}/{chunk}: bytes changed on the way");
        }
    }

    #[tokio::test]
    async fn a_changed_byte_ends_in_a_digest_mismatch() {
        for (size, chunk) in CASES {
            let bytes = content(size);
            let descriptor = Descriptor::of("application/octet-stream", &bytes);
            for at in [0, size / 2, size - 1] {
                let mut bad = bytes.clone();
                bad[at] ^= 1;
                let (out, error) = drain(verified_stream(
                    chunked(&bad, chunk),
                    &descriptor,
                    "blob".into(),
                ))
                .await;
                match error {
                    Some(Error::DigestMismatch { actual, .. }) => {
                        assert_eq!(actual, Digest::sha256(&bad), "{size}/{chunk}/{at}")
                    }
                    other => panic!("{size}/{chunk}/{at}: {other:?}"),
                }
                assert_eq!(out.len(), size, "the bytes pass; the end is the error");
            }
        }
    }

    #[tokio::test]
    async fn too_many_or_too_few_bytes_end_in_a_size_mismatch() {
        for (size, chunk) in CASES {
            let bytes = content(size);
            let descriptor = Descriptor::of("application/octet-stream", &bytes);
            let mut long = bytes.clone();
            long.push(0);
            let (out, error) = drain(verified_stream(
                chunked(&long, chunk),
                &descriptor,
                "blob".into(),
            ))
            .await;
            assert!(
                matches!(error, Some(Error::SizeMismatch { expected, .. }) if expected == size as u64),
                "{size}/{chunk}: {error:?}"
            );
            assert!(
                out.len() <= size,
                "no byte beyond the stated size is passed on"
            );
            let short = &bytes[..size - 1];
            let (_, error) = drain(verified_stream(
                chunked(short, chunk),
                &descriptor,
                "blob".into(),
            ))
            .await;
            assert!(
                matches!(error, Some(Error::SizeMismatch { actual, .. }) if actual == size as u64 - 1),
                "{size}/{chunk}: {error:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_upstream_error_is_passed_on_and_ends_the_stream() {
        let bytes = content(5 << 20);
        let descriptor = Descriptor::of("application/octet-stream", &bytes);
        let mut items: Vec<Result<Bytes, Error>> = bytes[..3 << 20]
            .chunks(1 << 20)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        items.push(Err(Error::NotFound { what: "x".into() }));
        items.push(Ok(Bytes::copy_from_slice(&bytes[3 << 20..])));
        let stream: ByteStream = Box::pin(futures_util::stream::iter(items));
        let (out, error) = drain(verified_stream(stream, &descriptor, "blob".into())).await;
        assert!(matches!(error, Some(Error::NotFound { .. })), "{error:?}");
        assert_eq!(out.len(), 3 << 20);
    }
}
