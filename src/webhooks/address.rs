//! Where a webhook may be sent: an `http://` or `https://` URL of at most [`MAX_URL_CHARS`]
//! characters whose host is public.
//!
//! A webhook URL comes from a client, and the server POSTs to it from inside its network, so an
//! unchecked one would let anyone make the server call its own loopback services, the private
//! network or the cloud's metadata endpoint (server-side request forgery). Refused, unless
//! `WEBHOOK_ALLOW_PRIVATE`: hosts named as internal (`localhost`, `*.internal` such as
//! `metadata.google.internal`, `*.local`), and hosts with any address that is not public
//! unicast ([`is_public`]): loopback, private (RFC 1918, IPv6 unique local), link-local (the
//! metadata address 169.254.169.254 among them), shared CGNAT space, unspecified, multicast,
//! reserved and documentation ranges, and the IPv4-mapped and IPv4-embedding IPv6 forms of
//! these.
//!
//! The check is made twice: at submission ([`check`], for a clear 422 before anything is
//! written) and at every delivery, where [`CheckedResolver`] is the delivery client's resolver:
//! the client connects only to the addresses it has just checked, so a name that resolved to a
//! public address at submission and to a private one later (DNS rebinding) is refused then.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The longest webhook URL accepted.
pub const MAX_URL_CHARS: usize = 2048;

/// How long a submission waits for its webhook host to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a webhook URL is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Not a usable URL (syntax, scheme, length, credentials, a host that does not resolve).
    #[error("{0}")]
    Invalid(String),
    /// A host that is, or resolves to, an address that is not public.
    #[error("{0}")]
    NotPublic(String),
}

/// The URL's syntax: `http` or `https`, a host, no credentials, at most [`MAX_URL_CHARS`].
pub fn parse(raw: &str) -> Result<Url, Refusal> {
    let invalid = |why: &str| Refusal::Invalid(format!("webhook_url {why}"));
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(invalid(&format!(
            "is longer than {MAX_URL_CHARS} characters"
        )));
    }
    let url = Url::parse(raw.trim()).map_err(|e| invalid(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "must not hold credentials: every request is signed with the server's webhook secret",
        ));
    }
    Ok(url)
}

/// The checks that need no resolution: a name that is internal by convention, or an address
/// literal that is not public. `Ok` leaves a name to be resolved and checked.
pub fn check_host(url: &Url, allow_private: bool) -> Result<(), Refusal> {
    if allow_private {
        return Ok(());
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => check_addr(&ip.to_string(), IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => check_addr(&ip.to_string(), IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) if internal_name(name) => Err(Refusal::NotPublic(format!(
            "webhook_url's host {name} is an internal name; webhooks are sent to public \
             addresses only"
        ))),
        _ => Ok(()),
    }
}

/// Everything about a submitted webhook URL: its syntax, its host and, for a name, every address
/// it resolves to now. Returns the URL as it will be stored.
pub async fn check(raw: &str, allow_private: bool) -> Result<Url, Refusal> {
    let url = parse(raw)?;
    check_host(&url, allow_private)?;
    if allow_private {
        return Ok(url);
    }
    if let Some(url::Host::Domain(name)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(443);
        let not_found = || {
            Refusal::Invalid(format!(
                "webhook_url's host {name} does not resolve to an address"
            ))
        };
        let addrs: Vec<SocketAddr> =
            tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port)))
                .await
                .map_err(|_| not_found())?
                .map_err(|_| not_found())?
                .collect();
        if addrs.is_empty() {
            return Err(not_found());
        }
        for addr in addrs {
            check_addr(name, addr.ip())?;
        }
    }
    Ok(url)
}

/// Refuse `ip` (the address of `host`) unless it is public.
fn check_addr(host: &str, ip: IpAddr) -> Result<(), Refusal> {
    if is_public(ip) {
        return Ok(());
    }
    let at = if host == ip.to_string() {
        String::new()
    } else {
        format!(" resolves to {ip}, which")
    };
    Err(Refusal::NotPublic(format!(
        "webhook_url's host {host}{at} is not a public address (loopback, private, link-local, \
         shared or reserved); webhooks are sent to public addresses only"
    )))
}

/// Names that stand for the local machine or a private network whatever they resolve to:
/// `localhost`, and the `.localhost`, `.internal` (cloud metadata and internal DNS, e.g.
/// `metadata.google.internal`) and `.local` (mDNS) domains, plus the bare `metadata` that some
/// clouds resolve.
fn internal_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name == "metadata"
        || [".localhost", ".internal", ".local"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

/// Whether `ip` is a public unicast address (a webhook may go there).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let not_public = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT), 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, 192.0.0/24
        || (a == 198 && (18..20).contains(&b)) // benchmarking, 198.18/15
        || a >= 240; // reserved
    !not_public
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // Forms that carry an IPv4 address: mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::/96) and 6to4
    // (2002::/16) are only as public as the address they carry.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    let not_public = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local() // fc00::/7
        || ip.is_unicast_link_local() // fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation, 2001:db8::/32
        || s[0..6] == [0, 0, 0, 0, 0, 0]; // IPv4-compatible (deprecated), ::/96
    !not_public
}

/// The delivery client's resolver: resolves a name as the system does and hands the client its
/// addresses only if every one is public (or private ones are allowed), so the client never
/// connects to an address that was not checked. Address literals never reach a resolver: the
/// delivery checks them with [`check_host`] before it sends.
#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver {
    pub allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            if !allow_private && internal_name(&host) {
                return Err(format!("{host} is an internal name").into());
            }
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| !allow_private && !is_public(a.ip())) {
                return Err(
                    format!("{host} resolves to {}, not a public address", bad.ip()).into(),
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        !is_public(ip.parse().unwrap())
    }

    #[test]
    fn every_private_range_is_refused_and_public_addresses_are_not() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "192.0.2.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
        ] {
            assert!(refused(ip), "{ip} was taken for public");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert!(!refused(ip), "{ip} was refused");
        }
    }

    #[test]
    fn urls_must_be_http_or_https_with_a_host_and_no_credentials() {
        for bad in [
            "ftp://example.com/x",
            "example.com/hook",
            "https://",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://user:pw@example.com/hook",
            "",
        ] {
            assert!(
                matches!(parse(bad), Err(Refusal::Invalid(_))),
                "{bad:?} was accepted"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(matches!(parse(&long), Err(Refusal::Invalid(m)) if m.contains("2048")));
        let at_limit = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS - 20));
        assert_eq!(at_limit.len(), MAX_URL_CHARS);
        assert!(parse(&at_limit).is_ok());
        assert!(parse("http://example.com:8080/hooks?x=1").is_ok());
    }

    #[test]
    fn internal_names_and_private_literals_are_refused_without_resolving() {
        for bad in [
            "http://localhost:8080/x",
            "http://LOCALHOST./x",
            "http://api.localhost/x",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://metadata/x",
            "http://printer.local/x",
            "http://127.0.0.1/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://[::1]/x",
            "http://[::ffff:169.254.169.254]/latest/meta-data/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00::1]:9000/x",
        ] {
            let url = parse(bad).unwrap();
            assert!(
                matches!(check_host(&url, false), Err(Refusal::NotPublic(_))),
                "{bad} was not refused"
            );
            assert!(check_host(&url, true).is_ok(), "{bad} refused when allowed");
        }
        for good in [
            "https://8.8.8.8/x",
            "https://example.com/x",
            "http://[2606:4700::1]/",
        ] {
            assert!(check_host(&parse(good).unwrap(), false).is_ok(), "{good}");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_at_submission_unless_allowed() {
        // `localhost.` with its trailing dot removed is caught by name; a name of /etc/hosts
        // that is not internal by convention shows the resolution step.
        let e = check("http://localhost/x", false).await.unwrap_err();
        assert!(matches!(e, Refusal::NotPublic(_)), "{e}");
        assert!(check("http://localhost/x", true).await.is_ok());
        let e = check("http://no-such-host.invalid/x", false)
            .await
            .unwrap_err();
        assert!(
            matches!(e, Refusal::Invalid(ref m) if m.contains("does not resolve")),
            "{e}"
        );
    }
}
