//! Protocol version 7: IPv4 and IPv6, deregistration, capabilities. All integers in network byte
//! order.
//!
//! **Negotiation**, so that a version-6 peer on either side keeps working unchanged: tcpcopy
//! opens every connection as version 6 does (the 14-byte version record, type 6) and follows it
//! with one more 14-byte record, the *offer*: client ip `"TCP7"`, client port 0, type 7, target
//! ip = tcpcopy's capability bits, target port 0. The original intercept logs "unknown msg type"
//! and goes on in version 6. An intercept that speaks version 7 answers with the 28-byte
//! *accept*: `ff ff`, `"TCP7"`, version `u16` (7), its capability bits `u32`, a 16-byte nonce
//! (for the shared-secret proof). A version-6 message starts with its record count, never
//! `ff ff`, so tcpcopy tells the two apart from the first two bytes it reads; if nothing arrives
//! within a second of the offer, the peer speaks version 6. tcpcopy registers nothing before it
//! knows, so no message of either version is ever read in the other's framing.
//!
//! **Messages** after the accept, in both directions: `type u8, flags u8 (0), length u16`, then
//! `length` bytes.
//! - tcpcopy -> intercept: type 1 registers, type 2 deregisters a replayed connection: `family u8`
//!   (4 or 6), client ip (4 or 16 bytes), client port `u16`, target ip, target port `u16`.
//! - intercept -> tcpcopy: type 1, one reply: its IP header (IPv4 without options, 20 bytes; IPv6
//!   without extension headers, 40 bytes) and its whole TCP header with options, no payload (the
//!   IP length field still counts it).
//!
//! - tcpcopy -> intercept: type 3, the proof of the shared secret: HMAC-SHA256 keyed with the
//!   secret over `"tcpcopy control channel v7"` and the accept's nonce (32 bytes); the first
//!   message when the intercept asks for it. The secret itself never crosses the network.
//!   intercept -> tcpcopy: type 2, empty, once the proof is checked (a wrong one closes the
//!   connection instead); tcpcopy registers nothing before it.
//!
//! - intercept -> tcpcopy: type 3, one reply with its payload: the headers as in type 1, then the
//!   reply's TCP payload, exactly as many bytes as the IP length announces (at most
//!   [`MAX_PAYLOAD`]). Only to a tcpcopy that offered capability 4 and got it accepted; replies
//!   whose payload the intercept could not take whole (or could not queue) go as type 1.
//!
//! Capability bits: 1 = deregistration (the intercept drops a route when its session ends);
//! 2 = the intercept requires the proof of the shared secret before any registration;
//! 4 = payloads (tcpcopy `--compare` offers it; the intercept then sends replies as type 3).
//! Others are reserved and must be 0.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{Headers, MAX_HEADERS, inbox::Inbox, v6::CLIENT_RECORD_LEN};

/// The protocol version of this module.
pub const VERSION: u16 = 7;
/// Marks the offer and the accept.
pub const MAGIC: [u8; 4] = *b"TCP7";
/// Bytes of the accept.
pub const ACCEPT_LEN: usize = 28;
/// Bytes of a message header.
pub const HEADER_LEN: usize = 4;
/// Message types, tcpcopy -> intercept.
pub const MSG_REGISTER: u8 = 1;
pub const MSG_DEREGISTER: u8 = 2;
pub const MSG_AUTH: u8 = 3;
/// Message types, intercept -> tcpcopy.
pub const MSG_REPLY: u8 = 1;
pub const MSG_PROVEN: u8 = 2;
pub const MSG_REPLY_PAYLOAD: u8 = 3;
/// Capability: routes are removed when tcpcopy deregisters them.
pub const CAP_DEREGISTER: u32 = 1;
/// Capability: the intercept requires the proof of the shared secret.
pub const CAP_SECRET: u32 = 2;
/// Capability: replies carry their payload (message type 3), for tcpcopy's `--compare`.
pub const CAP_PAYLOAD: u32 = 4;
/// The capabilities tcpcopy offers by default and intercept always accepts (without a secret).
pub const CAPS: u32 = CAP_DEREGISTER;
/// The capabilities this intercept can accept when a tcpcopy offers them.
pub const ACCEPTED_CAPS: u32 = CAP_DEREGISTER | CAP_PAYLOAD;
/// Payload bytes one type-3 message carries at most (a jumbo frame's, with room).
pub const MAX_PAYLOAD: usize = 16384;
/// Bytes of the proof.
pub const PROOF_LEN: usize = 32;
const PROOF_CONTEXT: &[u8] = b"tcpcopy control channel v7";

/// Bytes of a registration body for each family.
const KEY_V4_LEN: usize = 1 + 2 * (4 + 2);
const KEY_V6_LEN: usize = 1 + 2 * (16 + 2);

/// What a peer sent that this protocol cannot take: the connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The first record of a connection is not a version record.
    #[error("the first record is no version record (type {0}): not a tcpcopy, or too old")]
    NotVersionRecord(u16),
    /// The version record names a version this end does not speak.
    #[error("protocol version {0} (this end speaks 6 and 7)")]
    Version(u16),
    /// The accept is malformed.
    #[error("malformed version-7 accept")]
    BadAccept,
    /// A message of a type this end does not know.
    #[error("unknown message type {0}")]
    UnknownMessage(u8),
    /// A message whose length or body does not fit its type.
    #[error("malformed message of type {0}")]
    BadMessage(u8),
    /// The intercept requires the shared secret and this tcpcopy has none.
    #[error("the intercept requires a shared secret: give --secret-file")]
    SecretRequired,
    /// The peer did not prove the shared secret (wrong secret, none, or protocol version 6).
    #[error("the peer did not prove the shared secret")]
    BadSecret,
}

/// A shared secret (`--secret-file`): any bytes, at least 16.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A secret too short to be one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the shared secret has {0} bytes; give at least 16 (e.g. from /dev/urandom)")]
pub struct ShortSecret(usize);

impl Secret {
    /// The secret in a file's contents (surrounding whitespace removed).
    pub fn new(bytes: &[u8]) -> Result<Self, ShortSecret> {
        let b = bytes.trim_ascii();
        if b.len() < 16 {
            return Err(ShortSecret(b.len()));
        }
        Ok(Self(b.to_vec()))
    }

    fn mac(&self, nonce: &[u8; 16]) -> hmac::Hmac<sha2::Sha256> {
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(PROOF_CONTEXT);
        mac.update(nonce);
        mac
    }

    /// The proof for `nonce`.
    pub fn proof(&self, nonce: &[u8; 16]) -> [u8; PROOF_LEN] {
        use hmac::Mac as _;
        self.mac(nonce).finalize().into_bytes().into()
    }

    /// Whether `proof` proves this secret for `nonce` (compared in constant time).
    pub fn verify(&self, nonce: &[u8; 16], proof: &[u8]) -> bool {
        use hmac::Mac as _;
        self.mac(nonce).verify_slice(proof).is_ok()
    }
}

/// Appends the acknowledgement of the proof.
pub fn encode_proven(out: &mut Vec<u8>) {
    message(MSG_PROVEN, &[], out);
}

/// Whether the acknowledgement of the proof is next in `inbox` (consumed); an error for any
/// other message.
pub fn next_proven(inbox: &mut Inbox) -> Result<bool, ProtoError> {
    match next_message(inbox, 0)? {
        None => Ok(false),
        Some((MSG_PROVEN, _)) => Ok(true),
        Some((kind, _)) => Err(ProtoError::UnknownMessage(kind)),
    }
}

/// Appends the proof message.
pub fn encode_auth(proof: &[u8; PROOF_LEN], out: &mut Vec<u8>) {
    message(MSG_AUTH, proof, out);
}

/// The offer record tcpcopy sends after the version record.
pub fn offer(caps: u32) -> [u8; CLIENT_RECORD_LEN] {
    let mut b = [0u8; CLIENT_RECORD_LEN];
    b[0..4].copy_from_slice(&MAGIC);
    b[6..8].copy_from_slice(&VERSION.to_be_bytes());
    b[8..12].copy_from_slice(&caps.to_be_bytes());
    b
}

/// The capabilities of an offer record, or `None` if `b` is no offer.
pub fn parse_offer(b: &[u8; CLIENT_RECORD_LEN]) -> Option<u32> {
    (b[0..4] == MAGIC && b[4..6] == [0, 0] && b[6..8] == VERSION.to_be_bytes())
        .then(|| u32::from_be_bytes([b[8], b[9], b[10], b[11]]))
}

/// intercept's answer to an offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accept {
    pub caps: u32,
    pub nonce: [u8; 16],
}

impl Accept {
    pub fn encode(&self) -> [u8; ACCEPT_LEN] {
        let mut b = [0u8; ACCEPT_LEN];
        b[0..2].copy_from_slice(&[0xff, 0xff]);
        b[2..6].copy_from_slice(&MAGIC);
        b[6..8].copy_from_slice(&VERSION.to_be_bytes());
        b[8..12].copy_from_slice(&self.caps.to_be_bytes());
        b[12..28].copy_from_slice(&self.nonce);
        b
    }

    pub fn decode(b: &[u8; ACCEPT_LEN]) -> Result<Self, ProtoError> {
        if b[0..2] != [0xff, 0xff] || b[2..6] != MAGIC || b[6..8] != VERSION.to_be_bytes() {
            return Err(ProtoError::BadAccept);
        }
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&b[12..28]);
        Ok(Self {
            caps: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            nonce,
        })
    }
}

/// Appends a message of `kind` with `body` to `out`.
fn message(kind: u8, body: &[u8], out: &mut Vec<u8>) {
    let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&[kind, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body[..usize::from(len)]);
}

/// The client and target of a registration are of different address families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("client and target of different address families")]
pub struct MixedFamilies;

/// Appends a (de)registration message.
pub fn encode_key(
    kind: u8,
    client: SocketAddr,
    target: SocketAddr,
    out: &mut Vec<u8>,
) -> Result<(), MixedFamilies> {
    let mut body = [0u8; KEY_V6_LEN];
    let n = match (client.ip(), target.ip()) {
        (IpAddr::V4(c), IpAddr::V4(t)) => {
            body[0] = 4;
            body[1..5].copy_from_slice(&c.octets());
            body[5..7].copy_from_slice(&client.port().to_be_bytes());
            body[7..11].copy_from_slice(&t.octets());
            body[11..13].copy_from_slice(&target.port().to_be_bytes());
            KEY_V4_LEN
        }
        (IpAddr::V6(c), IpAddr::V6(t)) => {
            body[0] = 6;
            body[1..17].copy_from_slice(&c.octets());
            body[17..19].copy_from_slice(&client.port().to_be_bytes());
            body[19..35].copy_from_slice(&t.octets());
            body[35..37].copy_from_slice(&target.port().to_be_bytes());
            KEY_V6_LEN
        }
        _ => return Err(MixedFamilies),
    };
    message(kind, &body[..n], out);
    Ok(())
}

fn decode_key(body: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match (body.first()?, body.len()) {
        (4, KEY_V4_LEN) => {
            let c: [u8; 4] = body[1..5].try_into().ok()?;
            let t: [u8; 4] = body[7..11].try_into().ok()?;
            Some((
                SocketAddr::new(Ipv4Addr::from(c).into(), port(&body[5..7])),
                SocketAddr::new(Ipv4Addr::from(t).into(), port(&body[11..13])),
            ))
        }
        (6, KEY_V6_LEN) => {
            let c: [u8; 16] = body[1..17].try_into().ok()?;
            let t: [u8; 16] = body[19..35].try_into().ok()?;
            Some((
                SocketAddr::new(Ipv6Addr::from(c).into(), port(&body[17..19])),
                SocketAddr::new(Ipv6Addr::from(t).into(), port(&body[35..37])),
            ))
        }
        _ => None,
    }
}

/// Appends a reply message.
pub fn encode_reply(headers: &Headers, out: &mut Vec<u8>) {
    message(MSG_REPLY, headers.as_slice(), out);
}

/// Appends a reply with its payload (type 3). `payload` must be the whole payload the headers
/// announce, at most [`MAX_PAYLOAD`] bytes; otherwise the headers go alone (type 1) and `false`
/// is returned.
pub fn encode_reply_payload(headers: &Headers, payload: &[u8], out: &mut Vec<u8>) -> bool {
    let h = headers.as_slice();
    if payload.len() > MAX_PAYLOAD || announced_payload(h) != Some(payload.len()) {
        encode_reply(headers, out);
        return false;
    }
    let len = u16::try_from(h.len() + payload.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&[MSG_REPLY_PAYLOAD, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(h);
    out.extend_from_slice(payload);
    true
}

/// The length of the headers in `b` (fixed IP header and TCP header with options), checked to
/// be there.
fn headers_len(b: &[u8]) -> Option<usize> {
    let fixed = match b.first().map(|b| b >> 4) {
        Some(4) => 20,
        Some(6) => 40,
        _ => return None,
    };
    let doff = usize::from(b.get(fixed + 12)? >> 4) * 4;
    (doff >= 20 && b.len() >= fixed + doff).then_some(fixed + doff)
}

/// The payload length the headers `h` announce (IP length minus the headers).
fn announced_payload(h: &[u8]) -> Option<usize> {
    let hl = headers_len(h)?;
    let total = match h[0] >> 4 {
        4 => usize::from(u16::from_be_bytes([h[2], h[3]])),
        _ => 40 + usize::from(u16::from_be_bytes([h[4], h[5]])),
    };
    total.checked_sub(hl)
}

/// A message tcpcopy sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Register(SocketAddr, SocketAddr),
    Deregister(SocketAddr, SocketAddr),
    Auth([u8; PROOF_LEN]),
}

/// The next whole message in `inbox` as (type, body), consumed; `Ok(None)` until it has arrived.
/// Bodies longer than `max` are refused before they are waited for.
fn next_message(inbox: &mut Inbox, max: usize) -> Result<Option<(u8, Vec<u8>)>, ProtoError> {
    let Some(h) = inbox.peek(HEADER_LEN) else {
        return Ok(None);
    };
    let (kind, flags, len) = (h[0], h[1], usize::from(u16::from_be_bytes([h[2], h[3]])));
    if flags != 0 || len > max {
        return Err(ProtoError::BadMessage(kind));
    }
    let Some(body) = inbox.peek(HEADER_LEN + len) else {
        return Ok(None);
    };
    let body = body[HEADER_LEN..].to_vec();
    inbox.consume(HEADER_LEN + len);
    Ok(Some((kind, body)))
}

/// The next request from tcpcopy in `inbox`.
pub fn next_request(inbox: &mut Inbox) -> Result<Option<Request>, ProtoError> {
    let Some((kind, body)) = next_message(inbox, KEY_V6_LEN)? else {
        return Ok(None);
    };
    if kind == MSG_AUTH {
        let proof = body.try_into().map_err(|_| ProtoError::BadMessage(kind))?;
        return Ok(Some(Request::Auth(proof)));
    }
    let (c, t) = decode_key(&body).ok_or(ProtoError::BadMessage(kind))?;
    match kind {
        MSG_REGISTER => Ok(Some(Request::Register(c, t))),
        MSG_DEREGISTER => Ok(Some(Request::Deregister(c, t))),
        other => Err(ProtoError::UnknownMessage(other)),
    }
}

/// The next reply from intercept in `inbox`: its headers, checked to hold an IP and a TCP header,
/// and with `payloads` (capability 4 negotiated) its payload when it came with it (type 3, whose
/// length must be what the headers announce). Without `payloads` a type-3 message is refused.
pub fn next_reply(inbox: &mut Inbox, payloads: bool) -> Result<Option<Received>, ProtoError> {
    let max = if payloads {
        MAX_HEADERS + MAX_PAYLOAD
    } else {
        MAX_HEADERS
    };
    let Some((kind, body)) = next_message(inbox, max)? else {
        return Ok(None);
    };
    if kind != MSG_REPLY && !(payloads && kind == MSG_REPLY_PAYLOAD) {
        return Err(ProtoError::UnknownMessage(kind));
    }
    let hl = headers_len(&body).ok_or(ProtoError::BadMessage(kind))?;
    if hl > MAX_HEADERS {
        return Err(ProtoError::BadMessage(kind));
    }
    let headers = Headers::from_slice(&body[..hl]);
    if kind == MSG_REPLY {
        if body.len() != hl {
            return Err(ProtoError::BadMessage(kind));
        }
        return Ok(Some(Received {
            headers,
            payload: None,
        }));
    }
    if announced_payload(&body) != Some(body.len() - hl) {
        return Err(ProtoError::BadMessage(kind));
    }
    let mut body = body;
    body.drain(..hl);
    Ok(Some(Received {
        headers,
        payload: Some(body),
    }))
}

/// A reply as tcpcopy receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub headers: Headers,
    /// The payload, when it came with the reply (capability 4); `None` for headers alone.
    pub payload: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_response, reply::tests::reply};

    #[test]
    fn offer_and_accept_round_trip() {
        let o = offer(CAPS);
        assert_eq!(parse_offer(&o), Some(CAPS));
        // The original reads it as an unknown record type 7 with client 84.67.80.55:0.
        assert_eq!(&o[6..8], &[0, 7]);
        assert_eq!(parse_offer(&crate::ClientRecord::version().encode()), None);
        let a = Accept {
            caps: CAPS,
            nonce: [9; 16],
        };
        let b = a.encode();
        assert_eq!(&b[..2], &[0xff, 0xff]);
        assert_eq!(Accept::decode(&b), Ok(a));
        let mut bad = b;
        bad[7] = 6;
        assert_eq!(Accept::decode(&bad), Err(ProtoError::BadAccept));
    }

    #[test]
    fn registrations_of_both_families_round_trip() {
        let keys = [
            ("192.0.2.7:40000", "198.51.100.30:80"),
            ("[2001:db8:2::7]:40000", "[2001:db8:100::30]:80"),
        ];
        let mut wire = Vec::new();
        for (c, t) in keys {
            encode_key(
                MSG_REGISTER,
                c.parse().unwrap(),
                t.parse().unwrap(),
                &mut wire,
            )
            .unwrap();
            encode_key(
                MSG_DEREGISTER,
                c.parse().unwrap(),
                t.parse().unwrap(),
                &mut wire,
            )
            .unwrap();
        }
        assert_eq!(
            encode_key(
                MSG_REGISTER,
                keys[0].0.parse().unwrap(),
                keys[1].1.parse().unwrap(),
                &mut wire
            ),
            Err(MixedFamilies)
        );
        assert_eq!(wire.len(), 2 * (4 + 13) + 2 * (4 + 37));
        for chunk in [1, 5, 100] {
            let mut inbox = Inbox::default();
            let mut got = Vec::new();
            for part in wire.chunks(chunk) {
                inbox.feed(part);
                while let Some(r) = next_request(&mut inbox).unwrap() {
                    got.push(r);
                }
            }
            let want: Vec<_> = keys
                .iter()
                .flat_map(|(c, t)| {
                    let (c, t) = (c.parse().unwrap(), t.parse().unwrap());
                    [Request::Register(c, t), Request::Deregister(c, t)]
                })
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn replies_of_both_families_round_trip_with_all_options() {
        let mut wire = Vec::new();
        let replies: Vec<_> = [(false, 12), (true, 40), (true, 0), (false, 40)]
            .into_iter()
            .map(|(v6, opts)| encode_response(&reply(v6, 0, opts, 7)).unwrap())
            .collect();
        for r in &replies {
            encode_reply(&r.headers, &mut wire);
        }
        let mut inbox = Inbox::default();
        inbox.feed(&wire);
        for r in &replies {
            assert_eq!(
                next_reply(&mut inbox, false).unwrap().map(|r| r.headers),
                Some(r.headers)
            );
        }
        assert_eq!(next_reply(&mut inbox, false).unwrap(), None);
    }

    #[test]
    fn replies_with_payloads_round_trip_and_lying_lengths_are_refused() {
        let mut wire = Vec::new();
        let packets: Vec<_> = [
            (false, 12, 5),
            (true, 40, 1448),
            (false, 0, 0),
            (true, 0, 9000),
        ]
        .into_iter()
        .map(|(v6, opts, n)| {
            let mut p = reply(v6, 0, opts, n);
            let at = p.len() - n;
            for (i, b) in p[at..].iter_mut().enumerate() {
                *b = u8::try_from(i % 251).unwrap();
            }
            (encode_response(&p).unwrap(), p[at..].to_vec())
        })
        .collect();
        for (r, payload) in &packets {
            assert!(encode_reply_payload(&r.headers, payload, &mut wire));
        }
        // A payload that is not the whole one goes as headers alone.
        assert!(!encode_reply_payload(
            &packets[0].0.headers,
            b"abc",
            &mut wire
        ));
        for chunk in [1, 7, 100_000] {
            let mut inbox = Inbox::default();
            let mut got = Vec::new();
            for part in wire.chunks(chunk) {
                inbox.feed(part);
                while let Some(r) = next_reply(&mut inbox, true).unwrap() {
                    got.push(r);
                }
            }
            assert_eq!(got.len(), 5);
            for (g, (r, payload)) in got.iter().zip(&packets) {
                assert_eq!(g.headers, r.headers);
                assert_eq!(g.payload.as_deref(), Some(&payload[..]));
            }
            assert_eq!(got[4].payload, None);
        }
        // Refused without the capability, and with a payload other than the announced one.
        let mut inbox = Inbox::default();
        inbox.feed(&wire);
        assert!(next_reply(&mut inbox, false).is_err());
        let mut bad = Vec::new();
        encode_reply_payload(&packets[0].0.headers, &packets[0].1, &mut bad);
        bad.pop();
        bad[3] -= 1;
        let mut inbox = Inbox::default();
        inbox.feed(&bad);
        assert_eq!(
            next_reply(&mut inbox, true),
            Err(ProtoError::BadMessage(MSG_REPLY_PAYLOAD))
        );
    }

    #[test]
    fn proofs_prove_the_secret_and_nothing_else() {
        let s = Secret::new(b"  0123456789abcdef0123\n").unwrap();
        let other = Secret::new(b"0123456789abcdef0124").unwrap();
        let p = s.proof(&[1; 16]);
        assert!(s.verify(&[1; 16], &p));
        assert!(!s.verify(&[2; 16], &p), "another nonce");
        assert!(!other.verify(&[1; 16], &p), "another secret");
        assert!(!s.verify(&[1; 16], &p[..31]));
        assert_eq!(Secret::new(b"short\n").unwrap_err(), ShortSecret(5));
        let mut wire = Vec::new();
        encode_auth(&p, &mut wire);
        let mut inbox = Inbox::default();
        inbox.feed(&wire);
        assert_eq!(next_request(&mut inbox).unwrap(), Some(Request::Auth(p)));
    }

    #[test]
    fn garbage_is_refused_before_it_is_buffered() {
        for (bytes, want) in [
            (&[1u8, 0, 0xff, 0xff][..], ProtoError::BadMessage(1)),
            (
                &[9, 0, 0, 13, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                ProtoError::UnknownMessage(9),
            ),
            (&[1, 1, 0, 0], ProtoError::BadMessage(1)),
            (
                &[1, 0, 0, 13, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                ProtoError::BadMessage(1),
            ),
        ] {
            let mut inbox = Inbox::default();
            inbox.feed(bytes);
            assert_eq!(next_request(&mut inbox), Err(want), "{bytes:?}");
        }
        let mut inbox = Inbox::default();
        inbox.feed(&[1, 0, 0, 40]);
        inbox.feed(&[0x45; 40]);
        assert_eq!(next_reply(&mut inbox, true), Err(ProtoError::BadMessage(1)));
    }
}
