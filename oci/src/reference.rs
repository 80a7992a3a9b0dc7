//! Docker image references (`[host[:port]/]path[:tag][@digest]`) with docker's normalisation, and the
//! image locations Signet accepts on its command line (registry, OCI layout, docker archive).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Digest, Error};

/// The registry host a reference without a host lives on.
pub const DOCKER_HUB: &str = "docker.io";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed, normalised image reference in a registry.
///
/// Normalisation follows docker: no host means `docker.io`, a one-component path there gets
/// `library/`, `index.docker.io` becomes `docker.io`, and a reference with neither tag nor digest
/// gets the tag `latest`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Build a reference from validated parts (`repository` without the host).
    pub fn new(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Reference, Error> {
        let mut text = format!("{registry}/{repository}");
        if let Some(tag) = tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &digest {
            text.push('@');
            text.push_str(&digest.to_string());
        }
        text.parse()
    }

    /// The registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The reference as text, as `Display` writes it (`to_string`), in one allocation of the
    /// right size: the gate writes it on every decision (cache and memory keys), and `to_string`
    /// grows its buffer piece by piece.
    pub fn text(&self) -> String {
        let digest_len = self
            .digest
            .as_ref()
            .map_or(0, |d| 2 + d.algorithm().as_str().len() + d.hex().len());
        let tag_len = self.tag.as_ref().map_or(0, |t| 1 + t.len());
        let mut text = String::with_capacity(
            self.registry.len() + 1 + self.repository.len() + tag_len + digest_len,
        );
        text.push_str(&self.registry);
        text.push('/');
        text.push_str(&self.repository);
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(digest.algorithm().as_str());
            text.push(':');
            text.push_str(digest.hex());
        }
        text
    }

    /// `registry/repository`: the name a cosign signature's `docker-reference` carries.
    pub fn name(&self) -> String {
        let mut name = String::with_capacity(self.registry.len() + 1 + self.repository.len());
        name.push_str(&self.registry);
        name.push('/');
        name.push_str(&self.repository);
        name
    }

    /// The same repository at `digest`, without a tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The same repository at `tag`, without a digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, Error> {
        Reference::new(&self.registry, &self.repository, Some(tag), None)
    }

    /// The same reference in another repository of the same or another registry
    /// (`name` is `host/path` and must hold no tag or digest).
    pub fn with_name(&self, name: &str) -> Result<Reference, Error> {
        let parsed: Reference = name.parse()?;
        if name.contains('@')
            || parsed
                .tag
                .as_deref()
                .is_some_and(|_| has_explicit_tag(name))
        {
            return Err(Error::InvalidReference {
                input: name.to_string(),
                reason: "a repository name must not carry a tag or digest".into(),
            });
        }
        Ok(Reference {
            registry: parsed.registry,
            repository: parsed.repository,
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        })
    }

    /// Whether the registry is on this machine (`localhost`, `127.0.0.0/8`, `[::1]`), where plain
    /// HTTP is allowed by default as docker does.
    pub fn is_loopback_registry(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

/// Whether `host[:port]` names this machine.
pub fn is_loopback_host(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.split(':').next().unwrap_or_default()
    };
    if host == "localhost" {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

fn has_explicit_tag(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    last.contains(':')
}

impl fmt::Display for Reference {
    // Pieces written as they are (see `Digest`'s `Display`): references are formatted on every
    // gate decision.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.registry)?;
        f.write_str("/")?;
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            f.write_str(":")?;
            f.write_str(tag)?;
        }
        if let Some(digest) = &self.digest {
            f.write_str("@")?;
            fmt::Display::fmt(digest, f)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl Reference {
    /// Parse without adding the default tag: `repo` stays tagless. Signed identities are compared
    /// as written (a cosign identity names the repository only), so they are parsed this way.
    pub fn parse_as_written(input: &str) -> Result<Reference, Error> {
        let mut reference = Reference::parse_normalized(input)?;
        if reference.digest.is_none() && !has_explicit_tag(input.split('@').next().unwrap_or(input))
        {
            reference.tag = None;
        }
        Ok(reference)
    }

    /// The repository alone, without tag or digest.
    pub fn without_tag_or_digest(&self) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: None,
        }
    }

    fn parse_normalized(input: &str) -> Result<Reference, Error> {
        let invalid = |reason: &str| Error::InvalidReference {
            input: input.chars().take(300).collect(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(invalid("empty reference"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(
                    digest
                        .parse::<Digest>()
                        .map_err(|e| invalid(&e.to_string()))?,
                ),
            ),
            None => (input, None),
        };
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|reason| invalid(&reason))?;
        }
        let (registry, path) = split_registry(name);
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry.to_string()
        };
        validate_registry(&registry).map_err(|reason| invalid(&reason))?;
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        validate_path(&repository).map_err(|reason| invalid(&reason))?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(invalid("repository name longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(input: &str) -> Result<Reference, Error> {
        Reference::parse_normalized(input)
    }
}

fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok
        || tag.len() > MAX_TAG_LEN
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(format!(
            "invalid tag {tag:?} (letters, digits, '_', '.', '-'; at most {MAX_TAG_LEN}; not starting with '.' or '-')"
        ));
    }
    Ok(())
}

fn validate_registry(registry: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("invalid registry host {registry:?}"))?;
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("invalid IPv6 registry host {registry:?}"));
        }
        match after {
            "" => (inside, None),
            _ => (
                inside,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| format!("invalid registry host {registry:?}"))?,
                ),
            ),
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5 {
            return Err(format!("invalid registry port in {registry:?}"));
        }
    }
    if registry.starts_with('[') {
        return Ok(());
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    };
    if host.split('.').all(component_ok) {
        Ok(())
    } else {
        Err(format!("invalid registry host {host:?}"))
    }
}

fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty repository name".into());
    }
    for component in path.split('/') {
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!("repository name must be lowercase: {path:?}"));
        }
        if !path_component_ok(component) {
            return Err(format!(
                "invalid repository path component {component:?} (lowercase letters and digits, separated by '.', '_', '__' or dashes)"
            ));
        }
    }
    Ok(())
}

fn path_component_ok(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Reference, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where an image lives, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageLocation {
    /// `HOST/REPO[:TAG][@DIGEST]`, optionally prefixed `docker://`.
    Registry(Reference),
    /// `oci:DIR[:TAG]` or `oci:DIR@DIGEST`: an OCI image layout on disk.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// The tag (`org.opencontainers.image.ref.name`) or digest selecting the image; `None`
        /// means the layout's only image.
        selector: Option<LayoutSelector>,
    },
    /// `docker-archive:FILE`: a `docker save` tarball, read-only.
    DockerArchive {
        /// The tarball.
        path: PathBuf,
    },
}

/// Which image of an OCI layout is meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutSelector {
    /// An `org.opencontainers.image.ref.name` annotation value.
    Tag(String),
    /// A manifest digest listed in (or reachable from) `index.json`.
    Digest(Digest),
}

impl fmt::Display for ImageLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageLocation::Registry(reference) => write!(f, "{reference}"),
            ImageLocation::Layout { dir, selector } => {
                write!(f, "oci:{}", dir.display())?;
                match selector {
                    Some(LayoutSelector::Tag(tag)) => write!(f, ":{tag}"),
                    Some(LayoutSelector::Digest(digest)) => write!(f, "@{digest}"),
                    None => Ok(()),
                }
            }
            ImageLocation::DockerArchive { path } => write!(f, "docker-archive:{}", path.display()),
        }
    }
}

impl FromStr for ImageLocation {
    type Err = Error;

    fn from_str(input: &str) -> Result<ImageLocation, Error> {
        let invalid = |reason: &str| Error::InvalidReference {
            input: input.chars().take(300).collect(),
            reason: reason.to_string(),
        };
        if let Some(rest) = input.strip_prefix("oci:") {
            let (dir, selector) = if let Some((dir, digest)) = rest.split_once('@') {
                let digest = digest
                    .parse::<Digest>()
                    .map_err(|e| invalid(&e.to_string()))?;
                (dir, Some(LayoutSelector::Digest(digest)))
            } else if let Some((dir, tag)) = rest.split_once(':') {
                if tag.is_empty() {
                    return Err(invalid("empty tag after the layout directory"));
                }
                (dir, Some(LayoutSelector::Tag(tag.to_string())))
            } else {
                (rest, None)
            };
            if dir.is_empty() {
                return Err(invalid("oci: needs a directory (oci:DIR[:TAG])"));
            }
            return Ok(ImageLocation::Layout {
                dir: PathBuf::from(dir),
                selector,
            });
        }
        if let Some(path) = input.strip_prefix("docker-archive:") {
            if path.is_empty() {
                return Err(invalid(
                    "docker-archive: needs a file (docker-archive:FILE)",
                ));
            }
            return Ok(ImageLocation::DockerArchive {
                path: PathBuf::from(path),
            });
        }
        let name = input.strip_prefix("docker://").unwrap_or(input);
        if let Some((scheme, _)) = name.split_once("://") {
            return Err(invalid(&format!("unsupported transport {scheme}://")));
        }
        Ok(ImageLocation::Registry(name.parse()?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check(input: &str, expected: Option<&str>) {
        let got = input.parse::<Reference>().map(|r| r.to_string()).ok();
        assert_eq!(got.as_deref(), expected, "parsing {input:?}");
        if let Ok(reference) = input.parse::<Reference>() {
            // `text` is `to_string` in one allocation of the right size.
            let text = reference.text();
            assert_eq!(Some(text.as_str()), expected, "text of {input:?}");
            assert_eq!(text.capacity(), text.len(), "text of {input:?}");
        }
    }

    #[test]
    fn normalises_like_docker() {
        let d = format!("sha256:{}", "a".repeat(64));
        check("busybox", Some("docker.io/library/busybox:latest"));
        check(
            "index.docker.io/busybox:1",
            Some("docker.io/library/busybox:1"),
        );
        check("user/app", Some("docker.io/user/app:latest"));
        check("localhost/app", Some("localhost/app:latest"));
        check("localhost:5000/a/b:v1", Some("localhost:5000/a/b:v1"));
        check(
            "127.0.0.1:5000/test/app:v1",
            Some("127.0.0.1:5000/test/app:v1"),
        );
        check("[::1]:5000/app", Some("[::1]:5000/app:latest"));
        check(
            &format!("quay.io/a/b@{d}"),
            Some(&format!("quay.io/a/b@{d}")),
        );
        check(
            &format!("quay.io/a/b:t@{d}"),
            Some(&format!("quay.io/a/b:t@{d}")),
        );
        check(
            "a.b-c.d/x__y/z-w/v.1:T_1.a-b",
            Some("a.b-c.d/x__y/z-w/v.1:T_1.a-b"),
        );
        check("Example.com/app", Some("Example.com/app:latest"));
        let long = format!("sha512:{}", "b".repeat(128));
        check(
            &format!("ghcr.io/o/r:v1@{long}"),
            Some(&format!("ghcr.io/o/r:v1@{long}")),
        );
    }

    #[test]
    fn refuses_bad_references() {
        for bad in [
            "",
            "app/UPPER",
            "app:",
            "app:-tag",
            "app@sha256:abc",
            "a//b",
            "a/b/",
            "host:port/app",
            "a_-b",
            "-a",
            "a..b",
            &format!("app:{}", "t".repeat(129)),
            &format!("example.com/{}", "a".repeat(250)),
        ] {
            assert!(
                bad.parse::<Reference>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn name_is_host_and_path() {
        let r: Reference = "127.0.0.1:5000/test/app:v1".parse().unwrap();
        assert_eq!(r.name(), "127.0.0.1:5000/test/app");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "test/app");
        assert_eq!(r.tag(), Some("v1"));
        assert!(r.is_loopback_registry());
        assert!(!"quay.io/a"
            .parse::<Reference>()
            .unwrap()
            .is_loopback_registry());
        assert!(is_loopback_host("localhost:5000"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(is_loopback_host("127.3.4.5"));
    }

    #[test]
    fn as_written_keeps_tagless_names() {
        let r = Reference::parse_as_written("127.0.0.1:5000/a").unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/a");
        let r = Reference::parse_as_written("busybox:1").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:1");
        let r = Reference::parse_as_written("localhost:5000/a").unwrap();
        assert_eq!(r.tag(), None);
    }

    #[test]
    fn locations() {
        let l: ImageLocation = "oci:/tmp/lay:v1".parse().unwrap();
        assert_eq!(
            l,
            ImageLocation::Layout {
                dir: "/tmp/lay".into(),
                selector: Some(LayoutSelector::Tag("v1".into()))
            }
        );
        let l: ImageLocation = "oci:dir".parse().unwrap();
        assert_eq!(l.to_string(), "oci:dir");
        let l: ImageLocation = "docker-archive:x.tar".parse().unwrap();
        assert_eq!(
            l,
            ImageLocation::DockerArchive {
                path: "x.tar".into()
            }
        );
        let l: ImageLocation = "docker://busybox".parse().unwrap();
        assert_eq!(l.to_string(), "docker.io/library/busybox:latest");
        assert!("http://x/y".parse::<ImageLocation>().is_err());
        assert!("oci:".parse::<ImageLocation>().is_err());
    }
}
