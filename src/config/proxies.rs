//! `TRUSTED_PROXIES`: the reverse proxies whose `X-Forwarded-For` names the
//! client, as addresses or CIDR ranges.

use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

/// The reverse proxies trusted to name the client. IPv4-mapped IPv6 entries
/// (`::ffff:10.0.0.1`, `::ffff:10.0.0.0/104`) are kept as the IPv4 address or
/// range they carry, so that they match the IPv4 peers they stand for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Read a list of entries; the entries that are neither an address nor
    /// a range are returned as the error.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, Vec<String>> {
        let mut nets = Vec::new();
        let mut bad = Vec::new();
        for item in items {
            match parse_entry(item) {
                Some(net) => nets.push(net),
                None => bad.push(item.to_string()),
            }
        }
        if bad.is_empty() {
            Ok(Self(nets))
        } else {
            Err(bad)
        }
    }

    /// Is `ip` (in any form, mapped or not) one of the trusted proxies?
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let mapped = match ip {
            IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
            IpAddr::V6(_) => None,
        };
        self.0
            .iter()
            .any(|n| n.contains(&ip) || mapped.is_some_and(|m| n.contains(&m)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for TrustedProxies {
    /// `10.0.0.1/32, 172.16.0.0/12`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let list: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&list.join(", "))
    }
}

/// `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or range; mapped forms as IPv4.
fn parse_entry(item: &str) -> Option<IpNet> {
    let net = match item.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(item.parse::<IpAddr>().ok()?),
    };
    Some(
        match net {
            IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                Some(v4) => IpNet::V4(Ipv4Net::new(v4, v6.prefix_len() - 96).ok()?),
                None => net,
            },
            other => other,
        }
        .trunc(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_ranges_are_read_and_mapped_forms_are_ipv4() {
        let t = TrustedProxies::parse([
            "10.0.0.1",
            "172.16.0.0/12",
            "::ffff:192.0.2.7",
            "::ffff:198.51.100.0/120",
            "2001:db8::/32",
        ])
        .unwrap();
        assert_eq!(
            t.to_string(),
            "10.0.0.1/32, 172.16.0.0/12, 192.0.2.7/32, 198.51.100.0/24, 2001:db8::/32"
        );
        for yes in [
            "10.0.0.1",
            "::ffff:10.0.0.1",
            "172.18.0.1",
            "::ffff:172.31.255.254",
            "192.0.2.7",
            "198.51.100.200",
            "::ffff:198.51.100.9",
            "2001:db8:1::5",
        ] {
            assert!(t.contains(ip(yes)), "{yes}");
        }
        for no in ["10.0.0.2", "172.32.0.1", "192.0.2.8", "2001:db9::1", "::1"] {
            assert!(!t.contains(ip(no)), "{no}");
        }
    }

    #[test]
    fn a_range_covering_the_mapped_space_trusts_the_ipv4_addresses_in_it() {
        let t = TrustedProxies::parse(["::/0"]).unwrap();
        assert!(t.contains(ip("192.0.2.1")));
    }

    #[test]
    fn host_bits_are_dropped_and_bad_entries_named() {
        let t = TrustedProxies::parse(["10.1.2.3/8"]).unwrap();
        assert_eq!(t.to_string(), "10.0.0.0/8");
        assert_eq!(
            TrustedProxies::parse(["10.0.0.1", "proxy.local", "10.0.0.0/33"]),
            Err(vec!["proxy.local".to_string(), "10.0.0.0/33".to_string()])
        );
        assert!(TrustedProxies::parse([]).unwrap().is_empty());
        assert_eq!(TrustedProxies::default().to_string(), "none");
    }
}
