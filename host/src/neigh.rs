//! Where a packet leaves this host, IPv4 or IPv6: the kernel's own route lookup (`RTM_GETROUTE`
//! for the destination, as `ip route get` does: policy routing included) gives the interface, the
//! next hop and the route's MTU; the neighbour table (`RTM_GETNEIGH`) the next hop's MAC address,
//! resolved by the kernel on demand (ARP or neighbour discovery). Netlink through the maintained
//! `netlink-packet-route` and `netlink-sys` crates (the rust-netlink project's, which `rtnetlink`
//! is built on), not hand-made messages. The default route's interface and the interfaces that
//! carry an address come from /proc/net/route and /proc/net/if_inet6.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket},
    thread,
    time::{Duration, Instant},
};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteMetric},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// The interface and next hop for a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub iface: String,
    pub ifindex: u32,
    /// The gateway, or the destination itself when it is on-link.
    pub next_hop: IpAddr,
    /// The route's MTU, if it sets one (else the interface's applies).
    pub mtu: Option<u32>,
}

/// Sends one request and collects the messages of its answer.
fn ask(msg: RouteNetlinkMessage, flags: u16) -> std::io::Result<Vec<RouteNetlinkMessage>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    req.finalize();
    let mut buf = vec![0; req.header.length as usize];
    req.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut out = Vec::new();
    let mut rx = vec![0u8; 1 << 16];
    loop {
        let n = socket.recv(&mut &mut rx[..], 0)?;
        let mut at = 0;
        while at < n {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[at..n])
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(out),
                        Some(_) => Err(e.to_io()),
                    };
                }
                _ => {}
            }
            if flags & NLM_F_DUMP == 0 {
                return Ok(out);
            }
            if len == 0 {
                break;
            }
            at += len;
        }
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The name of the interface with index `ifindex` (`/sys/class/net/*/ifindex`).
pub fn iface_name(ifindex: u32) -> Option<String> {
    fs::read_dir("/sys/class/net").ok()?.find_map(|e| {
        let e = e.ok()?;
        let idx = fs::read_to_string(e.path().join("ifindex")).ok()?;
        (idx.trim().parse::<u32>().ok()? == ifindex).then(|| e.file_name().to_string_lossy().into())
    })
}

/// The route the kernel takes for `dst` in this network namespace.
pub fn route(dst: IpAddr) -> Option<Route> {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(dst);
    msg.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
    msg.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(dst)));
    let answer = ask(RouteNetlinkMessage::GetRoute(msg), NLM_F_REQUEST).ok()?;
    let RouteNetlinkMessage::NewRoute(r) = answer.into_iter().next()? else {
        return None;
    };
    let mut ifindex = None;
    let mut gateway = None;
    let mut mtu = None;
    for a in r.attributes {
        match a {
            RouteAttribute::Oif(i) => ifindex = Some(i),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(IpAddr::V4(g)),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => gateway = Some(IpAddr::V6(g)),
            RouteAttribute::Metrics(m) => {
                mtu = m.iter().find_map(|m| match m {
                    RouteMetric::Mtu(v) => Some(*v),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    let ifindex = ifindex?;
    Some(Route {
        iface: iface_name(ifindex)?,
        ifindex,
        next_hop: gateway.unwrap_or(dst),
        mtu,
    })
}

/// An address as /proc/net/route prints it: host-order hex of the network-order u32.
fn hex_addr(s: &str) -> Option<Ipv4Addr> {
    let v = u32::from_str_radix(s, 16).ok()?;
    Some(Ipv4Addr::from(v.to_le_bytes()))
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

/// The MAC address of `ip` on interface `ifindex` in the neighbour table, if resolved.
pub fn neighbour(ip: IpAddr, ifindex: u32) -> Option<[u8; 6]> {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family(ip);
    let answer = ask(
        RouteNetlinkMessage::GetNeighbour(msg),
        NLM_F_REQUEST | NLM_F_DUMP,
    )
    .ok()?;
    answer.into_iter().find_map(|m| {
        let RouteNetlinkMessage::NewNeighbour(n) = m else {
            return None;
        };
        let usable = matches!(
            n.header.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
                | NeighbourState::Noarp
        );
        if !usable || n.header.ifindex != ifindex {
            return None;
        }
        let mut dst = None;
        let mut mac = None;
        for a in &n.attributes {
            match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                    dst = Some(IpAddr::V4(*a));
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                    dst = Some(IpAddr::V6(*a));
                }
                NeighbourAttribute::LinkLayerAddress(l) => mac = <[u8; 6]>::try_from(&l[..]).ok(),
                _ => {}
            }
        }
        (dst == Some(ip)).then_some(mac).flatten()
    })
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

/// The MTU of `iface`.
pub fn iface_mtu(iface: &str) -> Option<u32> {
    fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The MTU of the path to `dst`: its route's, else the route's interface's.
pub fn path_mtu(dst: IpAddr) -> Option<u32> {
    let r = route(dst)?;
    r.mtu.or_else(|| iface_mtu(&r.iface))
}

/// The next hop's MAC address; asks the kernel to resolve it (a datagram to the discard port
/// makes it send an ARP request or a neighbour solicitation) and waits up to `wait`.
pub fn resolve(route: &Route, wait: Duration) -> Option<[u8; 6]> {
    let deadline = Instant::now() + wait;
    let mut poked = false;
    loop {
        if let Some(mac) = neighbour(route.next_hop, route.ifindex) {
            return Some(mac);
        }
        if !poked {
            poked = true;
            let any: IpAddr = match route.next_hop {
                IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            };
            if let Ok(s) = UdpSocket::bind((any, 0)) {
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

    /// Read-only questions to this namespace's kernel: loopback routes exist everywhere.
    #[test]
    fn the_kernel_routes_loopback_through_lo() {
        let r = route("127.0.0.1".parse().unwrap()).expect("a route to 127.0.0.1");
        assert_eq!(r.iface, "lo");
        assert_eq!(r.next_hop, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(iface_name(r.ifindex).as_deref(), Some("lo"));
        if fs::metadata("/proc/net/if_inet6").is_ok() {
            let r = route("::1".parse().unwrap()).expect("a route to ::1");
            assert_eq!(r.iface, "lo");
        }
    }

    const ROUTES: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        veth0\t006433C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

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
    fn macs_parse() {
        assert_eq!(
            parse_mac("36:8a:05:bd:8a:be"),
            Some([0x36, 0x8a, 0x05, 0xbd, 0x8a, 0xbe])
        );
        assert_eq!(parse_mac("36:8a"), None);
    }
}
