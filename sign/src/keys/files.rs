//! Key files on disk: writing `PREFIX.key` (0600 from creation) and `PREFIX.pub` without ever
//! leaving a half-written file or silently replacing one, and reading them back with size limits.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand_core::RngCore as _;

use super::{EncryptedKeyFile, PublicKey, SigningKey};
use crate::Error;

/// Largest key file Signet reads (PEM keys are well under 1 KiB).
pub const MAX_KEY_FILE_SIZE: u64 = 64 * 1024;

/// A private key read from disk, with what the CLI needs to warn about.
#[derive(Debug)]
pub struct PrivateKeyFile {
    /// The decrypted key.
    pub key: SigningKey,
    /// True when the file's mode lets group or others read it (`mode & 0o044 != 0`); the CLI
    /// should warn, as ssh does. Always false where Unix modes do not exist.
    pub readable_by_others: bool,
}

/// Read at most `limit` bytes of `path`, failing with [`Error::LimitExceeded`] beyond that.
pub(crate) fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, Error> {
    let io = |source| Error::Io {
        op: "reading",
        path: path.to_path_buf(),
        source,
    };
    signet_oci::read_at_most(path, limit)
        .map_err(io)?
        .ok_or_else(|| Error::LimitExceeded {
            what: format!("{what} {}", path.display()),
            size: limit + 1,
            limit,
        })
}

/// Read and decrypt a cosign encrypted private key file (either PEM label).
pub fn read_private_key_file(path: &Path, password: &[u8]) -> Result<PrivateKeyFile, Error> {
    let bytes = zeroize::Zeroizing::new(read_bounded(path, MAX_KEY_FILE_SIZE, "private key")?);
    let key = EncryptedKeyFile::decrypt(&bytes, password, &path.display().to_string())?;
    Ok(PrivateKeyFile {
        key,
        readable_by_others: readable_by_others(path)?,
    })
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> Result<bool, Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        op: "inspecting",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(meta.permissions().mode() & 0o044 != 0)
}

#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> Result<bool, Error> {
    Ok(false)
}

/// Read a PEM `PUBLIC KEY` file.
pub fn read_public_key_file(path: &Path) -> Result<PublicKey, Error> {
    let bytes = read_bounded(path, MAX_KEY_FILE_SIZE, "public key")?;
    PublicKey::from_pem(&bytes, &path.display().to_string())
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(prefix.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Removes a temporary file on drop unless it was moved into place.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Write `contents` to a new temporary file next to `target`, created with `mode` (so a private key
/// is never readable by others, not even for an instant), and synced to disk.
fn write_temp(target: &Path, contents: &[u8], mode: u32) -> Result<TempFile, Error> {
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty());
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut rnd = [0u8; 8];
    rand_core::OsRng
        .try_fill_bytes(&mut rnd)
        .map_err(|e| Error::Random(e.to_string()))?;
    let tmp_name = format!(".{file_name}.tmp-{:016x}", u64::from_le_bytes(rnd));
    let path = match dir {
        Some(d) => d.join(tmp_name),
        None => PathBuf::from(tmp_name),
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let io = |source| Error::Io {
        op: "writing",
        path: path.clone(),
        source,
    };
    let mut file = options.open(&path).map_err(io)?;
    let temp = TempFile {
        path: path.clone(),
        armed: true,
    };
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(temp)
}

/// Move `temp` to `target`. Without `force` a hard link is used, which fails if `target` exists,
/// so a file created since our check is never clobbered.
fn install(mut temp: TempFile, target: &Path, force: bool) -> Result<(), Error> {
    let result = if force {
        std::fs::rename(&temp.path, target)
    } else {
        std::fs::hard_link(&temp.path, target)
    };
    result.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            Error::FileExists {
                path: target.to_path_buf(),
            }
        } else {
            Error::Io {
                op: "writing",
                path: target.to_path_buf(),
                source,
            }
        }
    })?;
    if force {
        temp.armed = false;
    }
    // Without force the temp file is still there (hard link); dropping `temp` removes it.
    Ok(())
}

/// Write `PREFIX.key` (encrypted under `password`, mode 0600) and `PREFIX.pub` (mode 0644), as
/// `cosign generate-key-pair` does. Refuses to replace either file unless `force`. Returns the two
/// paths (private, public).
pub fn write_key_pair(
    prefix: &Path,
    key: &SigningKey,
    password: &[u8],
    force: bool,
) -> Result<(PathBuf, PathBuf), Error> {
    let key_path = with_suffix(prefix, ".key");
    let pub_path = with_suffix(prefix, ".pub");
    if !force {
        for path in [&key_path, &pub_path] {
            if path.symlink_metadata().is_ok() {
                return Err(Error::FileExists { path: path.clone() });
            }
        }
    }
    let private_pem = zeroize::Zeroizing::new(EncryptedKeyFile::encrypt(key, password)?);
    let public_pem = key.public_key().to_pem();
    let key_tmp = write_temp(&key_path, private_pem.as_bytes(), 0o600)?;
    let pub_tmp = write_temp(&pub_path, public_pem.as_bytes(), 0o644)?;
    install(key_tmp, &key_path, force)?;
    if let Err(e) = install(pub_tmp, &pub_path, force) {
        if !force {
            // Do not leave half a key pair behind: the .key file is ours, created a moment ago.
            let _ = std::fs::remove_file(&key_path);
        }
        return Err(e);
    }
    Ok((key_path, pub_path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_pair_with_modes_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("signet");
        let key = SigningKey::generate();
        let (k, p) = write_key_pair(&prefix, &key, b"pw", false).unwrap();
        assert_eq!(k, dir.path().join("signet.key"));
        assert_eq!(p, dir.path().join("signet.pub"));
        #[cfg(unix)]
        {
            assert_eq!(mode(&k), 0o600);
            assert_eq!(mode(&p), 0o644);
        }
        let loaded = read_private_key_file(&k, b"pw").unwrap();
        assert_eq!(loaded.key.public_key(), key.public_key());
        assert!(!loaded.readable_by_others);
        assert_eq!(read_public_key_file(&p).unwrap(), key.public_key());
        // Only the two files: no temporary left behind.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["signet.key", "signet.pub"]);
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("k");
        let first = SigningKey::generate();
        write_key_pair(&prefix, &first, b"", false).unwrap();
        let before = std::fs::read(dir.path().join("k.key")).unwrap();
        let second = SigningKey::generate();
        let err = write_key_pair(&prefix, &second, b"", false).unwrap_err();
        assert!(matches!(&err, Error::FileExists { path } if path.ends_with("k.key")));
        assert!(err.to_string().contains("already exists"));
        assert_eq!(std::fs::read(dir.path().join("k.key")).unwrap(), before);

        // Only the .pub present is enough to refuse, and nothing is created.
        std::fs::remove_file(dir.path().join("k.key")).unwrap();
        let err = write_key_pair(&prefix, &second, b"", false).unwrap_err();
        assert!(matches!(&err, Error::FileExists { path } if path.ends_with("k.pub")));
        assert!(!dir.path().join("k.key").exists());

        write_key_pair(&prefix, &second, b"", true).unwrap();
        let loaded = read_private_key_file(&dir.path().join("k.key"), b"").unwrap();
        assert_eq!(loaded.key.public_key(), second.public_key());
        assert_eq!(
            read_public_key_file(&dir.path().join("k.pub")).unwrap(),
            second.public_key()
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn reports_loose_permissions() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate();
        let (k, _) = write_key_pair(&dir.path().join("x"), &key, b"pw", false).unwrap();
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_private_key_file(&k, b"pw").unwrap().readable_by_others);
        let err = read_private_key_file(&k, b"nope").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("wrong password for {}", k.display())
        );
    }

    #[test]
    fn reading_is_bounded_and_names_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pub");
        std::fs::write(&big, vec![b'A'; (MAX_KEY_FILE_SIZE + 10) as usize]).unwrap();
        assert!(matches!(
            read_public_key_file(&big),
            Err(Error::LimitExceeded { .. })
        ));
        let missing = dir.path().join("missing.key");
        let err = read_private_key_file(&missing, b"").unwrap_err();
        assert!(err.to_string().contains("missing.key"));
    }
}
