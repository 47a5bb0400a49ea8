//! The Internet checksum (RFC 1071) and the TCP pseudo-header.

use std::net::IpAddr;

/// One's-complement sum of `data` as big-endian 16-bit words, added to `initial`, not folded.
///
/// Adds big-endian 32-bit words into 64-bit accumulators (RFC 1071 allows any word size whose
/// carries are folded back later); four independent accumulators let the CPU add in parallel.
fn sum(data: &[u8], initial: u64) -> u64 {
    let mut acc = [initial, 0, 0, 0];
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        for (k, a) in acc.iter_mut().enumerate() {
            *a += u64::from(u32::from_be_bytes([
                c[4 * k],
                c[4 * k + 1],
                c[4 * k + 2],
                c[4 * k + 3],
            ]));
        }
    }
    let mut total = acc.iter().fold(0u64, |t, a| {
        let (s, carry) = t.overflowing_add(*a);
        s + u64::from(carry)
    });
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        total += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        total += u64::from(*last) << 8;
    }
    total
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

    fn naive(data: &[u8]) -> u16 {
        let mut sum: u64 = 0;
        for c in data.chunks(2) {
            sum += u64::from(if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            });
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_a_16_bit_word_sum(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000)) {
            proptest::prop_assert_eq!(internet_checksum(&data, 0), naive(&data));
        }
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
