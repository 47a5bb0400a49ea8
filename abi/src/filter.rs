//! A capture filter (`-F`) as both XDP programs evaluate it: an OR of up to [`MAX_TERMS`] terms,
//! each an AND of up to [`MAX_ATOMS`] tests of one port or address, each test possibly negated.
//! Userspace compiles the expression (`filter_expr`, `user` feature) into this form and stores it
//! in the `FILTER_EXPR` array map.
#![allow(
    clippy::inline_always,
    reason = "eBPF: evaluation is inlined into the program so the verifier sees the bounds"
)]

/// Alternatives (OR) at most.
pub const MAX_TERMS: usize = 8;
/// Tests (AND) per alternative at most.
pub const MAX_ATOMS: usize = 8;

/// What an [`Atom`] tests.
pub mod kind {
    pub const SRC_PORT: u32 = 1;
    pub const DST_PORT: u32 = 2;
    pub const SRC_ADDR: u32 = 3;
    pub const DST_ADDR: u32 = 4;
}

/// One test: a port equal to `port`, or an address (IPv4 as `::ffff:a.b.c.d`, as two big-endian
/// halves) that equals `addr` under `mask`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Atom {
    pub kind: u32,
    pub negate: u32,
    pub port: u32,
    pub pad: u32,
    pub addr: [u64; 2],
    pub mask: [u64; 2],
}

/// An AND of atoms.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Term {
    pub atoms: [Atom; MAX_ATOMS],
    pub len: u32,
    pub pad: u32,
}

/// An OR of terms; `enabled == 0` means no filter (everything passes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterProgram {
    pub terms: [Term; MAX_TERMS],
    pub len: u32,
    pub enabled: u32,
}

/// The fields of a segment the filter looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields {
    pub src_port: u16,
    pub dst_port: u16,
    pub src: [u64; 2],
    pub dst: [u64; 2],
}

impl Fields {
    /// The other direction of the same connection: addresses and ports swapped (a response's
    /// fields as its request's; the same connection's [`Fields::flow_hash`] either way).
    #[inline(always)]
    #[allow(clippy::inline_always, reason = "eBPF: inlined into the program")]
    #[must_use]
    pub const fn reversed(&self) -> Self {
        Self {
            src_port: self.dst_port,
            dst_port: self.src_port,
            src: self.dst,
            dst: self.src,
        }
    }

    /// A hash of the connection (addresses and ports): every packet of one connection gets the
    /// same value, so it picks the worker that owns the connection (the XDP program's ring
    /// choice, `hash % workers`).
    #[inline(always)]
    #[allow(clippy::inline_always, reason = "eBPF: inlined into the program")]
    pub const fn flow_hash(&self) -> u32 {
        let ports = ((self.src_port as u64) << 16) | self.dst_port as u64;
        let h = ports
            ^ self.src[0]
            ^ self.src[1].rotate_left(17)
            ^ self.dst[0].rotate_left(31)
            ^ self.dst[1].rotate_left(47);
        let h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        #[allow(clippy::cast_possible_truncation, reason = "the hash's high half")]
        let high = (h >> 32) as u32;
        high
    }
}

/// FNV-1a's offset basis and prime (64-bit).
const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;
/// `FNV_PRIME` to the 8th: eight FNV-1a steps over zero bytes (the salt 0 of a session hash)
/// are eight multiplications by the prime.
const FNV_PRIME_8: u64 = {
    let mut p: u64 = 1;
    let mut i = 0;
    while i < 8 {
        p = p.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    p
};

#[inline(always)]
#[allow(clippy::inline_always, reason = "eBPF: inlined into the program")]
const fn fnv_u64(mut h: u64, word: u64, bytes: u32) -> u64 {
    let mut i = bytes;
    while i > 0 {
        i -= 1;
        h ^= (word >> (i * 8)) & 0xff;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

impl Fields {
    /// The session hash of `-r` and `-g`: FNV-1a over the client's (source) address (4 bytes
    /// for IPv4, 16 for IPv6), its port (big-endian) and the salt 0 (8 bytes), exactly as the
    /// engine's `select::hash(client_ip, client_port, 0)`: the kernel and the engine pick the
    /// same sessions. `v6`: the packet is IPv6 (an IPv4-mapped IPv6 address hashes all 16
    /// bytes, as the engine sees it).
    #[inline(always)]
    #[allow(clippy::inline_always, reason = "eBPF: inlined into the program")]
    pub const fn session_hash(&self, v6: bool) -> u64 {
        let h = if v6 {
            fnv_u64(fnv_u64(FNV_BASIS, self.src[0], 8), self.src[1], 8)
        } else {
            fnv_u64(FNV_BASIS, self.src[1], 4)
        };
        fnv_u64(h, self.src_port as u64, 2).wrapping_mul(FNV_PRIME_8)
    }

    /// Whether the session of this (client's) segment is among `percent` percent (`-r`): the
    /// engine's `select::selected`. 100 or more: every session.
    #[inline(always)]
    #[allow(clippy::inline_always, reason = "eBPF: inlined into the program")]
    pub const fn selected(&self, v6: bool, percent: u32) -> bool {
        percent >= 100 || self.session_hash(v6) % 100 < percent as u64
    }
}

/// An IPv4 address in the filter's 128-bit form (`::ffff:a.b.c.d`).
pub const fn v4_mapped(octets: [u8; 4]) -> [u64; 2] {
    let low = 0x0000_ffff_0000_0000
        | ((octets[0] as u64) << 24)
        | ((octets[1] as u64) << 16)
        | ((octets[2] as u64) << 8)
        | (octets[3] as u64);
    [0, low]
}

impl Atom {
    #[inline(always)]
    pub fn matches(&self, f: &Fields) -> bool {
        let hit = match self.kind {
            kind::SRC_PORT => u32::from(f.src_port) == self.port,
            kind::DST_PORT => u32::from(f.dst_port) == self.port,
            kind::SRC_ADDR => {
                f.src[0] & self.mask[0] == self.addr[0] && f.src[1] & self.mask[1] == self.addr[1]
            }
            kind::DST_ADDR => {
                f.dst[0] & self.mask[0] == self.addr[0] && f.dst[1] & self.mask[1] == self.addr[1]
            }
            _ => true,
        };
        hit != (self.negate != 0)
    }
}

impl FilterProgram {
    /// Whether the segment passes the filter (always, when none is set).
    #[inline(always)]
    pub fn matches(&self, f: &Fields) -> bool {
        if self.enabled == 0 {
            return true;
        }
        let mut t = 0;
        while t < MAX_TERMS {
            if t >= self.len as usize {
                break;
            }
            let term = &self.terms[t];
            let mut all = true;
            let mut a = 0;
            while a < MAX_ATOMS {
                if a >= term.len as usize {
                    break;
                }
                if !term.atoms[a].matches(f) {
                    all = false;
                    break;
                }
                a += 1;
            }
            if all {
                return true;
            }
            t += 1;
        }
        false
    }
}

const _: () = assert!(core::mem::size_of::<Atom>() == 48);
const _: () = assert!(core::mem::size_of::<Term>() == 48 * MAX_ATOMS + 8);
const _: () =
    assert!(core::mem::size_of::<FilterProgram>() == (48 * MAX_ATOMS + 8) * MAX_TERMS + 8);

#[cfg(test)]
mod tests {
    extern crate std;

    use super::{Fields, v4_mapped};

    /// The engine's `select::hash` of the same client (its test computed the value apart, with
    /// Python): 192.0.2.9 port 10000 salt 0 is 0xe072_98a4_63fa_d263, 87 modulo 100.
    #[test]
    fn session_hash_is_the_engines() {
        let client = |src, port| Fields {
            src_port: port,
            dst_port: 80,
            src,
            dst: v4_mapped([198, 51, 100, 20]),
        };
        let f = client(v4_mapped([192, 0, 2, 9]), 10_000);
        assert_eq!(f.session_hash(false), 0xe072_98a4_63fa_d263);
        assert!(f.selected(false, 88) && !f.selected(false, 87) && f.selected(false, 100));
        // Ports 10000..10016: those at 1, 24, 21 and 28 modulo 100 are below 30 (the engine's
        // test of `selected`).
        let picked: std::vec::Vec<u16> = (10_000..10_016)
            .filter(|p| client(v4_mapped([192, 0, 2, 9]), *p).selected(false, 30))
            .collect();
        assert_eq!(picked, [10_002, 10_005, 10_010, 10_013]);
    }

    #[test]
    fn flow_hash_is_per_connection_and_spreads_connections() {
        let conn = |port| Fields {
            src_port: port,
            dst_port: 80,
            src: v4_mapped([198, 51, 100, 10]),
            dst: v4_mapped([198, 51, 100, 20]),
        };
        assert_eq!(conn(40000).flow_hash(), conn(40000).flow_hash());
        for workers in [2u32, 3, 8] {
            let mut per = [0u32; 8];
            for port in 32768..33768 {
                per[(conn(port).flow_hash() % workers) as usize] += 1;
            }
            let fair = 1000 / workers;
            assert!(
                per[..workers as usize]
                    .iter()
                    .all(|n| n * 10 > fair * 7 && n * 10 < fair * 13),
                "{workers} workers: {per:?}"
            );
        }
    }
}
