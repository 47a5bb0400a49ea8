//! Reading captures for tcpcopy's offline replay: classic pcap (both byte orders, micro- and
//! nanosecond) and pcapng (several interfaces) through the pcap-file crate, with the link types
//! tcpdump and Wireshark write for TCP traffic: Ethernet, Linux cooked (SLL, SLL2), raw IP, BSD
//! loopback. Damage is an error naming the byte offset, never a panic or a hang (a cargo-fuzz
//! target in `fuzz/` and a property test hold it to that).

mod link;
mod reader;

pub use link::ip_of;
pub use pcap_file::DataLink;
pub use reader::{CaptureFile, Packet, ReadError, read_all};
