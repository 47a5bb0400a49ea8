//! Reading captures: classic pcap (both byte orders, micro- and nanosecond) and pcapng (several
//! interfaces) through the pcap-file crate, with the link types tcpdump and Wireshark write for
//! TCP traffic: Ethernet, Linux cooked (SLL, SLL2), raw IP, BSD loopback.

use std::{
    fs::File,
    io::{BufReader, Read},
    path::Path,
    time::Duration,
};

use pcap_file::{
    DataLink, PcapError,
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader},
};

/// One packet of the file: its time and its IP packet.
#[derive(Debug, PartialEq, Eq)]
pub struct Packet {
    pub timestamp: Duration,
    pub ip: Vec<u8>,
}

/// Why the file could not be read (further).
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

enum Inner {
    Pcap(PcapReader<BufReader<File>>, DataLink),
    PcapNg(PcapNgReader<BufReader<File>>),
}

/// A capture file being read.
pub struct CaptureFile {
    inner: Inner,
    path: String,
    /// Bytes of the file consumed by the records read so far (for error messages and progress).
    pub offset: u64,
    pub size: u64,
    /// Packets skipped: not IP, or of a link type this reader does not know.
    pub skipped: u64,
    /// pcapng blocks read (pcapng damage is reported after the last good block).
    blocks: u64,
}

/// The IP packet inside a captured frame of link type `link`.
pub fn ip_of(link: DataLink, frame: &[u8]) -> Option<&[u8]> {
    let ip = match link {
        DataLink::ETHERNET => return tcpcopy_common::ring::ip_payload(frame),
        // 16-byte header; protocol (ethertype) in its last two bytes.
        DataLink::LINUX_SLL => {
            let proto = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]);
            matches!(proto, 0x0800 | 0x86dd).then_some(frame.get(16..)?)?
        }
        // 20-byte header; protocol first.
        DataLink::LINUX_SLL2 => {
            let proto = u16::from_be_bytes([*frame.first()?, *frame.get(1)?]);
            matches!(proto, 0x0800 | 0x86dd).then_some(frame.get(20..)?)?
        }
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => frame,
        DataLink::NULL | DataLink::LOOP => frame.get(4..)?,
        _ => return None,
    };
    matches!(ip.first().map(|b| b >> 4), Some(4 | 6)).then_some(ip)
}

impl CaptureFile {
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let name = path.display().to_string();
        let open = || {
            File::open(path).map_err(|source| ReadError::Open {
                path: name.clone(),
                source,
            })
        };
        let size = open()?.metadata().map_or(0, |m| m.len());
        let mut magic = [0u8; 4];
        open()?
            .read_exact(&mut magic)
            .map_err(|_| ReadError::Format(name.clone()))?;
        let inner = if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
            let r = PcapNgReader::new(BufReader::new(open()?)).map_err(|e| ReadError::Damaged {
                path: name.clone(),
                offset: 0,
                reason: e.to_string(),
            })?;
            Inner::PcapNg(r)
        } else {
            let r = PcapReader::new(BufReader::new(open()?))
                .map_err(|_| ReadError::Format(name.clone()))?;
            let link = r.header().datalink;
            Inner::Pcap(r, link)
        };
        let offset = if matches!(inner, Inner::Pcap(..)) {
            24
        } else {
            0
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

    /// The next IP packet, `None` at the end of the file.
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
                    match ip_of(link, &p.data) {
                        Some(ip) => {
                            return Some(Ok(Packet {
                                timestamp: p.timestamp,
                                ip: ip.to_vec(),
                            }));
                        }
                        None => self.skipped += 1,
                    }
                }
                Inner::PcapNg(r) => {
                    let block = match r.next_block()? {
                        Ok(b) => b,
                        Err(e) => {
                            let e = self.damaged(&e);
                            return Some(Err(e));
                        }
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
                    match link.and_then(|l| ip_of(l, &data)) {
                        Some(ip) => {
                            return Some(Ok(Packet {
                                timestamp: ts,
                                ip: ip.to_vec(),
                            }));
                        }
                        None => self.skipped += 1,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_types() {
        let ip = [0x45u8, 0, 0, 20];
        let mut eth = vec![0u8; 12];
        eth.extend([0x08, 0x00]);
        eth.extend(ip);
        assert_eq!(ip_of(DataLink::ETHERNET, &eth), Some(&ip[..]));
        let mut sll = vec![0u8; 14];
        sll.extend([0x08, 0x00]);
        sll.extend(ip);
        assert_eq!(ip_of(DataLink::LINUX_SLL, &sll), Some(&ip[..]));
        let mut sll2 = vec![0x86, 0xdd];
        sll2.extend([0u8; 18]);
        sll2.extend([0x60, 0, 0, 0]);
        assert_eq!(ip_of(DataLink::LINUX_SLL2, &sll2).map(|p| p[0]), Some(0x60));
        assert_eq!(ip_of(DataLink::RAW, &ip), Some(&ip[..]));
        assert_eq!(
            ip_of(DataLink::LINUX_SLL, &sll[..10]),
            None,
            "short frames are skipped"
        );
        let mut arp = vec![0u8; 12];
        arp.extend([0x08, 0x06, 0, 0]);
        assert_eq!(ip_of(DataLink::ETHERNET, &arp), None);
    }
}

#[cfg(test)]
mod arbitrary_bytes {
    use proptest::prelude::*;

    use super::*;

    fn read_all(bytes: &[u8]) -> (usize, bool) {
        let dir = std::env::temp_dir().join(format!("tcpcopy-reader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.pcap", bytes.len()));
        std::fs::write(&path, bytes).unwrap();
        let (mut n, mut failed) = (0, false);
        match CaptureFile::open(&path) {
            Ok(mut f) => {
                while let Some(p) = f.next_packet() {
                    match p {
                        Ok(_) => n += 1,
                        Err(e) => {
                            assert!(e.to_string().contains("byte"), "{e}");
                            failed = true;
                            break;
                        }
                    }
                    assert!(n < 100_000, "no endless loop on damaged input");
                }
            }
            Err(_) => failed = true,
        }
        let _ = std::fs::remove_file(&path);
        (n, failed)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Arbitrary bytes, and valid headers followed by arbitrary bytes: an error or packets,
        /// never a panic or a hang.
        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..600), ng in any::<bool>()) {
            let mut bytes = if ng {
                // A pcapng section header block, then junk.
                vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0]
            } else {
                // A classic pcap header (Ethernet), then junk.
                vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0]
            };
            bytes.extend(&tail);
            let _ = read_all(&bytes);
            let _ = read_all(&tail);
        }
    }
}
