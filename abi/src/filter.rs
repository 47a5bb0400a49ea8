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
    use super::{Fields, v4_mapped};

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
