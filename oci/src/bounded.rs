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
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = BoundedBytes::new(max);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(out.into_inner()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        out.extend(&buf[..n], || path.display().to_string())?;
    }
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
