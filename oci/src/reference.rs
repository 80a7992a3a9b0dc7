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
/// Where Docker Hub keeps its official images (`busybox` is `docker.io/library/busybox`).
const OFFICIAL_PREFIX: &str = "library/";
/// The tag a reference with neither tag nor digest gets.
const DEFAULT_TAG: &str = "latest";

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

    // The gate parses a reference for every image of every request, so this finds the separators
    // and checks each part with byte loops (no general string searcher, no char decoding) and
    // allocates each field once, at its final size. What it accepts, how it normalises and each
    // error message are pinned by the differential test against the parser this replaced.
    fn parse_normalized(input: &str) -> Result<Reference, Error> {
        let invalid = |reason: &str| Error::InvalidReference {
            input: input.chars().take(300).collect(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(invalid("empty reference"));
        }
        // Everything after the first '@' is the digest. The separators searched for are ASCII, so
        // each index found is a char boundary.
        let digest_at = input.bytes().position(|b| b == b'@');
        let (rest, digest) = match digest_at {
            Some(at) => (
                &input[..at],
                Some(
                    input[at + 1..]
                        .parse::<Digest>()
                        .map_err(|e| invalid(&e.to_string()))?,
                ),
            ),
            None => (input, None),
        };
        // A ':' after the last '/' starts the tag; one before it is the host's port.
        let (name, tag) = match rest.bytes().rposition(|b| b == b'/' || b == b':') {
            Some(colon) if rest.as_bytes()[colon] == b':' => {
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|reason| invalid(&reason))?;
        }
        let first_slash = name.bytes().position(|b| b == b'/');
        let (host, path) = match first_slash {
            Some(slash) if looks_like_host(&name[..slash]) => {
                (Some(&name[..slash]), &name[slash + 1..])
            }
            _ => (None, name),
        };
        let registry = match host {
            // Both mean Docker Hub, whose name is valid.
            None | Some("index.docker.io") => DOCKER_HUB,
            Some(host) => {
                validate_registry(host).map_err(|reason| invalid(&reason))?;
                host
            }
        };
        // Docker Hub's one-component names are its official images.
        let one_component = match host {
            None => first_slash.is_none(),
            Some(_) => !path.bytes().any(|b| b == b'/'),
        };
        let official_image = registry == DOCKER_HUB && one_component;
        let prefix = if official_image { OFFICIAL_PREFIX } else { "" };
        let mut repository = String::with_capacity(prefix.len() + path.len());
        repository.push_str(prefix);
        repository.push_str(path);
        validate_path(&repository).map_err(|reason| invalid(&reason))?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(invalid("repository name longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_owned()),
        };
        Ok(Reference {
            registry: registry.to_owned(),
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

/// Path letters and digits: lowercase ASCII letters and digits.
const LOWER_OR_DIGIT: u8 = 1;
/// ASCII letters and digits, of either case, as hosts and tags have.
const ALPHANUMERIC: u8 = 1 << 1;
/// What a tag is made of: ASCII letters, digits, '_', '.' and '-'.
const TAG: u8 = 1 << 2;
/// What makes a first component a host: '.', ':' or a capital letter.
const HOST_MARK: u8 = 1 << 3;

/// The classes above each byte belongs to. The validators run on every byte of every reference
/// the gate parses, and one look-up is cheaper than comparing a byte with several ranges.
static BYTE_CLASSES: [u8; 256] = byte_classes();

const fn byte_classes() -> [u8; 256] {
    let mut classes = [0; 256];
    let mut byte: u8 = 0;
    loop {
        let mut class = 0;
        if byte.is_ascii_lowercase() || byte.is_ascii_digit() {
            class |= LOWER_OR_DIGIT;
        }
        if byte.is_ascii_alphanumeric() {
            class |= ALPHANUMERIC;
        }
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-') {
            class |= TAG;
        }
        if byte.is_ascii_uppercase() || matches!(byte, b'.' | b':') {
            class |= HOST_MARK;
        }
        classes[byte as usize] = class;
        if byte == u8::MAX {
            return classes;
        }
        byte += 1;
    }
}

fn in_class(byte: u8, class: u8) -> bool {
    BYTE_CLASSES[usize::from(byte)] & class != 0
}

/// Whether the first component of a name is a registry host rather than part of the path, as
/// docker decides: it has a '.' or a port, is `localhost`, or has capitals (paths cannot).
fn looks_like_host(first: &str) -> bool {
    first == "localhost" || first.bytes().any(|b| in_class(b, HOST_MARK))
}

/// `text` split at every `separator`, as `str::split` splits it: for the few bytes of a
/// reference's parts a plain byte loop is cheaper than the general searcher `str::split` sets up.
fn split_at_byte(text: &str, separator: u8) -> impl Iterator<Item = &str> {
    debug_assert!(
        separator.is_ascii(),
        "splitting at a non-ASCII byte breaks chars"
    );
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.bytes().position(|b| b == separator) {
            Some(i) => {
                rest = Some(&current[i + 1..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let bytes = tag.as_bytes();
    let first_ok = bytes
        .first()
        .is_some_and(|&b| in_class(b, ALPHANUMERIC) || b == b'_');
    if !first_ok || bytes.len() > MAX_TAG_LEN || !bytes.iter().all(|&b| in_class(b, TAG)) {
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
        match registry.bytes().position(|b| b == b':') {
            Some(colon) => (&registry[..colon], Some(&registry[colon + 1..])),
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
    if host_name_ok(host.as_bytes()) {
        Ok(())
    } else {
        Err(format!("invalid registry host {host:?}"))
    }
}

/// Whether `host` is labels of ASCII letters, digits and '-' joined by single dots, with no label
/// empty or starting or ending with '-'.
fn host_name_ok(host: &[u8]) -> bool {
    // As if a dot came before the first label, so that it too must not be empty or start with '-'.
    let mut previous = b'.';
    for &b in host {
        let ok = match b {
            b'.' => previous != b'.' && previous != b'-',
            b'-' => previous != b'.',
            _ => in_class(b, ALPHANUMERIC),
        };
        if !ok {
            return false;
        }
        previous = b;
    }
    previous != b'.' && previous != b'-'
}

fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty repository name".into());
    }
    // A '/' between components is one more separator between lowercase letters or digits, so one
    // pass over the whole path accepts what the per-component rules below accept. Those rules
    // still decide a path this refuses, and name the component that is wrong.
    if separated_alphanumerics(path.as_bytes()) {
        return Ok(());
    }
    for component in split_at_byte(path, b'/') {
        if !separated_alphanumerics(component.as_bytes()) {
            // A capital letter always breaks the component rules; it gets its own message
            // because it is the likeliest mistake.
            if component.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(format!("repository name must be lowercase: {path:?}"));
            }
            return Err(format!(
                "invalid repository path component {component:?} (lowercase letters and digits, separated by '.', '_', '__' or dashes)"
            ));
        }
    }
    Ok(())
}

/// Whether `bytes` are lowercase letters and digits, starting and ending with one, with every run
/// of other bytes between them one of `/`, `.`, `_`, `__` or dashes: a repository path, or
/// (having no `/`) one component of it.
fn separated_alphanumerics(bytes: &[u8]) -> bool {
    let alnum = |b: u8| in_class(b, LOWER_OR_DIGIT);
    let separator_ok = |first: u8, len: usize, uniform: bool| {
        uniform
            && match first {
                b'-' => true,
                b'/' | b'.' => len == 1,
                b'_' => len <= 2,
                _ => false,
            }
    };
    if bytes.first().is_none_or(|&b| !alnum(b)) {
        return false;
    }
    // The run of non-alphanumeric bytes being read: its first byte, its length, and whether all
    // of its bytes are that first one.
    let (mut run_first, mut run_len, mut run_uniform) = (0, 0, true);
    for &b in bytes {
        if alnum(b) {
            if run_len > 0 {
                if !separator_ok(run_first, run_len, run_uniform) {
                    return false;
                }
                (run_len, run_uniform) = (0, true);
            }
        } else {
            if run_len == 0 {
                run_first = b;
            } else {
                run_uniform &= b == run_first;
            }
            run_len += 1;
        }
    }
    // A trailing run has no alphanumeric after it.
    run_len == 0
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

/// Reference parsing as it was before it was made cheaper, kept as the oracle the differential
/// test compares today's parser with.
#[cfg(test)]
mod oracle {
    use super::{Reference, DOCKER_HUB, MAX_NAME_LEN, MAX_TAG_LEN};
    use crate::Error;

    pub(super) fn parse_normalized(input: &str) -> Result<Reference, Error> {
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
                Some(crate::digest::oracle::parse(digest).map_err(|e| invalid(&e.to_string()))?),
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

    /// Every reference the tests of this file and `digest`'s use, as written there.
    fn inputs_of_the_tests() -> Vec<String> {
        let d = format!("sha256:{}", "a".repeat(64));
        let long = format!("sha512:{}", "b".repeat(128));
        let mut inputs: Vec<String> = [
            "busybox",
            "index.docker.io/busybox:1",
            "user/app",
            "localhost/app",
            "localhost:5000/a/b:v1",
            "127.0.0.1:5000/test/app:v1",
            "[::1]:5000/app",
            "a.b-c.d/x__y/z-w/v.1:T_1.a-b",
            "Example.com/app",
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
            "quay.io/a",
            "127.0.0.1:5000/a",
            "busybox:1",
            "localhost:5000/a",
            "x/y",
            "http://x/y",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        inputs.extend([
            format!("quay.io/a/b@{d}"),
            format!("quay.io/a/b:t@{d}"),
            format!("ghcr.io/o/r:v1@{long}"),
            format!("app:{}", "t".repeat(129)),
            format!("example.com/{}", "a".repeat(250)),
        ]);
        for digest in [
            "sha256",
            "md5:abcd",
            "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
            "sha256:abc",
            &("sha256:".to_string() + &"g".repeat(64)),
            &("sha512:".to_string() + &"ab".repeat(64)),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            inputs.push(format!("busybox@{digest}"));
        }
        inputs
    }

    /// A deterministic xorshift, so the generated corpus is the same on every run.
    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
    }

    /// The good and bad forms of one part of a reference; a bad one is picked one time in six,
    /// so that about half of the generated references are valid.
    struct Pieces<'a, T> {
        good: &'a [T],
        bad: &'a [T],
    }

    impl<'a, T: AsRef<str>> Pieces<'a, T> {
        fn new(good: &'a [T], bad: &'a [T]) -> Self {
            Pieces { good, bad }
        }

        fn pick(&self, rng: &mut XorShift) -> &'a str {
            let from = if rng.below(6) == 0 {
                self.bad
            } else {
                self.good
            };
            from[rng.below(from.len())].as_ref()
        }
    }

    /// References built from pieces that reach every branch of the parser: each kind of host,
    /// path component, tag and digest, good and bad; names around the length limit; then the
    /// same with a random byte inserted, replaced or removed.
    fn generated_inputs() -> Vec<String> {
        let hex64 = "5a14bda5e1efcea97d029d1bb39b0b0c02f7f44ab015a79a393d1e05e6e3d381";
        let hex128 = hex64.repeat(2);
        let upper64 = hex64.to_uppercase();
        let good_digests = [
            String::new(),
            String::new(),
            format!("@sha256:{hex64}"),
            format!("@sha512:{hex128}"),
        ];
        let bad_digests = [
            format!("@sha256:{hex128}"),
            format!("@sha256:{}", &hex64[1..]),
            format!("@sha256:{hex64}0"),
            format!("@sha256:{upper64}"),
            format!("@sha384:{hex64}"),
            format!("@md5:{hex64}"),
            format!("@{hex64}"),
            "@".to_string(),
            "@sha256:".to_string(),
            format!("@sha256:{hex64}@sha256:{hex64}"),
            format!("@sha256:{}g", &hex64[1..]),
            format!("@sha256:{}é", &hex64[2..]),
        ];
        let digests = Pieces::new(&good_digests, &bad_digests);
        let good_hosts = [
            "",
            "",
            "",
            "ghcr.io",
            "127.0.0.1:38205",
            "localhost",
            "localhost:5000",
            "[::1]:5000",
            "[::1]",
            "index.docker.io",
            "docker.io",
            "Example.com",
            "EXAMPLE",
            "Localhost",
            "host:12345",
            "a.b-c.d",
            "xn--bcher-kva.example",
            "HOST.COM:80",
            "a--b.c0m",
            "0.0",
        ];
        let bad_hosts = [
            "a.-b",
            "a-.b",
            "a-:1",
            "-",
            ".",
            "a.b.",
            "[::1",
            "[::g]:5000",
            "[::1]x",
            "[::1]:",
            "[::1]]:5000",
            "[]",
            "[::1]:123456",
            "host:port",
            "host:",
            "host:123456",
            "h.com:5000:1",
            "-bad.com",
            "bad-.com",
            "a..b",
            ".a",
            "a.",
            "my_host.com",
            "hé.com",
            ":5000",
            "Ex@mple.com",
        ];
        let good_components = [
            "app",
            "library",
            "bench",
            "a",
            "0",
            "x__y",
            "z-w",
            "a---b",
            "v.1",
            "a.b_c__d-e",
            "localhost",
            "ghcr.io",
        ];
        let bad_components = [
            "a_-b", "a___b", "a..b", "a._b", "-a", "a-", "_a", "a_", ".a", "", "UPPER", "aB", "é",
            "a b", "a:b",
        ];
        let max_tag = format!(":{}", "t".repeat(128));
        let over_tag = format!(":{}", "t".repeat(129));
        let good_tags = [
            "", "", ":v1.2.3", ":latest", ":T_1.a-b", ":_x", ":1.27", &max_tag,
        ];
        let bad_tags = [
            ":", ":.x", ":-x", &over_tag, ":a b", ":é", ":a:b", "::", ":x@",
        ];
        let hosts = Pieces::new(&good_hosts, &bad_hosts);
        let components = Pieces::new(&good_components, &bad_components);
        let tags = Pieces::new(&good_tags, &bad_tags);
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut inputs = Vec::new();
        for _ in 0..6000 {
            let mut input = String::new();
            let host = hosts.pick(&mut rng);
            if !host.is_empty() {
                input.push_str(host);
                input.push('/');
            }
            for i in 0..1 + rng.below(3) {
                if i > 0 {
                    input.push('/');
                }
                input.push_str(components.pick(&mut rng));
            }
            input.push_str(tags.pick(&mut rng));
            input.push_str(digests.pick(&mut rng));
            inputs.push(input);
        }
        // Names of 254 to 257 characters: with an explicit host, on Docker Hub with a path, and
        // on Docker Hub where `library/` is added.
        for total in 254..=257 {
            inputs.push(format!(
                "example.com/{}",
                "a".repeat(total - "example.com/".len())
            ));
            inputs.push(format!(
                "example.com/a/{}:v1",
                "b".repeat(total - "example.com/a/".len())
            ));
            inputs.push(format!(
                "user/{}",
                "a".repeat(total - "docker.io/user/".len())
            ));
            inputs.push("a".repeat(total - "docker.io/library/".len()));
            inputs.push(format!(
                "{}@sha256:{hex64}",
                "a".repeat(total - "docker.io/library/".len())
            ));
        }
        // Every character class in every part: each ASCII character and some non-ASCII ones at the
        // start, inside and at the end of a tag, a host and a path component.
        let characters: Vec<String> = (0..=127u8)
            .map(|b| char::from(b).to_string())
            .chain(["é", "💥", "\u{80}"].map(String::from))
            .collect();
        for c in &characters {
            for template in [
                "ghcr.io/org/app:{}v1",
                "ghcr.io/org/app:v{}1",
                "ghcr.io/org/app:v1{}",
                "{}ghcr.io/org/app",
                "gh{}cr.io/org/app",
                "ghcr.io{}/org/app",
                "localhost:50{}0/app",
                "ghcr.io/{}org/app",
                "ghcr.io/o{}rg/app",
                "ghcr.io/org{}/app",
                "a{}/b",
                "a{}b",
                "a{}",
            ] {
                inputs.push(template.replace("{}", c));
            }
        }
        // Every ASCII character, the separators again to make them likelier, and non-ASCII.
        let mut noise: Vec<String> = (0..=127u8).map(|b| char::from(b).to_string()).collect();
        noise.extend(["@", ":", "/", ".", "_", "-", "é", "💥"].map(String::from));
        let noise: Vec<&str> = noise.iter().map(String::as_str).collect();
        let seeds = inputs.clone();
        for seed in &seeds {
            let mut mutated = seed.clone();
            let boundaries: Vec<usize> = (0..=mutated.len())
                .filter(|&i| mutated.is_char_boundary(i))
                .collect();
            let at = boundaries[rng.below(boundaries.len())];
            match rng.below(3) {
                0 => mutated.insert_str(at, rng.pick(&noise)),
                1 if at < mutated.len() => {
                    let end = boundaries[boundaries.partition_point(|&b| b <= at)];
                    mutated.replace_range(at..end, rng.pick(&noise));
                }
                _ if at < mutated.len() => {
                    let end = boundaries[boundaries.partition_point(|&b| b <= at)];
                    mutated.replace_range(at..end, "");
                }
                _ => mutated.push_str(rng.pick(&noise)),
            }
            inputs.push(mutated);
        }
        inputs
    }

    #[test]
    fn parses_exactly_as_the_oracle() {
        let mut inputs = inputs_of_the_tests();
        inputs.extend(generated_inputs());
        let (mut accepted, mut refused) = (0, 0);
        for input in &inputs {
            let got = input.parse::<Reference>();
            let want = oracle::parse_normalized(input);
            match (&got, &want) {
                (Ok(got), Ok(want)) => {
                    accepted += 1;
                    assert_eq!(got, want, "{input:?}");
                    assert_eq!(got.to_string(), want.to_string(), "{input:?}");
                    assert_eq!(got.registry.capacity(), got.registry.len(), "{input:?}");
                    assert_eq!(got.repository.capacity(), got.repository.len(), "{input:?}");
                }
                (Err(got), Err(want)) => {
                    refused += 1;
                    assert_eq!(got.to_string(), want.to_string(), "{input:?}");
                    assert_eq!(format!("{got:?}"), format!("{want:?}"), "{input:?}");
                }
                _ => panic!("{input:?}: got {got:?}, the oracle {want:?}"),
            }
        }
        // Both outcomes are common, so neither half of the comparison is vacuous.
        assert!(
            accepted > 1000 && refused > 1000,
            "{accepted} accepted, {refused} refused"
        );
    }
}
