//! Egress policy: which URLs a run may reach. Pure, checked before any I/O
//! (and again for every redirect target).
//!
//! A run is granted endpoints as `scheme://host:port` triples; by default the
//! one endpoint the caller configured. Scheme, host and port are matched
//! separately and exactly (host names case-insensitively, after the URL
//! parser's normalization, so `0x7f.1` is `127.0.0.1` and IDNs are compared in
//! punycode). URLs with user info are refused: credentials travel in headers.
//!
//! Addresses are checked too (SSRF): loopback, private, link-local (cloud
//! metadata at 169.254.169.254), shared, unspecified, multicast and
//! broadcast addresses are refused unless the grant names that address
//! itself (an IP-literal endpoint) or a network the operator allowed
//! explicitly ([`EgressPolicy::allow_networks`]). Host names are resolved by
//! the host, every resolved address is checked, and the address actually
//! connected is checked again, so DNS rebinding cannot slip through.

use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;
use url::{Host, Url};

/// One granted endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    scheme: String,
    host: Host<String>,
    port: u16,
}

impl Grant {
    /// Grant for the origin of `url` (`https://pc:9440/anything` grants
    /// `https`, `pc`, `9440`; the port defaults from the scheme).
    pub fn from_url(url: &Url) -> Result<Grant, Denial> {
        let scheme = url.scheme().to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(Denial::Scheme(scheme));
        }
        let host = url.host().ok_or(Denial::NoHost)?.to_owned();
        let port = url.port_or_known_default().ok_or(Denial::NoHost)?;
        Ok(Grant { scheme, host: lowercase(host), port })
    }

    pub fn parse(s: &str) -> Result<Grant, Denial> {
        let url = Url::parse(s).map_err(|e| Denial::Malformed(e.to_string()))?;
        Grant::from_url(&url)
    }

    /// The granted address when the grant names an IP literal.
    fn host_ip(&self) -> Option<IpAddr> {
        match self.host {
            Host::Ipv4(a) => Some(IpAddr::V4(a)),
            Host::Ipv6(a) => Some(IpAddr::V6(a)),
            Host::Domain(_) => None,
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ipv6(a) => write!(f, "{}://[{a}]:{}", self.scheme, self.port),
            h => write!(f, "{}://{h}:{}", self.scheme, self.port),
        }
    }
}

fn lowercase(h: Host<String>) -> Host<String> {
    match h {
        Host::Domain(d) => Host::Domain(d.trim_end_matches('.').to_ascii_lowercase()),
        other => other,
    }
}

/// Why a URL was refused. Messages name the URL's origin, never its path or
/// query (which could carry data the guest wants to exfiltrate into logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    Malformed(String),
    Scheme(String),
    NoHost,
    UserInfo,
    NotGranted { origin: String, grants: Vec<String> },
    /// The host resolves to (or connected to) an address in a blocked range.
    BlockedAddress { host: String, addr: IpAddr, range: &'static str },
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::Malformed(e) => write!(f, "malformed URL: {e}"),
            Denial::Scheme(s) => write!(f, "scheme '{s}' is not allowed (http and https only)"),
            Denial::NoHost => write!(f, "URL has no host"),
            Denial::UserInfo => write!(f, "URLs with user info are not allowed"),
            Denial::NotGranted { origin, grants } => {
                write!(f, "{origin} is not granted to this run (granted: {})", grants.join(", "))
            }
            Denial::BlockedAddress { host, addr, range } => write!(
                f,
                "{host} resolves to {addr}, a {range} address; such addresses need an explicit grant (an IP-literal endpoint or an allowed network)"
            ),
        }
    }
}

/// The set of endpoints a run may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    grants: Vec<Grant>,
    /// Networks whose special addresses the operator allowed explicitly.
    allowed_networks: Vec<IpNet>,
}

/// The blocked range an address falls in, if any.
pub fn blocked_range(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            if a.is_loopback() {
                Some("loopback")
            } else if a.is_private() {
                Some("private")
            } else if a.is_link_local() {
                Some("link-local")
            } else if a.is_unspecified() || o[0] == 0 {
                Some("unspecified")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("shared (CGNAT)")
            } else if a.is_multicast() || a.is_broadcast() || o[0] >= 240 {
                Some("multicast, broadcast or reserved")
            } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
                Some("IETF protocol assignment")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return blocked_range(IpAddr::V4(v4));
            }
            let seg = a.segments();
            if a.is_loopback() {
                Some("loopback")
            } else if a.is_unspecified() {
                Some("unspecified")
            } else if (seg[0] & 0xfe00) == 0xfc00 {
                Some("private (unique local)")
            } else if (seg[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if a.is_multicast() {
                Some("multicast")
            } else if seg[0] == 0x64 && seg[1] == 0xff9b {
                // NAT64 can reach IPv4 space behind the gateway.
                Some("NAT64")
            } else {
                None
            }
        }
    }
}

impl EgressPolicy {
    /// A policy that allows nothing.
    pub fn deny_all() -> EgressPolicy {
        EgressPolicy::default()
    }

    pub fn new(grants: Vec<Grant>) -> EgressPolicy {
        EgressPolicy { grants, allowed_networks: Vec::new() }
    }

    /// The default: exactly the configured endpoint's origin.
    pub fn for_endpoint(endpoint: &str) -> Result<EgressPolicy, Denial> {
        Ok(EgressPolicy::new(vec![Grant::parse(endpoint)?]))
    }

    /// Also allows special addresses (private, loopback, ...) inside these
    /// networks: the operator's explicit grant for endpoints named by host
    /// name on private networks. Grants still decide which hosts and ports.
    pub fn allow_networks(mut self, networks: impl IntoIterator<Item = IpNet>) -> EgressPolicy {
        self.allowed_networks.extend(networks);
        self
    }

    pub fn allowed_networks(&self) -> &[IpNet] {
        &self.allowed_networks
    }

    /// Checks an address a granted host resolved to, or connected to.
    /// `host` is the URL's host as written (an IP literal granted by name is
    /// explicit and passes).
    pub fn check_addr(&self, host: &str, addr: IpAddr) -> Result<(), Denial> {
        let Some(range) = blocked_range(addr) else { return Ok(()) };
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        if literal == Some(addr) && self.grants.iter().any(|g| g.host_ip() == Some(addr)) {
            return Ok(());
        }
        if self.allowed_networks.iter().any(|n| n.contains(&addr)) {
            return Ok(());
        }
        Err(Denial::BlockedAddress { host: host.to_string(), addr, range })
    }

    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Checks a URL, before any I/O.
    pub fn check(&self, url: &Url) -> Result<(), Denial> {
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Denial::UserInfo);
        }
        let wanted = Grant::from_url(url)?;
        if self.grants.contains(&wanted) {
            Ok(())
        } else {
            Err(Denial::NotGranted {
                origin: wanted.to_string(),
                grants: self.grants.iter().map(Grant::to_string).collect(),
            })
        }
    }

    pub fn check_str(&self, url: &str) -> Result<Url, Denial> {
        let url = Url::parse(url).map_err(|e| Denial::Malformed(e.to_string()))?;
        self.check(&url)?;
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> EgressPolicy {
        EgressPolicy::for_endpoint("https://PC.Example.com:9440").unwrap()
    }

    #[test]
    fn special_addresses_need_an_explicit_grant() {
        let by_name = EgressPolicy::for_endpoint("https://prism.corp:9440").unwrap();
        for a in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1",
                  "224.0.0.1", "255.255.255.255", "::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"] {
            let addr: IpAddr = a.parse().unwrap();
            let e = by_name.check_addr("prism.corp", addr).unwrap_err();
            assert!(matches!(e, Denial::BlockedAddress { .. }), "{a}: {e}");
            assert!(e.to_string().contains("explicit grant"), "{e}");
        }
        for a in ["8.8.8.8", "52.1.2.3", "2001:4860::8888"] {
            assert!(by_name.check_addr("prism.corp", a.parse().unwrap()).is_ok(), "{a} is public");
        }
        // An IP-literal endpoint is its own explicit grant, and only for that address.
        let literal = EgressPolicy::for_endpoint("https://10.0.0.5:9440").unwrap();
        assert!(literal.check_addr("10.0.0.5", "10.0.0.5".parse().unwrap()).is_ok());
        assert!(literal.check_addr("10.0.0.5", "10.0.0.6".parse().unwrap()).is_err());
        let v6 = EgressPolicy::for_endpoint("https://[fd00::5]:9440").unwrap();
        assert!(v6.check_addr("[fd00::5]", "fd00::5".parse().unwrap()).is_ok());
        // A name resolving to a private address needs the operator's network grant.
        let allowed = by_name.clone().allow_networks(["10.0.0.0/8".parse::<IpNet>().unwrap()]);
        assert!(allowed.check_addr("prism.corp", "10.1.2.3".parse().unwrap()).is_ok());
        assert!(allowed.check_addr("prism.corp", "169.254.169.254".parse().unwrap()).is_err(), "outside the allowed network");
        assert!(allowed.check_addr("prism.corp", "127.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn the_configured_endpoint_is_allowed() {
        let p = policy();
        assert!(p.check_str("https://pc.example.com:9440/api/nutanix/v3/vms/list").is_ok());
        assert!(p.check_str("https://PC.EXAMPLE.COM.:9440/x").is_ok(), "case and trailing dot are normalized");
    }

    #[test]
    fn scheme_host_and_port_are_matched_separately() {
        let p = policy();
        let denied = |u: &str| p.check_str(u).unwrap_err();
        assert!(matches!(denied("http://pc.example.com:9440/"), Denial::NotGranted { .. }));
        assert!(matches!(denied("https://pc.example.com:9441/"), Denial::NotGranted { .. }));
        assert!(matches!(denied("https://pc.example.com/"), Denial::NotGranted { .. }), "443 is not 9440");
        assert!(matches!(denied("https://evil.example.com:9440/"), Denial::NotGranted { .. }));
        assert!(matches!(denied("https://pc.example.com.evil.net:9440/"), Denial::NotGranted { .. }));
        assert_eq!(denied("ftp://pc.example.com:9440/"), Denial::Scheme("ftp".into()));
        assert_eq!(denied("file:///etc/passwd"), Denial::Scheme("file".into()));
        assert!(matches!(denied("not a url"), Denial::Malformed(_)));
    }

    #[test]
    fn user_info_is_refused_even_for_the_granted_host() {
        let p = policy();
        assert_eq!(p.check_str("https://admin:pw@pc.example.com:9440/").unwrap_err(), Denial::UserInfo);
        assert_eq!(p.check_str("https://x@pc.example.com:9440/").unwrap_err(), Denial::UserInfo);
    }

    #[test]
    fn ip_forms_are_normalized_before_matching() {
        let p = EgressPolicy::for_endpoint("http://127.0.0.1:8080").unwrap();
        assert!(p.check_str("http://127.0.0.1:8080/a").is_ok());
        assert!(p.check_str("http://0x7f.0.0.1:8080/a").is_ok(), "hex form is the same address");
        assert!(p.check_str("http://2130706433:8080/a").is_ok(), "integer form is the same address");
        assert!(p.check_str("http://127.0.0.2:8080/a").is_err());
        assert!(p.check_str("http://localhost:8080/a").is_err(), "names are not resolved to match IP grants");
        let p6 = EgressPolicy::for_endpoint("https://[fd00::1]:9440").unwrap();
        assert!(p6.check_str("https://[fd00:0::1]:9440/").is_ok());
        assert!(p6.check_str("https://[fd00::2]:9440/").is_err());
    }

    #[test]
    fn deny_all_denies_and_messages_omit_paths() {
        let e = EgressPolicy::deny_all().check_str("https://a.example/secret-path?token=x").unwrap_err();
        let msg = e.to_string();
        assert_eq!(msg, "https://a.example:443 is not granted to this run (granted: )");
        assert!(!msg.contains("secret-path") && !msg.contains("token"));
    }

    #[test]
    fn grant_display_round_trips() {
        for s in ["https://pc.example.com:9440", "http://127.0.0.1:8080", "https://[fd00::1]:9440"] {
            assert_eq!(Grant::parse(s).unwrap().to_string(), s);
        }
        assert!(Grant::parse("ftp://x").is_err());
    }
}
