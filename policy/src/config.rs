//! Facts taken from an image configuration blob, and the configuration checks run on them (root
//! user, secret-shaped values, age, platform). Secret values are never copied into findings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Largest image config accepted by [`ConfigFacts::from_config_json`].
pub const MAX_CONFIG_LEN: usize = 8 * 1024 * 1024;

/// What the policy needs to know about one image configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigFacts {
    /// `os` (`linux`).
    pub os: String,
    /// `architecture` (`amd64`).
    pub architecture: String,
    /// `variant` (`v8`), if any.
    pub variant: Option<String>,
    /// `config.User`, if set (an absent or empty user means root).
    pub user: Option<String>,
    /// `config.Env` entries (`NAME=value`).
    #[serde(skip)]
    pub env: Vec<String>,
    /// `config.Labels`.
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
    /// `history[].created_by`, in order.
    #[serde(skip)]
    pub history: Vec<String>,
    /// `created` as unix seconds, if present and valid RFC 3339.
    pub created: Option<i64>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    config: Option<RawInner>,
    #[serde(default)]
    history: Option<Vec<RawHistory>>,
}

#[derive(Deserialize)]
struct RawInner {
    #[serde(default, rename = "User")]
    user: Option<String>,
    #[serde(default, rename = "Env")]
    env: Option<Vec<String>>,
    #[serde(default, rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawHistory {
    #[serde(default)]
    created_by: Option<String>,
}

impl ConfigFacts {
    /// Parse the image configuration JSON (OCI image config or Docker container config).
    pub fn from_config_json(bytes: &[u8]) -> Result<ConfigFacts, Error> {
        if bytes.len() > MAX_CONFIG_LEN {
            return Err(Error::LimitExceeded {
                what: "image config",
                limit: MAX_CONFIG_LEN,
            });
        }
        // serde's derived structs also accept arrays; an image config is always an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Error::InvalidConfig {
                reason: "not a JSON object".into(),
            });
        }
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| Error::InvalidConfig {
            reason: e.to_string(),
        })?;
        let created = match raw.created.as_deref() {
            None | Some("") => None,
            Some(text) => Some(parse_rfc3339(text).map_err(|reason| Error::InvalidConfig {
                reason: format!("created: {reason}"),
            })?),
        };
        let inner = raw.config.unwrap_or(RawInner {
            user: None,
            env: None,
            labels: None,
        });
        Ok(ConfigFacts {
            os: raw.os.unwrap_or_default(),
            architecture: raw.architecture.unwrap_or_default(),
            variant: raw.variant.filter(|v| !v.is_empty()),
            user: inner.user,
            env: inner.env.unwrap_or_default(),
            labels: inner.labels.unwrap_or_default(),
            history: raw
                .history
                .unwrap_or_default()
                .into_iter()
                .filter_map(|h| h.created_by)
                .collect(),
            created,
        })
    }

    /// `os/arch[/variant]`.
    pub fn platform(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{}", self.os, self.architecture, v),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// Parse an RFC 3339 instant into unix seconds.
pub(crate) fn parse_rfc3339(text: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("{text:?} is not an RFC 3339 date-time: {e}"))
}

/// Parse a duration such as `90d`, `12h`, `1w2d`, `30m`, `45s` into seconds.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration like 90d, 12h, 1w2d, 30m or 45s");
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d)))
                    .ok_or_else(bad)?,
            );
            continue;
        }
        let unit = match c {
            'w' => 7 * 86_400,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n = number.take().ok_or_else(bad)?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if number.is_some() {
        return Err(bad());
    }
    Ok(total)
}

/// Longest `cacheTtl` a scope may set. A cached allow outlives a deleted signature by up to
/// this long; a day is already more than any registry-side revocation should have to wait.
pub(crate) const MAX_CACHE_TTL_SECONDS: u64 = 86_400;
/// Shortest `cacheTtl`: the gate's verdict on an index covers the platform manifests clients
/// fetch right after it only while it is cached, so a verdict that is never cached would deny
/// every multi-platform pull through the proxy.
pub(crate) const MIN_CACHE_TTL_SECONDS: u64 = 10;

/// Parse a scope's `cacheTtl` (a duration as for `maxAge`, from 10 s to a day) into seconds.
pub(crate) fn parse_cache_ttl(text: &str) -> Result<u64, String> {
    let seconds = parse_duration(text)?;
    if seconds > MAX_CACHE_TTL_SECONDS {
        return Err(format!(
            "{text:?} is longer than the 1d a verdict may be reused"
        ));
    }
    if seconds < MIN_CACHE_TTL_SECONDS {
        return Err(format!(
            "{text:?} is shorter than 10s (platform manifests of an index are served on its cached verdict)"
        ));
    }
    Ok(seconds)
}

/// How far in the future an image's `created` may lie before `maxAge` refuses it. Build hosts'
/// clocks drift: an image built a minute ago on a host whose clock runs ahead is not an attack.
/// An image dated further ahead would pass `maxAge` until that date plus the allowed age, so it
/// is refused. Five minutes is Kerberos's default clock skew, far above NTP-synchronised drift.
pub const CREATED_SKEW_SECONDS: i64 = 300;

/// An allowed platform: `os/arch` (any variant) or `os/arch/variant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlatformSpec {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl PlatformSpec {
    pub(crate) fn parse(text: &str) -> Result<PlatformSpec, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let ok_part = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        match parts.as_slice() {
            [os, arch] if ok_part(os) && ok_part(arch) => Ok(PlatformSpec {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok_part(os) && ok_part(arch) && ok_part(variant) => {
                Ok(PlatformSpec {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(variant.to_string()),
                })
            }
            _ => Err(format!(
                "{text:?} is not a platform like linux/amd64 or linux/arm64/v8"
            )),
        }
    }

    pub(crate) fn allows(&self, facts: &ConfigFacts) -> bool {
        self.os == facts.os
            && self.architecture == facts.architecture
            && self
                .variant
                .as_ref()
                .is_none_or(|v| Some(v) == facts.variant.as_ref())
    }
}

/// Whether the configured user is root: empty, `root`, `0`, optionally with any `:group`.
pub(crate) fn runs_as_root(user: Option<&str>) -> bool {
    let user = user.unwrap_or("").trim();
    let name = user.split(':').next().unwrap_or("");
    name.is_empty()
        || name == "root"
        || (name.bytes().all(|b| b.is_ascii_digit()) && name.parse::<u64>() == Ok(0))
}

/// Where a secret-shaped value was found; the value itself is never kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretHit {
    /// `Env`, `Labels` or `history[3]`.
    pub(crate) location: String,
    /// Variable or label name when there is one, else what kind of secret it looks like.
    pub(crate) name: String,
}

const SECRET_NAME_PARTS: [&str; 4] = ["PASSWORD", "TOKEN", "SECRET", "API_KEY"];

fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_PARTS.iter().any(|p| upper.contains(p))
}

/// The kind of secret-shaped token in `text`, if any.
pub(crate) fn secret_shape(text: &str) -> Option<&'static str> {
    if let Some(begin) = text.find("-----BEGIN ") {
        let rest = &text[begin + 11..];
        let line_end = rest.find("-----").unwrap_or(rest.len());
        if rest[..line_end].ends_with("PRIVATE KEY") {
            return Some("PEM private key");
        }
    }
    let bytes = text.as_bytes();
    for (i, _) in text.char_indices() {
        let rest = &bytes[i..];
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if !boundary {
            continue;
        }
        if (rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA"))
            && rest.len() >= 20
            && rest[4..20]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && rest.get(20).is_none_or(|b| !b.is_ascii_alphanumeric())
        {
            return Some("AWS access key id");
        }
        for (prefix, what, min, extra) in [
            (&b"ghp_"[..], "GitHub token", 30, &b""[..]),
            (b"gho_", "GitHub token", 30, b""),
            (b"ghs_", "GitHub token", 30, b""),
            (b"github_pat_", "GitHub token", 20, b"_"),
            (b"glpat-", "GitLab token", 20, b"_-"),
        ] {
            if let Some(after) = rest.strip_prefix(prefix) {
                let run = after
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || extra.contains(b))
                    .count();
                if run >= min {
                    return Some(what);
                }
            }
        }
    }
    None
}

/// `NAME=value` assignments with a secret-like name and a non-empty value in shell-ish text.
fn secret_assignments(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|') {
        let word = word.trim_start_matches(['"', '\'']);
        if let Some((name, value)) = word.split_once('=') {
            let value = value.trim_matches(['"', '\'']);
            let name_ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if name_ok && secret_name(name) && !value.is_empty() {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// Every secret-shaped value in Env, Labels and history.
pub(crate) fn find_secrets(facts: &ConfigFacts) -> Vec<SecretHit> {
    let mut hits = Vec::new();
    for entry in &facts.env {
        let (name, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        if (secret_name(name) && !value.is_empty()) || secret_shape(value).is_some() {
            hits.push(SecretHit {
                location: "Env".into(),
                name: name.to_string(),
            });
        }
    }
    for (name, value) in &facts.labels {
        if (secret_name(name) && !value.is_empty()) || secret_shape(value).is_some() {
            hits.push(SecretHit {
                location: "Labels".into(),
                name: name.clone(),
            });
        }
    }
    for (i, line) in facts.history.iter().enumerate() {
        let location = format!("history[{i}].created_by");
        let names = secret_assignments(line);
        let shape = secret_shape(line);
        for name in names {
            hits.push(SecretHit {
                location: location.clone(),
                name,
            });
        }
        if let Some(shape) = shape {
            hits.push(SecretHit {
                location,
                name: shape.to_string(),
            });
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn root_users() {
        let cases: &[(Option<&str>, bool)] = &[
            (None, true),
            (Some(""), true),
            (Some("root"), true),
            (Some("0"), true),
            (Some("0:0"), true),
            (Some("root:wheel"), true),
            (Some("0:1000"), true),
            (Some("000"), true),
            (Some("1000"), false),
            (Some("1000:0"), false),
            (Some("app"), false),
            (Some("rooter"), false),
            (Some("nobody:root"), false),
        ];
        for (user, expected) in cases {
            assert_eq!(runs_as_root(*user), *expected, "{user:?}");
        }
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<u64>)] = &[
            ("90d", Some(90 * 86_400)),
            ("12h", Some(43_200)),
            ("1w2d", Some(9 * 86_400)),
            ("30m", Some(1_800)),
            ("45s", Some(45)),
            ("", None),
            ("d", None),
            ("12", None),
            ("12x", None),
            ("99999999999999999999d", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text).ok(), *expected, "{text}");
        }
    }

    #[test]
    fn secret_shapes() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMII",
                Some("PEM private key"),
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----",
                Some("PEM private key"),
            ),
            ("-----BEGIN PUBLIC KEY-----", None),
            ("key=AKIAIOSFODNN7EXAMPLE", Some("AWS access key id")),
            ("ASIAIOSFODNN7EXAMPL", None),
            ("xAKIAIOSFODNN7EXAMPLE", None),
            (
                "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
                Some("GitHub token"),
            ),
            ("ghp_short", None),
            (
                "github_pat_11ABCDEFG0123456789_abcdefghij",
                Some("GitHub token"),
            ),
            ("glpat-abcdefghij0123456789", Some("GitLab token")),
            ("nothing to see", None),
        ];
        for (text, expected) in cases {
            assert_eq!(secret_shape(text), *expected, "{text}");
        }
    }

    #[test]
    fn secrets_are_found_by_name_and_location_only() {
        let json = br#"{"os":"linux","architecture":"amd64","config":{"User":"app",
            "Env":["PATH=/usr/bin","DB_PASSWORD=hunter2","EMPTY_TOKEN=","GH=ghp_0123456789abcdefghijklmnopqrstuvwxyz"],
            "Labels":{"api_key":"abc","maintainer":"x"}},
            "history":[{"created_by":"/bin/sh -c export MY_SECRET=s3cr3t && make"},{"created_by":"COPY . /"}]}"#;
        let facts = ConfigFacts::from_config_json(json).unwrap();
        let hits = find_secrets(&facts);
        let summary: Vec<(String, String)> = hits
            .iter()
            .map(|h| (h.location.clone(), h.name.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("Env".into(), "DB_PASSWORD".into()),
                ("Env".into(), "GH".into()),
                ("Labels".into(), "api_key".into()),
                ("history[0].created_by".into(), "MY_SECRET".into()),
            ]
        );
    }

    mod time_bounds {
        //! `Verdict::valid_until` and the future-`created` check: a verdict never outlives its
        //! truth, and time never fails open.
        #![allow(clippy::unwrap_used, clippy::expect_used)]

        use std::collections::BTreeMap;

        use crate::{evaluate, ConfigFacts, Decision, Evidence, Policy, SignatureEvidence};

        const KEY_A: &str = include_str!("../../testdata/policies/keys/keyA.pub");
        const KEY_B: &str = include_str!("../../testdata/policies/keys/keyB.pub");
        /// 2026-11-29T00:00:00Z
        const NOW: i64 = 1_795_910_400;
        const DIGEST: &str =
            "sha256:8c60e41c50b8e88f4260816a551db9f5a409729368197a61cc08789a9f14ce8b";

        fn loader(path: &str) -> Result<Vec<u8>, String> {
            match path {
                "a.pub" => Ok(KEY_A.as_bytes().to_vec()),
                "b.pub" => Ok(KEY_B.as_bytes().to_vec()),
                other => Err(format!("no key {other}")),
            }
        }

        fn load(text: &str) -> Policy {
            match Policy::load("t.yaml", text, &loader) {
                Ok(l) => l.policy,
                Err(e) => panic!("{e}"),
            }
        }

        fn evidence(configs: Vec<ConfigFacts>) -> Evidence {
            let key = crate::PublicKey::from_pem(KEY_A.as_bytes()).unwrap();
            Evidence {
                reference: "reg.io/app:1".parse().unwrap(),
                digest: DIGEST.parse().unwrap(),
                reference_had_digest: false,
                signatures: vec![SignatureEvidence::legacy_key(
                    key.id().clone(),
                    "reg.io/app:1".into(),
                    true,
                    BTreeMap::new(),
                )],
                configs,
            }
        }

        fn created(at: i64) -> ConfigFacts {
            ConfigFacts {
                os: "linux".into(),
                architecture: "amd64".into(),
                user: Some("app".into()),
                created: Some(at),
                ..ConfigFacts::default()
            }
        }

        fn codes(v: &crate::Verdict) -> Vec<&'static str> {
            v.findings.iter().map(|f| f.code).collect()
        }

        #[test]
        fn valid_until_is_the_signing_keys_not_after() {
            // a: retired at NOW + 10 s; b: retired long ago (already past: no bound).
            let policy = load(
                "keys:\n  a: {path: a.pub, notAfter: \"2026-11-29T00:00:10Z\"}\n  b: {path: b.pub, notAfter: \"2020-01-01T00:00:00Z\"}\n\
                 scopes:\n  reg.io/app:\n    signed: {keys: [a, b]}\n",
            );
            let v = evaluate(&policy, &evidence(vec![]), NOW);
            assert_eq!(v.decision, Decision::Allow, "{v:?}");
            assert_eq!(v.valid_until, Some(NOW + 10));
            // At that instant the verdict is indeed different.
            let later = evaluate(&policy, &evidence(vec![]), NOW + 10);
            assert_eq!(later.decision, Decision::Deny);
            assert!(codes(&later).contains(&"key-expired"), "{later:?}");
            assert_eq!(later.valid_until, None, "a retired key never comes back");
            // No time bound at all: no valid_until.
            let plain = load(
                "keys:\n  a: {path: a.pub}\nscopes:\n  reg.io/app:\n    signed: {keys: [a]}\n",
            );
            assert_eq!(evaluate(&plain, &evidence(vec![]), NOW).valid_until, None);
        }

        #[test]
        fn valid_until_is_the_end_of_max_age_and_the_scope_cache_ttl() {
            let policy = load(
                "keys:\n  a: {path: a.pub}\nscopes:\n  reg.io/app:\n    signed: {keys: [a]}\n    config: {maxAge: 1h}\n",
            );
            let v = evaluate(&policy, &evidence(vec![created(NOW - 600)]), NOW);
            assert_eq!(v.decision, Decision::Allow, "{v:?}");
            // Too old from the first second past created + 1 h.
            assert_eq!(v.valid_until, Some(NOW - 600 + 3600 + 1));
            let at_end = evaluate(
                &policy,
                &evidence(vec![created(NOW - 600)]),
                NOW - 600 + 3600,
            );
            assert_eq!(at_end.decision, Decision::Allow);
            let past = evaluate(
                &policy,
                &evidence(vec![created(NOW - 600)]),
                NOW - 600 + 3601,
            );
            assert_eq!(codes(&past), vec!["image-too-old"]);
            // The youngest config of an index does not hide the oldest.
            let v = evaluate(
                &policy,
                &evidence(vec![created(NOW - 60), created(NOW - 3000)]),
                NOW,
            );
            assert_eq!(v.valid_until, Some(NOW - 3000 + 3601));
            // A scope's cacheTtl caps it further.
            let ttl = load(
                "keys:\n  a: {path: a.pub}\nscopes:\n  reg.io/app:\n    signed: {keys: [a]}\n    config: {maxAge: 1h}\n    cacheTtl: 30s\n",
            );
            let v = evaluate(&ttl, &evidence(vec![created(NOW - 600)]), NOW);
            assert_eq!(v.valid_until, Some(NOW + 30));
            // The time bound wins when sooner.
            let v = evaluate(&ttl, &evidence(vec![created(NOW - 3590)]), NOW);
            assert_eq!(v.valid_until, Some(NOW + 11));
        }

        #[test]
        fn cache_ttl_is_a_bounded_duration() {
            for (text, message) in [
                ("2d", "longer than the 1d a verdict may be reused"),
                ("0s", "shorter than 10s"),
                ("soon", "is not a duration like"),
            ] {
                let doc = format!("keys:\n  a: {{path: a.pub}}\nscopes:\n  reg.io/app:\n    signed: {{keys: [a]}}\n    cacheTtl: {text}\n");
                let diagnostics = crate::lint("t.yaml", &doc, &loader);
                assert!(
                    diagnostics.iter().any(|d| d.code == "invalid-duration"
                        && d.message.contains(message)
                        && d.line == Some(6)),
                    "{text}: {diagnostics:?}"
                );
            }
        }

        #[test]
        fn an_image_created_in_the_future_is_denied_beyond_the_skew() {
            let policy = load(
                "keys:\n  a: {path: a.pub}\nscopes:\n  reg.io/app:\n    signed: {keys: [a]}\n    config: {maxAge: 1d}\n",
            );
            // Year 2100: before, it passed maxAge until 2100 + 1 day.
            let far = evaluate(&policy, &evidence(vec![created(4_102_444_800)]), NOW);
            assert_eq!(far.decision, Decision::Deny, "{far:?}");
            assert_eq!(codes(&far), vec!["image-created-in-future"]);
            assert!(
                far.findings[0].message.contains("2100-01-01T00:00:00Z"),
                "{far:?}"
            );
            assert_eq!(far.findings[0].rule, "scopes.\"reg.io/app\".config.maxAge");
            // The verdict changes once the date comes within the skew.
            assert_eq!(far.valid_until, Some(4_102_444_800 - 300));
            // Within the skew (a build host whose clock runs ahead): allowed.
            let skewed = evaluate(&policy, &evidence(vec![created(NOW + 300)]), NOW);
            assert_eq!(skewed.decision, Decision::Allow, "{skewed:?}");
            let beyond = evaluate(&policy, &evidence(vec![created(NOW + 301)]), NOW);
            assert_eq!(codes(&beyond), vec!["image-created-in-future"]);
        }
    }

    #[test]
    fn config_parse() {
        let json = br#"{"created":"2026-01-02T03:04:05Z","os":"linux","architecture":"arm64","variant":"v8","config":{}}"#;
        let facts = ConfigFacts::from_config_json(json).unwrap();
        assert_eq!(facts.platform(), "linux/arm64/v8");
        assert_eq!(facts.created, Some(1_767_323_045));
        assert_eq!(facts.user, None);
        assert!(ConfigFacts::from_config_json(b"[]").is_err());
        assert!(ConfigFacts::from_config_json(br#"{"created":"yesterday"}"#).is_err());
        let spec = PlatformSpec::parse("linux/arm64").unwrap();
        assert!(spec.allows(&facts));
        assert!(!PlatformSpec::parse("linux/arm64/v7")
            .unwrap()
            .allows(&facts));
        assert!(PlatformSpec::parse("linux").is_err());
    }
}
