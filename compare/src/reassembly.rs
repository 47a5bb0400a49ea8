//! One direction of one TCP connection put back in order from its segments.
//!
//! Bytes are delivered in order as soon as they are contiguous: the in-order part of a segment
//! straight from the caller's slice (no copy), parked out-of-order pieces when the gap before them
//! fills. Retransmissions and overlaps are trimmed (the first copy of a byte wins), pieces parked
//! never overlap each other, sequence numbers wrap (positions are kept as 64-bit stream offsets,
//! converted from [`Seq`] distances). A gap is visible ([`Reassembler::gap_since`]) so the caller
//! can give up on it after a while instead of waiting for ever.

use std::collections::BTreeMap;

use tcpcopy_engine::{Seq, Time};

/// A segment this far from the next expected byte (either way) is not of this stream.
pub const WINDOW: i64 = 1 << 30;

/// Book-keeping bytes counted for every parked piece besides its payload.
pub const PIECE_OVERHEAD: usize = 64;

/// What a segment did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Bytes new to the stream (delivered now or parked).
    pub new: usize,
    /// Bytes already had (retransmissions, overlaps), dropped.
    pub duplicate: usize,
    /// The segment lay outside the window (or past the FIN) and was ignored.
    pub ignored: bool,
}

/// The stream of one direction.
#[derive(Debug, Default)]
pub struct Reassembler {
    /// Sequence number of the next byte to deliver, once known.
    next: Option<Seq>,
    /// The SYN's sequence number, once one was seen (its retransmissions carry the same).
    syn: Option<Seq>,
    /// Whether a SYN of a new connection continues the stream where it is, also after bytes
    /// were delivered (see [`Reassembler::continued_by_new_connections`]).
    continued: bool,
    /// Bytes delivered so far (the stream offset of `next`).
    delivered: u64,
    /// Out-of-order pieces by stream offset, never overlapping, all past `delivered`.
    parked: BTreeMap<u64, Vec<u8>>,
    parked_bytes: usize,
    /// Stream offset of the FIN, once seen.
    fin: Option<u64>,
    /// Since when the stream has waited at its current point (`delivered`) for missing bytes:
    /// reset whenever the stream moves on, so a long transfer whose holes each fill in time
    /// is never given up (a later hole is timed from when the stream reached it).
    gap_since: Option<Time>,
}

impl Reassembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream whose bytes a new connection may continue: a server's, whose client the engine
    /// connects again mid-session (the test server reset or closed the connection; the client
    /// keeps its sequence numbers, the server picks a new ISN). A SYN other than the one
    /// seen then continues the stream from there with the new sequence numbers, instead of
    /// being taken for a segment of the old connection (far off: ignored, and the rest of the
    /// answers with it).
    #[must_use]
    pub fn continued_by_new_connections(mut self) -> Self {
        self.continued = true;
        self
    }

    /// Whether the stream has started (its SYN or first segment seen).
    pub fn is_started(&self) -> bool {
        self.next.is_some()
    }

    /// Bytes delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Bytes held (parked pieces and their book-keeping).
    pub fn held(&self) -> usize {
        self.parked_bytes + self.parked.len() * PIECE_OVERHEAD
    }

    /// Whether every byte up to the FIN has been delivered.
    pub fn is_finished(&self) -> bool {
        self.fin == Some(self.delivered)
    }

    /// Whether bytes are missing before parked ones or before the FIN.
    pub fn has_gap(&self) -> bool {
        self.gap_since.is_some()
    }

    /// Since when bytes have been missing, if they are.
    pub fn gap_since(&self) -> Option<Time> {
        self.gap_since
    }

    /// A segment of the stream: `syn` marks the connection's first (its sequence number comes
    /// before the first byte), `fin` its last. In-order bytes go to `deliver`, in order.
    ///
    /// The stream starts at the first segment seen: after the SYN, or at the first data of a
    /// stream seen mid-way. Feed the SYN when there is one: data that came out of order before
    /// it would otherwise be taken for the start.
    pub fn handle_segment(
        &mut self,
        now: Time,
        seq: Seq,
        syn: bool,
        fin: bool,
        payload: &[u8],
        deliver: &mut impl FnMut(&[u8]),
    ) -> Accepted {
        let data_seq = if syn { seq + 1 } else { seq };
        if syn
            && self.next.is_some()
            && self.syn != Some(seq)
            && (self.continued || self.delivered == 0)
        {
            // Another connection's SYN: before any byte (what set the start was an older
            // connection's late segment, on the same addresses), or a new connection taking
            // over a server's stream. The stream goes on from here in its sequence numbers;
            // what waited in the old ones never comes.
            self.next = None;
            self.parked.clear();
            self.parked_bytes = 0;
            self.fin = None;
            self.gap_since = None;
        }
        if syn {
            self.syn = Some(seq);
        }
        let next = *self.next.get_or_insert(data_seq);
        let delivered_before = self.delivered;
        let mut accepted = Accepted::default();
        let distance = i64::from(data_seq.diff(next));
        if !(-WINDOW..WINDOW).contains(&distance) {
            accepted.ignored = true;
            return accepted;
        }
        let Some(start) = self.delivered.checked_add_signed(distance) else {
            // Before the stream's first byte: old, or from another connection.
            accepted.ignored = true;
            return accepted;
        };
        let end = start + payload.len() as u64;
        if fin {
            // A FIN that contradicts one seen already (or one before delivered data) is ignored.
            if self.fin.is_none() && end >= self.delivered {
                self.fin = Some(end);
                self.drop_parked_from(end);
            }
        }
        let limit = self.fin.unwrap_or(u64::MAX);
        let end_kept = end.min(limit);
        if end_kept < end {
            accepted.ignored = true;
        }
        let mut from = start;
        if from < self.delivered {
            let dup = index(self.delivered.min(end_kept) - from);
            accepted.duplicate += dup;
            from = self.delivered;
        }
        if from < end_kept {
            let piece = &payload[index(from - start)..index(end_kept - start)];
            if from == self.delivered {
                accepted.new += piece.len();
                self.deliver(piece, deliver);
            } else {
                let (new, dup) = self.park(from, piece);
                accepted.new += new;
                accepted.duplicate += dup;
            }
        }
        let gap = !self.parked.is_empty() || self.fin.is_some_and(|f| f > self.delivered);
        self.gap_since = if gap {
            Some(match self.gap_since {
                Some(t) if self.delivered == delivered_before => t,
                _ => now,
            })
        } else {
            None
        };
        accepted
    }

    /// `len` bytes at `seq` that will never come (their segment was seen without its payload):
    /// they leave a gap, visible at once, that only a later copy of them fills. Past a hole the
    /// stream parks what comes instead of delivering it (a stream not started yet starts at
    /// them: the bytes after them are not taken for its start).
    pub fn handle_lost(&mut self, now: Time, seq: Seq, len: usize) {
        if len == 0 {
            return;
        }
        let next = *self.next.get_or_insert(seq);
        let distance = i64::from(seq.diff(next));
        if !(-WINDOW..WINDOW).contains(&distance) {
            return;
        }
        let Some(end) = self
            .delivered
            .checked_add_signed(distance)
            .map(|start| start + len as u64)
        else {
            return;
        };
        let end = end.min(self.fin.unwrap_or(u64::MAX));
        if end <= self.delivered {
            return;
        }
        // An empty piece where the lost bytes end: the stream waits before it (a piece there
        // already, the gap shows anyway).
        self.parked.entry(end).or_default();
        self.gap_since.get_or_insert(now);
    }

    /// Delivers `piece` (which starts at `delivered`), then every parked piece it reaches.
    fn deliver(&mut self, piece: &[u8], deliver: &mut impl FnMut(&[u8])) {
        deliver(piece);
        self.advance(piece.len());
        while let Some(entry) = self.parked.first_entry() {
            let at = *entry.key();
            if at > self.delivered {
                break;
            }
            let bytes = entry.remove();
            self.parked_bytes -= bytes.len();
            let skip = index(self.delivered - at);
            if skip < bytes.len() {
                deliver(&bytes[skip..]);
                self.advance(bytes.len() - skip);
            }
        }
    }

    fn advance(&mut self, n: usize) {
        self.delivered += n as u64;
        #[expect(
            clippy::cast_possible_truncation,
            reason = "sequence space wraps modulo 2^32"
        )]
        let n = n as u32;
        self.next = self.next.map(|s| s + n);
    }

    /// Forgets parked bytes at or past stream offset `limit` (the FIN's).
    fn drop_parked_from(&mut self, limit: u64) {
        for (_, bytes) in self.parked.split_off(&limit) {
            self.parked_bytes -= bytes.len();
        }
        if let Some(mut entry) = self.parked.last_entry() {
            let at = *entry.key();
            let bytes = entry.get_mut();
            let keep = usize::try_from(limit - at).unwrap_or(usize::MAX);
            if keep < bytes.len() {
                self.parked_bytes -= bytes.len() - keep;
                bytes.truncate(keep);
            }
        }
    }

    /// Parks the parts of `piece` (at stream offset `at`, past `delivered`) no parked piece has.
    fn park(&mut self, at: u64, piece: &[u8]) -> (usize, usize) {
        let end = at + piece.len() as u64;
        // Parked pieces never overlap, so their ends grow with their starts: walk back from the
        // last one starting before `end` while they reach past `at`.
        let mut covering: Vec<(u64, u64)> = self
            .parked
            .range(..end)
            .rev()
            .map(|(&s, v)| (s, s + v.len() as u64))
            .take_while(|&(_, e)| e > at)
            .collect();
        covering.reverse();
        let mut new = 0;
        let mut pos = at;
        let mut holes = Vec::new();
        for (s, e) in covering {
            if s > pos {
                holes.push((pos, s));
            }
            pos = pos.max(e);
        }
        if pos < end {
            holes.push((pos, end));
        }
        for (s, e) in holes {
            let bytes = piece[index(s - at)..index(e - at)].to_vec();
            new += bytes.len();
            self.parked_bytes += bytes.len();
            self.parked.insert(s, bytes);
        }
        (new, piece.len() - new)
    }
}

/// A distance within one slice (so it fits a `usize`) as an index.
fn index(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T: Time = Time::ZERO;

    fn feed(r: &mut Reassembler, out: &mut Vec<u8>, seq: u32, data: &[u8]) -> Accepted {
        r.handle_segment(T, Seq::new(seq), false, false, data, &mut |b| {
            out.extend_from_slice(b);
        })
    }

    #[test]
    fn in_order_after_the_syn() {
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        r.handle_segment(T, Seq::new(100), true, false, &[], &mut |_| {});
        assert_eq!(feed(&mut r, &mut out, 101, b"hello ").new, 6);
        feed(&mut r, &mut out, 107, b"world");
        assert_eq!(out, b"hello world");
        assert!(!r.has_gap());
        assert_eq!(r.delivered(), 11);
    }

    #[test]
    fn reordered_segments_wait_for_the_gap() {
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        feed(&mut r, &mut out, 0, b"ab");
        let t = Time::from_millis(5);
        r.handle_segment(t, Seq::new(4), false, false, b"ef", &mut |_| panic!());
        assert_eq!(r.gap_since(), Some(t));
        assert_eq!(r.held(), 2 + PIECE_OVERHEAD);
        feed(&mut r, &mut out, 2, b"cd");
        assert_eq!(out, b"abcdef");
        assert!(!r.has_gap());
        assert_eq!(r.held(), 0);
    }

    /// Holes one after another, each filled in time: the gap is timed from when the stream
    /// reached the current hole, not from the first one (a long transfer under loss always has
    /// some hole open, and must not be given up for it).
    #[test]
    fn each_hole_is_timed_from_when_the_stream_reached_it() {
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        feed(&mut r, &mut out, 0, b"ab");
        let t1 = Time::from_millis(5);
        r.handle_segment(t1, Seq::new(4), false, false, b"ef", &mut |_| {});
        r.handle_segment(t1, Seq::new(8), false, false, b"ij", &mut |_| {});
        assert_eq!(r.gap_since(), Some(t1));
        // The first hole fills; the stream now waits at the second one, from now.
        let t2 = Time::from_millis(900);
        r.handle_segment(t2, Seq::new(2), false, false, b"cd", &mut |b| {
            out.extend_from_slice(b);
        });
        assert_eq!(out, b"abcdef");
        assert_eq!(r.gap_since(), Some(t2));
        // A segment that does not move the stream leaves the time as it is.
        r.handle_segment(
            Time::from_millis(950),
            Seq::new(12),
            false,
            false,
            b"mn",
            &mut |_| {},
        );
        assert_eq!(r.gap_since(), Some(t2));
    }

    /// Bytes known lost (a reply seen without its payload) are a gap at once, also at the
    /// stream's start; a later copy of them fills it.
    #[test]
    fn lost_bytes_are_a_gap_until_a_copy_fills_them() {
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        let t = Time::from_millis(3);
        r.handle_lost(t, Seq::new(0), 2);
        assert_eq!(r.gap_since(), Some(t));
        // What follows them is not taken for the stream's start.
        feed(&mut r, &mut out, 2, b"cd");
        assert!(out.is_empty() && r.has_gap());
        feed(&mut r, &mut out, 0, b"ab");
        assert_eq!(out, b"abcd");
        assert!(!r.has_gap());
        assert_eq!(r.held(), 0);
        // Bytes delivered already are not lost.
        r.handle_lost(t, Seq::new(1), 3);
        assert!(!r.has_gap());
        r.handle_lost(t, Seq::new(4), 3);
        assert!(r.has_gap());
    }

    /// A SYN other than the stream's: before any byte it starts the stream afresh (what set the
    /// start was an older connection's late segment); on a stream continued by new connections
    /// (a server's) also after bytes, which keep their count; elsewhere it is a segment like
    /// any other. A retransmitted SYN changes nothing.
    #[test]
    fn a_new_connections_syn() {
        let mut out = Vec::new();
        let mut r = Reassembler::new();
        // An old connection's late ACK came first and set the start.
        feed(&mut r, &mut out, 4_000_000, b"");
        r.handle_segment(T, Seq::new(100), true, false, &[], &mut |_| {});
        feed(&mut r, &mut out, 101, b"ab");
        assert_eq!(out, b"ab");
        r.handle_segment(T, Seq::new(100), true, false, &[], &mut |_| {});
        feed(&mut r, &mut out, 103, b"c");
        assert_eq!(out, b"abc");
        // Not continued: a new SYN after bytes is far away, ignored.
        r.handle_segment(T, Seq::new(3_000_000_000), true, false, &[], &mut |_| {});
        assert!(feed(&mut r, &mut out, 3_000_000_001, b"x").ignored);
        let mut r = Reassembler::new().continued_by_new_connections();
        out.clear();
        r.handle_segment(T, Seq::new(100), true, false, &[], &mut |_| {});
        feed(&mut r, &mut out, 101, b"ab");
        // Parked bytes of the old connection never come.
        feed(&mut r, &mut out, 110, b"zz");
        r.handle_segment(T, Seq::new(9_000_000), true, false, &[], &mut |_| {});
        assert!(!r.has_gap());
        feed(&mut r, &mut out, 9_000_001, b"cd");
        assert_eq!(out, b"abcd");
        assert_eq!(r.delivered(), 4);
    }

    #[test]
    fn duplicates_and_overlaps_are_trimmed() {
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        feed(&mut r, &mut out, 0, b"abcd");
        let a = feed(&mut r, &mut out, 0, b"abcd");
        assert_eq!((a.new, a.duplicate), (0, 4));
        let a = feed(&mut r, &mut out, 2, b"cdEF");
        assert_eq!((a.new, a.duplicate), (2, 2));
        // Parked pieces overlapping each other and the stream.
        feed(&mut r, &mut out, 10, b"KLMN");
        let a = feed(&mut r, &mut out, 8, b"IJKLMNOP");
        assert_eq!((a.new, a.duplicate), (4, 4));
        feed(&mut r, &mut out, 5, b"FGHIJ");
        assert_eq!(out, b"abcdEFGHIJKLMNOP");
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        let isn = u32::MAX - 3;
        r.handle_segment(T, Seq::new(isn), true, false, &[], &mut |_| {});
        feed(&mut r, &mut out, isn.wrapping_add(5), b"efgh");
        feed(&mut r, &mut out, isn.wrapping_add(1), b"abcd");
        feed(&mut r, &mut out, isn.wrapping_add(9), b"ij");
        assert_eq!(out, b"abcdefghij");
    }

    #[test]
    fn fin_ends_the_stream_and_a_missing_byte_is_a_gap() {
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        feed(&mut r, &mut out, 0, b"ab");
        r.handle_segment(T, Seq::new(3), false, true, b"d", &mut |_| {});
        assert!(r.has_gap() && !r.is_finished());
        feed(&mut r, &mut out, 2, b"c");
        assert!(r.is_finished() && !r.has_gap());
        assert!(feed(&mut r, &mut out, 4, b"zz").ignored);
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn far_away_segments_are_ignored() {
        let mut r = Reassembler::new();
        let mut out = Vec::new();
        feed(&mut r, &mut out, 1000, b"ab");
        assert!(feed(&mut r, &mut out, 1000 + (1 << 31), b"x").ignored);
        assert!(feed(&mut r, &mut out, 10, b"x").ignored);
        assert_eq!(r.held(), 0);
    }

    proptest! {
        /// Any cut into segments, any order, any duplicates: the same bytes in the same order.
        #[test]
        fn any_order_gives_the_stream(
            data in proptest::collection::vec(any::<u8>(), 1..600),
            cuts in proptest::collection::vec(1usize..80, 1..40),
            order in proptest::collection::vec(any::<u16>(), 0..80),
            isn: u32,
        ) {
            let mut segs = Vec::new();
            let mut pos = 0;
            let mut i = 0;
            while pos < data.len() {
                let n = cuts[i % cuts.len()].min(data.len() - pos);
                segs.push((pos, n));
                pos += n;
                i += 1;
            }
            // Duplicates and overlapping retransmissions.
            let extra: Vec<(usize, usize)> = order.iter().map(|&o| {
                let s = usize::from(o) % data.len();
                (s, (usize::from(o) % 97 + 1).min(data.len() - s))
            }).collect();
            segs.extend(extra);
            // Shuffle deterministically by the order keys.
            for (k, &o) in order.iter().enumerate() {
                let a = k % segs.len();
                let b = usize::from(o) % segs.len();
                segs.swap(a, b);
            }
            let mut r = Reassembler::new();
            let mut out = Vec::new();
            r.handle_segment(T, Seq::new(isn), true, false, &[], &mut |_| {});
            for (s, n) in segs {
                let seq = Seq::new(isn) + 1 + u32::try_from(s).unwrap();
                r.handle_segment(T, seq, false, false, &data[s..s + n], &mut |b| out.extend_from_slice(b));
            }
            prop_assert_eq!(&out, &data);
            prop_assert_eq!(r.held(), 0);
            prop_assert!(!r.has_gap());
        }
    }
}
