//! Wrap-around TCP sequence numbers (RFC 793 section 3.3 arithmetic modulo 2^32).
//!
//! Raw `u32` sequence numbers are never compared directly, and `Seq` has no `Ord`: no order over
//! all of `u32` agrees with sequence space. [`Seq::before`] and [`Seq::after`] compare two numbers
//! by the sign of their 32-bit difference, which is right as long as they are less than 2^31
//! apart (what TCP guarantees within one connection's window).

use core::{
    fmt,
    ops::{Add, Sub},
};

/// A TCP sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq {
    raw: u32,
}

impl Seq {
    /// The sequence number `raw`, as carried in a TCP header.
    pub const fn new(raw: u32) -> Self {
        Self { raw }
    }

    /// The number as carried in a TCP header.
    pub const fn raw(self) -> u32 {
        self.raw
    }

    /// The signed distance from `other` to `self` (`self - other`).
    pub fn diff(self, other: Seq) -> i32 {
        self.raw.wrapping_sub(other.raw).cast_signed()
    }

    /// Whether `self` comes strictly before `other` in sequence space.
    pub fn before(self, other: Seq) -> bool {
        self.diff(other) < 0
    }

    /// Whether `self` comes strictly after `other` in sequence space.
    pub fn after(self, other: Seq) -> bool {
        self.diff(other) > 0
    }

    /// The later of two sequence numbers.
    #[must_use]
    pub fn max(self, other: Seq) -> Seq {
        if other.after(self) { other } else { self }
    }

    /// The earlier of two sequence numbers.
    #[must_use]
    pub fn min(self, other: Seq) -> Seq {
        if other.before(self) { other } else { self }
    }
}

impl Add<u32> for Seq {
    type Output = Seq;
    fn add(self, rhs: u32) -> Seq {
        Seq::new(self.raw.wrapping_add(rhs))
    }
}

impl Sub<u32> for Seq {
    type Output = Seq;
    fn sub(self, rhs: u32) -> Seq {
        Seq::new(self.raw.wrapping_sub(rhs))
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.raw)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.raw)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::Seq;

    #[test]
    fn across_wraparound() {
        let a = Seq::new(u32::MAX - 10);
        let b = a + 20;
        assert_eq!(b, Seq::new(9));
        assert!(b.after(a));
        assert!(a.before(b));
        assert_eq!(b.diff(a), 20);
        assert_eq!(a.diff(b), -20);
        assert_eq!(b - 20, a);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
    }

    #[test]
    fn equal_numbers_are_neither_before_nor_after() {
        let a = Seq::new(7);
        assert!(!a.before(a) && !a.after(a));
        assert_eq!(a.max(a), a);
        assert_eq!(a.min(a), a);
    }

    #[test]
    fn raw_round_trips() {
        assert_eq!(Seq::new(0xdead_beef).raw(), 0xdead_beef);
    }

    proptest! {
        #[test]
        fn add_then_diff_is_identity(start: u32, len in 0u32..(1 << 31)) {
            let a = Seq::new(start);
            let b = a + len;
            prop_assert_eq!(b.diff(a), len.cast_signed());
            prop_assert!(!b.before(a));
            prop_assert_eq!(b - len, a);
        }

        #[test]
        fn order_is_antisymmetric_within_half_space(start: u32, len in 1u32..(1 << 31)) {
            let a = Seq::new(start);
            let b = a + len;
            prop_assert!(a.before(b));
            prop_assert!(b.after(a));
            prop_assert!(!a.after(b));
            prop_assert!(!b.before(a));
            prop_assert_eq!(a.max(b), b);
            prop_assert_eq!(b.max(a), b);
            prop_assert_eq!(a.min(b), a);
            prop_assert_eq!(b.min(a), a);
        }
    }
}
