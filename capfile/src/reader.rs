//! A capture being read, packet by packet, from a file or any other byte source.

use std::{
    fs::File,
    io::{BufReader, Cursor, Read},
    path::Path,
    time::Duration,
};

use pcap_file::{
    DataLink, PcapError,
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader},
};

use crate::link::ip_of;

/// One packet of the capture: its time and its IP packet.
#[derive(Debug, PartialEq, Eq)]
pub struct Packet {
    pub timestamp: Duration,
    pub ip: Vec<u8>,
}

/// Why the capture could not be read (further).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: neither a pcap nor a pcapng file")]
    Format(String),
    #[error("{path}: damaged or truncated at byte {offset}: {reason}")]
    Damaged {
        path: String,
        offset: u64,
        reason: String,
    },
}

type Source = BufReader<Box<dyn Read + Send>>;

enum Inner {
    Pcap(PcapReader<Source>, DataLink),
    PcapNg(PcapNgReader<Source>),
}

/// A capture being read.
pub struct CaptureFile {
    inner: Inner,
    path: String,
    /// Bytes of the capture consumed by the records read so far (for error messages and
    /// progress).
    pub offset: u64,
    /// The capture's size in bytes (0 if unknown).
    pub size: u64,
    /// Packets skipped: not IP, or of a link type this reader does not know.
    pub skipped: u64,
    /// pcapng blocks read (pcapng damage is reported after the last good block).
    blocks: u64,
}

/// pcapng's section header block type, which starts every pcapng file.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

impl CaptureFile {
    /// Opens the capture file at `path`.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let name = path.display().to_string();
        let open_err = |source| ReadError::Open {
            path: name.clone(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let size = file.metadata().map_err(open_err)?.len();
        Self::from_reader(name.clone(), size, file)
    }

    /// Reads a capture from `source`, named `name` in errors; `size` (0 if unknown) is used for
    /// progress only.
    pub fn from_reader(
        name: String,
        size: u64,
        mut source: impl Read + Send + 'static,
    ) -> Result<Self, ReadError> {
        let mut magic = [0u8; 4];
        source
            .read_exact(&mut magic)
            .map_err(|_| ReadError::Format(name.clone()))?;
        let whole: Box<dyn Read + Send> = Box::new(Cursor::new(magic).chain(source));
        let whole = BufReader::with_capacity(1 << 16, whole);
        let (inner, offset) = if magic == PCAPNG_MAGIC {
            let r = PcapNgReader::new(whole).map_err(|e| ReadError::Damaged {
                path: name.clone(),
                offset: 0,
                reason: e.to_string(),
            })?;
            (Inner::PcapNg(r), 0)
        } else {
            let r = PcapReader::new(whole).map_err(|_| ReadError::Format(name.clone()))?;
            let link = r.header().datalink;
            (Inner::Pcap(r, link), 24)
        };
        Ok(Self {
            inner,
            path: name,
            offset,
            size,
            skipped: 0,
            blocks: 0,
        })
    }

    fn damaged(&self, e: &PcapError) -> ReadError {
        let reason = match self.inner {
            Inner::Pcap(..) => e.to_string(),
            Inner::PcapNg(_) => format!("{e} (after block {})", self.blocks),
        };
        ReadError::Damaged {
            path: self.path.clone(),
            offset: self.offset,
            reason,
        }
    }

    /// Interfaces the capture describes (so far, for pcapng: their blocks may come late).
    pub fn interfaces(&self) -> usize {
        match &self.inner {
            Inner::Pcap(..) => 1,
            Inner::PcapNg(r) => r.interfaces().len(),
        }
    }

    /// The next IP packet, `None` at the end of the capture. After an error, `None`.
    pub fn next_packet(&mut self) -> Option<Result<Packet, ReadError>> {
        loop {
            match &mut self.inner {
                Inner::Pcap(r, link) => {
                    let link = *link;
                    let p = match r.next_packet()? {
                        Ok(p) => p,
                        Err(e) => return Some(Err(self.damaged(&e))),
                    };
                    self.offset += 16 + p.data.len() as u64;
                    if let Some(ip) = ip_of(link, &p.data) {
                        return Some(Ok(Packet {
                            timestamp: p.timestamp,
                            ip: ip.to_vec(),
                        }));
                    }
                    self.skipped += 1;
                }
                Inner::PcapNg(r) => {
                    let block = match r.next_block()? {
                        Ok(b) => b,
                        Err(e) => return Some(Err(self.damaged(&e))),
                    };
                    let (ts, iface, data) = match block {
                        Block::EnhancedPacket(epb) => {
                            (epb.timestamp, epb.interface_id, epb.data.into_owned())
                        }
                        Block::SimplePacket(spb) => (Duration::ZERO, 0, spb.data.into_owned()),
                        _ => {
                            self.blocks += 1;
                            continue;
                        }
                    };
                    let link = r.interfaces().get(iface as usize).map(|i| i.linktype);
                    self.blocks += 1;
                    // The data's end: what the packets read so far cover of the file.
                    self.offset += data.len() as u64 + 32;
                    if let Some(ip) = link.and_then(|l| ip_of(l, &data)) {
                        return Some(Ok(Packet {
                            timestamp: ts,
                            ip: ip.to_vec(),
                        }));
                    }
                    self.skipped += 1;
                }
            }
        }
    }
}

/// Reads every packet of `bytes` as the fuzz target and the property test do: packets until the
/// end or an error; the number read and whether it ended in an error. Panics if the reader
/// loops: each record takes at least 12 bytes of input.
pub fn read_all(bytes: &[u8]) -> (usize, bool) {
    let bound = bytes.len() / 12 + 1;
    let Ok(mut file) = CaptureFile::from_reader("input".into(), 0, Cursor::new(bytes.to_vec()))
    else {
        return (0, true);
    };
    let mut n = 0;
    while let Some(p) = file.next_packet() {
        match p {
            Ok(_) => n += 1,
            Err(e) => {
                assert!(
                    e.to_string().contains("byte"),
                    "an error names the offset: {e}"
                );
                return (n, true);
            }
        }
        assert!(n <= bound, "more packets than the input could hold: a loop");
    }
    (n, false)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A classic pcap header (little-endian, microseconds, Ethernet).
    const PCAP_HEADER: [u8; 24] = [
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ];

    /// One pcap record: an Ethernet frame with a 20-byte IPv4 header, at second `sec`.
    fn record(sec: u8) -> Vec<u8> {
        let mut frame = vec![0u8; 12];
        frame.extend([0x08, 0x00, 0x45]);
        frame.extend([0u8; 19]);
        let mut r = vec![sec, 0, 0, 0, 0, 0, 0, 0];
        r.extend(u32::try_from(frame.len()).unwrap().to_le_bytes());
        r.extend(u32::try_from(frame.len()).unwrap().to_le_bytes());
        r.extend(frame);
        r
    }

    #[test]
    fn pcap_packets_then_damage_at_the_right_byte() {
        let mut bytes = PCAP_HEADER.to_vec();
        bytes.extend(record(1));
        bytes.extend(record(2));
        let whole = bytes.len();
        assert_eq!(read_all(&bytes), (2, false));
        let mut f = CaptureFile::from_reader("x".into(), 0, Cursor::new(bytes.clone())).unwrap();
        let p = f.next_packet().unwrap().unwrap();
        assert_eq!(p.timestamp, Duration::from_secs(1));
        assert_eq!(p.ip[0], 0x45);
        // Cut inside the second record: one packet, then an error at the first record's end.
        bytes.truncate(whole - 5);
        let mut f = CaptureFile::from_reader("x".into(), 0, Cursor::new(bytes)).unwrap();
        assert!(f.next_packet().unwrap().is_ok());
        let e = f.next_packet().unwrap().unwrap_err().to_string();
        assert!(e.contains(&format!("at byte {}", 24 + 16 + 34)), "{e}");
    }

    #[test]
    fn not_a_capture() {
        let e = CaptureFile::from_reader("junk".into(), 0, Cursor::new(b"hello world".to_vec()));
        assert!(matches!(e, Err(ReadError::Format(_))));
        let e = CaptureFile::from_reader("tiny".into(), 0, Cursor::new(vec![1, 2]));
        assert!(matches!(e, Err(ReadError::Format(_))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Arbitrary bytes, and valid headers followed by arbitrary bytes: an error or packets,
        /// never a panic or a hang.
        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..600), ng in any::<bool>()) {
            let mut bytes = if ng {
                // A pcapng section header block, then junk.
                vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0]
            } else {
                PCAP_HEADER.to_vec()
            };
            bytes.extend(&tail);
            let _ = read_all(&bytes);
            let _ = read_all(&tail);
        }
    }
}
