//! Content digests (`sha256:<hex>`, `sha512:<hex>`): parsing, computing and streaming verification.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

use crate::Error;

/// A digest algorithm Signet accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the algorithm of nearly every image in the wild.
    Sha256,
    /// SHA-512, allowed by the OCI image spec.
    Sha512,
}

impl Algorithm {
    /// The name used in the digest string and in OCI layout blob paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded hash.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated content digest: an algorithm and a lowercase hex hash of the right length.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// The SHA-256 digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, bytes)
    }

    /// The digest of `bytes` with `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut hasher = DigestHasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex hash, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The digest as cosign writes it in a tag: `sha256-<hex>`.
    pub fn tag_form(&self) -> String {
        format!("{}-{}", self.algorithm, self.hex)
    }

    /// The cosign signature tag for this digest: `sha256-<hex>.sig`.
    pub fn signature_tag(&self) -> String {
        format!("{}.sig", self.tag_form())
    }

    /// Check that `bytes` hash to this digest; the error names what was checked.
    pub fn verify(&self, what: &str, bytes: &[u8]) -> Result<(), Error> {
        let actual = Digest::of(self.algorithm, bytes);
        if &actual == self {
            Ok(())
        } else {
            Err(Error::DigestMismatch {
                what: what.to_string(),
                expected: self.clone(),
                actual,
            })
        }
    }

    /// A streaming hasher of this digest's algorithm.
    pub fn hasher(&self) -> DigestHasher {
        DigestHasher::new(self.algorithm)
    }
}

impl fmt::Display for Digest {
    // Pieces written as they are: digests are formatted on every gate decision (cache keys,
    // log lines), and `write!` would format each piece through padding it never has.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.algorithm.as_str())?;
        f.write_str(":")?;
        f.write_str(&self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = Error;

    // Parsed for every reference the gate sees, so this avoids a general string search and checks
    // the hex in a loop the compiler can run over many bytes at once.
    fn from_str(s: &str) -> Result<Digest, Error> {
        let invalid = |reason: &str| Error::InvalidDigest {
            input: s.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        // The algorithm is everything before the first ':'.
        let (algorithm, hex) = if let Some(hex) = s.strip_prefix("sha256:") {
            (Algorithm::Sha256, hex)
        } else if let Some(hex) = s.strip_prefix("sha512:") {
            (Algorithm::Sha512, hex)
        } else if s.contains(':') {
            return Err(invalid("unsupported algorithm (sha256 and sha512 are)"));
        } else {
            return Err(invalid("expected ALGORITHM:HEX"));
        };
        if hex.len() != algorithm.hex_len() {
            return Err(invalid(&format!(
                "{} needs {} hex digits, found {}",
                algorithm,
                algorithm.hex_len(),
                hex.len()
            )));
        }
        // No early exit: a loop that checks every byte can be vectorised.
        let lowercase_hex = hex
            .bytes()
            .fold(true, |all, b| all & matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !lowercase_hex {
            return Err(invalid("the hash must be lowercase hex"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental hashing for streamed content (blobs are never held whole in memory).
#[derive(Clone)]
pub enum DigestHasher {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
}

impl DigestHasher {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> DigestHasher {
        match algorithm {
            Algorithm::Sha256 => DigestHasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => DigestHasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Feed more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(bytes),
            DigestHasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        match self {
            DigestHasher::Sha256(h) => Digest {
                algorithm: Algorithm::Sha256,
                hex: hex::encode(h.finalize()),
            },
            DigestHasher::Sha512(h) => Digest {
                algorithm: Algorithm::Sha512,
                hex: hex::encode(h.finalize()),
            },
        }
    }
}

/// Digest parsing as it was before it was made cheaper, kept as the oracle the differential tests
/// (here and in `reference`) compare today's parser with.
#[cfg(test)]
pub(crate) mod oracle {
    use super::{Algorithm, Digest};
    use crate::Error;

    pub(crate) fn parse(s: &str) -> Result<Digest, Error> {
        let invalid = |reason: &str| Error::InvalidDigest {
            input: s.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected ALGORITHM:HEX"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(invalid("unsupported algorithm (sha256 and sha512 are)")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(invalid(&format!(
                "{} needs {} hex digits, found {}",
                algorithm,
                algorithm.hex_len(),
                hex.len()
            )));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("the hash must be lowercase hex"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(
            Digest::sha256(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parses_and_rejects() {
        let ok = "sha512:".to_string() + &"ab".repeat(64);
        assert_eq!(ok.parse::<Digest>().map(|d| d.to_string()).ok(), Some(ok));
        for bad in [
            "sha256",
            "md5:abcd",
            "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
            "sha256:abc",
            &("sha256:".to_string() + &"g".repeat(64)),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn verify_reports_both_digests() {
        let d = Digest::sha256(b"a");
        assert!(d.verify("blob", b"a").is_ok());
        match d.verify("blob", b"b") {
            Err(Error::DigestMismatch {
                expected, actual, ..
            }) => {
                assert_eq!(expected, d);
                assert_eq!(actual, Digest::sha256(b"b"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn signature_tag_is_cosigns() {
        let d = Digest::sha256(b"");
        assert_eq!(
            d.signature_tag(),
            "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.sig"
        );
    }

    /// Inputs for the differential test: every digest the tests above use, and a generated corpus
    /// of near misses (each algorithm, lengths around the right one, each kind of bad character).
    fn digest_inputs() -> Vec<String> {
        let mut inputs: Vec<String> = [
            "sha256",
            "md5:abcd",
            "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
            "sha256:abc",
            "",
            ":",
            "sha256:",
            "sha512:",
            ":abc",
            "sha256::",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        inputs.push("sha512:".to_string() + &"ab".repeat(64));
        inputs.push("sha256:".to_string() + &"g".repeat(64));
        inputs.push(Digest::sha256(b"").to_string());
        let algorithms = [
            "sha256", "sha512", "SHA256", "sha384", "sha", "sha2566", "md5", "", "sha256 ", "é",
        ];
        let bad_bytes = ["A", "F", "g", "G", "z", ":", "@", "/", " ", "é", "\0", "-"];
        for algorithm in algorithms {
            for len in [0, 1, 63, 64, 65, 127, 128, 129, 200, 300] {
                let hex: String = "0123456789abcdef".chars().cycle().take(len).collect();
                inputs.push(format!("{algorithm}:{hex}"));
                inputs.push(format!("{algorithm}{hex}"));
                if len == 0 {
                    continue;
                }
                for bad in bad_bytes {
                    for at in [0, len / 2, len - 1] {
                        let mut broken = hex.clone();
                        broken.replace_range(at..at + 1, bad);
                        inputs.push(format!("{algorithm}:{broken}"));
                    }
                }
            }
        }
        inputs
    }

    #[test]
    fn parses_exactly_as_the_oracle() {
        let inputs = digest_inputs();
        assert!(inputs.len() > 1000, "{} inputs", inputs.len());
        for input in &inputs {
            let got = input.parse::<Digest>();
            let want = oracle::parse(input);
            match (&got, &want) {
                (Ok(got), Ok(want)) => {
                    assert_eq!(got, want, "{input:?}");
                    assert_eq!(got.to_string(), want.to_string(), "{input:?}");
                    assert_eq!(got.hex().len(), got.hex.capacity(), "{input:?}");
                }
                (Err(got), Err(want)) => {
                    assert_eq!(got.to_string(), want.to_string(), "{input:?}");
                    assert_eq!(format!("{got:?}"), format!("{want:?}"), "{input:?}");
                }
                _ => panic!("{input:?}: got {got:?}, the oracle {want:?}"),
            }
        }
    }
}
