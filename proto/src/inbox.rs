//! Received bytes waiting to be decoded: appended at the end, taken from the front without
//! moving the rest each time (the buffer is compacted when more bytes arrive).

/// A byte queue for the decoders.
#[derive(Debug, Default)]
pub struct Inbox {
    buf: Vec<u8>,
    at: usize,
}

impl Inbox {
    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.at > 0 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.buf.len() - self.at
    }

    /// The first `n` waiting bytes, if that many have arrived.
    pub fn peek(&self, n: usize) -> Option<&[u8]> {
        self.buf.get(self.at..self.at.checked_add(n)?)
    }

    /// Drops the first `n` waiting bytes (at most all of them).
    pub fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.buf.len());
    }

    /// Takes the first `N` bytes, if that many have arrived.
    pub fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b: [u8; N] = self.peek(N)?.try_into().ok()?;
        self.consume(N);
        Some(b)
    }

    /// Everything waiting, emptying the inbox.
    pub fn take_all(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.at);
        self.buf.clear();
        self.at = 0;
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_out_in_order_across_feeds() {
        let mut i = Inbox::default();
        i.feed(&[1, 2, 3]);
        assert_eq!(i.take::<2>(), Some([1, 2]));
        assert_eq!(i.take::<2>(), None);
        i.feed(&[4]);
        assert_eq!(i.len(), 2);
        assert_eq!(i.peek(2), Some(&[3, 4][..]));
        i.consume(1);
        assert_eq!(i.take_all(), vec![4]);
        assert_eq!(i.len(), 0);
        assert_eq!(i.peek(usize::MAX), None);
    }
}
