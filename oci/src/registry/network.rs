//! Where the client may go: plain HTTP only to loopback hosts (when allowed) or hosts named
//! explicitly; optionally, loopback, private-range and link-local addresses only for hosts named
//! explicitly (the gate, which must not become a relay into the network it runs in); and bearer
//! token realms only on the registry's own host or hosts named explicitly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use crate::reference::{is_loopback_host, DOCKER_HUB};

use super::RegistryOptions;

/// The host part of `host[:port]` (brackets of an IPv6 literal removed).
pub(super) fn host_part(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        // One colon: host:port. More: a bare IPv6 address.
        Some((name, _)) if !name.contains(':') => name,
        _ => host,
    }
}

/// Whether `host[:port]` is named in `list` (entries are `host` or `host:port`).
pub(super) fn listed(host: &str, list: &[String]) -> bool {
    let bare = host_part(host);
    list.iter()
        .any(|entry| entry.eq_ignore_ascii_case(host) || entry.eq_ignore_ascii_case(bare))
}

/// Whether `host[:port]` may be spoken to over plain HTTP.
pub(super) fn http_allowed(host: &str, options: &RegistryOptions) -> bool {
    (options.loopback_http && is_loopback_host(host))
        || options
            .allow_http_registries
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
}

/// `https`, or `http` for hosts [`http_allowed`]; never a fallback.
pub(super) fn scheme_for(registry: &str, options: &RegistryOptions) -> &'static str {
    if http_allowed(registry, options) {
        "http"
    } else {
        "https"
    }
}

/// Loopback, private-range (RFC 1918, unique-local), link-local (cloud metadata services live
/// at 169.254.169.254) or unspecified: addresses inside the network the client runs in.
pub fn is_internal_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(internal_v4)
                || (v6.segments()[..6] == [0; 6] && internal_v4(v4_of_compat(v6)))
        }
    }
}

fn internal_v4(v4: Ipv4Addr) -> bool {
    v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
}

/// The IPv4 address in the last 32 bits of an IPv4-compatible IPv6 address (`::a.b.c.d`).
fn v4_of_compat(v6: Ipv6Addr) -> Ipv4Addr {
    let s = v6.segments();
    Ipv4Addr::new(
        (s[6] >> 8) as u8,
        (s[6] & 0xff) as u8,
        (s[7] >> 8) as u8,
        (s[7] & 0xff) as u8,
    )
}

/// Why `url` may not be reached under `options`, if it may not: its host is written as an
/// internal address (or `localhost`) and internal destinations are restricted to hosts that are
/// not it. Host names are checked again when they resolve ([`GuardedResolver`]).
pub(super) fn destination_refused(url: &Url, options: &RegistryOptions) -> Option<String> {
    let allowed = options.internal_hosts.as_ref()?;
    let name = url.host_str()?;
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let internal = match bare.parse::<IpAddr>() {
        Ok(ip) => is_internal_ip(ip),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    };
    let host = super::transport::url_host(url);
    (internal && !listed(&host, allowed)).then(|| {
        format!("{host} is a loopback, private or link-local address and not a configured registry")
    })
}

/// Whether a bearer realm on `realm_host` may be asked for a token for `registry` (both
/// `host[:port]`): its own host (any port), Docker Hub's token service for Docker Hub, or a host
/// in `options.token_realm_hosts` — when that list is set at all.
pub(super) fn realm_allowed(realm_host: &str, registry: &str, options: &RegistryOptions) -> bool {
    let Some(extra) = &options.token_realm_hosts else {
        return true;
    };
    let realm = host_part(realm_host);
    realm.eq_ignore_ascii_case(host_part(registry))
        || realm.eq_ignore_ascii_case(host_part(super::transport::api_host(registry)))
        || (registry == DOCKER_HUB && realm.eq_ignore_ascii_case("auth.docker.io"))
        || listed(realm_host, extra)
}

/// A DNS resolver that drops internal addresses ([`is_internal_ip`]) for every name not in
/// `allowed`, so a public-looking name cannot lead the client into the local network.
pub(super) struct GuardedResolver {
    pub(super) allowed: Vec<String>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        // DNS knows no ports: a name is trusted when any entry names its host.
        let trusted = self
            .allowed
            .iter()
            .any(|entry| host_part(entry).eq_ignore_ascii_case(&host));
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| trusted || !is_internal_ip(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(format!(
                    "{host} resolves only to loopback, private or link-local addresses and is not a configured registry"
                )
                .into());
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_internal_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "172.32.0.1",
            "192.169.0.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn host_lists_match_with_or_without_port() {
        let list = vec!["reg.corp".to_string(), "10.0.0.5:5000".to_string()];
        assert!(listed("reg.corp:443", &list));
        assert!(listed("REG.corp", &list));
        assert!(listed("10.0.0.5:5000", &list));
        assert!(!listed("10.0.0.5:5001", &list));
        assert!(!listed("reg.corp.evil", &list));
        assert_eq!(host_part("[::1]:5000"), "::1");
        assert_eq!(host_part("::1"), "::1");
    }

    #[test]
    fn internal_destinations_only_when_listed() {
        let options = RegistryOptions {
            internal_hosts: Some(vec!["127.0.0.1:5000".into()]),
            ..RegistryOptions::default()
        };
        let refused = |u: &str| destination_refused(&Url::parse(u).unwrap(), &options);
        assert_eq!(refused("http://127.0.0.1:5000/v2/"), None);
        assert!(refused("http://127.0.0.1:5001/v2/").is_some());
        assert!(refused("https://169.254.169.254/latest/").is_some());
        assert!(refused("https://[::1]/v2/").is_some());
        assert!(refused("https://localhost:5000/v2/").is_some());
        assert_eq!(refused("https://ghcr.io/v2/"), None);
        // The CLI's default: no restriction.
        let open = RegistryOptions::default();
        assert_eq!(
            destination_refused(&Url::parse("http://10.0.0.1/").unwrap(), &open),
            None
        );
    }

    #[test]
    fn realms_on_the_registry_host_or_listed_hosts() {
        let mut options = RegistryOptions {
            token_realm_hosts: Some(vec!["auth.corp".into()]),
            ..RegistryOptions::default()
        };
        assert!(realm_allowed("reg.corp:8443", "reg.corp", &options));
        assert!(realm_allowed("auth.corp", "reg.corp", &options));
        assert!(realm_allowed("auth.docker.io", "docker.io", &options));
        assert!(!realm_allowed("127.0.0.1:80", "reg.corp", &options));
        assert!(!realm_allowed("auth.docker.io", "reg.corp", &options));
        options.token_realm_hosts = None;
        assert!(realm_allowed("elsewhere.example", "reg.corp", &options));
    }

    #[tokio::test]
    async fn names_resolving_inside_are_refused_unless_listed() {
        let resolver = GuardedResolver {
            allowed: vec!["localhost:5000".into()],
        };
        let name = |n: &str| n.parse::<Name>().unwrap();
        let addrs: Vec<SocketAddr> = resolver.resolve(name("localhost")).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
        let closed = GuardedResolver { allowed: vec![] };
        let err = closed.resolve(name("localhost")).await.err().unwrap();
        assert!(
            err.to_string().contains("resolves only to loopback"),
            "{err}"
        );
    }
}
