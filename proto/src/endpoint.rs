//! The two ends of one control connection as sans-IO state machines: bytes in through
//! `handle_input`, bytes to send out through `poll_transmit`, what the peer said through
//! `poll_reply` / `poll_request`. Time is an argument; nothing here reads a clock or a socket.
//!
//! Call order for tcpcopy's end ([`TcpcopyEnd`]): create it when the TCP connection is up and
//! send what `poll_transmit` gives; feed every received byte to `handle_input` and call
//! `handle_timeout` at `poll_timeout`, until `version()` is known; then `register` and
//! `deregister` sessions, sending `poll_transmit`'s bytes, and take replies from `poll_reply`.
//! intercept's end ([`InterceptEnd`]) is the mirror: `handle_input`, then `poll_request` until it
//! returns `Ok(None)`, sending `poll_transmit`'s bytes (the accept); replies go out through
//! `encode_replies`. An `Err` from either means the peer broke the protocol: close the
//! connection.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use crate::{
    Reply,
    inbox::Inbox,
    v6::{self, BatchDecoder, CLIENT_RECORD_LEN, ClientRecord},
    v7::{self, Accept, ProtoError, Received, Request, Secret},
};

/// How long tcpcopy waits for an answer to its offer before it settles on version 6.
pub const OFFER_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug)]
enum Negotiation {
    Offered {
        deadline: Instant,
    },
    /// Version 7, the proof of the secret sent, its acknowledgement not yet read.
    Proving(Accept),
    V6,
    V7(Accept),
}

/// tcpcopy's end of a control connection.
#[derive(Debug)]
pub struct TcpcopyEnd {
    state: Negotiation,
    inbox: Inbox,
    v6: BatchDecoder,
    out: Vec<u8>,
    secret: Option<Secret>,
    /// Capabilities offered.
    offered: u32,
}

/// A registration the negotiated version cannot carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unsendable {
    #[error("the version is not negotiated yet")]
    NotNegotiated,
    #[error("protocol version 6 carries IPv4 only")]
    Ipv6OverVersion6,
    #[error("client and target of different address families")]
    MixedFamilies,
}

impl TcpcopyEnd {
    /// A connection that has just opened. With `offer_v7` false it speaks version 6 only, as the
    /// original does. `secret` proves this tcpcopy to an intercept that asks for it.
    pub fn new(now: Instant, offer_v7: bool, secret: Option<Secret>) -> Self {
        Self::offering(now, offer_v7, secret, v7::CAPS)
    }

    /// [`TcpcopyEnd::new`] offering the capability bits `caps` (e.g. with
    /// [`v7::CAP_PAYLOAD`] for `--compare`).
    pub fn offering(now: Instant, offer_v7: bool, secret: Option<Secret>, caps: u32) -> Self {
        let mut out = ClientRecord::version().encode().to_vec();
        let state = if offer_v7 {
            out.extend_from_slice(&v7::offer(caps));
            Negotiation::Offered {
                deadline: now + OFFER_TIMEOUT,
            }
        } else {
            Negotiation::V6
        };
        Self {
            state,
            inbox: Inbox::default(),
            v6: BatchDecoder::default(),
            out,
            secret,
            offered: caps,
        }
    }

    /// Whether replies come with their payloads (version 7, capability 4 offered and accepted).
    pub fn payloads(&self) -> bool {
        self.offered & self.peer_caps() & v7::CAP_PAYLOAD != 0
    }

    /// The negotiated version, `None` while the offer is open.
    pub fn version(&self) -> Option<u16> {
        match self.state {
            Negotiation::Offered { .. } | Negotiation::Proving(_) => None,
            Negotiation::V6 => Some(v6::VERSION),
            Negotiation::V7(_) => Some(v7::VERSION),
        }
    }

    /// The intercept's capability bits (0 with version 6).
    pub fn peer_caps(&self) -> u32 {
        match self.state {
            Negotiation::V7(a) => a.caps,
            _ => 0,
        }
    }

    /// When `handle_timeout` is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            Negotiation::Offered { deadline } => Some(deadline),
            _ => None,
        }
    }

    /// An unanswered offer expires: the intercept speaks version 6.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Negotiation::Offered { deadline } = self.state
            && now >= deadline
        {
            self.state = Negotiation::V6;
        }
    }

    /// Bytes received from the intercept.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), ProtoError> {
        match self.state {
            Negotiation::V6 => self.v6.feed(bytes),
            Negotiation::V7(_) => self.inbox.feed(bytes),
            Negotiation::Proving(accept) => {
                self.inbox.feed(bytes);
                if v7::next_proven(&mut self.inbox)? {
                    self.state = Negotiation::V7(accept);
                }
            }
            Negotiation::Offered { .. } => {
                self.inbox.feed(bytes);
                match self.inbox.peek(2) {
                    None => {}
                    Some([0xff, 0xff]) => {
                        if let Some(b) = self.inbox.take::<{ v7::ACCEPT_LEN }>() {
                            let accept = Accept::decode(&b)?;
                            if accept.caps & v7::CAP_SECRET == 0 {
                                self.state = Negotiation::V7(accept);
                            } else {
                                let secret =
                                    self.secret.as_ref().ok_or(ProtoError::SecretRequired)?;
                                v7::encode_auth(&secret.proof(&accept.nonce), &mut self.out);
                                self.state = Negotiation::Proving(accept);
                                return self.handle_input(&[]);
                            }
                        }
                    }
                    Some(_) => {
                        // A version-6 message: the offer was ignored, as the original does.
                        self.state = Negotiation::V6;
                        self.v6.feed(&self.inbox.take_all());
                    }
                }
            }
        }
        Ok(())
    }

    /// Bytes to send, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// Announces that replies from `target` to `client` belong to this tcpcopy.
    pub fn register(&mut self, client: SocketAddr, target: SocketAddr) -> Result<(), Unsendable> {
        self.key(v7::MSG_REGISTER, client, target)
    }

    /// Withdraws a registration (version 7; version 6 sends nothing: the original ignores it).
    pub fn deregister(&mut self, client: SocketAddr, target: SocketAddr) -> Result<(), Unsendable> {
        match self.state {
            Negotiation::V6 => Ok(()),
            _ => self.key(v7::MSG_DEREGISTER, client, target),
        }
    }

    fn key(&mut self, kind: u8, client: SocketAddr, target: SocketAddr) -> Result<(), Unsendable> {
        match (&self.state, client, target) {
            (Negotiation::Offered { .. } | Negotiation::Proving(_), ..) => {
                Err(Unsendable::NotNegotiated)
            }
            (Negotiation::V6, SocketAddr::V4(c), SocketAddr::V4(t)) => {
                self.out
                    .extend_from_slice(&ClientRecord::register(c, t).encode());
                Ok(())
            }
            (Negotiation::V6, ..) => Err(Unsendable::Ipv6OverVersion6),
            (Negotiation::V7(_), ..) => v7::encode_key(kind, client, target, &mut self.out)
                .map_err(|_| Unsendable::MixedFamilies),
        }
    }

    /// The next reply (its headers, and its payload when negotiated), if a whole one has
    /// arrived.
    pub fn poll_reply(&mut self) -> Result<Option<Received>, ProtoError> {
        let payloads = self.payloads();
        match self.state {
            Negotiation::Offered { .. } | Negotiation::Proving(_) => Ok(None),
            Negotiation::V6 => Ok(self.v6.next_record().map(|r| Received {
                headers: v6::response_headers(&r),
                payload: None,
            })),
            Negotiation::V7(_) => v7::next_reply(&mut self.inbox, payloads),
        }
    }
}

#[derive(Debug)]
enum Peer {
    /// Nothing read yet.
    New,
    /// Version 6; an offer may still come as the next record.
    V6 {
        offer_possible: bool,
    },
    V7,
}

/// What a tcpcopy asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The connection speaks version 7 from now on (the accept is queued for sending).
    Upgraded {
        caps: u32,
    },
    /// The peer proved the shared secret.
    Proven,
    Register(SocketAddr, SocketAddr),
    Deregister(SocketAddr, SocketAddr),
    /// A version-6 record of a type that means nothing here (the original logs and ignores it).
    Ignored(u16),
}

/// intercept's end of a control connection.
#[derive(Debug)]
pub struct InterceptEnd {
    peer: Peer,
    accept_v7: bool,
    nonce: [u8; 16],
    /// The secret a tcpcopy must prove before anything else (version 7 only).
    secret: Option<Secret>,
    /// Whether the peer has proven it (or none is required).
    proven: bool,
    inbox: Inbox,
    out: Vec<u8>,
}

impl InterceptEnd {
    /// A connection tcpcopy has just opened. With `accept_v7` false it answers no offer and
    /// speaks version 6 only, as the original does. `nonce` (random, fresh for every connection)
    /// goes out in the accept. With a `secret`, the peer must prove it before anything else:
    /// version 6, which cannot, is refused.
    pub fn new(accept_v7: bool, nonce: [u8; 16], secret: Option<Secret>) -> Self {
        Self {
            peer: Peer::New,
            accept_v7,
            nonce,
            proven: secret.is_none(),
            secret,
            inbox: Inbox::default(),
            out: Vec::new(),
        }
    }

    /// The connection's version, once the peer has said.
    pub fn version(&self) -> Option<u16> {
        match self.peer {
            Peer::New => None,
            Peer::V6 { .. } => Some(v6::VERSION),
            Peer::V7 => Some(v7::VERSION),
        }
    }

    /// Whether a secret is required and the peer has said version 6 but not yet offered 7: it
    /// has a moment to (its offer follows the version record at once), then it is refused.
    pub fn awaiting_offer(&self) -> bool {
        self.secret.is_some()
            && matches!(
                self.peer,
                Peer::V6 {
                    offer_possible: true
                }
            )
    }

    /// Bytes received from tcpcopy.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        self.inbox.feed(bytes);
    }

    /// Bytes to send, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// The next thing tcpcopy asked for, `Ok(None)` until more bytes arrive.
    pub fn poll_request(&mut self) -> Result<Option<Event>, ProtoError> {
        match self.peer {
            Peer::V7 => {
                let Some(r) = v7::next_request(&mut self.inbox)? else {
                    return Ok(None);
                };
                match (r, &self.secret, self.proven) {
                    (Request::Auth(proof), Some(secret), false) => {
                        if !secret.verify(&self.nonce, &proof) {
                            return Err(ProtoError::BadSecret);
                        }
                        self.proven = true;
                        v7::encode_proven(&mut self.out);
                        Ok(Some(Event::Proven))
                    }
                    (_, _, false) | (Request::Auth(_), _, true) => Err(ProtoError::BadSecret),
                    (Request::Register(c, t), _, true) => Ok(Some(Event::Register(c, t))),
                    (Request::Deregister(c, t), _, true) => Ok(Some(Event::Deregister(c, t))),
                }
            }
            Peer::New => {
                let Some(b) = self.inbox.take::<CLIENT_RECORD_LEN>() else {
                    return Ok(None);
                };
                let rec = ClientRecord::decode(&b);
                if rec.client.ip().is_unspecified() && rec.client.port() == 0 {
                    if rec.kind != v6::VERSION {
                        return Err(ProtoError::Version(rec.kind));
                    }
                    self.peer = Peer::V6 {
                        offer_possible: true,
                    };
                    self.poll_request()
                } else {
                    Err(ProtoError::NotVersionRecord(rec.kind))
                }
            }
            Peer::V6 { offer_possible } => {
                let Some(b) = self.inbox.take::<CLIENT_RECORD_LEN>() else {
                    return Ok(None);
                };
                self.peer = Peer::V6 {
                    offer_possible: false,
                };
                if offer_possible
                    && self.accept_v7
                    && let Some(theirs) = v7::parse_offer(&b)
                {
                    let caps = theirs & v7::ACCEPTED_CAPS;
                    let ours = v7::CAPS
                        | caps
                        | if self.secret.is_some() {
                            v7::CAP_SECRET
                        } else {
                            0
                        };
                    self.out.extend_from_slice(
                        &Accept {
                            caps: ours,
                            nonce: self.nonce,
                        }
                        .encode(),
                    );
                    self.peer = Peer::V7;
                    return Ok(Some(Event::Upgraded { caps }));
                }
                if !self.proven {
                    // Version 6 has no way to prove a secret.
                    return Err(ProtoError::BadSecret);
                }
                let rec = ClientRecord::decode(&b);
                let key = (rec.client.into(), rec.target.into());
                Ok(Some(match rec.kind {
                    v6::TYPE_REGISTER => Event::Register(key.0, key.1),
                    v6::TYPE_DELETE => Event::Deregister(key.0, key.1),
                    other => Event::Ignored(other),
                }))
            }
        }
    }

    /// Appends `replies` in this connection's version; see [`encode_replies`].
    pub fn encode_replies(&self, replies: &[Reply], batch: usize, out: &mut Vec<u8>) -> usize {
        encode_replies(self.version().unwrap_or(v6::VERSION), replies, batch, out)
    }
}

/// Appends `replies` for a connection of `version` (version 6: batches of up to `batch`
/// records). Returns how many could not be represented (IPv6 replies over version 6).
pub fn encode_replies(version: u16, replies: &[Reply], batch: usize, out: &mut Vec<u8>) -> usize {
    if version == v7::VERSION {
        for r in replies {
            v7::encode_reply(&r.headers, out);
        }
        return 0;
    }
    let records: Vec<_> = replies.iter().filter_map(v6::response_record).collect();
    for chunk in records.chunks(batch.max(1)) {
        v6::encode_batch(chunk, out);
    }
    replies.len() - records.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_response, reply::tests::reply};

    fn now() -> Instant {
        Instant::now()
    }

    /// Runs both ends against each other until neither has anything to say.
    fn pump(t: &mut TcpcopyEnd, i: &mut InterceptEnd) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            let mut moved = false;
            if let Some(b) = t.poll_transmit() {
                i.handle_input(&b);
                moved = true;
            }
            while let Some(e) = i.poll_request().unwrap() {
                events.push(e);
            }
            if let Some(b) = i.poll_transmit() {
                t.handle_input(&b).unwrap();
                moved = true;
            }
            if !moved {
                return events;
            }
        }
    }

    fn keys() -> [(SocketAddr, SocketAddr); 2] {
        [
            (
                "192.0.2.7:40000".parse().unwrap(),
                "198.51.100.30:80".parse().unwrap(),
            ),
            (
                "[2001:db8:2::7]:40000".parse().unwrap(),
                "[2001:db8:100::30]:80".parse().unwrap(),
            ),
        ]
    }

    #[test]
    fn two_version_7_ends_agree_on_7_and_carry_both_families() {
        let (mut t, mut i) = (
            TcpcopyEnd::new(now(), true, None),
            InterceptEnd::new(true, [3; 16], None),
        );
        assert_eq!(t.version(), None);
        assert_eq!(
            t.register(keys()[0].0, keys()[0].1),
            Err(Unsendable::NotNegotiated)
        );
        assert_eq!(
            pump(&mut t, &mut i),
            vec![Event::Upgraded { caps: v7::CAPS }]
        );
        assert_eq!((t.version(), i.version()), (Some(7), Some(7)));
        assert_eq!(t.peer_caps() & v7::CAP_DEREGISTER, v7::CAP_DEREGISTER);
        for (c, s) in keys() {
            t.register(c, s).unwrap();
            t.deregister(c, s).unwrap();
        }
        let events = pump(&mut t, &mut i);
        let [(c4, s4), (c6, s6)] = keys();
        assert_eq!(
            events,
            vec![
                Event::Register(c4, s4),
                Event::Deregister(c4, s4),
                Event::Register(c6, s6),
                Event::Deregister(c6, s6)
            ]
        );
        let replies = [
            encode_response(&reply(false, 0, 12, 5)).unwrap(),
            encode_response(&reply(true, 0, 40, 1448)).unwrap(),
        ];
        let mut wire = Vec::new();
        assert_eq!(i.encode_replies(&replies, 16, &mut wire), 0);
        for part in wire.chunks(3) {
            t.handle_input(part).unwrap();
        }
        assert_eq!(
            t.poll_reply().unwrap().map(|r| r.headers),
            Some(replies[0].headers)
        );
        assert_eq!(
            t.poll_reply().unwrap().map(|r| r.headers),
            Some(replies[1].headers)
        );
        assert_eq!(t.poll_reply().unwrap(), None);
        assert!(!t.payloads(), "not offered");
    }

    /// The original intercept: reads the version record, logs the offer as an unknown type and
    /// never answers it; its messages are version-6 batches.
    #[test]
    fn against_a_version_6_intercept_tcpcopy_settles_on_6() {
        let start = now();
        let mut t = TcpcopyEnd::new(start, true, None);
        let mut original = InterceptEnd::new(false, [0; 16], None);
        assert_eq!(pump(&mut t, &mut original), vec![Event::Ignored(7)]);
        assert_eq!(t.version(), None);
        assert_eq!(t.poll_timeout(), Some(start + OFFER_TIMEOUT));
        t.handle_timeout(start + OFFER_TIMEOUT / 2);
        assert_eq!(t.version(), None);
        t.handle_timeout(start + OFFER_TIMEOUT);
        assert_eq!(t.version(), Some(6));
        let [(c4, s4), (c6, s6)] = keys();
        t.register(c4, s4).unwrap();
        assert_eq!(t.register(c6, s6), Err(Unsendable::Ipv6OverVersion6));
        // Deregistration sends nothing over version 6.
        t.deregister(c4, s4).unwrap();
        let sent = t.poll_transmit().unwrap();
        assert_eq!(
            sent,
            ClientRecord::register(
                c4.to_string().parse().unwrap(),
                s4.to_string().parse().unwrap()
            )
            .encode()
        );
        original.handle_input(&sent);
        assert_eq!(
            original.poll_request().unwrap(),
            Some(Event::Register(c4, s4))
        );
        let mut wire = Vec::new();
        let reply4 = encode_response(&reply(false, 0, 12, 5)).unwrap();
        let reply6 = encode_response(&reply(true, 0, 12, 5)).unwrap();
        assert_eq!(original.encode_replies(&[reply4, reply6], 16, &mut wire), 1);
        t.handle_input(&wire).unwrap();
        let got = t.poll_reply().unwrap().unwrap();
        assert_eq!(got.headers.as_slice(), reply4.headers.as_slice());
        assert_eq!(got.payload, None);
    }

    /// A version-6 message arriving before the timeout settles it at once.
    #[test]
    fn a_version_6_batch_settles_the_offer_at_once() {
        let mut t = TcpcopyEnd::new(now(), true, None);
        let _ = t.poll_transmit();
        let rec = v6::response_record(&encode_response(&reply(false, 0, 0, 1)).unwrap()).unwrap();
        let mut wire = Vec::new();
        v6::encode_batch(&[rec], &mut wire);
        t.handle_input(&wire[..1]).unwrap();
        assert_eq!(t.version(), None);
        t.handle_input(&wire[1..]).unwrap();
        assert_eq!(t.version(), Some(6));
        assert!(t.poll_reply().unwrap().is_some());
    }

    /// The original tcpcopy: the version record, then registrations, never an offer; a
    /// version-7 intercept answers it in version 6.
    #[test]
    fn a_version_6_tcpcopy_is_served_in_version_6() {
        let mut i = InterceptEnd::new(true, [0; 16], None);
        let [(c4, s4), _] = keys();
        let (SocketAddr::V4(c), SocketAddr::V4(s)) = (c4, s4) else {
            unreachable!()
        };
        let mut wire = ClientRecord::version().encode().to_vec();
        wire.extend_from_slice(&ClientRecord::register(c, s).encode());
        i.handle_input(&wire);
        assert_eq!(i.poll_request().unwrap(), Some(Event::Register(c4, s4)));
        assert_eq!(i.poll_request().unwrap(), None);
        assert_eq!(i.version(), Some(6));
        assert!(
            i.poll_transmit().is_none(),
            "no accept for a peer that offered nothing"
        );
        // An offer later than the second record is no offer.
        i.handle_input(&v7::offer(v7::CAPS));
        assert_eq!(i.poll_request().unwrap(), Some(Event::Ignored(7)));
        let mut out = Vec::new();
        let r = encode_response(&reply(false, 0, 12, 5)).unwrap();
        assert_eq!(i.encode_replies(&[r; 3], 2, &mut out), 0);
        assert_eq!(out.len(), 2 * 2 + 3 * v6::RESPONSE_RECORD_LEN);
    }

    #[test]
    fn payloads_are_negotiated_only_when_offered() {
        let mut t = TcpcopyEnd::offering(now(), true, None, v7::CAPS | v7::CAP_PAYLOAD);
        let mut i = InterceptEnd::new(true, [3; 16], None);
        assert_eq!(
            pump(&mut t, &mut i),
            vec![Event::Upgraded {
                caps: v7::CAPS | v7::CAP_PAYLOAD
            }]
        );
        assert!(t.payloads());
        let p = reply(false, 0, 12, 5);
        let r = encode_response(&p).unwrap();
        let mut wire = Vec::new();
        assert!(v7::encode_reply_payload(
            &r.headers,
            &p[p.len() - 5..],
            &mut wire
        ));
        t.handle_input(&wire).unwrap();
        let got = t.poll_reply().unwrap().unwrap();
        assert_eq!(got.payload.as_deref(), Some(&p[p.len() - 5..]));
        // An intercept that does not know the capability does not grant it.
        let mut t = TcpcopyEnd::offering(now(), true, None, v7::CAPS | v7::CAP_PAYLOAD);
        let mut old = InterceptEnd::new(true, [3; 16], None);
        t.handle_input(&[]).unwrap();
        old.handle_input(&t.poll_transmit().unwrap());
        let _ = old.poll_request();
        let mut accept = old.poll_transmit().unwrap();
        accept[11] &= !u8::try_from(v7::CAP_PAYLOAD).unwrap();
        t.handle_input(&accept).unwrap();
        assert_eq!(t.version(), Some(7));
        assert!(!t.payloads());
    }

    #[test]
    fn a_stranger_is_refused_on_its_first_record() {
        let mut i = InterceptEnd::new(true, [0; 16], None);
        i.handle_input(b"GET / HTTP/1.1\r\n");
        assert!(matches!(
            i.poll_request(),
            Err(ProtoError::NotVersionRecord(_))
        ));
        let mut i = InterceptEnd::new(true, [0; 16], None);
        let mut v5 = ClientRecord::version().encode();
        v5[7] = 5;
        i.handle_input(&v5);
        assert_eq!(i.poll_request(), Err(ProtoError::Version(5)));
        let mut t = TcpcopyEnd::new(now(), true, None);
        let mut bad = Accept {
            caps: 0,
            nonce: [0; 16],
        }
        .encode();
        bad[2] = b'X';
        assert_eq!(t.handle_input(&bad), Err(ProtoError::BadAccept));
    }

    #[expect(clippy::unnecessary_wraps, reason = "the ends take an Option")]
    fn secret(b: &[u8]) -> Option<Secret> {
        Some(Secret::new(b).unwrap())
    }

    #[test]
    fn a_shared_secret_is_proven_before_any_registration() {
        let [(c4, s4), _] = keys();
        let key = b"a shared secret of the team";
        // The right secret: proven, then registrations.
        let mut t = TcpcopyEnd::new(now(), true, secret(key));
        let mut i = InterceptEnd::new(true, [7; 16], secret(key));
        assert_eq!(
            pump(&mut t, &mut i),
            vec![Event::Upgraded { caps: v7::CAPS }, Event::Proven]
        );
        t.register(c4, s4).unwrap();
        assert_eq!(pump(&mut t, &mut i), vec![Event::Register(c4, s4)]);
        // Another secret: refused; none at all: tcpcopy says what is missing.
        let mut t = TcpcopyEnd::new(now(), true, secret(b"another secret, not theirs"));
        let mut i = InterceptEnd::new(true, [7; 16], secret(key));
        i.handle_input(&t.poll_transmit().unwrap());
        assert!(matches!(i.poll_request(), Ok(Some(Event::Upgraded { .. }))));
        t.handle_input(&i.poll_transmit().unwrap()).unwrap();
        i.handle_input(&t.poll_transmit().unwrap());
        assert_eq!(i.poll_request(), Err(ProtoError::BadSecret));
        let mut t = TcpcopyEnd::new(now(), true, None);
        let mut i = InterceptEnd::new(true, [7; 16], secret(key));
        i.handle_input(&t.poll_transmit().unwrap());
        let _ = i.poll_request();
        assert_eq!(
            t.handle_input(&i.poll_transmit().unwrap()),
            Err(ProtoError::SecretRequired)
        );
        // A registration without the proof (a stranger who read the protocol) is refused.
        let mut i = InterceptEnd::new(true, [7; 16], secret(key));
        let mut wire = ClientRecord::version().encode().to_vec();
        wire.extend_from_slice(&v7::offer(v7::CAPS));
        v7::encode_key(v7::MSG_REGISTER, c4, s4, &mut wire).unwrap();
        i.handle_input(&wire);
        assert!(matches!(i.poll_request(), Ok(Some(Event::Upgraded { .. }))));
        assert_eq!(i.poll_request(), Err(ProtoError::BadSecret));
        // Version 6 cannot prove it: refused at its first registration.
        let (SocketAddr::V4(c), SocketAddr::V4(s)) = (c4, s4) else {
            unreachable!()
        };
        let mut i = InterceptEnd::new(true, [7; 16], secret(key));
        let mut wire = ClientRecord::version().encode().to_vec();
        wire.extend_from_slice(&ClientRecord::register(c, s).encode());
        i.handle_input(&wire);
        assert_eq!(i.poll_request(), Err(ProtoError::BadSecret));
    }
}
