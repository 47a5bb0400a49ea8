//! Wrap-around TCP sequence numbers (RFC 793 section 3.3 arithmetic modulo 2^32).
//!
//! Raw `u32` sequence numbers are never compared directly: `Seq` orders two numbers by the sign of
//! their 32-bit difference, which is right as long as they are less than 2^31 apart.

use core::{
    cmp::Ordering,
    fmt,
    ops::{Add, Sub},
};

/// A TCP sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl Seq {
    /// The signed distance from `other` to `self` (`self - other`).
    pub fn diff(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0).cast_signed()
    }

    /// The later of two sequence numbers.
    #[must_use]
    pub fn max(self, other: Seq) -> Seq {
        if self >= other { self } else { other }
    }
}

impl Add<u32> for Seq {
    type Output = Seq;
    fn add(self, rhs: u32) -> Seq {
        Seq(self.0.wrapping_add(rhs))
    }
}

impl Sub<u32> for Seq {
    type Output = Seq;
    fn sub(self, rhs: u32) -> Seq {
        Seq(self.0.wrapping_sub(rhs))
    }
}

impl PartialOrd for Seq {
    fn partial_cmp(&self, other: &Seq) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Seq {
    /// Not a total order over all of `u32` (no such order exists modulo 2^32); consistent for
    /// numbers within 2^31 of each other, which is what TCP guarantees for one connection.
    fn cmp(&self, other: &Seq) -> Ordering {
        self.diff(*other).cmp(&0)
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::Seq;

    #[test]
    fn across_wraparound() {
        let a = Seq(u32::MAX - 10);
        let b = a + 20;
        assert_eq!(b, Seq(9));
        assert!(b > a);
        assert_eq!(b.diff(a), 20);
        assert_eq!(a.diff(b), -20);
        assert_eq!(b - 20, a);
        assert_eq!(a.max(b), b);
    }

    proptest! {
        #[test]
        fn add_then_diff_is_identity(start: u32, len in 0u32..(1 << 31)) {
            let a = Seq(start);
            let b = a + len;
            prop_assert_eq!(b.diff(a), len.cast_signed());
            prop_assert!(b >= a);
            prop_assert_eq!(b - len, a);
        }

        #[test]
        fn order_is_antisymmetric_within_half_space(start: u32, len in 1u32..(1 << 31)) {
            let a = Seq(start);
            let b = a + len;
            prop_assert!(a < b);
            prop_assert!(b > a);
            prop_assert_eq!(a.max(b), b);
            prop_assert_eq!(b.max(a), b);
        }
    }
}
