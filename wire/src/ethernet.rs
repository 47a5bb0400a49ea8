//! Ethernet framing: the IP packet inside a captured frame, and the header in front of a packet
//! sent through AF_XDP.

use std::net::IpAddr;

/// Bytes of an Ethernet header without a VLAN tag.
pub const HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;

/// The IP packet inside an Ethernet frame (one optional VLAN tag), or `None` for other frames.
pub fn ip_payload(frame: &[u8]) -> Option<&[u8]> {
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let mut at = HEADER_LEN;
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        at = HEADER_LEN + 4;
    }
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => frame.get(at..),
        _ => None,
    }
}

/// The Ethernet header of a frame from `src` to `dst` carrying an IP packet to `ip`.
pub fn header(dst: [u8; 6], src: [u8; 6], ip: IpAddr) -> [u8; HEADER_LEN] {
    let ethertype = if ip.is_ipv4() {
        ETHERTYPE_IPV4
    } else {
        ETHERTYPE_IPV6
    };
    let mut h = [0u8; HEADER_LEN];
    h[..6].copy_from_slice(&dst);
    h[6..12].copy_from_slice(&src);
    h[12..].copy_from_slice(&ethertype.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::ip_payload;

    #[test]
    fn strips_ethernet_and_vlan() {
        let mut f = [0u8; 20];
        f[12] = 0x08;
        f[14] = 0x45;
        assert_eq!(ip_payload(&f).unwrap()[0], 0x45);
        let mut v = [0u8; 24];
        v[12] = 0x81;
        v[16] = 0x86;
        v[17] = 0xdd;
        v[18] = 0x60;
        assert_eq!(ip_payload(&v).unwrap()[0], 0x60);
        assert!(ip_payload(&[0u8; 10]).is_none());
        let mut arp = [0u8; 20];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert!(ip_payload(&arp).is_none());
    }
}
