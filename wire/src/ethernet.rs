//! Ethernet framing: the IP packet inside a captured frame.

/// The IP packet inside an Ethernet frame (one optional VLAN tag), or `None` for other frames.
pub fn ip_payload(frame: &[u8]) -> Option<&[u8]> {
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let mut at = 14;
    if ethertype == 0x8100 || ethertype == 0x88a8 {
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        at = 18;
    }
    match ethertype {
        0x0800 | 0x86dd => frame.get(at..),
        _ => None,
    }
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
