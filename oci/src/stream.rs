//! Verified blob streams: bytes pass through hashed and counted, and the stream ends in an error
//! instead of a clean end when they exceed, fall short of, or do not hash to their descriptor — so
//! no caller ever sees a completed bad blob.

use futures_util::StreamExt as _;

use crate::registry::ByteStream;
use crate::{Descriptor, Digest, Error};

/// Wrap `stream` so that it hashes and counts what passes through and ends in an error (instead of
/// a clean end) if the content exceeds, falls short of, or does not hash to `descriptor`.
pub fn verified_stream(stream: ByteStream, descriptor: &Descriptor, what: String) -> ByteStream {
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
