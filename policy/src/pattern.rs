//! Scope patterns (full references, repositories and namespaces, `host[:port]`, `*.domain`, globs),
//! their specificity order, and the index that selects the most specific scope without scanning
//! every pattern.

use std::cmp::Ordering;
/// The scope index's maps: built from the policy's patterns, then only read. A name under
/// judgement is hashed once per namespace prefix on every decision, and no outside input is ever
/// inserted, so a fast hash rather than SipHash's flooding resistance.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use serde::Serialize;
use signet_oci::Reference;

/// Most wildcards one glob may hold; bounds matching and overlap checks.
const MAX_GLOB_WILDCARDS: usize = 8;

/// What kind of pattern a scope key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatternKind {
    /// `host/repo:tag`, `host/repo@sha256:…`: matches exactly that reference.
    FullReference,
    /// `host[:port]/path`: matches that repository and every repository under it.
    Repository,
    /// `host[:port]`: matches every repository on that registry.
    Host,
    /// `*.domain`: matches every registry host under `domain` (port ignored).
    Domain,
    /// A name pattern with `*` (within one path component) or `**` (across components).
    Glob,
}

impl PatternKind {
    /// Short human name, for explanations.
    pub fn describe(self) -> &'static str {
        match self {
            PatternKind::FullReference => "full reference",
            PatternKind::Repository => "repository or namespace",
            PatternKind::Host => "registry host",
            PatternKind::Domain => "domain wildcard",
            PatternKind::Glob => "glob",
        }
    }
}

/// How specific a pattern is; greater wins. Full references beat everything; otherwise more literal
/// characters win, then a pattern without wildcards, then fewer wildcards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Specificity {
    /// The pattern is a full reference (tag or digest).
    pub full_reference: bool,
    /// Number of literal (non-wildcard) characters.
    pub literal: usize,
    /// Number of `*` / `**` wildcards (a `*.domain` counts one).
    pub wildcards: usize,
}

impl Ord for Specificity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.full_reference
            .cmp(&other.full_reference)
            .then(self.literal.cmp(&other.literal))
            .then(other.wildcards.cmp(&self.wildcards))
    }
}

impl PartialOrd for Specificity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Byte(u8),
    Star,
    DoubleStar,
}

/// A validated scope pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    kind: PatternKind,
    specificity: Specificity,
    glob: Vec<Tok>,
}

impl Pattern {
    /// Parse and classify a scope key.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("empty scope pattern".into());
        }
        if text.len() > 512 {
            return Err("scope pattern longer than 512 characters".into());
        }
        if let Some(bad) = text.chars().find(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '?' | '[' | ']' | '\\' | '{' | '}')
        }) {
            return Err(format!(
                "character {bad:?} is not allowed in a scope pattern"
            ));
        }
        let wildcard_count = count_wildcards(text)?;
        let last_component = text.rsplit('/').next().unwrap_or(text);
        let has_tag_or_digest =
            text.contains('@') || (text.contains('/') && last_component.contains(':'));
        if let Some(domain) = text.strip_prefix("*.") {
            if !domain.contains('*') && !domain.contains('/') {
                if domain.contains(':') {
                    return Err(
                        "a *.domain pattern matches hosts without their port; remove the port"
                            .into(),
                    );
                }
                validate_host(domain)?;
                return Ok(Pattern {
                    text: text.to_string(),
                    kind: PatternKind::Domain,
                    specificity: Specificity {
                        full_reference: false,
                        literal: text.len() - 1,
                        wildcards: 1,
                    },
                    glob: Vec::new(),
                });
            }
        }
        if wildcard_count > 0 {
            if has_tag_or_digest {
                return Err(
                    "glob patterns match repository names; they cannot carry a tag or digest"
                        .into(),
                );
            }
            if wildcard_count > MAX_GLOB_WILDCARDS {
                return Err(format!(
                    "at most {MAX_GLOB_WILDCARDS} wildcards in one pattern"
                ));
            }
            let glob = tokenize(text);
            return Ok(Pattern {
                text: text.to_string(),
                kind: PatternKind::Glob,
                specificity: Specificity {
                    full_reference: false,
                    literal: glob.iter().filter(|t| matches!(t, Tok::Byte(_))).count(),
                    wildcards: wildcard_count,
                },
                glob,
            });
        }
        if has_tag_or_digest {
            let parsed: Reference = text.parse().map_err(|e: signet_oci::Error| e.to_string())?;
            if parsed.to_string() != text {
                return Err(format!(
                    "full reference patterns must be written normalized, as {parsed}"
                ));
            }
            return Ok(Pattern {
                text: text.to_string(),
                kind: PatternKind::FullReference,
                specificity: Specificity {
                    full_reference: true,
                    literal: text.len(),
                    wildcards: 0,
                },
                glob: Vec::new(),
            });
        }
        let kind = if text.contains('/') {
            let (host, path) = text.split_once('/').unwrap_or((text, ""));
            validate_host(host)?;
            if path.is_empty() || path.split('/').any(str::is_empty) {
                return Err("empty path component".into());
            }
            if path.chars().any(|c| c.is_ascii_uppercase()) {
                return Err("repository paths are lowercase".into());
            }
            PatternKind::Repository
        } else {
            validate_host(text)?;
            PatternKind::Host
        };
        Ok(Pattern {
            text: text.to_string(),
            kind,
            specificity: Specificity {
                full_reference: false,
                literal: text.len(),
                wildcards: 0,
            },
            glob: Vec::new(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its kind.
    pub fn kind(&self) -> PatternKind {
        self.kind
    }

    /// Its specificity.
    pub fn specificity(&self) -> Specificity {
        self.specificity
    }

    /// Whether the first component looks like a registry host; docker's normalisation means
    /// `busybox` is really `docker.io/library/busybox`, and a pattern written short never matches.
    pub fn looks_normalized(&self) -> bool {
        let first = self
            .text
            .trim_start_matches("*.")
            .split('/')
            .next()
            .unwrap_or_default();
        first.contains(['.', ':', '*']) || first == "localhost" || first.starts_with('[')
    }

    /// Whether this pattern matches a reference (slow path, used by tests and explanations).
    pub fn matches(&self, reference: &Reference) -> bool {
        let name = reference.name();
        match self.kind {
            PatternKind::FullReference => reference.to_string() == self.text,
            PatternKind::Repository | PatternKind::Host => {
                name == self.text
                    || (name.starts_with(&self.text)
                        && name.as_bytes().get(self.text.len()) == Some(&b'/'))
            }
            PatternKind::Domain => {
                let host = host_without_port(reference.registry());
                host.ends_with(&self.text[1..])
            }
            PatternKind::Glob => glob_match(&self.glob, name.as_bytes()),
        }
    }

    /// The name-level globs this pattern is equivalent to, for overlap checks.
    fn as_globs(&self) -> Vec<Vec<Tok>> {
        match self.kind {
            PatternKind::FullReference => vec![tokenize_literal(&self.text)],
            PatternKind::Repository | PatternKind::Host => {
                let mut under = tokenize_literal(&self.text);
                under.push(Tok::Byte(b'/'));
                under.push(Tok::DoubleStar);
                vec![tokenize_literal(&self.text), under]
            }
            PatternKind::Domain => {
                let suffix = &self.text[1..];
                let mut plain = vec![Tok::Star];
                plain.extend(tokenize_literal(suffix));
                let mut with_port = plain.clone();
                plain.extend([Tok::Byte(b'/'), Tok::DoubleStar]);
                with_port.extend([Tok::Byte(b':'), Tok::Star, Tok::Byte(b'/'), Tok::DoubleStar]);
                vec![plain, with_port]
            }
            PatternKind::Glob => vec![self.glob.clone()],
        }
    }

    /// Whether some reference name could match both patterns.
    pub fn overlaps(&self, other: &Pattern) -> bool {
        if self.kind == PatternKind::FullReference || other.kind == PatternKind::FullReference {
            return self.text == other.text;
        }
        let mine = self.as_globs();
        let theirs = other.as_globs();
        mine.iter()
            .any(|a| theirs.iter().any(|b| globs_intersect(a, b)))
    }

    /// The literal text before the first wildcard (globs only).
    fn literal_prefix(&self) -> &str {
        let end = self.text.find('*').unwrap_or(self.text.len());
        &self.text[..end]
    }
}

fn count_wildcards(text: &str) -> Result<usize, String> {
    if text.contains("***") {
        return Err("`***` is not a wildcard; use `*` or `**`".into());
    }
    let mut count = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'*' {
            count += 1;
            i += if bytes.get(i + 1) == Some(&b'*') {
                2
            } else {
                1
            };
        } else {
            i += 1;
        }
    }
    Ok(count)
}

fn tokenize(text: &str) -> Vec<Tok> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'*' {
            if bytes.get(i + 1) == Some(&b'*') {
                out.push(Tok::DoubleStar);
                i += 2;
            } else {
                out.push(Tok::Star);
                i += 1;
            }
        } else {
            out.push(Tok::Byte(bytes[i]));
            i += 1;
        }
    }
    out
}

fn tokenize_literal(text: &str) -> Vec<Tok> {
    text.bytes().map(Tok::Byte).collect()
}

fn validate_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !host.starts_with('[') || name.ends_with(']') => (name, Some(port)),
        _ => (host, None),
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid port in {host:?}"));
        }
    }
    if name.starts_with('[') && name.ends_with(']') {
        return Ok(());
    }
    let ok = !name.is_empty()
        && name.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("invalid registry host {name:?}"))
    }
}

pub(crate) fn host_without_port(registry: &str) -> &str {
    if registry.starts_with('[') {
        return match registry.find(']') {
            Some(end) => &registry[..=end],
            None => registry,
        };
    }
    registry.split(':').next().unwrap_or(registry)
}

/// Glob match over bytes: `*` matches within one path component, `**` matches anything. Runs the
/// pattern as an NFA over the text (O(pattern x text)); backtracking would be exponential on patterns
/// like `**a**a**b`, and the text can come from a request.
fn glob_match(pattern: &[Tok], text: &[u8]) -> bool {
    // The usual tails (`ns/*`, `ns/**`) need no automaton.
    match pattern {
        [Tok::DoubleStar] => return true,
        [Tok::Star] => return !text.contains(&b'/'),
        _ => {}
    }
    const STACK: usize = 64;
    if pattern.len() < STACK {
        let mut cur = [false; STACK];
        let mut next = [false; STACK];
        run_glob(
            pattern,
            text,
            &mut cur[..=pattern.len()],
            &mut next[..=pattern.len()],
        )
    } else {
        let mut cur = vec![false; pattern.len() + 1];
        let mut next = vec![false; pattern.len() + 1];
        run_glob(pattern, text, &mut cur, &mut next)
    }
}

fn run_glob(pattern: &[Tok], text: &[u8], cur: &mut [bool], next: &mut [bool]) -> bool {
    // Wildcards may match nothing: a state on a wildcard also stands after it.
    let close = |set: &mut [bool]| {
        for (p, tok) in pattern.iter().enumerate() {
            if set[p] && matches!(tok, Tok::Star | Tok::DoubleStar) {
                set[p + 1] = true;
            }
        }
    };
    cur[0] = true;
    close(cur);
    let (mut cur, mut next) = (cur, next);
    for &c in text {
        next.iter_mut().for_each(|x| *x = false);
        let mut alive = false;
        for (p, tok) in pattern.iter().enumerate() {
            if !cur[p] {
                continue;
            }
            match *tok {
                Tok::Byte(b) if b == c => {
                    next[p + 1] = true;
                    alive = true;
                }
                Tok::Star if c != b'/' => {
                    next[p] = true;
                    alive = true;
                }
                Tok::DoubleStar => {
                    next[p] = true;
                    alive = true;
                }
                _ => {}
            }
        }
        if !alive {
            return false;
        }
        close(next);
        std::mem::swap(&mut cur, &mut next);
    }
    cur[pattern.len()]
}

/// Whether two globs share a match: reachability in the product of their automata.
fn globs_intersect(a: &[Tok], b: &[Tok]) -> bool {
    let width = b.len() + 1;
    let mut seen = vec![false; (a.len() + 1) * width];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((i, j)) = stack.pop() {
        if seen[i * width + j] {
            continue;
        }
        seen[i * width + j] = true;
        if i == a.len() && j == b.len() {
            return true;
        }
        let ta = a.get(i).copied();
        let tb = b.get(j).copied();
        if matches!(ta, Some(Tok::Star | Tok::DoubleStar)) {
            stack.push((i + 1, j));
        }
        if matches!(tb, Some(Tok::Star | Tok::DoubleStar)) {
            stack.push((i, j + 1));
        }
        if let (Some(x), Some(y)) = (ta, tb) {
            let share = match (x, y) {
                (Tok::Byte(p), Tok::Byte(q)) => p == q,
                (Tok::Byte(p), Tok::Star) | (Tok::Star, Tok::Byte(p)) => p != b'/',
                _ => true,
            };
            if share {
                let ni = if matches!(x, Tok::Byte(_)) { i + 1 } else { i };
                let nj = if matches!(y, Tok::Byte(_)) { j + 1 } else { j };
                if (ni, nj) != (i, j) {
                    stack.push((ni, nj));
                }
            }
        }
    }
    false
}

/// Globs that share a literal prefix are tried together; `lens` lists the distinct prefix lengths so
/// a lookup probes one map entry per length instead of testing every glob.
#[derive(Debug, Default, Clone)]
struct GlobGroup {
    by_prefix: HashMap<String, Vec<usize>>,
    lens: Vec<usize>,
}

impl GlobGroup {
    fn insert(&mut self, prefix: &str, index: usize) {
        if !self.lens.contains(&prefix.len()) {
            self.lens.push(prefix.len());
            self.lens.sort_unstable();
        }
        self.by_prefix
            .entry(prefix.to_string())
            .or_default()
            .push(index);
    }

    fn scan(&self, patterns: &[Pattern], name: &str, found: &mut impl FnMut(usize)) {
        for &len in &self.lens {
            if len > name.len() {
                break;
            }
            let Some(prefix) = name.get(..len) else {
                continue;
            };
            if let Some(list) = self.by_prefix.get(prefix) {
                for &i in list {
                    if glob_match(&patterns[i].glob[len..], &name.as_bytes()[len..]) {
                        found(i);
                    }
                }
            }
        }
    }
}

/// Scope lookup structures: exact maps for full references, repositories/hosts (walked from the
/// longest namespace prefix) and domains, and globs grouped first by their literal registry host
/// and then by their literal prefix, so a lookup only tries globs whose prefix the name starts with.
#[derive(Debug, Default, Clone)]
pub(crate) struct ScopeIndex {
    full: HashMap<String, usize>,
    names: HashMap<String, usize>,
    domains: HashMap<String, usize>,
    globs_by_host: HashMap<String, GlobGroup>,
    globs_any_host: GlobGroup,
}

impl ScopeIndex {
    pub(crate) fn build(patterns: &[Pattern]) -> ScopeIndex {
        let mut index = ScopeIndex::default();
        for (i, p) in patterns.iter().enumerate() {
            match p.kind {
                PatternKind::FullReference => {
                    index.full.insert(p.text.clone(), i);
                }
                PatternKind::Repository | PatternKind::Host => {
                    index.names.insert(p.text.clone(), i);
                }
                PatternKind::Domain => {
                    index.domains.insert(p.text[2..].to_string(), i);
                }
                PatternKind::Glob => {
                    let prefix = p.literal_prefix();
                    match prefix.split_once('/') {
                        Some((host, _)) => index
                            .globs_by_host
                            .entry(host.to_string())
                            .or_default()
                            .insert(prefix, i),
                        None => index.globs_any_host.insert(prefix, i),
                    }
                }
            }
        }
        index
    }

    /// Call `found` with the index of every pattern that matches `reference`.
    pub(crate) fn candidates(
        &self,
        patterns: &[Pattern],
        reference: &Reference,
        mut found: impl FnMut(usize),
    ) {
        let name = reference.name();
        if !self.full.is_empty() {
            if let Some(&i) = self.full.get(reference.text().as_str()) {
                found(i);
            }
        }
        if !self.names.is_empty() {
            let mut prefix = name.as_str();
            loop {
                if let Some(&i) = self.names.get(prefix) {
                    found(i);
                }
                match prefix.rfind('/') {
                    Some(slash) => prefix = &prefix[..slash],
                    None => break,
                }
            }
        }
        if !self.domains.is_empty() {
            let mut host = host_without_port(reference.registry());
            while let Some(dot) = host.find('.') {
                host = &host[dot + 1..];
                if let Some(&i) = self.domains.get(host) {
                    found(i);
                }
            }
        }
        if let Some(group) = self.globs_by_host.get(reference.registry()) {
            group.scan(patterns, &name, &mut found);
        }
        self.globs_any_host.scan(patterns, &name, &mut found);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn kind(p: &str) -> Result<PatternKind, String> {
        Pattern::parse(p).map(|p| p.kind())
    }

    #[test]
    fn classification() {
        let cases: &[(&str, Result<PatternKind, ()>)] = &[
            ("reg.io/app:v1", Ok(PatternKind::FullReference)),
            ("127.0.0.1:5000/test/app:v1", Ok(PatternKind::FullReference)),
            ("reg.io/app", Ok(PatternKind::Repository)),
            ("reg.io/team", Ok(PatternKind::Repository)),
            ("reg.io", Ok(PatternKind::Host)),
            ("127.0.0.1:5000", Ok(PatternKind::Host)),
            ("localhost", Ok(PatternKind::Host)),
            ("*.example.com", Ok(PatternKind::Domain)),
            ("reg.io/team-*/app", Ok(PatternKind::Glob)),
            ("reg.io/**", Ok(PatternKind::Glob)),
            ("*.example.com/**", Ok(PatternKind::Glob)),
            ("*.example.com:5000", Err(())),
            ("reg.io/app*:v1", Err(())),
            ("reg.io/***", Err(())),
            ("reg.io/App", Err(())),
            ("reg.io//app", Err(())),
            ("", Err(())),
            ("reg.io/a?", Err(())),
        ];
        for (input, expected) in cases {
            assert_eq!(kind(input).map_err(|_| ()), *expected, "{input}");
        }
    }

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("reg.io/app:v1", "reg.io/app:v1", true),
            ("reg.io/app:v1", "reg.io/app:v2", false),
            ("reg.io/app", "reg.io/app:v2", true),
            ("reg.io/app", "reg.io/app/sub:v2", true),
            ("reg.io/app", "reg.io/apps:v2", false),
            ("reg.io", "reg.io/x/y:1", true),
            ("reg.io", "reg.io:5000/x:1", false),
            ("*.example.com", "a.example.com/x:1", true),
            ("*.example.com", "a.b.example.com:5000/x:1", true),
            ("*.example.com", "example.com/x:1", false),
            ("*.example.com", "aexample.com/x:1", false),
            ("reg.io/team-*/app", "reg.io/team-a/app:1", true),
            ("reg.io/team-*/app", "reg.io/team-a/b/app:1", false),
            ("reg.io/**/app", "reg.io/team-a/b/app:1", true),
            ("reg.io/*", "reg.io/x:1", true),
            ("reg.io/*", "reg.io/x/y:1", false),
            ("reg.io/**", "reg.io/x/y:1", true),
        ];
        for (pattern, reference, expected) in cases {
            let p = Pattern::parse(pattern).unwrap();
            assert_eq!(
                p.matches(&r(reference)),
                *expected,
                "{pattern} vs {reference}"
            );
            let index = ScopeIndex::build(std::slice::from_ref(&p));
            let mut hit = false;
            index.candidates(std::slice::from_ref(&p), &r(reference), |_| hit = true);
            assert_eq!(hit, *expected, "index: {pattern} vs {reference}");
        }
    }

    #[test]
    fn glob_matching_is_not_exponential() {
        let p = Pattern::parse("reg.io/**a**a**a**a**a**a**b").unwrap();
        let name = format!("reg.io/{}:1", "a".repeat(240));
        let start = std::time::Instant::now();
        assert!(!p.matches(&r(&name)));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        let long = Pattern::parse(&format!("reg.io/{}*", "x".repeat(80))).unwrap();
        assert!(long.matches(&r(&format!("reg.io/{}yz:1", "x".repeat(80)))));
        assert!(!long.matches(&r(&format!("reg.io/{}/z:1", "x".repeat(80)))));
    }

    #[test]
    fn specificity_order() {
        let order = [
            "reg.io/team/app:v1",
            "reg.io/team/app",
            "reg.io/team/app*",
            "reg.io/team/*",
            "reg.io/team",
            "reg.io/**",
            "reg.io",
        ];
        for pair in order.windows(2) {
            let a = Pattern::parse(pair[0]).unwrap().specificity();
            let b = Pattern::parse(pair[1]).unwrap().specificity();
            assert!(a > b, "{} should beat {}", pair[0], pair[1]);
        }
        let domain = Pattern::parse("*.io").unwrap().specificity();
        assert!(Pattern::parse("reg.io").unwrap().specificity() > domain);
    }

    #[test]
    fn overlap() {
        let cases: &[(&str, &str, bool)] = &[
            ("reg.io/a*/x", "reg.io/*b/x", true),
            ("reg.io/a*/x", "reg.io/*b/y", false),
            ("reg.io/*/x", "reg.io/**", true),
            ("reg.io/a/*", "reg.io/b/*", false),
            ("*.example.com", "a.example.com/*", true),
            ("*.example.com", "a.example.org/*", false),
            ("reg.io/team", "reg.io/*/app", true),
            ("reg.io/te*/x", "reg.io/t*m/x", true),
        ];
        for (a, b, expected) in cases {
            let pa = Pattern::parse(a).unwrap();
            let pb = Pattern::parse(b).unwrap();
            assert_eq!(pa.overlaps(&pb), *expected, "{a} vs {b}");
            assert_eq!(pb.overlaps(&pa), *expected, "{b} vs {a}");
        }
    }
}
