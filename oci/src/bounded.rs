//! Reading whole inputs of bounded size: the one place this crate counts the bytes of something it
//! reads whole (layout files, registry answers), so a limit holds whatever a length header or a
//! file's metadata says.

use std::io::Read;
use std::path::Path;

use crate::Error;

/// Bytes collected up to a limit; one byte more is an error.
#[derive(Debug)]
pub(crate) struct BoundedBytes {
    limit: u64,
    bytes: Vec<u8>,
}

impl BoundedBytes {
    /// An empty buffer that holds at most `limit` bytes.
    pub(crate) fn new(limit: u64) -> BoundedBytes {
        BoundedBytes {
            limit,
            bytes: Vec::new(),
        }
    }

    /// Append `chunk`, or fail with [`Error::LimitExceeded`] naming `what` if that would pass
    /// the limit (nothing of the chunk is kept then).
    pub(crate) fn extend(
        &mut self,
        chunk: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        if (self.bytes.len() as u64).saturating_add(chunk.len() as u64) > self.limit {
            return Err(limit_exceeded(what(), self.limit));
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The bytes collected.
    pub(crate) fn into_inner(self) -> Vec<u8> {
        self.bytes
    }
}

/// The error for `what` being larger than `limit` bytes.
pub(crate) fn limit_exceeded(what: String, limit: u64) -> Error {
    Error::LimitExceeded {
        what,
        limit: format!("{limit} bytes"),
    }
}

/// Read the whole file at `path`, refusing one larger than `max` bytes (counted while reading:
/// the file may grow after any `stat`).
pub fn read_file_bounded(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    read_at_most(path, max)
        .map_err(|e| Error::io(path, e))?
        .ok_or_else(|| limit_exceeded(path.display().to_string(), max))
}

/// The whole file at `path` if it holds at most `limit` bytes, `Ok(None)` if it holds more
/// (counted while reading, never from metadata). For crates with error types of their own: each
/// maps "too large" and I/O failures into its own errors, and the counting lives here only.
pub fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn files_are_read_up_to_the_limit_and_no_further() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 100_000]).unwrap();
        assert_eq!(read_file_bounded(&path, 100_000).unwrap().len(), 100_000);
        let err = read_file_bounded(&path, 99_999).unwrap_err();
        assert!(
            matches!(&err, Error::LimitExceeded { limit, .. } if limit == "99999 bytes"),
            "{err}"
        );
        assert!(matches!(
            read_file_bounded(&dir.path().join("absent"), 10),
            Err(Error::Io { .. })
        ));
        let mut b = BoundedBytes::new(3);
        b.extend(b"ab", || "x".into()).unwrap();
        assert!(b.extend(b"cd", || "x".into()).is_err());
        b.extend(b"c", || "x".into()).unwrap();
        assert_eq!(b.into_inner(), b"abc");
    }
}
