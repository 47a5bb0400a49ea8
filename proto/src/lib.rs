//! The tcpcopy <-> intercept control channel: protocol version 6, wire-compatible with the
//! original's, and version 7 (IPv4 and IPv6, deregistration), negotiated when a connection opens
//! so that a version-6 peer on either side keeps working. Sans-IO: codecs and the two ends of a
//! connection as state machines ([`TcpcopyEnd`], [`InterceptEnd`]); no sockets, no clock reads.

mod endpoint;
mod inbox;
mod reply;
pub mod v6;
pub mod v7;

pub use endpoint::{Event, InterceptEnd, OFFER_TIMEOUT, TcpcopyEnd, Unsendable, encode_replies};
pub use reply::{Headers, MAX_HEADERS, RecordError, Reply, encode_response, payload_of};
pub use v6::{BatchDecoder, ClientDecoder, ClientRecord};
pub use v7::{ProtoError, Received, Secret};

/// Records per intercept message by default (intercept `-n`; version 6).
pub const DEFAULT_BATCH: usize = 16;
/// The control channel's default port (`-p`).
pub const DEFAULT_PORT: u16 = 36524;
