//! The one error type of `signet-sign`, and the reasons a simple-signing payload can be refused.

use std::path::PathBuf;

/// Everything that can go wrong in `signet-sign`. Messages are lowercase and name their subject
/// (the file, the key id, the payload field), and never contain secret material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PEM document could not be found or decoded.
    #[error("{file}: {reason}")]
    Pem {
        /// Where the bytes came from (a path or a description such as `"--key"`).
        file: String,
        /// What was wrong.
        reason: String,
    },

    /// The key is well formed but is not ECDSA P-256 (for example RSA, Ed25519 or P-384).
    #[error("{file}: unsupported key type: {kind} (Signet supports ECDSA P-256 keys only)")]
    UnsupportedKeyType {
        /// Where the key came from.
        file: String,
        /// What the key is, as far as could be told.
        kind: String,
    },

    /// A key's DER encoding could not be parsed.
    #[error("{file}: invalid key: {reason}")]
    InvalidKey {
        /// Where the key came from.
        file: String,
        /// What was wrong.
        reason: String,
    },

    /// An encrypted private key file is malformed (JSON, base64, lengths, algorithm names).
    #[error("{file}: invalid encrypted private key: {reason}")]
    InvalidEncryptedKey {
        /// Where the key file came from.
        file: String,
        /// What was wrong.
        reason: String,
    },

    /// An encrypted private key file asks for scrypt parameters Signet refuses to run, so that a
    /// hostile file cannot make us burn unbounded memory or time.
    #[error(
        "{file}: unsupported scrypt parameters N={n} r={r} p={p} \
         (accepted: N of 32768, 65536 or 131072 with r=8 and p=1)"
    )]
    UnsupportedKdfParams {
        /// Where the key file came from.
        file: String,
        /// scrypt cost parameter N.
        n: u64,
        /// scrypt block size r.
        r: u64,
        /// scrypt parallelism p.
        p: u64,
    },

    /// The secretbox did not open: the password is wrong (or the file was tampered with, which a
    /// MAC cannot tell apart).
    #[error("wrong password for {file}")]
    WrongPassword {
        /// The key file the password was tried on.
        file: String,
    },

    /// Input from outside is larger than Signet is willing to read.
    #[error("{what} is {size} bytes, over the {limit}-byte limit")]
    LimitExceeded {
        /// What was too large.
        what: String,
        /// Its size (or the number of bytes read before giving up).
        size: u64,
        /// The limit.
        limit: u64,
    },

    /// A key file would be overwritten and `force` was not given.
    #[error("{} already exists (use --force to overwrite)", path.display())]
    FileExists {
        /// The existing file.
        path: PathBuf,
    },

    /// A file system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`"reading"`, `"writing"`, …).
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),

    /// A simple-signing payload was refused by the strict parser.
    #[error("invalid simple-signing payload: {0}")]
    Payload(#[from] PayloadError),

    /// A signature is not standard base64 of an ASN.1 DER ECDSA signature.
    #[error("invalid signature encoding: {reason}")]
    SignatureEncoding {
        /// What was wrong.
        reason: String,
    },

    /// The signature is well formed but does not verify over the payload with this key.
    #[error("signature does not verify with key {key_id}")]
    SignatureMismatch {
        /// The key that was tried.
        key_id: crate::keys::KeyId,
    },

    /// A containers/image `signature-N` (`sigstore-json`) blob is malformed.
    #[error("invalid sigstore-json signature: {reason}")]
    SigstoreJson {
        /// What was wrong.
        reason: String,
    },

    /// A DSSE envelope is malformed.
    #[error("invalid DSSE envelope: {reason}")]
    Envelope {
        /// What was wrong.
        reason: String,
    },

    /// An in-toto statement is malformed (or a predicate type is not a URI).
    #[error("invalid in-toto statement: {reason}")]
    Statement {
        /// What was wrong.
        reason: String,
    },

    /// A string is not a key id (64 lowercase hex digits).
    #[error("invalid key id {input:?}: expected 64 lowercase hex digits")]
    InvalidKeyId {
        /// The rejected input (truncated).
        input: String,
    },

    /// No password is available: neither environment variable is set and there is no terminal.
    #[error("no password: set SIGNET_PASSWORD (or COSIGN_PASSWORD) or run on a terminal")]
    NoPassword,

    /// The password and its confirmation differ.
    #[error("passwords do not match")]
    PasswordMismatch,
}

/// Why the strict simple-signing payload parser refused a payload. Mirrors the checks of
/// containers/image (`signature/internal/sigstore_payload.go`), so the verifier can say which one
/// failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The payload is larger than [`crate::payload::MAX_PAYLOAD_SIZE`].
    #[error("payload is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The payload is not valid JSON (or has data after the top-level value).
    #[error("not valid JSON: {0}")]
    Json(String),
    /// A member that must be a JSON object is something else.
    #[error("{field} must be a JSON object")]
    NotAnObject {
        /// Dotted path of the member (`"top level"`, `"critical.image"`, …).
        field: &'static str,
    },
    /// An object has the same key twice.
    #[error("duplicate key {key:?} in {object}")]
    DuplicateKey {
        /// Dotted path of the object.
        object: String,
        /// The repeated key.
        key: String,
    },
    /// An object has a key it must not have (keys are case-sensitive).
    #[error("unknown key {key:?} in {object}")]
    UnknownKey {
        /// Dotted path of the object.
        object: &'static str,
        /// The unexpected key.
        key: String,
    },
    /// An object lacks a required key.
    #[error("missing key {key:?} in {object}")]
    MissingKey {
        /// Dotted path of the object.
        object: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// A member that must be a string is something else.
    #[error("{field} must be a string")]
    NotAString {
        /// Dotted path of the member.
        field: &'static str,
    },
    /// `critical.type` is not `cosign container image signature`.
    #[error("unrecognized signature type {found:?}")]
    WrongType {
        /// The type found (truncated).
        found: String,
    },
    /// `critical.image.docker-manifest-digest` is not a valid digest.
    #[error("invalid docker-manifest-digest value {value:?}: {reason}")]
    InvalidDigest {
        /// The value found (truncated).
        value: String,
        /// Why it is not a digest.
        reason: String,
    },
    /// `optional.timestamp` is present but not an integer.
    #[error("optional.timestamp is not an integer")]
    TimestampNotInteger,
}

impl PayloadError {
    /// A stable kebab-case code for this reason, for diagnostics and machine-readable output.
    pub fn code(&self) -> &'static str {
        match self {
            PayloadError::TooLarge { .. } => "payload-too-large",
            PayloadError::Json(_) => "payload-not-json",
            PayloadError::NotAnObject { .. } => "payload-not-an-object",
            PayloadError::DuplicateKey { .. } => "payload-duplicate-key",
            PayloadError::UnknownKey { .. } => "payload-unknown-key",
            PayloadError::MissingKey { .. } => "payload-missing-key",
            PayloadError::NotAString { .. } => "payload-not-a-string",
            PayloadError::WrongType { .. } => "payload-wrong-type",
            PayloadError::InvalidDigest { .. } => "payload-invalid-digest",
            PayloadError::TimestampNotInteger => "payload-timestamp-not-integer",
        }
    }
}
