//! What is kept of a byte string (a response body, a non-HTTP response): its length, a digest of
//! the whole, its first bytes verbatim and a digest per block of its beginning, so two strings can
//! be told apart and the place where they first differ found, without keeping either.
//!
//! Digests are XXH3 (`xxhash-rust`): 128 bits for the whole, 64 bits per block. They detect
//! accidental differences (two servers' answers), not forgeries, and cost a fraction of SHA-256
//! on the online host's CPU (see the benchmark).

use core::{fmt, ops::Deref};

use smallvec::SmallVec;
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// Bytes kept verbatim from the start: a difference inside them is found to the byte.
pub const PREFIX: usize = 64;
/// Block size of the per-block digests.
pub const BLOCK: usize = 1024;
/// Blocks with a digest (the first 256 KiB): past them only the whole digest tells.
pub const MAX_BLOCKS: usize = 256;

/// A 128-bit digest, printed as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Digest(pub u128);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The first [`PREFIX`] bytes of a string (fewer if it is shorter), kept inline: a summary
/// allocates nothing for them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    len: u8,
    bytes: [u8; PREFIX],
}

impl Default for Prefix {
    fn default() -> Self {
        Self {
            len: 0,
            bytes: [0; PREFIX],
        }
    }
}

impl Prefix {
    /// Appends what still fits of `bytes`.
    fn fill(&mut self, bytes: &[u8]) {
        let at = usize::from(self.len);
        let n = (PREFIX - at).min(bytes.len());
        self.bytes[at..at + n].copy_from_slice(&bytes[..n]);
        #[expect(clippy::cast_possible_truncation, reason = "at most PREFIX (64)")]
        let len = (at + n) as u8;
        self.len = len;
    }
}

impl Deref for Prefix {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq<&[u8]> for Prefix {
    fn eq(&self, other: &&[u8]) -> bool {
        **self == **other
    }
}

/// Block digests, the first two inline (a body up to 2 KiB allocates nothing for them).
pub type Blocks = SmallVec<[u64; 2]>;

/// The summary of a finished byte string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByteSummary {
    pub len: u64,
    pub digest: Digest,
    /// The first [`PREFIX`] bytes (fewer if the string is shorter).
    pub prefix: Prefix,
    /// XXH3-64 of each [`BLOCK`]-byte block from the start, up to [`MAX_BLOCKS`]; the last one
    /// covers a shorter final block.
    pub blocks: Blocks,
}

/// Where two byte strings first differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Offset {
    /// The byte offset: exact, or the start of the first block that differs.
    pub offset: u64,
    /// Whether `offset` is the first differing byte itself (else: it lies in the block there).
    pub exact: bool,
}

impl ByteSummary {
    /// Heap and inline bytes this summary holds.
    pub fn held(&self) -> usize {
        core::mem::size_of::<Self>() + self.heap()
    }

    /// The bytes it holds outside itself (block digests past the inline ones).
    pub fn heap(&self) -> usize {
        if self.blocks.spilled() {
            self.blocks.capacity() * 8
        } else {
            0
        }
    }

    /// Whether the two strings are the same (same length and digest).
    pub fn same(&self, other: &ByteSummary) -> bool {
        self.len == other.len && self.digest == other.digest
    }

    /// Where the two strings first differ, or `None` when they are the same.
    pub fn first_difference(&self, other: &ByteSummary) -> Option<Offset> {
        if self.same(other) {
            return None;
        }
        let common = self.prefix.len().min(other.prefix.len());
        if let Some(i) = (0..common).find(|&i| self.prefix[i] != other.prefix[i]) {
            return Some(Offset {
                offset: i as u64,
                exact: true,
            });
        }
        let shorter = self.len.min(other.len);
        // One is a prefix of the other, as far as the kept prefix shows.
        if shorter <= common as u64 {
            return Some(Offset {
                offset: shorter,
                exact: true,
            });
        }
        let blocks = self.blocks.len().min(other.blocks.len());
        if let Some(i) = (0..blocks).find(|&i| self.blocks[i] != other.blocks[i]) {
            return Some(Offset {
                offset: (i * BLOCK) as u64,
                exact: false,
            });
        }
        // Every block kept on both sides is equal: the difference lies past them.
        let seen = (blocks * BLOCK) as u64;
        Some(Offset {
            offset: seen.min(shorter),
            exact: seen >= shorter && self.len != other.len,
        })
    }
}

/// Builds a [`ByteSummary`] from the string's bytes, fed in order in pieces of any size.
/// [`SummaryBuilder::take`] hands the summary out and starts anew, keeping the builder's own
/// memory (the hasher's state, the block buffer): a builder reused string after string
/// allocates only for strings of more than two blocks.
pub struct SummaryBuilder {
    len: u64,
    whole: Box<Xxh3>,
    prefix: Prefix,
    blocks: Blocks,
    /// The current block's bytes (until it is full), while blocks are still kept.
    block: Vec<u8>,
}

impl Default for SummaryBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SummaryBuilder {
    pub fn new() -> Self {
        Self {
            len: 0,
            whole: Box::new(Xxh3::new()),
            prefix: Prefix::default(),
            blocks: Blocks::new(),
            block: Vec::new(),
        }
    }

    /// Bytes so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing came yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes this builder holds.
    pub fn held(&self) -> usize {
        core::mem::size_of::<Self>()
            + core::mem::size_of::<Xxh3>()
            + if self.blocks.spilled() {
                self.blocks.capacity() * 8
            } else {
                0
            }
            + self.block.capacity()
    }

    /// The next bytes of the string.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        self.whole.update(bytes);
        if self.prefix.len() < PREFIX {
            self.prefix.fill(bytes);
        }
        while !bytes.is_empty() && self.blocks.len() < MAX_BLOCKS {
            if self.block.is_empty() && bytes.len() >= BLOCK {
                // A whole block in place, no copy.
                self.blocks.push(xxh3_64(&bytes[..BLOCK]));
                bytes = &bytes[BLOCK..];
                continue;
            }
            let n = (BLOCK - self.block.len()).min(bytes.len());
            self.block.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.block.len() == BLOCK {
                self.blocks.push(xxh3_64(&self.block));
                self.block.clear();
            }
        }
        if self.blocks.len() == MAX_BLOCKS {
            self.block = Vec::new();
        }
    }

    /// The summary of the bytes fed.
    pub fn finish(mut self) -> ByteSummary {
        self.take()
    }

    /// The summary of the bytes fed; the builder starts a new string, its memory kept.
    pub fn take(&mut self) -> ByteSummary {
        let mut blocks = core::mem::take(&mut self.blocks);
        if !self.block.is_empty() {
            blocks.push(xxh3_64(&self.block));
            self.block.clear();
        }
        if blocks.spilled() {
            blocks.shrink_to_fit();
        }
        let summary = ByteSummary {
            len: self.len,
            digest: Digest(self.whole.digest128()),
            prefix: core::mem::take(&mut self.prefix),
            blocks,
        };
        self.len = 0;
        self.whole.reset();
        summary
    }
}

/// The summary of `bytes` in one piece.
pub fn summarize(bytes: &[u8]) -> ByteSummary {
    let mut b = SummaryBuilder::new();
    b.update(bytes);
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_same_summary_whatever_the_pieces() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = summarize(&data);
        for cut in [1, 63, 64, 1000, 1024, 1025, 3000] {
            let mut b = SummaryBuilder::new();
            for piece in data.chunks(cut) {
                b.update(piece);
            }
            assert_eq!(b.finish(), whole, "pieces of {cut}");
        }
        assert_eq!(whole.len, 5000);
        assert_eq!(whole.blocks.len(), 5);
        assert_eq!(whole.prefix, &data[..PREFIX]);
    }

    #[test]
    fn difference_inside_the_prefix_is_exact() {
        let a = summarize(b"HTTP payload number one");
        let b = summarize(b"HTTP payload number two");
        assert_eq!(
            a.first_difference(&b),
            Some(Offset {
                offset: 20,
                exact: true
            })
        );
        assert_eq!(a.first_difference(&a), None);
    }

    #[test]
    fn difference_past_the_prefix_names_its_block() {
        let a = vec![b'x'; 4000];
        let mut b = a.clone();
        b[2500] = b'y';
        let d = summarize(&a).first_difference(&summarize(&b)).unwrap();
        assert_eq!(
            d,
            Offset {
                offset: 2048,
                exact: false
            }
        );
    }

    #[test]
    fn a_string_cut_short_differs_where_it_ends() {
        let a = summarize(b"0123456789");
        let b = summarize(b"01234");
        assert_eq!(
            a.first_difference(&b),
            Some(Offset {
                offset: 5,
                exact: true
            })
        );
        let long = vec![b'z'; 3 * BLOCK];
        let a = summarize(&long);
        let b = summarize(&long[..2 * BLOCK]);
        assert_eq!(
            a.first_difference(&b),
            Some(Offset {
                offset: 2 * BLOCK as u64,
                exact: true
            })
        );
    }

    #[test]
    fn blocks_stop_at_the_limit() {
        let data = vec![1u8; (MAX_BLOCKS + 10) * BLOCK + 3];
        let s = summarize(&data);
        assert_eq!(s.blocks.len(), MAX_BLOCKS);
        assert_eq!(s.len, data.len() as u64);
    }
}
