//! Verified blob streams: bytes pass through hashed and counted, and the stream ends in an error
//! instead of a clean end when they exceed, fall short of, or do not hash to their descriptor — so
//! no caller ever sees a completed bad blob.

use futures_util::StreamExt as _;

use crate::registry::ByteStream;
use crate::{Descriptor, Digest, DigestHasher, Error};

/// Wrap `stream` so that it hashes and counts what passes through and ends in an error (instead of
/// a clean end) if the content exceeds, falls short of, or does not hash to `descriptor`.
pub fn verified_stream(stream: ByteStream, descriptor: &Descriptor, what: String) -> ByteStream {
    if descriptor.size >= HASH_ELSEWHERE_FROM {
        // The blocking pool belongs to a runtime; outside one, hash in line.
        if tokio::runtime::Handle::try_current().is_ok() {
            return hashed_elsewhere(stream, descriptor, what);
        }
    }
    hashed_inline(stream, descriptor, what)
}

/// Blobs at least this large are hashed on a blocking thread beside the stream (see
/// [`hashed_elsewhere`]); smaller ones are not worth a thread hand-off.
const HASH_ELSEWHERE_FROM: u64 = 4 << 20;

/// Bytes collected before a batch is hashed. HTTP/2 and TLS deliver chunks of 16 KiB, and a
/// thread hand-off for each would cost more than hashing them in line; 1 MiB batches made a
/// proxied pull 2% quicker than 256 KiB ones (bench/README.md) for at most ~2 MiB held per stream.
const HASH_BATCH: usize = 1 << 20;

fn hashed_inline(stream: ByteStream, descriptor: &Descriptor, what: String) -> ByteStream {
    struct State {
        inner: ByteStream,
        hasher: crate::DigestHasher,
        expected: Digest,
        size: u64,
        expected_size: u64,
        what: String,
        done: bool,
    }
    let state = State {
        inner: stream,
        hasher: descriptor.digest.hasher(),
        expected: descriptor.digest.clone(),
        size: 0,
        expected_size: descriptor.size,
        what,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        match s.inner.next().await {
            Some(Ok(chunk)) => {
                s.size += chunk.len() as u64;
                if s.size > s.expected_size {
                    s.done = true;
                    let err = Error::SizeMismatch {
                        what: s.what.clone(),
                        expected: s.expected_size,
                        actual: s.size,
                    };
                    return Some((Err(err), s));
                }
                s.hasher.update(&chunk);
                Some((Ok(chunk), s))
            }
            Some(Err(e)) => {
                s.done = true;
                Some((Err(e), s))
            }
            None => {
                s.done = true;
                if s.size != s.expected_size {
                    let err = Error::SizeMismatch {
                        what: s.what.clone(),
                        expected: s.expected_size,
                        actual: s.size,
                    };
                    return Some((Err(err), s));
                }
                let actual = s.hasher.clone().finish();
                if actual != s.expected {
                    let err = Error::DigestMismatch {
                        what: s.what.clone(),
                        expected: s.expected.clone(),
                        actual,
                    };
                    return Some((Err(err), s));
                }
                None
            }
        }
    }))
}

/// [`verified_stream`] for large blobs: chunks are handed on at once and hashed on a blocking-pool
/// thread in batches of at least [`HASH_BATCH`] bytes, so whoever consumes the stream (a socket, a
/// file) works while the hash is computed. A batch must be hashed before the next one is started,
/// which bounds the bytes held to about two batches, paces the stream to the hash and holds no
/// thread while idle; the stream's end still waits for the digest, so a bad blob never ends
/// cleanly.
fn hashed_elsewhere(stream: ByteStream, descriptor: &Descriptor, what: String) -> ByteStream {
    enum Hashing {
        // Boxed: a SHA-512 state is large, and the state moves with every chunk.
        Ready(Box<DigestHasher>),
        Busy(tokio::task::JoinHandle<Box<DigestHasher>>),
        Gone,
    }
    impl Hashing {
        async fn take(&mut self) -> Option<Box<DigestHasher>> {
            match std::mem::replace(self, Hashing::Gone) {
                Hashing::Ready(hasher) => Some(hasher),
                Hashing::Busy(task) => task.await.ok(),
                Hashing::Gone => None,
            }
        }
    }
    struct State {
        inner: ByteStream,
        hashing: Hashing,
        batch: Vec<bytes::Bytes>,
        batch_bytes: usize,
        expected: Digest,
        size: u64,
        expected_size: u64,
        what: String,
        done: bool,
    }
    let state = State {
        inner: stream,
        hashing: Hashing::Ready(Box::new(descriptor.digest.hasher())),
        batch: Vec::new(),
        batch_bytes: 0,
        expected: descriptor.digest.clone(),
        size: 0,
        expected_size: descriptor.size,
        what,
        done: false,
    };
    let failed = |mut s: State, err: Error| {
        s.done = true;
        Some((Err(err), s))
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
            match s.inner.next().await {
                Some(Ok(chunk)) => {
                    s.size += chunk.len() as u64;
                    if s.size > s.expected_size {
                        let err = Error::SizeMismatch {
                            what: s.what.clone(),
                            expected: s.expected_size,
                            actual: s.size,
                        };
                        return failed(s, err);
                    }
                    s.batch_bytes += chunk.len();
                    s.batch.push(chunk.clone());
                    if s.batch_bytes >= HASH_BATCH {
                        let Some(mut hasher) = s.hashing.take().await else {
                            let err = hashing_failed(&s);
                            return failed(s, err);
                        };
                        let batch = std::mem::take(&mut s.batch);
                        s.batch_bytes = 0;
                        s.hashing = Hashing::Busy(tokio::task::spawn_blocking(move || {
                            for bytes in &batch {
                                hasher.update(bytes);
                            }
                            hasher
                        }));
                    }
                    Some((Ok(chunk), s))
                }
                Some(Err(e)) => failed(s, e),
                None => {
                    if s.size != s.expected_size {
                        let err = Error::SizeMismatch {
                            what: s.what.clone(),
                            expected: s.expected_size,
                            actual: s.size,
                        };
                        return failed(s, err);
                    }
                    let Some(mut hasher) = s.hashing.take().await else {
                        let err = hashing_failed(&s);
                        return failed(s, err);
                    };
                    // Less than one batch: hashing it here is quicker than a hand-off.
                    for bytes in std::mem::take(&mut s.batch) {
                        hasher.update(&bytes);
                    }
                    let actual = (*hasher).finish();
                    if actual != s.expected {
                        let err = Error::DigestMismatch {
                            what: s.what.clone(),
                            expected: s.expected.clone(),
                            actual,
                        };
                        return failed(s, err);
                    }
                    None
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use bytes::Bytes;

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
