//! containerd's image-verifier hook (the `io.containerd.image-verifier.v1.bindir` plugin, see
//! containerd's `docs/image-verification.md`): containerd runs every executable in its `bin_dir`
//! as `VERIFIER -name REF -digest DIGEST -stdin-media-type TYPE [-operation pull|run]` with a JSON
//! document on stdin, reads at most 32 KiB of stdout as the reason, and lets the pull go on only
//! if every verifier exits 0. This module is the logic; the CLI parses the arguments, reads stdin
//! (bounded) and exits with the code returned.

use serde::Deserialize;
use signet_oci::{Digest, Reference};

use super::{one_line, Judge};

/// Media type of stdin on pull: the image's OCI content descriptor.
pub const CONTAINERD_DESCRIPTOR_MEDIA_TYPE: &str = "application/vnd.oci.descriptor.v1+json";
/// Media type of stdin when containerd verifies on run: the descriptor wrapped with runtime
/// context (`{"descriptor": {…}, "runtime_config": {…}}`).
pub const CONTAINERD_INPUT_MEDIA_TYPE: &str =
    "application/vnd.containerd.image-verifier.input.v1+json";

/// Stdin accepted, in bytes (a descriptor is a few hundred).
const MAX_STDIN_BYTES: usize = 1024 * 1024;
/// The reason printed is cut to this many characters (containerd truncates at 32 KiB anyway).
const MAX_REASON_CHARS: usize = 2000;

/// The part of a descriptor the hook checks.
#[derive(Deserialize)]
struct StdinDescriptor {
    digest: String,
}

#[derive(Deserialize)]
struct StdinInput {
    descriptor: Option<StdinDescriptor>,
}

/// Judge image `name` at `digest` for containerd: returns the process exit code (0 allow, 1 deny)
/// and the one-line reason to print on stdout. `stdin_media_type` is the `-stdin-media-type`
/// argument and `stdin` what containerd wrote; the descriptor it holds must name `digest`.
/// Every failure denies. A denial in warn or audit mode allows (exit 0) and says so.
pub async fn containerd_verify<J: Judge>(
    judge: &J,
    name: &str,
    digest: &str,
    stdin_media_type: &str,
    stdin: &[u8],
) -> (i32, String) {
    match check(judge, name, digest, stdin_media_type, stdin).await {
        Ok((true, why)) => (
            0,
            one_line(&format!("signet: allowed: {why}"), MAX_REASON_CHARS),
        ),
        Ok((false, why)) | Err(why) => (
            1,
            one_line(&format!("signet: denied: {why}"), MAX_REASON_CHARS),
        ),
    }
}

async fn check<J: Judge>(
    judge: &J,
    name: &str,
    digest: &str,
    stdin_media_type: &str,
    stdin: &[u8],
) -> Result<(bool, String), String> {
    let digest: Digest = digest.parse().map_err(|e| format!("-digest: {e}"))?;
    let reference: Reference = name.parse().map_err(|e| format!("-name: {e}"))?;
    if reference.digest().is_some_and(|d| d != &digest) {
        return Err(format!(
            "-name {name} names another digest than -digest {digest}"
        ));
    }
    if stdin.len() > MAX_STDIN_BYTES {
        return Err(format!("stdin larger than {MAX_STDIN_BYTES} bytes"));
    }
    let described = match stdin_media_type {
        CONTAINERD_DESCRIPTOR_MEDIA_TYPE => serde_json::from_slice::<StdinDescriptor>(stdin)
            .map_err(|e| format!("stdin is not a descriptor: {e}"))?,
        CONTAINERD_INPUT_MEDIA_TYPE => serde_json::from_slice::<StdinInput>(stdin)
            .map_err(|e| format!("stdin is not verifier input: {e}"))?
            .descriptor
            .ok_or("stdin holds no descriptor")?,
        other => return Err(format!("unsupported -stdin-media-type {other:?}")),
    };
    if described.digest != digest.to_string() {
        return Err(format!(
            "descriptor on stdin names {}, not {digest}",
            one_line(&described.digest, 100)
        ));
    }
    let judgement = judge
        .judge(reference.clone(), Some(digest.clone()))
        .await
        .map_err(|e| format!("{reference}: {e}"))?;
    if judgement.digest != digest {
        return Err(format!(
            "the judge answered about {}, not {digest}",
            judgement.digest
        ));
    }
    let why = format!("{reference} ({digest}): {}", judgement.message);
    Ok(match (judgement.allowed, judgement.admitted()) {
        (true, _) => (true, why),
        (false, true) => (
            true,
            format!(
                "not trusted, admitted in {} mode: {why}",
                judgement.mode.as_str()
            ),
        ),
        (false, false) => (false, why),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::{GateError, Judgement, Mode};
    use super::*;

    /// Allows `good/*`, denies the rest; `warn/*` in warn mode; `broken/*` fails.
    struct TestJudge;

    impl Judge for TestJudge {
        async fn judge(
            &self,
            reference: Reference,
            digest: Option<Digest>,
        ) -> Result<Judgement, GateError> {
            let repo = reference.repository().to_string();
            if repo.starts_with("broken/") {
                return Err(GateError::Judge("registry unreachable".into()));
            }
            Ok(Judgement {
                digest: digest.ok_or(GateError::Judge("no digest".into()))?,
                allowed: repo.starts_with("good/"),
                mode: if repo.starts_with("warn/") {
                    Mode::Warn
                } else {
                    Mode::Enforce
                },
                message: format!("policy says so for {repo}"),
                report: std::sync::Arc::new(serde_json::Value::Null),
                cacheable: true,
                valid_until: None,
            })
        }
        fn policy_hash(&self) -> String {
            "h".into()
        }
    }

    #[tokio::test]
    async fn protocol() {
        let d = Digest::sha256(b"image");
        let desc = format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":5}}"#
        );
        let wrapped =
            format!(r#"{{"descriptor":{desc},"runtime_config":{{"metadata":{{"name":"p"}}}}}}"#);
        let other = Digest::sha256(b"other");
        let ds = d.to_string();
        let cases: Vec<(&str, &str, &str, &str, i32, &str)> = vec![
            (
                "docker.io/good/app:v1",
                &ds,
                CONTAINERD_DESCRIPTOR_MEDIA_TYPE,
                &desc,
                0,
                "signet: allowed: docker.io/good/app:v1",
            ),
            (
                "docker.io/good/app:v1",
                &ds,
                CONTAINERD_INPUT_MEDIA_TYPE,
                &wrapped,
                0,
                "signet: allowed",
            ),
            (
                "docker.io/bad/app:v1",
                &ds,
                CONTAINERD_DESCRIPTOR_MEDIA_TYPE,
                &desc,
                1,
                "signet: denied: docker.io/bad/app:v1",
            ),
            (
                "docker.io/warn/app:v1",
                &ds,
                CONTAINERD_DESCRIPTOR_MEDIA_TYPE,
                &desc,
                0,
                "admitted in warn mode",
            ),
            (
                "docker.io/broken/app:v1",
                &ds,
                CONTAINERD_DESCRIPTOR_MEDIA_TYPE,
                &desc,
                1,
                "registry unreachable",
            ),
            (
                "docker.io/good/app:v1",
                "sha256:xyz",
                CONTAINERD_DESCRIPTOR_MEDIA_TYPE,
                &desc,
                1,
                "-digest",
            ),
            (
                "Bad Name",
                &ds,
                CONTAINERD_DESCRIPTOR_MEDIA_TYPE,
                &desc,
                1,
                "-name",
            ),
            (
                "docker.io/good/app:v1",
                &ds,
                "text/plain",
                &desc,
                1,
                "unsupported -stdin-media-type",
            ),
            (
                "docker.io/good/app:v1",
                &ds,
                CONTAINERD_DESCRIPTOR_MEDIA_TYPE,
                "{",
                1,
                "not a descriptor",
            ),
            (
                "docker.io/good/app:v1",
                &ds,
                CONTAINERD_INPUT_MEDIA_TYPE,
                "{}",
                1,
                "no descriptor",
            ),
        ];
        for (name, digest, media, stdin, code, wanted) in cases {
            let (got, message) =
                containerd_verify(&TestJudge, name, digest, media, stdin.as_bytes()).await;
            assert_eq!(got, code, "{name} {media}: {message}");
            assert!(message.contains(wanted), "{message} lacks {wanted}");
            assert!(!message.contains('\n'));
        }
        // The descriptor must be about the digest given.
        let (code, message) = containerd_verify(
            &TestJudge,
            "docker.io/good/app:v1",
            &other.to_string(),
            CONTAINERD_DESCRIPTOR_MEDIA_TYPE,
            desc.as_bytes(),
        )
        .await;
        assert_eq!(code, 1);
        assert!(message.contains("descriptor on stdin names"), "{message}");
        // And so must a digest in the name.
        let (code, _) = containerd_verify(
            &TestJudge,
            &format!("docker.io/good/app@{other}"),
            &ds,
            CONTAINERD_DESCRIPTOR_MEDIA_TYPE,
            desc.as_bytes(),
        )
        .await;
        assert_eq!(code, 1);
    }
}
