//! The IP packet inside a captured frame, by link type.

use pcap_file::DataLink;

/// The IP packet inside a captured frame of link type `link`; `None` for frames that carry no
/// IPv4/IPv6 packet (ARP, other protocols, link types not handled, frames cut short).
pub fn ip_of(link: DataLink, frame: &[u8]) -> Option<&[u8]> {
    let ip = match link {
        DataLink::ETHERNET => return tcpcopy_wire::ethernet::ip_payload(frame),
        // 16-byte header; protocol (ethertype) in its last two bytes.
        DataLink::LINUX_SLL => {
            let proto = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]);
            matches!(proto, 0x0800 | 0x86dd).then_some(frame.get(16..)?)?
        }
        // 20-byte header; protocol first.
        DataLink::LINUX_SLL2 => {
            let proto = u16::from_be_bytes([*frame.first()?, *frame.get(1)?]);
            matches!(proto, 0x0800 | 0x86dd).then_some(frame.get(20..)?)?
        }
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => frame,
        DataLink::NULL | DataLink::LOOP => frame.get(4..)?,
        _ => return None,
    };
    matches!(ip.first().map(|b| b >> 4), Some(4 | 6)).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_types() {
        let ip = [0x45u8, 0, 0, 20];
        let mut eth = vec![0u8; 12];
        eth.extend([0x08, 0x00]);
        eth.extend(ip);
        assert_eq!(ip_of(DataLink::ETHERNET, &eth), Some(&ip[..]));
        let mut sll = vec![0u8; 14];
        sll.extend([0x08, 0x00]);
        sll.extend(ip);
        assert_eq!(ip_of(DataLink::LINUX_SLL, &sll), Some(&ip[..]));
        let mut sll2 = vec![0x86, 0xdd];
        sll2.extend([0u8; 18]);
        sll2.extend([0x60, 0, 0, 0]);
        assert_eq!(ip_of(DataLink::LINUX_SLL2, &sll2).map(|p| p[0]), Some(0x60));
        assert_eq!(ip_of(DataLink::RAW, &ip), Some(&ip[..]));
        assert_eq!(
            ip_of(DataLink::LINUX_SLL, &sll[..10]),
            None,
            "short frames are skipped"
        );
        let mut arp = vec![0u8; 12];
        arp.extend([0x08, 0x06, 0, 0]);
        assert_eq!(ip_of(DataLink::ETHERNET, &arp), None);
        assert_eq!(ip_of(DataLink::RAW, &[0x15, 0]), None, "not IP");
    }
}
