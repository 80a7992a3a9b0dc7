//! HTTP proxies for registry traffic, decided as Go's `net/http` (docker, podman, crane, cosign)
//! decides them: `HTTPS_PROXY` for https, `HTTP_PROXY` for plain HTTP (upper case first, then
//! lower case), `NO_PROXY` exceptions (`*`, host names with their subdomains, `.domain`
//! for subdomains only, `host:port`, IP addresses, CIDR ranges), and loopback destinations never
//! proxied. https goes through a `CONNECT` tunnel, so a proxy sees the host name and port and
//! nothing of the exchange; plain HTTP it would read whole, so credentials are never sent to a
//! plain-HTTP destination that is proxied (see [`ProxyRules::proxy_for`] callers).

use std::ffi::OsString;
use std::net::IpAddr;

use reqwest::Url;

use crate::reference::is_loopback_host;
use crate::Error;

/// Which proxies registry traffic takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxySettings {
    /// `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (or their lower-case forms), read when the
    /// client is made: the CLI.
    #[default]
    Environment,
    /// Every connection direct, whatever the environment says.
    Direct,
    /// These proxies and exceptions (the gate's configuration).
    Explicit(ProxyConfig),
}

/// Proxies and exceptions, as the environment variables would give them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Proxy for https destinations (`http://host:port`, `https://…`; `user:password@` for the
    /// proxy's own authentication).
    pub https: Option<String>,
    /// Proxy for plain-HTTP destinations.
    pub http: Option<String>,
    /// Destinations reached directly (`NO_PROXY` entries).
    pub no_proxy: Vec<String>,
}

impl ProxyConfig {
    /// The configuration the environment gives, through `env` (a variable's upper-case form
    /// wins over its lower-case form; empty values count as unset).
    pub fn from_env(env: &dyn Fn(&str) -> Option<OsString>) -> ProxyConfig {
        let get = |upper: &str| {
            [upper.to_string(), upper.to_ascii_lowercase()]
                .iter()
                .find_map(|name| env(name).filter(|v| !v.is_empty()))
                .map(|v| v.to_string_lossy().trim().to_string())
        };
        ProxyConfig {
            https: get("HTTPS_PROXY"),
            http: get("HTTP_PROXY"),
            no_proxy: get("NO_PROXY")
                .map(|list| {
                    list.split([',', ' '])
                        .map(str::trim)
                        .filter(|e| !e.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Exception {
    All,
    /// `example.com` (and its subdomains), or `.example.com` (subdomains only), maybe with a
    /// port.
    Domain {
        name: String,
        subdomains_only: bool,
        port: Option<u16>,
    },
    Ip(IpAddr, Option<u16>),
    Cidr(IpAddr, u8),
}

fn parse_exception(entry: &str) -> Option<Exception> {
    let entry = entry.trim().to_ascii_lowercase();
    if entry == "*" {
        return Some(Exception::All);
    }
    if let Some((addr, bits)) = entry.split_once('/') {
        let ip: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        let bits: u8 = bits.parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        return (bits <= max).then_some(Exception::Cidr(ip, bits));
    }
    if let Ok(ip) = entry
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some(Exception::Ip(ip, None));
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port.parse::<u16>().ok()?)),
        _ => (entry.as_str(), None),
    };
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some(Exception::Ip(ip, port));
    }
    // Go treats `*.example.com` like `.example.com`.
    let host = host.strip_prefix('*').unwrap_or(host);
    let (name, subdomains_only) = match host.strip_prefix('.') {
        Some(rest) => (rest, true),
        None => (host, false),
    };
    (!name.is_empty()).then(|| Exception::Domain {
        name: name.to_string(),
        subdomains_only,
        port,
    })
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The proxy rules in force for one client.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProxyRules {
    https: Option<Url>,
    http: Option<Url>,
    exceptions: Vec<Exception>,
}

/// A proxy URL as given (`host:port` means `http://host:port`), checked.
fn proxy_url(text: &str, what: &str) -> Result<Url, Error> {
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    // Never repeat the value: it may carry the proxy's password.
    let refuse = |why: &str| Error::Unsupported(format!("{what}: {why}"));
    let url = Url::parse(&with_scheme).map_err(|_| refuse("is not a proxy URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse(&format!(
            "proxy scheme {:?} is not supported (http or https only)",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refuse("names no host"));
    }
    Ok(url)
}

impl ProxyRules {
    /// The rules `settings` give (the environment read through `env`).
    pub(crate) fn new(
        settings: &ProxySettings,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<ProxyRules, Error> {
        let (config, https_name, http_name) = match settings {
            ProxySettings::Direct => return Ok(ProxyRules::default()),
            ProxySettings::Environment => (ProxyConfig::from_env(env), "HTTPS_PROXY", "HTTP_PROXY"),
            ProxySettings::Explicit(config) => (config.clone(), "https proxy", "http proxy"),
        };
        Ok(ProxyRules {
            https: config
                .https
                .as_deref()
                .map(|p| proxy_url(p, https_name))
                .transpose()?,
            http: config
                .http
                .as_deref()
                .map(|p| proxy_url(p, http_name))
                .transpose()?,
            exceptions: config
                .no_proxy
                .iter()
                .filter_map(|e| parse_exception(e))
                .collect(),
        })
    }

    /// Whether any proxy is configured at all.
    pub(crate) fn any(&self) -> bool {
        self.https.is_some() || self.http.is_some()
    }

    /// The proxy `url` goes through, if any.
    pub(crate) fn proxy_for(&self, url: &Url) -> Option<&Url> {
        let proxy = match url.scheme() {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }?;
        let host = url.host_str()?.to_ascii_lowercase();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let port = url.port_or_known_default();
        if is_loopback_host(bare) || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            return None;
        }
        let ip = bare.parse::<IpAddr>().ok();
        let excepted = self.exceptions.iter().any(|e| match e {
            Exception::All => true,
            Exception::Ip(addr, p) => Some(*addr) == ip && p.is_none_or(|p| Some(p) == port),
            Exception::Cidr(net, bits) => ip.is_some_and(|ip| in_cidr(ip, *net, *bits)),
            Exception::Domain {
                name,
                subdomains_only,
                port: p,
            } => {
                let sub = bare.ends_with(&format!(".{name}"));
                let matches = if *subdomains_only {
                    sub
                } else {
                    sub || bare == name
                };
                matches && p.is_none_or(|p| Some(p) == port)
            }
        });
        (!excepted).then_some(proxy)
    }

    /// The proxy as shown in errors and logs: scheme, host and port, never its credentials.
    pub(crate) fn shown(proxy: &Url) -> String {
        match proxy.port() {
            Some(port) => format!(
                "{}://{}:{port}",
                proxy.scheme(),
                proxy.host_str().unwrap_or_default()
            ),
            None => format!(
                "{}://{}",
                proxy.scheme(),
                proxy.host_str().unwrap_or_default()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn rules(vars: &'static [(&'static str, &'static str)]) -> ProxyRules {
        let env = move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        };
        ProxyRules::new(&ProxySettings::Environment, &env).unwrap()
    }

    fn via(rules: &ProxyRules, url: &str) -> Option<String> {
        rules
            .proxy_for(&Url::parse(url).unwrap())
            .map(ProxyRules::shown)
    }

    #[test]
    fn environment_variables_choose_the_proxy_by_scheme() {
        let r = rules(&[
            ("HTTPS_PROXY", "proxy.corp:3128"),
            ("https_proxy", "http://lower.corp:1"),
            ("http_proxy", "http://plain.corp:8080"),
        ]);
        assert_eq!(
            via(&r, "https://ghcr.io/v2/").as_deref(),
            Some("http://proxy.corp:3128")
        );
        assert_eq!(
            via(&r, "http://reg.internal:5000/v2/").as_deref(),
            Some("http://plain.corp:8080")
        );
        // Loopback is never proxied (Go's rule; docker and crane users expect it).
        for local in [
            "http://127.0.0.1:5000/v2/",
            "https://localhost/v2/",
            "https://[::1]:5000/v2/",
            "https://127.3.4.5/v2/",
        ] {
            assert_eq!(via(&r, local), None, "{local}");
        }
        let none = rules(&[]);
        assert!(!none.any());
        assert_eq!(via(&none, "https://ghcr.io/v2/"), None);
    }

    #[test]
    fn no_proxy_exceptions() {
        let r = rules(&[
            ("HTTPS_PROXY", "http://p:1"),
            (
                "NO_PROXY",
                "example.com, .sub.test,*.star.test,10.0.0.0/8 192.0.2.7,reg.port:5000,[fd00::1]",
            ),
        ]);
        for (url, proxied) in [
            ("https://example.com/", false),
            ("https://a.example.com/", false),
            ("https://notexample.com/", true),
            ("https://sub.test/", true),
            ("https://x.sub.test/", false),
            ("https://x.star.test/", false),
            ("https://10.1.2.3/", false),
            ("https://11.1.2.3/", true),
            ("https://192.0.2.7:5000/", false),
            ("https://reg.port:5000/", false),
            ("https://reg.port/", true),
            ("https://[fd00::1]:443/", false),
        ] {
            assert_eq!(via(&r, url).is_some(), proxied, "{url}");
        }
        let all = rules(&[("HTTPS_PROXY", "http://p:1"), ("no_proxy", "*")]);
        assert_eq!(via(&all, "https://ghcr.io/"), None);
    }

    #[test]
    fn bad_proxy_urls_name_the_variable_not_the_value() {
        for (value, why) in [
            ("socks5://user:secret@p:1080", "not supported"),
            ("http://user:secret@", "is not a proxy URL"),
            ("http://[oops:secret", "is not a proxy URL"),
        ] {
            let vars: &'static [(&'static str, &'static str)] =
                Box::leak(vec![("HTTPS_PROXY", value)].into_boxed_slice());
            let env = move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            };
            let err = ProxyRules::new(&ProxySettings::Environment, &env).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("HTTPS_PROXY: "), "{text}");
            assert!(text.contains(why), "{text}");
            assert!(!text.contains("secret"), "{text}");
        }
        // Shown without the proxy's own credentials.
        let url = proxy_url("http://u:pw@proxy.corp:3128", "x").unwrap();
        assert_eq!(ProxyRules::shown(&url), "http://proxy.corp:3128");
    }

    #[test]
    fn direct_ignores_the_environment() {
        let env = |_: &str| Some(OsString::from("http://p:1"));
        let r = ProxyRules::new(&ProxySettings::Direct, &env).unwrap();
        assert!(!r.any());
    }
}
