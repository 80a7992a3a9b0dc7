//! `signet-sign`: cosign's formats, byte for byte. Encrypted key files, simple-signing payloads,
//! and ECDSA P-256 / SHA-256 signatures over the raw payload bytes.
