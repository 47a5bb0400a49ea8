//! The Internet checksum (RFC 1071) and the TCP pseudo-header.

use std::net::IpAddr;

/// One's-complement sum of `data` as big-endian 16-bit words, added to `initial`, not folded.
fn sum(data: &[u8], initial: u64) -> u64 {
    let mut acc = initial;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Add the two 32-bit halves; carries are folded at the end.
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    #[expect(clippy::cast_possible_truncation, reason = "folded to 16 bits above")]
    let folded = acc as u16;
    folded
}

/// The unfolded sum of the TCP/UDP pseudo-header for `len` bytes of protocol `proto`.
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u64 {
    let mut acc = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => sum(&d.octets(), sum(&s.octets(), 0)),
        (IpAddr::V6(s), IpAddr::V6(d)) => sum(&d.octets(), sum(&s.octets(), 0)),
        // Mixed families never reach here: the emitter takes both from one mapping.
        _ => 0,
    };
    acc += u64::from(proto) + len as u64;
    acc
}

/// The checksum to store for `data` with a pseudo-header sum (0 for IPv4 headers).
pub fn internet_checksum(data: &[u8], pseudo: u64) -> u16 {
    !fold(sum(data, pseudo))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::cast_possible_truncation,
        reason = "test data built from small integers"
    )]

    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&data, 0), !0xddf2);
    }

    #[test]
    fn odd_length_and_long_input_agree_with_naive_sum() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut naive: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            };
            naive += u32::from(w);
        }
        while naive >> 16 != 0 {
            naive = (naive & 0xffff) + (naive >> 16);
        }
        assert_eq!(internet_checksum(&data, 0), !(naive as u16));
    }
}
