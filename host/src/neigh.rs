//! Where an IPv4 packet leaves this host: the route's interface and next hop (`/proc/net/route`),
//! the next hop's MAC address (`/proc/net/arp`, resolved by the kernel on demand), the default
//! route's interface and the interfaces that carry an address (`/proc/net/if_inet6` for IPv6).

use std::{
    borrow::ToOwned,
    format, fs,
    net::{IpAddr, Ipv4Addr, UdpSocket},
    string::String,
    thread,
    time::{Duration, Instant},
    vec::Vec,
};

/// The interface and next hop for a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub iface: String,
    pub next_hop: Ipv4Addr,
}

fn hex_addr(s: &str) -> Option<Ipv4Addr> {
    // /proc/net/route prints addresses as host-order hex of the network-order u32.
    let v = u32::from_str_radix(s, 16).ok()?;
    Some(Ipv4Addr::from(v.to_le_bytes()))
}

/// The longest-prefix route for `dst` in the text of /proc/net/route.
pub fn route_from(table: &str, dst: Ipv4Addr) -> Option<Route> {
    let mut best: Option<(u32, Route)> = None;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Some(net), Some(gw), Some(mask)) = (hex_addr(f[1]), hex_addr(f[2]), hex_addr(f[7]))
        else {
            continue;
        };
        let flags = u32::from_str_radix(f[3], 16).unwrap_or(0);
        if flags & 1 == 0 {
            continue; // not up
        }
        let (net, mask) = (u32::from(net), u32::from(mask));
        if u32::from(dst) & mask != net {
            continue;
        }
        let bits = mask.count_ones();
        if best.as_ref().is_none_or(|(b, _)| bits > *b) {
            let next_hop = if gw.is_unspecified() { dst } else { gw };
            best = Some((
                bits,
                Route {
                    iface: f[0].to_owned(),
                    next_hop,
                },
            ));
        }
    }
    best.map(|(_, r)| r)
}

/// The route for `dst` in this network namespace.
pub fn route(dst: Ipv4Addr) -> Option<Route> {
    route_from(&fs::read_to_string("/proc/net/route").ok()?, dst)
}

/// The interface of the IPv4 default route in the text of /proc/net/route.
pub fn default_route_iface_from(table: &str) -> Option<String> {
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000").then(|| f[0].to_owned())
    })
}

/// The interface of this network namespace's IPv4 default route.
pub fn default_route_iface() -> Option<String> {
    default_route_iface_from(&fs::read_to_string("/proc/net/route").ok()?)
}

/// The interfaces that carry the local address `ip`, in the texts of /proc/net/route (IPv4: the
/// directly connected routes, no gateway, of the longest prefix that covers `ip`) and
/// /proc/net/if_inet6 (IPv6: the interfaces the address is configured on). Several when the
/// same subnet or address sits on several interfaces; none when no such route or entry exists.
pub fn ifaces_with_addr_from(routes: &str, inet6: &str, ip: IpAddr) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    match ip {
        IpAddr::V4(ip) => {
            let mut best = 0;
            for line in routes.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 8 {
                    continue;
                }
                let (Some(net), Some(gw), Some(mask)) =
                    (hex_addr(f[1]), hex_addr(f[2]), hex_addr(f[7]))
                else {
                    continue;
                };
                let flags = u32::from_str_radix(f[3], 16).unwrap_or(0);
                let (net, mask) = (u32::from(net), u32::from(mask));
                if flags & 1 == 0
                    || !gw.is_unspecified()
                    || mask == 0
                    || u32::from(ip) & mask != net
                {
                    continue;
                }
                let bits = mask.count_ones();
                if bits > best {
                    best = bits;
                    out.clear();
                }
                if bits == best && !out.iter().any(|i| i == f[0]) {
                    out.push(f[0].to_owned());
                }
            }
        }
        IpAddr::V6(ip) => {
            let hex = format!("{:032x}", u128::from(ip));
            for line in inet6.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() >= 6 && f[0] == hex && !out.iter().any(|i| i == f[5]) {
                    out.push(f[5].to_owned());
                }
            }
        }
    }
    out
}

/// The interfaces of this network namespace that carry the address `ip` (see
/// [`ifaces_with_addr_from`]); none when `ip` is not an address of this host.
pub fn ifaces_with_addr(ip: IpAddr) -> Vec<String> {
    if UdpSocket::bind((ip, 0)).is_err() {
        return Vec::new();
    }
    ifaces_with_addr_from(
        &fs::read_to_string("/proc/net/route").unwrap_or_default(),
        &fs::read_to_string("/proc/net/if_inet6").unwrap_or_default(),
        ip,
    )
}

/// The MAC address of `ip` on `iface` in the text of /proc/net/arp, if resolved.
pub fn arp_from(table: &str, ip: Ipv4Addr, iface: &str) -> Option<[u8; 6]> {
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[5] != iface || f[0].parse::<Ipv4Addr>().ok()? != ip {
            continue;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).unwrap_or(0);
        if flags & 0x2 == 0 {
            continue; // incomplete
        }
        return parse_mac(f[3]);
    }
    None
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some(mac)
}

/// The MAC address of `iface`.
pub fn iface_mac(iface: &str) -> Option<[u8; 6]> {
    parse_mac(
        fs::read_to_string(format!("/sys/class/net/{iface}/address"))
            .ok()?
            .trim(),
    )
}

/// The next hop's MAC address; asks the kernel to resolve it (a datagram to the discard port
/// makes it send an ARP request) and waits up to `wait`.
pub fn resolve(route: &Route, wait: Duration) -> Option<[u8; 6]> {
    let deadline = Instant::now() + wait;
    let mut poked = false;
    loop {
        if let Some(mac) = fs::read_to_string("/proc/net/arp")
            .ok()
            .and_then(|t| arp_from(&t, route.next_hop, &route.iface))
        {
            return Some(mac);
        }
        if !poked {
            poked = true;
            if let Ok(s) = UdpSocket::bind("0.0.0.0:0") {
                let _ = s.send_to(&[], (route.next_hop, 9));
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        veth0\t006433C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn longest_prefix_wins() {
        let r = route_from(ROUTES, "198.51.100.30".parse().unwrap()).unwrap();
        assert_eq!(
            r,
            Route {
                iface: "veth0".into(),
                next_hop: "198.51.100.30".parse().unwrap()
            }
        );
        let r = route_from(ROUTES, "8.8.8.8".parse().unwrap()).unwrap();
        assert_eq!(
            r,
            Route {
                iface: "eth0".into(),
                next_hop: "192.168.1.1".parse().unwrap()
            }
        );
    }

    #[test]
    fn default_route_and_the_interfaces_of_an_address() {
        assert_eq!(default_route_iface_from(ROUTES).as_deref(), Some("eth0"));
        assert_eq!(
            default_route_iface_from(&ROUTES.replace("eth0\t00000000", "eth0\t0000A8C0")),
            None
        );
        let two = format!("{ROUTES}eth1\t006433C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
        let on = |routes: &str, ip: &str| ifaces_with_addr_from(routes, INET6, ip.parse().unwrap());
        assert_eq!(on(ROUTES, "198.51.100.20"), ["veth0"]);
        assert_eq!(on(&two, "198.51.100.20"), ["veth0", "eth1"]);
        assert!(
            on(ROUTES, "10.9.9.9").is_empty(),
            "the default route carries no address"
        );
        assert_eq!(on(ROUTES, "2001:db8::20"), ["veth0"]);
        assert!(on(ROUTES, "2001:db8::21").is_empty());
    }

    const INET6: &str = "20010db8000000000000000000000020 02 40 00 80 veth0\n\
        00000000000000000000000000000001 01 80 10 80       lo\n";

    #[test]
    fn complete_arp_entries_only() {
        let arp = "IP address       HW type     Flags       HW address            Mask     Device\n\
                   198.51.100.30    0x1         0x2         36:8a:05:bd:8a:be     *        veth0\n\
                   198.51.100.40    0x1         0x0         00:00:00:00:00:00     *        veth0\n";
        assert_eq!(
            arp_from(arp, "198.51.100.30".parse().unwrap(), "veth0"),
            Some([0x36, 0x8a, 0x05, 0xbd, 0x8a, 0xbe])
        );
        assert_eq!(
            arp_from(arp, "198.51.100.40".parse().unwrap(), "veth0"),
            None
        );
        assert_eq!(
            arp_from(arp, "198.51.100.30".parse().unwrap(), "eth1"),
            None
        );
    }
}
