//! Registry authentication state: parsing `WWW-Authenticate` challenges (RFC 7235 syntax, the
//! distribution token spec's `Bearer realm,service,scope`) and caching the challenge each registry
//! answered with, the bearer tokens obtained per registry and scope, and the credentials looked
//! up per repository (so a credential helper runs once, not on every request).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Credentials;

/// How long looked-up credentials are reused before the sources (files, helpers) are asked
/// again: helpers such as ECR's hand out credentials that expire within hours.
const CREDENTIALS_TTL: Duration = Duration::from_secs(300);

/// Credentials found (or found absent) per `(registry, repository)`, with their expiry.
type CredentialsMap = HashMap<(String, String), (Option<Credentials>, Instant)>;

/// What a registry asked for in its `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// HTTP basic authentication with the user's credentials.
    Basic,
    /// A bearer token from `realm` (distribution token spec).
    Bearer {
        /// Where to GET the token.
        realm: String,
        /// The `service` parameter to pass on.
        service: Option<String>,
        /// The scope the registry said the request needs.
        scope: Option<String>,
    },
}

/// Parse `key=value` / `key="quoted, value"` pairs after the scheme.
fn parse_params(mut rest: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(params);
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_ascii_lowercase();
        if key.is_empty() || key.contains([' ', ',', '"']) {
            return None;
        }
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            value = out;
            rest = &quoted[end?..];
        } else {
            let end = rest.find([',', ' ', '\t']).unwrap_or(rest.len());
            value = rest[..end].to_string();
            rest = &rest[end..];
        }
        params.push((key, value));
    }
}

/// Parse a `WWW-Authenticate` header value; `None` if it is neither Basic nor a well-formed
/// Bearer challenge.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once([' ', '\t']).unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm").filter(|r| !r.is_empty())?,
        service: get("service"),
        scope: get("scope").filter(|s| !s.is_empty()),
    })
}

/// Challenges seen and tokens obtained, shared by all clones of a client.
#[derive(Default)]
pub(crate) struct AuthCache {
    challenges: Mutex<HashMap<String, Challenge>>,
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
    credentials: Mutex<CredentialsMap>,
}

impl AuthCache {
    /// The challenge `registry` last answered with.
    pub(crate) fn challenge(&self, registry: &str) -> Option<Challenge> {
        self.challenges
            .lock()
            .ok()
            .and_then(|m| m.get(registry).cloned())
    }

    /// Remember `registry`'s challenge so later requests authenticate up front.
    pub(crate) fn set_challenge(&self, registry: &str, challenge: Challenge) {
        if let Ok(mut m) = self.challenges.lock() {
            m.insert(registry.to_string(), challenge);
        }
    }

    /// A still-valid token for `registry` and `scope`.
    pub(crate) fn token(&self, registry: &str, scope: &str) -> Option<String> {
        let m = self.tokens.lock().ok()?;
        let (token, expires) = m.get(&(registry.to_string(), scope.to_string()))?;
        (Instant::now() < *expires).then(|| token.clone())
    }

    /// Keep `token` for `registry` and `scope` for a little less than `lifetime`.
    pub(crate) fn set_token(&self, registry: &str, scope: &str, token: String, lifetime: Duration) {
        let margin = Duration::from_secs(10).min(lifetime / 2);
        if let Ok(mut m) = self.tokens.lock() {
            m.insert(
                (registry.to_string(), scope.to_string()),
                (token, Instant::now() + lifetime - margin),
            );
        }
    }

    /// Credentials looked up for `registry`/`repository` not long ago: `Some(None)` means "none
    /// found", `None` "not looked up (or expired)".
    pub(crate) fn credentials(
        &self,
        registry: &str,
        repository: &str,
    ) -> Option<Option<Credentials>> {
        let m = self.credentials.lock().ok()?;
        let (creds, expires) = m.get(&(registry.to_string(), repository.to_string()))?;
        (Instant::now() < *expires).then(|| creds.clone())
    }

    /// Remember what a lookup for `registry`/`repository` found.
    pub(crate) fn set_credentials(
        &self,
        registry: &str,
        repository: &str,
        creds: Option<Credentials>,
    ) {
        if let Ok(mut m) = self.credentials.lock() {
            m.insert(
                (registry.to_string(), repository.to_string()),
                (creds, Instant::now() + CREDENTIALS_TTL),
            );
        }
    }

    /// Forget a token the registry refused.
    pub(crate) fn drop_token(&self, registry: &str, scope: &str) {
        if let Ok(mut m) = self.tokens.lock() {
            m.remove(&(registry.to_string(), scope.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Option<Challenge> {
        Some(Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        })
    }

    fn check(header: &str, expected: Option<Challenge>) {
        assert_eq!(parse_challenge(header), expected, "{header}");
    }

    #[test]
    fn parses_challenges() {
        check(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
            bearer(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:samalba/my-app:pull,push"),
            ),
        );
        check(
            r#"bearer  realm="http://127.0.0.1:1/t" , service=reg"#,
            bearer("http://127.0.0.1:1/t", Some("reg"), None),
        );
        check(
            r#"Bearer realm="https://a/\"q\"",scope="""#,
            bearer("https://a/\"q\"", None, None),
        );
        check(r#"Basic realm="Registry Realm""#, Some(Challenge::Basic));
        check("BASIC", Some(Challenge::Basic));
        check(r#"Bearer service="x""#, None);
        check(r#"Bearer realm="unterminated"#, None);
        check(r#"Digest realm="x""#, None);
        check("", None);
    }

    #[test]
    fn tokens_expire_and_are_per_scope() {
        let cache = AuthCache::default();
        cache.set_token(
            "r",
            "repository:a:pull",
            "t1".into(),
            Duration::from_secs(300),
        );
        assert_eq!(cache.token("r", "repository:a:pull").as_deref(), Some("t1"));
        assert_eq!(cache.token("r", "repository:a:pull,push"), None);
        assert_eq!(cache.token("other", "repository:a:pull"), None);
        cache.set_token("r", "s", "t2".into(), Duration::from_secs(0));
        assert_eq!(cache.token("r", "s"), None);
        cache.drop_token("r", "repository:a:pull");
        assert_eq!(cache.token("r", "repository:a:pull"), None);
    }
}
