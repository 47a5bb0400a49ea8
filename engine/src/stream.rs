//! The captured client byte stream of one session: reassembled in sequence order, with the points
//! where a new request starts (the client's ack moved: the online server had answered).

use std::collections::{BTreeMap, VecDeque};

use crate::Seq;

/// A point in the client stream where a request starts after the online server sent `expected`
/// bytes (sequence space, FIN counted) since the previous request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boundary {
    pub seq: Seq,
    pub expected: u32,
}

/// What happened to a captured segment's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Bytes new to the stream (in order or parked out of order).
    pub new: u32,
    /// Bytes already had (client retransmissions, overlaps), dropped.
    pub duplicate: u32,
    /// The segment lies more than [`MAX_JUMP`] ahead: a new connection on a reused port.
    pub jump: bool,
}

/// Buffer capacity an emptied stream keeps for its next request (more is freed).
const KEEP_CAPACITY: usize = 0;

/// A sequence jump this far ahead of the stream is a new connection on the same port.
pub const MAX_JUMP: u32 = 16 << 20;

/// The client stream: bytes from `base` (the first not yet acknowledged by the test server) to
/// `end` (the first not yet captured), out-of-order pieces beyond `end`, request boundaries.
#[derive(Debug)]
pub struct ClientStream {
    base: Seq,
    buf: VecDeque<u8>,
    parked: BTreeMap<u32, Vec<u8>>,
    parked_bytes: usize,
    boundaries: VecDeque<Boundary>,
    /// The ack the client sent with its latest request data (online server's sequence space).
    last_request_ack: Option<Seq>,
    fin: Option<Seq>,
    /// Where a rebuilt connection starts: a request boundary found there later is none (the
    /// new connection's first request waits for no answer).
    fresh_start: Option<Seq>,
}

impl ClientStream {
    /// A stream whose first byte has sequence number `first`.
    pub fn new(first: Seq) -> Self {
        Self {
            base: first,
            buf: VecDeque::new(),
            parked: BTreeMap::new(),
            parked_bytes: 0,
            boundaries: VecDeque::new(),
            last_request_ack: None,
            fin: None,
            fresh_start: None,
        }
    }

    /// Sequence number of the first byte held.
    pub fn start(&self) -> Seq {
        self.base
    }

    /// Sequence number of the first byte not yet captured in order.
    pub fn end(&self) -> Seq {
        self.base + self.len_u32()
    }

    fn len_u32(&self) -> u32 {
        u32::try_from(self.buf.len()).unwrap_or(u32::MAX)
    }

    /// Bytes held (in order and parked).
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.parked_bytes
    }

    /// Whether captured bytes are missing: before some parked ones, or before the client's FIN.
    pub fn has_gap(&self) -> bool {
        !self.parked.is_empty() || self.fin.is_some_and(|f| f.after(self.end()))
    }

    /// The client's FIN, once captured.
    pub fn fin(&self) -> Option<Seq> {
        self.fin
    }

    /// The next request boundary not yet passed.
    pub fn next_boundary(&self) -> Option<Boundary> {
        self.boundaries.front().copied()
    }

    /// The request boundary `i` places after the next one not yet passed (0: the next).
    pub fn boundary(&self, i: usize) -> Option<Boundary> {
        self.boundaries.get(i).copied()
    }

    /// Passes the next boundary (its request may go out now).
    pub fn pass_boundary(&mut self) {
        self.boundaries.pop_front();
        if self.boundaries.is_empty() {
            self.boundaries = VecDeque::new();
        }
    }

    /// A pure ACK from the client (no data): the first one (the handshake's third) tells where the
    /// online server's stream starts.
    pub fn on_client_ack(&mut self, ack: Seq) {
        if self.last_request_ack.is_none() && self.buf.is_empty() && self.base == self.end() {
            self.last_request_ack = Some(ack);
        }
    }

    /// Adds a captured segment: `seq`, its `payload`, the client's `ack` (if the ACK flag was set)
    /// and whether it carried FIN.
    pub fn insert(&mut self, seq: Seq, payload: &[u8], ack: Option<Seq>, fin: bool) -> Accepted {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let end = self.end();
        let mut acc = Accepted::default();
        if seq.diff(end) > MAX_JUMP.cast_signed()
            || (seq + len).diff(self.base) < -MAX_JUMP.cast_signed()
        {
            acc.jump = true;
            return acc;
        }
        let starts_new_data = (seq + len).after(end) || (fin && self.fin.is_none());
        if starts_new_data && let Some(ack) = ack {
            self.note_request_ack(seq.max(end), ack);
        }
        if len > 0 {
            if seq.after(end) {
                // Beyond what we have: parked until the bytes before it arrive.
                let off = u32::try_from(seq.diff(self.base)).unwrap_or(0);
                let had = self.parked.get(&off).map_or(0, Vec::len);
                if had < payload.len() {
                    self.parked_bytes += payload.len() - had;
                    self.parked.insert(off, payload.to_vec());
                    acc.new = len;
                } else {
                    acc.duplicate = len;
                }
            } else {
                // In order (possibly overlapping what we have): take the new tail.
                let skip = u32::try_from(end.diff(seq)).unwrap_or(0).min(len);
                acc.duplicate = skip;
                let fresh = &payload[skip as usize..];
                acc.new = u32::try_from(fresh.len()).unwrap_or(u32::MAX);
                self.buf.extend(fresh);
                self.unpark();
            }
        }
        if fin && self.fin.is_none() {
            self.fin = Some(seq + len);
        }
        acc
    }

    /// The client reset the connection with `ack`: its close waits for the answer online had sent
    /// by then, like a request at the end of the stream.
    pub fn note_reset(&mut self, ack: Seq) {
        self.note_request_ack(self.end(), ack);
    }

    /// Records the boundary a request starting at `at` with the client's `ack` implies.
    fn note_request_ack(&mut self, at: Seq, ack: Seq) {
        match self.last_request_ack {
            Some(prev) if ack.after(prev) => {
                let expected = u32::try_from(ack.diff(prev)).unwrap_or(0);
                // Requests are paced in order: a boundary behind the last one is a capture
                // reordering artefact and is merged into it.
                if self.fresh_start == Some(at) {
                    // The first request of a rebuilt connection.
                } else if self.boundaries.back().is_none_or(|b| at.after(b.seq)) {
                    self.boundaries.push_back(Boundary { seq: at, expected });
                } else if let Some(b) = self.boundaries.back_mut() {
                    b.expected += expected;
                }
                self.last_request_ack = Some(ack);
            }
            Some(_) => {}
            None => self.last_request_ack = Some(ack),
        }
    }

    /// Moves parked pieces that now continue the stream into it.
    fn unpark(&mut self) {
        while let Some((&off, _)) = self.parked.first_key_value() {
            let end_off = self.len_u32();
            if off > end_off {
                break;
            }
            let (_, piece) = self.parked.pop_first().expect("non-empty");
            self.parked_bytes -= piece.len();
            let skip = (end_off - off) as usize;
            if skip < piece.len() {
                self.buf.extend(&piece[skip..]);
            }
        }
    }

    /// Starts over at `point` (a request boundary, or the end): bytes and boundaries before it,
    /// and a boundary at it (a new connection's first request waits for nothing), are dropped.
    pub fn restart_at(&mut self, point: Seq) {
        self.release(point);
        self.fresh_start = Some(point);
        while self.boundaries.front().is_some_and(|b| !b.seq.after(point)) {
            self.boundaries.pop_front();
        }
    }

    /// Drops bytes before `upto` (acknowledged by the test server).
    pub fn release(&mut self, upto: Seq) {
        let n = u32::try_from(upto.diff(self.base))
            .unwrap_or(0)
            .min(self.len_u32());
        if n == 0 {
            return;
        }
        self.buf.drain(..n as usize);
        self.base = self.base + n;
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            // An idle keep-alive session holds at most a small buffer.
            self.buf = VecDeque::new();
        }
        // Parked offsets are relative to `base`.
        if !self.parked.is_empty() {
            self.parked = core::mem::take(&mut self.parked)
                .into_iter()
                .map(|(o, p)| (o - n, p))
                .collect();
        }
    }

    /// Up to `max` bytes from sequence number `from` (which must be in `base..end`), in the ring's
    /// two pieces.
    pub fn slice(&self, from: Seq, max: usize) -> [&[u8]; 2] {
        let start = usize::try_from(from.diff(self.base))
            .unwrap_or(0)
            .min(self.buf.len());
        let end = (start + max).min(self.buf.len());
        let (a, b) = self.buf.as_slices();
        if end <= a.len() {
            [&a[start..end], &[]]
        } else if start >= a.len() {
            [&b[start - a.len()..end - a.len()], &[]]
        } else {
            [&a[start..], &b[..end - a.len()]]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(s: &ClientStream) -> Vec<u8> {
        let [a, b] = s.slice(s.base, usize::MAX);
        [a, b].concat()
    }

    #[test]
    fn reassembles_out_of_order_and_trims_overlaps() {
        let mut s = ClientStream::new(Seq::new(100));
        assert_eq!(s.insert(Seq::new(105), b"fghij", None, false).new, 5);
        assert!(s.has_gap());
        assert_eq!(s.end(), Seq::new(100));
        let a = s.insert(Seq::new(100), b"abcdefg", None, false);
        assert_eq!((a.new, a.duplicate), (7, 0));
        assert!(!s.has_gap());
        assert_eq!(collect(&s), b"abcdefghij");
        let a = s.insert(Seq::new(98), b"xxabc", None, false);
        assert_eq!((a.new, a.duplicate), (0, 5));
        s.release(Seq::new(104));
        assert_eq!(collect(&s), b"efghij");
        assert_eq!(s.end(), Seq::new(110));
    }

    #[test]
    fn boundaries_come_from_the_ack_moving() {
        let mut s = ClientStream::new(Seq::new(1));
        s.on_client_ack(Seq::new(5001)); // third handshake ACK: online ISN + 1
        s.insert(Seq::new(1), b"req1", Some(Seq::new(5001)), false);
        assert_eq!(s.next_boundary(), None, "the first request goes right away");
        s.insert(Seq::new(5), b"req2", Some(Seq::new(5101)), false);
        assert_eq!(
            s.next_boundary(),
            Some(Boundary {
                seq: Seq::new(5),
                expected: 100
            })
        );
        // A retransmission of req2 adds nothing.
        s.insert(Seq::new(5), b"req2", Some(Seq::new(5101)), false);
        s.pass_boundary();
        assert_eq!(s.next_boundary(), None);
        // FIN after the online server's response and FIN.
        s.insert(Seq::new(9), b"", Some(Seq::new(5152)), true);
        assert_eq!(
            s.next_boundary(),
            Some(Boundary {
                seq: Seq::new(9),
                expected: 51
            })
        );
        assert_eq!(s.fin(), Some(Seq::new(9)));
    }

    #[test]
    fn server_first_greeting_holds_the_first_request() {
        let mut s = ClientStream::new(Seq::new(1));
        s.on_client_ack(Seq::new(1001));
        s.on_client_ack(Seq::new(1021)); // the client acks a 20-byte greeting: not a baseline change
        s.insert(Seq::new(1), b"HELO", Some(Seq::new(1021)), false);
        assert_eq!(
            s.next_boundary(),
            Some(Boundary {
                seq: Seq::new(1),
                expected: 20
            })
        );
    }

    #[test]
    fn wraparound_and_jumps() {
        let mut s = ClientStream::new(Seq::new(u32::MAX - 1));
        s.insert(Seq::new(u32::MAX - 1), b"abcd", None, false);
        assert_eq!(s.end(), Seq::new(2));
        assert!(
            s.insert(Seq::new(2) + (MAX_JUMP + 1), b"x", None, false)
                .jump
        );
        let [a, b] = s.slice(Seq::new(u32::MAX), 2);
        assert_eq!([a, b].concat(), b"bc");
    }
}
