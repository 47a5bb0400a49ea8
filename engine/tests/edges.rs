//! The engine driven by hand-made packets, grouped by the state of the replayed connection towards
//! the test server (RFC 793 names): packets that start no session, SYN-SENT, ESTABLISHED, the
//! states after the client's FIN (FIN-WAIT-1, FIN-WAIT-2, CLOSING, TIME-WAIT), the states after
//! the test server's FIN (CLOSE-WAIT, LAST-ACK), and damaged input.
//!
//! Every helper takes the time: [`capture`] hands in a captured client packet, [`reply`] a reply
//! of the test server, [`recv`] drains what the engine sends the test server and [`expect`]
//! compares it with the segments a test names (seq, ack, flags, payload).

use std::{fmt, net::SocketAddr, time::Duration};

use proptest::prelude::*;
use tcpcopy_engine::{
    Config, Engine, Event, LossReason, Mapping, Seq, Time,
    wire::{Payload, TcpFlags, build::Packet, parse},
};

const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const PSH: u8 = TcpFlags::PSH;
const RST: u8 = TcpFlags::RST;
const FIN: u8 = TcpFlags::FIN;

const CLIENT: &str = "198.51.100.10:5000";
const ONLINE: &str = "198.51.100.20:80";
const TARGET: &str = "198.51.100.30:80";
const MAP: &str = "80-198.51.100.30:80";

/// The captured client's initial sequence number (its SYN), as [`open`] sends it.
const ISN: u32 = 1000;
/// The test server's initial sequence number, as [`open`] answers.
const IRS: u32 = 7000;
/// The online server's initial sequence number + 1: the client's ack in its first request.
const ONLINE_ACK: u32 = 5001;

fn pkt(src: &str, dst: &str, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let p = Packet::tcp(src, dst)
        .seq(seq)
        .ack(ack)
        .flags(flags)
        .payload(payload);
    if flags & SYN != 0 { p.mss(1460) } else { p }.ip()
}

fn engine(cfg: Config) -> Engine {
    Engine::new(cfg).unwrap()
}

fn config(map: &str) -> Config {
    Config::new(vec![Mapping::parse(map).unwrap()])
}

fn drain(e: &mut Engine, now: Time) -> Vec<Vec<u8>> {
    drain_at_most(e, now, usize::MAX)
}

/// [`drain`], asserting that `poll_transmit` stops by itself within `most` packets.
fn drain_at_most(e: &mut Engine, now: Time, most: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0; 2048];
    while let Some(t) = e.poll_transmit(now, &mut buf) {
        assert!(
            out.len() < most,
            "poll_transmit still writing after {most} packets"
        );
        let packet = &buf[..t.size];
        // The transmit says where the packet goes, as the packet itself does.
        let p = parse(packet, Payload::Whole).expect("the engine writes whole packets");
        assert_eq!(t.source, SocketAddr::new(p.src, p.tcp.src_port));
        assert_eq!(t.destination, SocketAddr::new(p.dst, p.tcp.dst_port));
        out.push(packet.to_vec());
    }
    out
}

fn t(ms: u64) -> Time {
    Time::from_millis(ms)
}

/// A segment as the test server receives it.
#[derive(Clone, PartialEq, Eq)]
struct Seg {
    seq: u32,
    ack: u32,
    flags: u8,
    payload: Vec<u8>,
}

impl fmt::Debug for Seg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:?}] seq={} ack={} len={}",
            TcpFlags(self.flags),
            self.seq,
            self.ack,
            self.payload.len()
        )
    }
}

/// The segment `flags` at `seq` acknowledging `ack`, carrying `payload`.
fn seg(flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Seg {
    Seg {
        seq,
        ack,
        flags,
        payload: payload.to_vec(),
    }
}

/// A captured packet of the client of [`CLIENT`] to the online server, at `now`.
fn capture(e: &mut Engine, now: Time, flags: u8, seq: u32, ack: u32, payload: &[u8]) {
    e.handle_captured(now, &pkt(CLIENT, ONLINE, seq, ack, flags, payload));
}

/// A reply of the test server to the replayed client (copy 0 keeps the captured tuple), at `now`.
fn reply(e: &mut Engine, now: Time, flags: u8, seq: u32, ack: u32, payload: &[u8]) {
    e.handle_response(now, &pkt(TARGET, CLIENT, seq, ack, flags, payload));
}

/// Everything the engine sends the test server at `now`.
fn recv(e: &mut Engine, now: Time) -> Vec<Seg> {
    recv_at_most(e, now, usize::MAX)
}

/// [`recv`], asserting that `poll_transmit` stops by itself within `most` packets.
fn recv_at_most(e: &mut Engine, now: Time, most: usize) -> Vec<Seg> {
    drain_at_most(e, now, most)
        .iter()
        .map(|p| {
            let p = parse(p, Payload::Whole).unwrap();
            Seg {
                seq: p.tcp.seq.raw(),
                ack: p.tcp.ack.raw(),
                flags: p.tcp.flags.0,
                payload: p.tcp.payload.to_vec(),
            }
        })
        .collect()
}

/// The engine sends exactly `expected` at `now`.
#[track_caller]
fn expect(e: &mut Engine, now: Time, expected: &[Seg]) {
    assert_eq!(recv(e, now), expected, "at {now:?}; {}", e.stats());
}

/// Opens a session: captured SYN, the client's ACK of online's SYN-ACK (the handshake done at
/// online) and the test server's SYN-ACK, acknowledged at once; returns the test server's ISN.
fn open(e: &mut Engine, client: &str, now: Time) -> u32 {
    e.handle_captured(now, &pkt(client, ONLINE, ISN, 0, SYN, b""));
    let out = drain(e, now);
    let syn = parse(&out[0], Payload::Whole).unwrap();
    assert!(syn.tcp.flags.syn());
    let src = SocketAddr::new(syn.src, syn.tcp.src_port).to_string();
    e.handle_captured(now, &pkt(client, ONLINE, ISN + 1, ONLINE_ACK, ACK, b""));
    e.handle_response(now, &pkt(TARGET, &src, IRS, ISN + 1, SYN | ACK, b""));
    let out = drain(e, now);
    assert!(
        parse(&out[0], Payload::Whole).unwrap().tcp.flags.ack(),
        "handshake ACK"
    );
    IRS
}

/// A buffer shorter than the MTU gets nothing and never makes `poll_transmit` loop; the packet
/// waits for a buffer that holds it.
#[test]
fn a_buffer_shorter_than_the_mtu_takes_nothing() {
    let mut e = engine(config(MAP));
    e.handle_captured(t(0), &pkt(CLIENT, ONLINE, ISN, 0, SYN, b""));
    let mut small = vec![0u8; 100];
    assert!(e.poll_transmit(t(0), &mut small).is_none());
    let out = drain(&mut e, t(0));
    assert_eq!(
        out.len(),
        1,
        "the SYN waited for a buffer that holds the MTU"
    );
    assert!(parse(&out[0], Payload::Whole).unwrap().tcp.flags.syn());
}

/// No session yet: what starts one, and what is counted instead.
mod no_session {
    use super::*;

    #[test]
    fn unmapped_and_orphan_packets_are_counted() {
        let mut e = engine(config(MAP));
        e.handle_captured(t(0), &pkt(CLIENT, "198.51.100.20:443", 1, 0, SYN, b""));
        e.handle_captured(t(0), &pkt(CLIENT, ONLINE, 1, 1, ACK, b""));
        e.handle_response(t(0), &pkt(TARGET, CLIENT, 1, 1, ACK, b""));
        let st = e.stats();
        assert_eq!(
            (
                st.captured_unmapped,
                st.captured_orphan,
                st.responses_unknown
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn ramp_starts_at_one_percent() {
        let mut cfg = config(MAP);
        cfg.ramp = true;
        let mut e = engine(cfg);
        for p in 0..2000u16 {
            let client = format!("198.51.100.10:{}", 10_000 + p);
            e.handle_captured(t(0), &pkt(&client, ONLINE, 1000, 0, SYN, b""));
        }
        let early = e.stats().sessions_started;
        assert!(early < 60, "about 1% at first: {early}");
        for p in 0..2000u16 {
            let client = format!("198.51.100.11:{}", 10_000 + p);
            e.handle_captured(t(49_000), &pkt(&client, ONLINE, 1000, 0, SYN, b""));
        }
        let later = e.stats().sessions_started - early;
        assert!(
            (850..=1150).contains(&later),
            "about 50% after 49 s: {later}"
        );
    }
}

/// SYN-SENT: our SYN is out, the test server has not answered it yet.
mod syn_sent {
    use super::*;

    #[test]
    fn ipv6_sessions_are_replayed_as_ipv6() {
        let mut e = engine(config("80-[2001:db8::30]:80"));
        e.handle_captured(
            t(0),
            &pkt("[2001:db8::10]:5000", "[2001:db8::20]:80", 42, 0, SYN, b""),
        );
        e.handle_captured(
            t(0),
            &pkt("[2001:db8::10]:5000", "[2001:db8::20]:80", 43, 1, ACK, b""),
        );
        assert_eq!(
            e.poll_event(),
            Some(Event::Register {
                client: "[2001:db8::10]:5000".parse().unwrap(),
                target: "[2001:db8::30]:80".parse().unwrap()
            })
        );
        let out = drain(&mut e, t(0));
        let syn = parse(&out[0], Payload::Whole).unwrap();
        assert_eq!(syn.dst, "2001:db8::30".parse::<std::net::IpAddr>().unwrap());
        assert_eq!(syn.tcp.seq, Seq::new(42));
        assert!(syn.tcp.flags.syn());
    }

    #[test]
    fn instances_take_their_own_ports() {
        let mut cfg = config(MAP);
        cfg.instance = Some(3);
        cfg.copies = 4;
        let mut e = engine(cfg);
        e.handle_captured(t(0), &pkt(CLIENT, ONLINE, 1000, 0, SYN, b""));
        let syns = drain(&mut e, t(0));
        assert_eq!(syns.len(), 4);
        for s in syns {
            assert_eq!(parse(&s, Payload::Whole).unwrap().tcp.src_port % 16, 3);
        }
    }

    #[test]
    fn handshake_timeout_after_three_seconds() {
        let mut cfg = config(MAP);
        cfg.restart_window = Duration::ZERO;
        let mut e = engine(cfg);
        e.handle_captured(t(0), &pkt(CLIENT, ONLINE, 1000, 0, SYN, b""));
        // The client completed its handshake with online (else the SYN would not go again).
        capture(&mut e, t(0), ACK, 1001, ONLINE_ACK, b"");
        let mut now = t(0);
        let mut syns = 0;
        while e.session_count() > 0 {
            syns += drain(&mut e, now).len();
            now = e.poll_timeout().unwrap();
            e.handle_timeout(now);
        }
        assert!(syns >= 2, "the SYN was retransmitted");
        assert_eq!(e.stats().lost.get(LossReason::HandshakeTimeout), 1);
        assert!(now >= t(3000) && now < t(3100), "{now:?}");
    }

    #[test]
    fn the_syn_is_retransmitted_after_one_second() {
        let mut e = engine(config(MAP));
        capture(&mut e, t(0), SYN, ISN, 0, b"");
        capture(&mut e, t(0), ACK, ISN + 1, ONLINE_ACK, b"");
        assert_eq!(recv(&mut e, t(0)).len(), 1);
        e.handle_timeout(t(999));
        expect(&mut e, t(999), &[]);
        e.handle_timeout(t(1000));
        let again = recv(&mut e, t(1000));
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].flags, again[0].seq), (SYN, ISN));
        assert_eq!(e.stats().retransmits, 1);
    }

    #[test]
    fn an_ack_to_our_syn_for_an_older_connection_is_reset_and_the_syn_resent() {
        let mut e = engine(config(MAP));
        e.handle_captured(t(0), &pkt(CLIENT, ONLINE, 1000, 0, SYN, b""));
        drain(&mut e, t(0));
        // The client completed its handshake with online.
        capture(&mut e, t(0), ACK, 1001, ONLINE_ACK, b"");
        // The test server still holds an older connection on this 4-tuple: it answers with an ACK.
        e.handle_response(t(1), &pkt(TARGET, CLIENT, 5555, 777_777, ACK, b""));
        let out = drain(&mut e, t(1));
        let rst = parse(&out[0], Payload::Whole).unwrap();
        assert!(rst.tcp.flags.rst() && !rst.tcp.flags.ack());
        assert_eq!(
            rst.tcp.seq,
            Seq::new(777_777),
            "RST at the sequence number the ACK expects"
        );
        let syn = parse(&out[1], Payload::Whole).unwrap();
        assert!(syn.tcp.flags.syn());
        assert_eq!(syn.tcp.seq, Seq::new(1000));
        e.handle_response(t(2), &pkt(TARGET, CLIENT, 9000, 1001, SYN | ACK, b""));
        assert!(
            parse(&drain(&mut e, t(2))[0], Payload::Whole)
                .unwrap()
                .tcp
                .flags
                .ack(),
            "established"
        );
    }

    /// Within the restart window an unanswered SYN goes on being sent (the test server may be
    /// down for a restart); after it, the handshake timeout ends the session.
    #[test]
    fn unanswered_syns_go_on_for_the_restart_window() {
        let mut e = engine(config(MAP));
        e.handle_captured(t(0), &pkt(CLIENT, ONLINE, 1000, 0, SYN, b""));
        capture(&mut e, t(0), ACK, 1001, ONLINE_ACK, b"");
        let mut now = t(0);
        while e.session_count() > 0 {
            drain(&mut e, now);
            now = e.poll_timeout().unwrap();
            e.handle_timeout(now);
        }
        assert_eq!(e.stats().lost.get(LossReason::HandshakeTimeout), 1);
        assert!(now >= t(30_000) && now <= t(33_000), "{now:?}");
        assert!(e.stats().syn_retries >= 9, "{}", e.stats());
    }

    /// A test server restarting refuses SYNs (nothing listens): each refusal is retried with
    /// backoff (100 ms, 200 ms, ...), and once it listens again the session goes on.
    #[test]
    fn refused_syns_are_retried_until_the_test_server_listens_again() {
        let mut e = engine(config(MAP));
        capture(&mut e, t(0), SYN, ISN, 0, b"");
        capture(&mut e, t(1), ACK | PSH, ISN + 1, ONLINE_ACK, b"GET /\n");
        expect(&mut e, t(1), &[seg(SYN, ISN, 0, b"")]);
        reply(&mut e, t(2), RST | ACK, 0, ISN + 1, b"");
        expect(&mut e, t(2), &[]);
        assert_eq!(e.poll_timeout(), Some(t(102)));
        e.handle_timeout(t(102));
        expect(&mut e, t(102), &[seg(SYN, ISN, 0, b"")]);
        reply(&mut e, t(103), RST | ACK, 0, ISN + 1, b"");
        assert_eq!(e.poll_timeout(), Some(t(303)), "the wait doubles");
        e.handle_timeout(t(303));
        expect(&mut e, t(303), &[seg(SYN, ISN, 0, b"")]);
        reply(&mut e, t(304), SYN | ACK, IRS, ISN + 1, b"");
        expect(
            &mut e,
            t(304),
            &[seg(ACK | PSH, ISN + 1, IRS + 1, b"GET /\n")],
        );
        assert_eq!(e.stats().syn_retries, 2);
        assert_eq!(e.stats().lost.total(), 0);
    }

    #[test]
    fn a_reset_must_acknowledge_our_syn() {
        let mut cfg = config(MAP);
        cfg.restart_window = Duration::ZERO;
        let mut e = engine(cfg);
        e.handle_captured(t(0), &pkt(CLIENT, ONLINE, 1000, 0, SYN, b""));
        drain(&mut e, t(0));
        e.handle_response(t(1), &pkt(TARGET, CLIENT, 0, 4242, RST | ACK, b""));
        assert_eq!(e.session_count(), 1);
        e.handle_response(t(1), &pkt(TARGET, CLIENT, 0, 1001, RST | ACK, b""));
        assert_eq!(e.stats().lost.get(LossReason::Refused), 1);
    }

    #[test]
    fn buffer_limit_and_memory_cap_end_sessions_with_reasons() {
        let mut cfg = config(MAP);
        cfg.session_buffer_limit = 1000;
        cfg.memory_limit = 1500;
        let mut e = engine(cfg);
        // No SYN-ACK ever: captured bytes pile up.
        e.handle_captured(t(0), &pkt(CLIENT, ONLINE, 1000, 0, SYN, b""));
        e.handle_captured(t(0), &pkt(CLIENT, ONLINE, 1001, 1, ACK, &[b'x'; 800]));
        e.handle_captured(t(0), &pkt("198.51.100.11:6000", ONLINE, 1000, 0, SYN, b""));
        e.handle_captured(
            t(0),
            &pkt("198.51.100.11:6000", ONLINE, 1001, 1, ACK, &[b'y'; 800]),
        );
        assert_eq!(
            e.stats().lost.get(LossReason::MemoryCap),
            1,
            "{}",
            e.stats()
        );
        e.handle_captured(t(0), &pkt(CLIENT, ONLINE, 1801, 1, ACK, &[b'x'; 300]));
        assert_eq!(
            e.stats().lost.get(LossReason::BufferLimit),
            1,
            "{}",
            e.stats()
        );
        assert_eq!(e.memory(), 0);
    }
}

/// The handshake's ACK: the test server's SYN-ACK is acknowledged only once the captured client
/// has acknowledged online's (its pure ACK, or data or a FIN when that ACK was not captured). A
/// client that never does (a SYN flood's) leaves a half-open connection at the test server, as
/// at online, which the idle timeout ends with a RST.
mod handshake {
    use super::*;

    /// Everything the engine sends at `now`, asserting that `poll_transmit` stops by itself
    /// (a few calls, never a loop).
    fn recv_bounded(e: &mut Engine, now: Time) -> Vec<Seg> {
        recv_at_most(e, now, 16)
    }

    /// Captured SYN, our SYN out, the test server's SYN-ACK in (before the client's ACK).
    fn syn_acked_by_the_test_server(e: &mut Engine) {
        capture(e, t(0), SYN, ISN, 0, b"");
        assert_eq!(recv_bounded(e, t(0)), [seg(SYN, ISN, 0, b"")]);
        reply(e, t(1), SYN | ACK, IRS, ISN + 1, b"");
    }

    #[test]
    fn the_syn_ack_waits_for_the_clients_ack() {
        let mut e = engine(config(MAP));
        syn_acked_by_the_test_server(&mut e);
        assert_eq!(recv_bounded(&mut e, t(1)), [], "not acknowledged yet");
        // The test server's retransmitted SYN-ACK is not acknowledged either.
        reply(&mut e, t(1001), SYN | ACK, IRS, ISN + 1, b"");
        assert_eq!(recv_bounded(&mut e, t(1001)), []);
        e.handle_timeout(t(1500));
        assert_eq!(recv_bounded(&mut e, t(1500)), []);
        // The client acknowledges online's SYN-ACK: the handshake's ACK goes, once.
        capture(&mut e, t(1600), ACK, ISN + 1, ONLINE_ACK, b"");
        assert_eq!(
            recv_bounded(&mut e, t(1600)),
            [seg(ACK, ISN + 1, IRS + 1, b"")]
        );
        capture(&mut e, t(1601), ACK, ISN + 1, ONLINE_ACK, b"");
        assert_eq!(
            recv_bounded(&mut e, t(1601)),
            [],
            "a later pure ACK adds nothing"
        );
        // The session goes on as any other: its request, and the close.
        capture(&mut e, t(1602), ACK | PSH, ISN + 1, ONLINE_ACK, b"GET /\n");
        expect(
            &mut e,
            t(1602),
            &[seg(ACK | PSH, ISN + 1, IRS + 1, b"GET /\n")],
        );
        assert_eq!(e.stats().half_open, 0);
    }

    #[test]
    fn a_client_ack_captured_first_lets_the_syn_ack_be_acknowledged_at_once() {
        let mut e = engine(config(MAP));
        capture(&mut e, t(0), SYN, ISN, 0, b"");
        capture(&mut e, t(0), ACK, ISN + 1, ONLINE_ACK, b"");
        assert_eq!(recv_bounded(&mut e, t(0)), [seg(SYN, ISN, 0, b"")]);
        reply(&mut e, t(1), SYN | ACK, IRS, ISN + 1, b"");
        assert_eq!(
            recv_bounded(&mut e, t(1)),
            [seg(ACK, ISN + 1, IRS + 1, b"")]
        );
    }

    /// The client's pure ACK was not captured (or copied): its first data, or its FIN, completes
    /// the handshake, the data or FIN segment carrying the acknowledgement.
    #[test]
    fn data_or_a_fin_before_any_ack_completes_the_handshake() {
        let mut e = engine(config(MAP));
        syn_acked_by_the_test_server(&mut e);
        assert_eq!(recv_bounded(&mut e, t(1)), []);
        capture(&mut e, t(2), ACK | PSH, ISN + 1, ONLINE_ACK, b"GET /\n");
        assert_eq!(
            recv_bounded(&mut e, t(2)),
            [seg(ACK | PSH, ISN + 1, IRS + 1, b"GET /\n")]
        );

        let mut e = engine(config(MAP));
        syn_acked_by_the_test_server(&mut e);
        assert_eq!(recv_bounded(&mut e, t(1)), []);
        capture(&mut e, t(2), ACK | FIN, ISN + 1, ONLINE_ACK, b"");
        assert_eq!(
            recv_bounded(&mut e, t(2)),
            [seg(ACK | FIN, ISN + 1, IRS + 1, b"")]
        );
        assert_eq!(e.stats().half_open, 0);
    }

    /// A client that never completes its handshake: the session ends at `-k` counted from its
    /// SYN (the test server's SYN-ACK retransmissions do not keep it alive), completed (it
    /// replayed all the client did) and counted as half-open, and the test server's half-open
    /// connection is reset; nothing but the SYN and that RST ever went out.
    #[test]
    fn a_handshake_the_client_never_completes_ends_at_the_idle_timeout_with_a_reset() {
        let mut cfg = config(MAP);
        cfg.keepalive_timeout = Some(Duration::from_secs(5));
        let mut e = engine(cfg);
        syn_acked_by_the_test_server(&mut e);
        let mut sent = recv_bounded(&mut e, t(1));
        for at in [1001, 3001] {
            reply(&mut e, t(at), SYN | ACK, IRS, ISN + 1, b"");
            sent.extend(recv_bounded(&mut e, t(at)));
        }
        let mut now = t(3001);
        while e.session_count() > 0 {
            now = e.poll_timeout().expect("a timer while the session lives");
            assert!(now <= t(5000), "ends at -k after the SYN: {now:?}");
            e.handle_timeout(now);
            sent.extend(recv_bounded(&mut e, now));
        }
        assert_eq!(now, t(5000));
        assert_eq!(sent, [seg(RST | ACK, ISN + 1, IRS + 1, b"")]);
        let st = e.stats();
        assert_eq!(
            (st.sessions_completed, st.lost.total(), st.half_open),
            (1, 0, 1),
            "{st}"
        );
        assert!(st.to_string().contains(" half_open=1"), "{st}");
    }

    /// A SYN the test server does not answer, whose client never completes its handshake
    /// either (in the live replay the session is not registered, so its SYN-ACK stays at
    /// intercept): the SYN goes once (the flood sent it once; no retransmission, no retry in
    /// the restart window), and the handshake timeout ends the session with a RST that cleans a
    /// half-open connection the test server may hold: completed (the client did nothing more),
    /// counted as half-open.
    #[test]
    fn an_unanswered_half_open_syn_goes_once_and_ends_at_the_handshake_timeout() {
        let mut e = engine(config(MAP));
        capture(&mut e, t(0), SYN, ISN, 0, b"");
        let mut now = t(0);
        let mut sent = Vec::new();
        while e.session_count() > 0 {
            sent.extend(recv_bounded(&mut e, now));
            now = e.poll_timeout().unwrap();
            e.handle_timeout(now);
        }
        sent.extend(recv_bounded(&mut e, now));
        assert_eq!(sent, [seg(SYN, ISN, 0, b""), seg(RST, ISN + 1, 0, b"")]);
        assert_eq!(
            now,
            t(3000),
            "the handshake timeout, not the 30 s restart window"
        );
        let st = e.stats();
        assert_eq!(
            (st.sessions_completed, st.lost.total(), st.half_open),
            (1, 0, 1),
            "{st}"
        );
    }

    /// A client that completes its handshake after its half-open session ended (online's SYN-ACK
    /// lost until then): its data starts a session of its own (faked SYN), not ignored as the
    /// late packets of an ended replay are.
    #[test]
    fn data_after_a_half_open_session_ended_starts_a_new_one() {
        let mut e = engine(config(MAP));
        capture(&mut e, t(0), SYN, ISN, 0, b"");
        let _ = recv_bounded(&mut e, t(0));
        e.handle_timeout(t(3000));
        let _ = recv_bounded(&mut e, t(3000));
        assert_eq!((e.session_count(), e.stats().half_open), (0, 1));
        capture(&mut e, t(3500), ACK, ISN + 1, ONLINE_ACK, b"");
        assert_eq!(e.stats().captured_orphan, 1, "a lone ACK starts nothing");
        capture(&mut e, t(3501), ACK | PSH, ISN + 1, ONLINE_ACK, b"GET /\n");
        assert_eq!(
            recv_bounded(&mut e, t(3501)),
            [seg(SYN, ISN, 0, b"")],
            "the faked SYN"
        );
        reply(&mut e, t(3502), SYN | ACK, IRS, ISN + 1, b"");
        assert_eq!(
            recv_bounded(&mut e, t(3502)),
            [seg(ACK | PSH, ISN + 1, IRS + 1, b"GET /\n")]
        );
        assert_eq!(e.stats().sessions_faked_syn, 1);
    }

    /// The test server's replies are asked for (`Event::Register`) once the client has completed
    /// its handshake with online, not for its SYN alone: a SYN flood costs intercept no route.
    #[test]
    fn a_session_is_registered_once_its_client_acks() {
        let mut e = engine(config(MAP));
        capture(&mut e, t(0), SYN, ISN, 0, b"");
        assert_eq!(recv_bounded(&mut e, t(0)), [seg(SYN, ISN, 0, b"")]);
        assert_eq!(e.poll_event(), None, "not for the SYN alone");
        capture(&mut e, t(1), ACK, ISN + 1, ONLINE_ACK, b"");
        assert_eq!(
            e.poll_event(),
            Some(Event::Register {
                client: CLIENT.parse().unwrap(),
                target: TARGET.parse().unwrap()
            })
        );
        capture(&mut e, t(2), ACK | PSH, ISN + 1, ONLINE_ACK, b"GET /\n");
        assert_eq!(e.poll_event(), None, "once");
        // A session started mid-stream (faked SYN) is registered at once.
        let other = "198.51.100.11:6000";
        e.handle_captured(t(3), &pkt(other, ONLINE, 77, 1, ACK | PSH, b"GET /\n"));
        assert!(matches!(
            e.poll_event(),
            Some(Event::Register { client, .. }) if client == other.parse().unwrap()
        ));
    }

    /// The retransmission the first SYN is owed waits for the client's ACK, and goes with it.
    #[test]
    fn a_syn_retransmission_waits_for_the_clients_ack() {
        let mut e = engine(config(MAP));
        capture(&mut e, t(0), SYN, ISN, 0, b"");
        assert_eq!(recv_bounded(&mut e, t(0)), [seg(SYN, ISN, 0, b"")]);
        e.handle_timeout(t(1000));
        assert_eq!(recv_bounded(&mut e, t(1000)), [], "not without the client");
        capture(&mut e, t(1500), ACK, ISN + 1, ONLINE_ACK, b"");
        assert_eq!(recv_bounded(&mut e, t(1500)), [seg(SYN, ISN, 0, b"")]);
        assert_eq!(e.stats().retransmits, 1);
        reply(&mut e, t(1501), SYN | ACK, IRS, ISN + 1, b"");
        assert_eq!(
            recv_bounded(&mut e, t(1501)),
            [seg(ACK, ISN + 1, IRS + 1, b"")]
        );
    }

    /// The test server refuses the SYN (it is restarting) before the client's ACK is captured:
    /// the retry waits for that ACK, then goes on within the restart window as for any client.
    #[test]
    fn a_refusal_before_the_clients_ack_is_retried_once_it_comes() {
        let mut e = engine(config(MAP));
        capture(&mut e, t(0), SYN, ISN, 0, b"");
        assert_eq!(recv_bounded(&mut e, t(0)), [seg(SYN, ISN, 0, b"")]);
        reply(&mut e, t(1), RST | ACK, 0, ISN + 1, b"");
        e.handle_timeout(t(101));
        assert_eq!(recv_bounded(&mut e, t(101)), []);
        capture(&mut e, t(102), ACK, ISN + 1, ONLINE_ACK, b"");
        assert_eq!(recv_bounded(&mut e, t(102)), [seg(SYN, ISN, 0, b"")]);
        // Refused again after the handshake timeout: within the restart window now.
        reply(&mut e, t(4000), RST | ACK, 0, ISN + 1, b"");
        assert_eq!(e.session_count(), 1);
        assert_eq!(e.stats().lost.total(), 0);
        assert_eq!(e.stats().syn_retries, 2);
    }

    /// A spoofed client's host answers online's SYN-ACK with a RST: the replay resets the test
    /// server's half-open connection at once.
    #[test]
    fn a_client_reset_instead_of_an_ack_resets_the_half_open_connection() {
        let mut e = engine(config(MAP));
        syn_acked_by_the_test_server(&mut e);
        assert_eq!(recv_bounded(&mut e, t(1)), []);
        capture(&mut e, t(2), RST, ISN + 1, 0, b"");
        assert_eq!(
            recv_bounded(&mut e, t(2)),
            [seg(RST | ACK, ISN + 1, IRS + 1, b"")]
        );
        assert_eq!(e.session_count(), 0);
        assert_eq!(e.stats().half_open, 1);
    }
}

/// ESTABLISHED: requests go out, paced by the test server's answers.
mod established {
    use super::*;

    #[test]
    fn acks_are_rewritten_into_the_test_servers_sequence_space() {
        let mut e = engine(config(MAP));
        let irs = open(&mut e, CLIENT, t(0));
        // The client's request carries the online server's ack (5001); it goes out with the test
        // server's (irs + 1) and the client's own sequence number.
        e.handle_captured(
            t(1),
            &pkt(CLIENT, ONLINE, 1001, 5001, ACK | PSH, b"GET /\n"),
        );
        let out = drain(&mut e, t(1));
        let data = parse(&out[0], Payload::Whole).unwrap();
        assert_eq!(data.tcp.seq, Seq::new(1001));
        assert_eq!(data.tcp.ack, Seq::new(irs + 1));
        assert_eq!(data.tcp.payload, b"GET /\n");
        assert_eq!(
            data.dst,
            "198.51.100.30".parse::<std::net::IpAddr>().unwrap()
        );
    }

    /// The test server resets the connection before it acknowledged the request going out (it
    /// restarted): the request never reached it, so a new connection on the same address and port
    /// sends it again, counted as a rebuild. The same when it acknowledged the request but closed
    /// without answering it (a graceful stop closes the connections whose request it has not read
    /// yet).
    #[test]
    fn a_reset_before_the_request_was_acknowledged_sends_it_again() {
        let mut e = engine(config(MAP));
        open(&mut e, CLIENT, t(0));
        capture(&mut e, t(1), ACK | PSH, ISN + 1, ONLINE_ACK, b"GET /\n");
        drain(&mut e, t(1));
        reply(&mut e, t(2), RST | ACK, IRS + 1, ISN + 1, b"");
        assert_eq!(e.stats().rebuilds, 1);
        expect(&mut e, t(2), &[seg(SYN, ISN, 0, b"")]);
        reply(&mut e, t(3), SYN | ACK, 9000, ISN + 1, b"");
        expect(&mut e, t(3), &[seg(ACK | PSH, ISN + 1, 9001, b"GET /\n")]);
        assert_eq!(e.stats().lost.total(), 0);
    }

    /// A reset after the test server answered the request (it acted on it): the request is not
    /// sent twice; a new connection takes what the client sends next.
    #[test]
    fn a_reset_after_the_request_was_answered_goes_on_from_the_next_one() {
        let mut e = engine(config(MAP));
        open(&mut e, CLIENT, t(0));
        capture(&mut e, t(1), ACK | PSH, ISN + 1, ONLINE_ACK, b"GET /\n");
        drain(&mut e, t(1));
        reply(&mut e, t(2), ACK | PSH, IRS + 1, ISN + 7, b"ok\n");
        drain(&mut e, t(2));
        reply(&mut e, t(3), RST | ACK, IRS + 4, ISN + 7, b"");
        // Between requests: the next connection waits for the client's next request.
        expect(&mut e, t(3), &[]);
        capture(
            &mut e,
            t(4),
            ACK | PSH,
            ISN + 7,
            ONLINE_ACK + 100,
            b"GET /2\n",
        );
        expect(&mut e, t(4), &[seg(SYN, ISN + 6, 0, b"")]);
        reply(&mut e, t(5), SYN | ACK, 9000, ISN + 7, b"");
        expect(&mut e, t(5), &[seg(ACK | PSH, ISN + 7, 9001, b"GET /2\n")]);
        assert_eq!(e.stats().rebuilds, 1);
        assert_eq!(e.stats().lost.total(), 0);
    }

    /// A reset after the client closed: nothing more to deliver on a new connection; the session
    /// is lost with its reason, and later packets of that connection start nothing.
    #[test]
    fn reset_by_the_test_server_after_the_clients_close_is_a_loss_with_its_reason() {
        let mut e = engine(config(MAP));
        open(&mut e, CLIENT, t(0));
        e.handle_captured(
            t(1),
            &pkt(CLIENT, ONLINE, 1001, 5001, ACK | PSH | FIN, b"GET /\n"),
        );
        drain(&mut e, t(1));
        // The request is acknowledged and answered, the client's FIN not, when the reset comes.
        e.handle_response(t(2), &pkt(TARGET, CLIENT, 7001, 1007, ACK | PSH, b"ok\n"));
        drain(&mut e, t(2));
        e.handle_response(t(2), &pkt(TARGET, CLIENT, 7004, 1007, RST | ACK, b""));
        assert_eq!(e.stats().lost.get(LossReason::ResetByTarget), 1);
        assert_eq!(e.session_count(), 0);
        e.handle_captured(
            t(3),
            &pkt(CLIENT, ONLINE, 1007, 5101, ACK | PSH, b"GET /2\n"),
        );
        assert_eq!(e.stats().sessions_started, 1);
    }

    /// The test server closes a keep-alive connection (its request limit) and the client sends
    /// another request: the old connection is reset, a new one carries the request.
    #[test]
    fn a_close_by_the_test_server_before_the_next_request_rebuilds_the_connection() {
        let mut e = engine(config(MAP));
        open(&mut e, CLIENT, t(0));
        capture(&mut e, t(1), ACK | PSH, ISN + 1, ONLINE_ACK, b"GET /\n");
        drain(&mut e, t(1));
        // The answer, then the test server's FIN.
        reply(&mut e, t(2), ACK | PSH, IRS + 1, ISN + 7, b"ok\n");
        reply(&mut e, t(2), ACK | FIN, IRS + 4, ISN + 7, b"");
        expect(&mut e, t(2), &[seg(ACK, ISN + 7, IRS + 5, b"")]);
        // online had answered 3 bytes: the client's next request acks them.
        capture(
            &mut e,
            t(3),
            ACK | PSH,
            ISN + 7,
            ONLINE_ACK + 3,
            b"GET /2\n",
        );
        expect(
            &mut e,
            t(3),
            &[seg(RST, ISN + 7, 0, b""), seg(SYN, ISN + 6, 0, b"")],
        );
        reply(&mut e, t(4), SYN | ACK, 9000, ISN + 7, b"");
        expect(&mut e, t(4), &[seg(ACK | PSH, ISN + 7, 9001, b"GET /2\n")]);
        assert_eq!(e.stats().rebuilds, 1);
        assert_eq!(e.stats().lost.total(), 0);
    }

    #[test]
    fn a_reused_port_starts_a_new_session_and_the_old_one_still_delivers() {
        let mut e = engine(config(MAP));
        let irs = open(&mut e, CLIENT, t(0));
        e.handle_captured(
            t(1),
            &pkt(CLIENT, ONLINE, 1001, 5001, ACK | PSH, b"GET /\n"),
        );
        drain(&mut e, t(1));
        // Online closed first, so the client reuses its port at once while the replay of the
        // first connection is still waiting for the test server.
        e.handle_captured(t(2), &pkt(CLIENT, ONLINE, 900_000, 0, SYN, b""));
        assert_eq!(e.stats().sessions_started, 2);
        assert_eq!(e.stats().lost.total(), 0);
        let out = drain(&mut e, t(2));
        let syn = out
            .iter()
            .map(|p| parse(p, Payload::Whole).unwrap())
            .find(|p| p.tcp.seq == Seq::new(900_000))
            .expect("the new connection's SYN");
        assert!(syn.tcp.flags.syn());
        assert_ne!(
            syn.tcp.src_port, 5000,
            "the old replay still holds the client's tuple"
        );
        assert!(
            out.iter()
                .all(|p| !parse(p, Payload::Whole).unwrap().tcp.flags.rst()),
            "the old one is not cut off"
        );
        // The test server acknowledges the old request: that replay is complete and resets.
        e.handle_response(t(3), &pkt(TARGET, CLIENT, irs + 1, 1007, ACK, b""));
        let out = drain(&mut e, t(3));
        assert!(
            out.iter()
                .any(|p| parse(p, Payload::Whole).unwrap().tcp.flags.rst())
        );
        assert_eq!(e.stats().sessions_completed, 1);
        assert_eq!(e.session_count(), 1, "the new one goes on");
    }

    #[test]
    fn idle_sessions_with_undelivered_bytes_time_out() {
        let mut cfg = config(MAP);
        cfg.idle_timeout = Duration::from_secs(5);
        let mut e = engine(cfg);
        open(&mut e, CLIENT, t(0));
        e.handle_captured(
            t(1),
            &pkt(CLIENT, ONLINE, 1001, 5001, ACK | PSH, b"GET /\n"),
        );
        drain(&mut e, t(1));
        let mut now = t(1);
        // The test server never acknowledges: retransmissions, then the idle timeout or the limit.
        while e.session_count() > 0 && now < t(600_000) {
            now = e.poll_timeout().expect("a timer is armed");
            e.handle_timeout(now);
            drain(&mut e, now);
        }
        let st = e.stats();
        assert_eq!(
            st.lost.get(LossReason::IdleTimeout) + st.lost.get(LossReason::RetransmitLimit),
            1,
            "{st}"
        );
        assert!(st.retransmits > 0);
    }

    #[test]
    fn no_wait_sends_every_request_at_once() {
        for no_wait in [false, true] {
            let mut cfg = config(MAP);
            cfg.no_wait = no_wait;
            let mut e = engine(cfg);
            open(&mut e, CLIENT, t(0));
            // Two requests, the online server answered 100 bytes in between.
            e.handle_captured(
                t(1),
                &pkt(CLIENT, ONLINE, 1001, 5001, ACK | PSH, b"GET /1\n"),
            );
            e.handle_captured(
                t(2),
                &pkt(CLIENT, ONLINE, 1008, 5101, ACK | PSH, b"GET /2\n"),
            );
            let data: Vec<u8> = drain(&mut e, t(2))
                .iter()
                .flat_map(|p| parse(p, Payload::Whole).unwrap().tcp.payload.to_vec())
                .collect();
            let expected: &[u8] = if no_wait {
                b"GET /1\nGET /2\n"
            } else {
                b"GET /1\n"
            };
            assert_eq!(data, expected, "no_wait={no_wait}");
        }
    }

    #[test]
    fn a_client_reset_is_replayed() {
        let mut e = engine(config(MAP));
        open(&mut e, CLIENT, t(0));
        e.handle_captured(t(1), &pkt(CLIENT, ONLINE, 1001, 5001, RST | ACK, b""));
        let out = drain(&mut e, t(1));
        assert!(parse(&out[0], Payload::Whole).unwrap().tcp.flags.rst());
        assert_eq!(e.stats().sessions_completed, 1);
        assert_eq!(e.session_count(), 0);
    }

    /// A client's RST|ACK says how much online had answered before it: the test server gets
    /// its RST once it has answered as much (as a FIN would), not as soon as the request is
    /// acknowledged.
    #[test]
    fn a_client_reset_waits_for_the_answer_online_had_given() {
        let mut e = engine(config(MAP));
        open(&mut e, CLIENT, t(0));
        capture(&mut e, t(1), ACK | PSH, 1001, ONLINE_ACK, b"GET /\n");
        drain(&mut e, t(1));
        // Online answered 100 bytes; the client resets having read them.
        capture(&mut e, t(2), RST | ACK, 1007, ONLINE_ACK + 100, b"");
        // The test server acknowledges the request and answers part of it: no RST yet.
        reply(&mut e, t(3), ACK | PSH, IRS + 1, 1007, &[b'x'; 60]);
        let out = recv(&mut e, t(3));
        assert!(out.iter().all(|s| s.flags & RST == 0), "{out:?}");
        assert_eq!(e.session_count(), 1);
        // The rest of the answer: now the RST goes and the session is complete.
        reply(&mut e, t(4), ACK | PSH, IRS + 61, 1007, &[b'y'; 40]);
        let out = recv(&mut e, t(4));
        assert!(out.iter().any(|s| s.flags & RST != 0), "{out:?}");
        assert_eq!(e.session_count(), 0);
        assert_eq!(e.stats().sessions_completed, 1);
        assert_eq!(e.stats().closed_short, 0);
    }

    #[test]
    fn three_duplicate_acks_trigger_a_fast_retransmit() {
        let mut e = engine(config(MAP));
        open(&mut e, CLIENT, t(0));
        let body = vec![b'z'; 4000];
        e.handle_captured(t(1), &pkt(CLIENT, ONLINE, 1001, 5001, ACK, &body));
        let first = drain(&mut e, t(1));
        assert!(first.len() >= 3, "segmented to the MSS: {}", first.len());
        // The first segment is lost: the test server acks 1001 three more times.
        for _ in 0..3 {
            e.handle_response(t(2), &pkt(TARGET, CLIENT, 7001, 1001, ACK, b""));
        }
        let again = drain(&mut e, t(2));
        let p = parse(&again[0], Payload::Whole).unwrap();
        assert_eq!(
            p.tcp.seq,
            Seq::new(1001),
            "the first unacknowledged segment again"
        );
        assert_eq!(e.stats().retransmits, 1);
    }

    #[test]
    fn segments_of_an_older_connection_on_the_same_tuple_are_ignored() {
        let mut e = engine(config(MAP));
        let irs = open(&mut e, CLIENT, t(0));
        e.handle_captured(
            t(1),
            &pkt(CLIENT, ONLINE, 1001, 5001, ACK | PSH, b"GET /\n"),
        );
        drain(&mut e, t(1));
        // A late segment of an older connection: sequence number far from ours; and its RST.
        e.handle_response(
            t(2),
            &pkt(
                TARGET,
                CLIENT,
                irs.wrapping_add(1_500_000_000),
                1007,
                ACK | PSH,
                b"",
            ),
        );
        e.handle_response(
            t(2),
            &pkt(TARGET, CLIENT, irs.wrapping_add(1_500_000_001), 0, RST, b""),
        );
        assert_eq!(e.stats().responses_stale, 2);
        assert_eq!(e.session_count(), 1, "the live session is unharmed");
        // Our ACKs still carry the test server's real sequence number.
        e.handle_captured(
            t(3),
            &pkt(CLIENT, ONLINE, 1007, 5101, ACK | PSH, b"GET /2\n"),
        );
        e.handle_response(t(3), &pkt(TARGET, CLIENT, irs + 1, 1007, ACK, b""));
        for p in drain(&mut e, t(4)) {
            assert_eq!(
                parse(&p, Payload::Whole).unwrap().tcp.ack,
                Seq::new(irs + 1)
            );
        }
    }

    #[test]
    fn a_second_syn_ack_with_another_isn_replaces_the_first_before_any_data() {
        let mut e = engine(config(MAP));
        let irs = open(&mut e, CLIENT, t(0));
        // The server answered a retransmitted SYN from scratch: a new ISN.
        let new_irs = irs.wrapping_add(123_456_789);
        e.handle_response(t(1), &pkt(TARGET, CLIENT, new_irs, 1001, SYN | ACK, b""));
        e.handle_captured(
            t(2),
            &pkt(CLIENT, ONLINE, 1001, 5001, ACK | PSH, b"GET /\n"),
        );
        let out = drain(&mut e, t(2));
        let last = parse(out.last().unwrap(), Payload::Whole).unwrap();
        assert_eq!(
            last.tcp.ack,
            Seq::new(new_irs + 1),
            "acks follow the server's latest handshake"
        );
        assert_eq!(e.stats().responses_stale, 0);
    }

    /// Request 2 of a keep-alive session, captured after online's 100-byte answer to request 1,
    /// and the test server's answer to request 1 (`answer` bytes, pushed) at t(3): whether
    /// request 2 goes out at once, and after the quiet period.
    fn second_request_after_answer(answer: usize) -> (bool, bool) {
        let mut e = engine(config(MAP));
        let irs = open(&mut e, CLIENT, t(0));
        e.handle_captured(
            t(1),
            &pkt(CLIENT, ONLINE, 1001, 5001, ACK | PSH, b"GET /a\n"),
        );
        assert_eq!(drain(&mut e, t(1)).len(), 1, "request 1 goes out");
        // Online answered with 100 bytes: the client acks 5101 with its next request.
        e.handle_captured(
            t(2),
            &pkt(CLIENT, ONLINE, 1008, 5101, ACK | PSH, b"GET /b\n"),
        );
        assert!(
            drain(&mut e, t(2)).iter().all(|p| parse(p, Payload::Whole)
                .unwrap()
                .tcp
                .payload
                .is_empty()),
            "request 2 waits for the test server's answer"
        );
        let body = vec![b'x'; answer];
        e.handle_response(t(3), &pkt(TARGET, CLIENT, irs + 1, 1008, ACK | PSH, &body));
        let carries_b = |out: Vec<Vec<u8>>| {
            out.iter()
                .any(|p| parse(p, Payload::Whole).unwrap().tcp.payload == b"GET /b\n")
        };
        let at_once = carries_b(drain(&mut e, t(3)));
        e.handle_timeout(t(5));
        let later = at_once || carries_b(drain(&mut e, t(5)));
        (at_once, later)
    }

    #[test]
    fn an_answer_about_as_long_as_onlines_releases_the_next_request_at_once() {
        // 98 of 100 bytes (the same answer from another host): no waiting for a quiet period, so
        // back-to-back keep-alive requests replay at the test server's pace.
        assert_eq!(second_request_after_answer(98), (true, true));
        assert_eq!(second_request_after_answer(76), (true, true));
        // A much shorter answer may be the first part of a longer one: released once quiet.
        assert_eq!(second_request_after_answer(40), (false, true));
    }

    #[test]
    fn a_request_is_released_by_the_response_wait_when_the_answer_never_comes() {
        let mut e = engine(config(MAP));
        open(&mut e, CLIENT, t(0));
        capture(&mut e, t(1), ACK | PSH, 1001, ONLINE_ACK, b"GET /a\n");
        expect(&mut e, t(1), &[seg(ACK | PSH, 1001, IRS + 1, b"GET /a\n")]);
        capture(&mut e, t(2), ACK | PSH, 1008, ONLINE_ACK + 100, b"GET /b\n");
        expect(&mut e, t(2), &[]);
        // Request 1 is acknowledged at t(3), no answer follows: request 2 waits the response wait
        // (500 ms) from then.
        reply(&mut e, t(3), ACK, IRS + 1, 1008, b"");
        e.handle_timeout(t(502));
        expect(&mut e, t(502), &[]);
        e.handle_timeout(t(503));
        expect(
            &mut e,
            t(503),
            &[seg(ACK | PSH, 1008, IRS + 1, b"GET /b\n")],
        );
        assert_eq!(e.stats().paced_by_timeout, 1);
    }

    #[test]
    fn requests_before_a_client_reset_are_replayed_before_the_reset() {
        // wrk and browsers close with a RST when answers are still unread: the requests before it
        // reached online, so they are replayed (paced), and only then the connection is reset.
        let mut e = engine(config(MAP));
        let irs = open(&mut e, CLIENT, t(0));
        e.handle_captured(
            t(1),
            &pkt(CLIENT, ONLINE, 1001, 5001, ACK | PSH, b"GET /a\n"),
        );
        e.handle_captured(
            t(1),
            &pkt(CLIENT, ONLINE, 1008, 5101, ACK | PSH, b"GET /b\n"),
        );
        e.handle_captured(t(1), &pkt(CLIENT, ONLINE, 1015, 5201, RST | ACK, b""));
        let first = drain(&mut e, t(1));
        let payloads = |out: &[Vec<u8>]| -> Vec<Vec<u8>> {
            out.iter()
                .map(|p| parse(p, Payload::Whole).unwrap().tcp.payload.to_vec())
                .filter(|p| !p.is_empty())
                .collect()
        };
        assert_eq!(payloads(&first), vec![b"GET /a\n".to_vec()]);
        assert!(
            first
                .iter()
                .all(|p| !parse(p, Payload::Whole).unwrap().tcp.flags.rst())
        );
        assert_eq!(e.session_count(), 1, "still replaying");
        // The answer to /a releases /b; its acknowledgement ends the session with a RST.
        e.handle_response(
            t(2),
            &pkt(TARGET, CLIENT, irs + 1, 1008, ACK | PSH, &[b'x'; 100]),
        );
        assert_eq!(payloads(&drain(&mut e, t(2))), vec![b"GET /b\n".to_vec()]);
        e.handle_response(
            t(3),
            &pkt(TARGET, CLIENT, irs + 101, 1015, ACK | PSH, &[b'x'; 100]),
        );
        let last = drain(&mut e, t(3));
        assert!(
            last.iter()
                .any(|p| parse(p, Payload::Whole).unwrap().tcp.flags.rst())
        );
        assert_eq!(e.stats().sessions_completed, 1);
        assert_eq!(e.session_count(), 0);
    }
}

/// The client closed first: FIN-WAIT-1 (our FIN is out), FIN-WAIT-2 (it is acknowledged),
/// CLOSING (both FINs crossed) and TIME-WAIT (both FINs acknowledged: the replay is over).
mod fin_wait {
    use super::*;

    /// A session whose one request and the client's FIN have gone out (FIN-WAIT-1); the FIN is at
    /// 1007, the request unacknowledged.
    fn fin_wait_1() -> Engine {
        let mut e = engine(config(MAP));
        open(&mut e, CLIENT, t(0));
        capture(&mut e, t(1), ACK | PSH, 1001, ONLINE_ACK, b"GET /\n");
        capture(&mut e, t(1), FIN | ACK, 1007, ONLINE_ACK, b"");
        expect(
            &mut e,
            t(1),
            &[
                seg(ACK | PSH, 1001, IRS + 1, b"GET /\n"),
                seg(FIN | ACK, 1007, IRS + 1, b""),
            ],
        );
        e
    }

    #[test]
    fn the_clients_fin_follows_its_data() {
        let e = fin_wait_1();
        assert_eq!(e.session_count(), 1);
        assert_eq!(e.stats().retransmits, 0);
    }

    #[test]
    fn an_unacknowledged_fin_is_retransmitted() {
        let mut e = fin_wait_1();
        // The request is acknowledged, the FIN is not (the handshake measured no delay: the
        // retransmission timeout is rto_min, 100 ms).
        reply(&mut e, t(2), ACK, IRS + 1, 1007, b"");
        e.handle_timeout(t(101));
        expect(&mut e, t(101), &[]);
        e.handle_timeout(t(102));
        expect(&mut e, t(102), &[seg(FIN | ACK, 1007, IRS + 1, b"")]);
        assert_eq!(e.stats().retransmits, 1);
        assert_eq!(e.session_count(), 1);
    }

    #[test]
    fn a_reset_before_our_fin_is_acknowledged_is_a_loss() {
        let mut e = fin_wait_1();
        // The request is acknowledged and answered, the FIN not, when the reset comes.
        reply(&mut e, t(2), ACK | PSH, IRS + 1, 1007, b"ok\n");
        drain(&mut e, t(2));
        reply(&mut e, t(3), RST | ACK, IRS + 4, 1007, b"");
        expect(&mut e, t(3), &[]);
        assert_eq!(e.stats().lost.get(LossReason::ResetByTarget), 1);
        assert_eq!(e.session_count(), 0);
    }

    #[test]
    fn a_server_that_keeps_its_side_open_is_reset_after_the_response_wait() {
        let mut e = fin_wait_1();
        // FIN-WAIT-2 from t(3), the request answered: the test server's side stays open for the
        // response wait (500 ms).
        reply(&mut e, t(3), ACK | PSH, IRS + 1, 1008, b"ok\n");
        expect(&mut e, t(3), &[seg(ACK, 1008, IRS + 4, b"")]);
        e.handle_timeout(t(502));
        expect(&mut e, t(502), &[]);
        assert_eq!(e.session_count(), 1);
        e.handle_timeout(t(503));
        expect(&mut e, t(503), &[seg(RST | ACK, 1008, IRS + 4, b"")]);
        assert_eq!(e.stats().sessions_completed, 1);
        assert_eq!(e.session_count(), 0);
    }

    /// Our FIN acknowledged but the request not answered: the test server may be stopping (it
    /// will reset the connection, and the request goes again); the session waits for the
    /// restart window before it resets the connection itself.
    #[test]
    fn an_unanswered_request_keeps_fin_wait_2_for_the_restart_window() {
        let mut e = fin_wait_1();
        reply(&mut e, t(3), ACK, IRS + 1, 1008, b"");
        let mut now = t(3);
        while e.session_count() > 0 {
            expect(&mut e, now, &[]);
            now = e.poll_timeout().unwrap();
            e.handle_timeout(now);
            if e.session_count() == 0 {
                break;
            }
        }
        assert!(now >= t(30_000) && now < t(31_000), "{now:?}");
        assert_eq!(e.stats().sessions_completed, 1);
    }

    #[test]
    fn the_response_wait_counts_from_the_acknowledgement_of_our_fin() {
        let mut e = fin_wait_1();
        reply(&mut e, t(3), ACK, IRS + 1, 1008, b"");
        // More of the answer in FIN-WAIT-2 is acknowledged but does not extend the wait.
        reply(&mut e, t(300), ACK | PSH, IRS + 1, 1008, b"200\n");
        expect(&mut e, t(300), &[seg(ACK, 1008, IRS + 5, b"")]);
        e.handle_timeout(t(502));
        expect(&mut e, t(502), &[]);
        e.handle_timeout(t(503));
        expect(&mut e, t(503), &[seg(RST | ACK, 1008, IRS + 5, b"")]);
        assert_eq!(e.stats().sessions_completed, 1);
    }

    #[test]
    fn the_servers_fin_is_acknowledged_and_the_replay_completes() {
        let mut e = fin_wait_1();
        reply(&mut e, t(3), ACK, IRS + 1, 1008, b"");
        // FIN-WAIT-2, then the test server's answer and FIN: TIME-WAIT, the last ACK goes out.
        reply(&mut e, t(4), FIN | ACK | PSH, IRS + 1, 1008, b"200\n");
        expect(&mut e, t(4), &[seg(ACK, 1008, IRS + 6, b"")]);
        assert_eq!(e.stats().sessions_completed, 1);
        assert_eq!(e.stats().lost.total(), 0);
        assert_eq!(e.session_count(), 0);
    }

    #[test]
    fn a_fin_that_acknowledges_ours_completes_at_once() {
        let mut e = fin_wait_1();
        // FIN-WAIT-1 straight to TIME-WAIT.
        reply(&mut e, t(3), FIN | ACK, IRS + 1, 1008, b"");
        expect(&mut e, t(3), &[seg(ACK, 1008, IRS + 2, b"")]);
        assert_eq!(e.stats().sessions_completed, 1);
        assert_eq!(e.session_count(), 0);
    }

    #[test]
    fn crossing_fins_pass_through_closing() {
        let mut e = fin_wait_1();
        // The test server's FIN acknowledges the request, not our FIN: CLOSING. Its FIN is
        // acknowledged.
        reply(&mut e, t(3), FIN | ACK, IRS + 1, 1007, b"");
        expect(&mut e, t(3), &[seg(ACK, 1008, IRS + 2, b"")]);
        assert_eq!(e.session_count(), 1);
        // Then our FIN is acknowledged: TIME-WAIT, nothing more to send.
        reply(&mut e, t(4), ACK, IRS + 2, 1008, b"");
        expect(&mut e, t(4), &[]);
        assert_eq!(e.stats().sessions_completed, 1);
        assert_eq!(e.session_count(), 0);
    }

    #[test]
    fn a_reset_after_everything_was_delivered_and_answered_completes() {
        let mut e = fin_wait_1();
        reply(&mut e, t(3), ACK | PSH, IRS + 1, 1008, b"ok\n");
        drain(&mut e, t(3));
        reply(&mut e, t(4), RST | ACK, IRS + 4, 1008, b"");
        expect(&mut e, t(4), &[]);
        assert_eq!(e.stats().sessions_completed, 1);
        assert_eq!(e.stats().lost.total(), 0);
    }
}

/// The test server closed first: CLOSE-WAIT (its FIN is acknowledged), LAST-ACK (the client's
/// FIN followed), CLOSED.
mod close_wait {
    use super::*;

    /// A session whose request the test server answered and closed (CLOSE-WAIT): its answer
    /// `200\n` and FIN end at `IRS + 6`.
    fn close_wait(cfg: Config) -> Engine {
        let mut e = engine(cfg);
        open(&mut e, CLIENT, t(0));
        capture(&mut e, t(1), ACK | PSH, 1001, ONLINE_ACK, b"GET /\n");
        expect(&mut e, t(1), &[seg(ACK | PSH, 1001, IRS + 1, b"GET /\n")]);
        reply(&mut e, t(2), FIN | ACK | PSH, IRS + 1, 1007, b"200\n");
        expect(&mut e, t(2), &[seg(ACK, 1007, IRS + 6, b"")]);
        e
    }

    #[test]
    fn the_clients_fin_follows_and_its_acknowledgement_ends_the_replay() {
        let mut e = close_wait(config(MAP));
        // Online answered 5 bytes (answer and FIN) too: the client's FIN acknowledges them, and
        // the test server's 5 release it by byte count.
        capture(&mut e, t(3), FIN | ACK, 1007, ONLINE_ACK + 5, b"");
        expect(&mut e, t(3), &[seg(FIN | ACK, 1007, IRS + 6, b"")]);
        assert_eq!(e.stats().paced_by_bytes, 1);
        // LAST-ACK, then CLOSED without another segment.
        reply(&mut e, t(4), ACK, IRS + 6, 1008, b"");
        expect(&mut e, t(4), &[]);
        assert_eq!(e.stats().sessions_completed, 1);
        assert_eq!(e.stats().lost.total(), 0);
        assert_eq!(e.session_count(), 0);
    }

    #[test]
    fn a_client_that_never_closes_is_reset_at_the_idle_timeout() {
        let mut cfg = config(MAP);
        cfg.idle_timeout = Duration::from_secs(5);
        let mut e = close_wait(cfg);
        // Last activity at t(2): everything was delivered, so the idle end is a completion.
        e.handle_timeout(t(5001));
        expect(&mut e, t(5001), &[]);
        e.handle_timeout(t(5002));
        expect(&mut e, t(5002), &[seg(RST | ACK, 1007, IRS + 6, b"")]);
        assert_eq!(e.stats().sessions_completed, 1);
        assert_eq!(e.stats().lost.total(), 0);
    }
}

/// Damaged and arbitrary input, in any state: never a panic, always counted or handled.
mod damaged {
    use super::*;

    /// The request [`damaged_packets_are_counted_or_handled`] damages.
    const REQUEST: &[u8] = b"GET /index.html HTTP/1.1\r\n\r\n";

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut e = engine(config(MAP));
            e.handle_captured(t(0), &bytes);
            e.handle_response(t(0), &bytes);
            let _ = drain(&mut e, t(0));
            let st = e.stats();
            prop_assert_eq!(st.captured, 1);
            prop_assert_eq!(st.responses, 1);
        }

        /// A request of an established session with one bit flipped and its tail cut off, and a
        /// reply header cut short: each is counted as a drop (malformed, unmapped, orphan) or
        /// taken by a session, as what the bytes parse to says.
        #[test]
        fn damaged_packets_are_counted_or_handled(cut in 0usize..80, flip in 0usize..80, bit in 0u8..8) {
            let mut e = engine(config(MAP));
            let mut p = pkt(CLIENT, ONLINE, 1000, 0, SYN, b"");
            prop_assert_eq!(p.len(), 44, "IPv4 and TCP headers, MSS option");
            open(&mut e, CLIENT, t(0));
            let mut data = pkt(CLIENT, ONLINE, 1001, 5001, ACK | PSH, REQUEST);
            if flip < data.len() {
                data[flip] ^= 1 << bit;
            }
            data.truncate(data.len().saturating_sub(cut));
            e.handle_captured(t(1), &data);
            let st = *e.stats();
            let out = recv(&mut e, t(1));
            let drops = (st.captured_malformed, st.captured_unmapped, st.captured_orphan);
            match parse(&data, Payload::Whole) {
                Err(_) => {
                    prop_assert_eq!(drops, (1, 0, 0));
                    prop_assert_eq!(st.sessions_started, 1);
                    prop_assert_eq!(out, vec![]);
                }
                Ok(q) if q.tcp.dst_port != 80 => {
                    prop_assert_eq!(drops, (0, 1, 0));
                    prop_assert_eq!(st.sessions_started, 1);
                    prop_assert_eq!(out, vec![]);
                }
                Ok(q) if SocketAddr::new(q.src, q.tcp.src_port) == CLIENT.parse().unwrap()
                    && SocketAddr::new(q.dst, q.tcp.dst_port) == ONLINE.parse().unwrap() =>
                {
                    // The open session's packet: it takes it.
                    prop_assert_eq!(drops, (0, 0, 0));
                    let f = q.tcp.flags;
                    if f.rst() {
                        // The client reset before any byte: the replay resets at once.
                        prop_assert_eq!(out, vec![seg(RST | ACK, 1001, IRS + 1, b"")]);
                        prop_assert_eq!(st.sessions_completed, 1);
                        prop_assert_eq!(e.session_count(), 0);
                    } else if !f.syn() && q.tcp.seq == Seq::new(1001) && q.tcp.payload_len > 0 {
                        // In order: the bytes go out as captured (damage included), at once;
                        // unless the damage moved the client's ack forward: online had then
                        // sent bytes before this request (a greeting), which it waits for, up
                        // to the response wait.
                        let out = if f.ack() && q.tcp.ack.after(Seq::new(5001)) {
                            prop_assert!(out.iter().all(|s| s.payload.is_empty()), "{:?}", out);
                            e.handle_timeout(t(501));
                            recv(&mut e, t(501))
                        } else {
                            out
                        };
                        prop_assert!(
                            out.iter().any(|s| s.seq == 1001 && s.payload == q.tcp.payload),
                            "{:?}", out
                        );
                    }
                }
                Ok(q) => {
                    // Another connection of the mapped service: a SYN starts its replay, data
                    // starts it with a faked SYN, anything else of it is an orphan.
                    let f = q.tcp.flags;
                    prop_assert_eq!((drops.0, drops.1), (0, 0));
                    if f.syn() && !f.ack() {
                        prop_assert_eq!((st.sessions_started, st.sessions_faked_syn, drops.2), (2, 0, 0));
                    } else if f.rst() || q.tcp.payload_len == 0 {
                        prop_assert_eq!((st.sessions_started, drops.2), (1, 1));
                    } else {
                        prop_assert_eq!((st.sessions_started, st.sessions_faked_syn, drops.2), (2, 1, 0));
                    }
                }
            }
            p.truncate(cut.min(p.len()));
            e.handle_response(t(1), &p);
            let st = *e.stats();
            // A reply header cut inside its headers is malformed; whole, it is a client's SYN to
            // online, which no replayed session expects.
            if cut < 44 {
                prop_assert_eq!((st.responses_malformed, st.responses_unknown), (1, 0));
            } else {
                prop_assert_eq!((st.responses_malformed, st.responses_unknown), (0, 1));
            }
            let _ = drain(&mut e, t(1));
            e.handle_timeout(t(10_000));
            let _ = drain(&mut e, t(10_000));
            // Every session started is still running or ended with an outcome.
            let st = e.stats();
            prop_assert_eq!(
                st.sessions_started,
                e.session_count() as u64 + st.sessions_completed + st.lost.total()
            );
        }
    }
}

/// What a session's record and the operators' figures say: requests, bytes delivered, start
/// and end, the response times (request's last byte sent to the answer) and the replay lag.
mod records {
    use super::*;
    use tcpcopy_engine::{Outcome, SessionRecord};

    #[test]
    fn a_closed_session_reports_its_requests_bytes_times_and_response_times() {
        let mut e = engine(config(MAP));
        let irs = open(&mut e, CLIENT, t(0));
        assert!(matches!(e.poll_event(), Some(Event::Register { .. })));
        // Request 1 (10 bytes) at 10 ms, answered (100 bytes) at 15 ms.
        capture(
            &mut e,
            t(10),
            ACK | PSH,
            ISN + 1,
            ONLINE_ACK,
            b"GET /a 1\r\n",
        );
        assert_eq!(
            e.replay_lag(t(10)),
            Duration::ZERO,
            "not yet sent: no time passed"
        );
        assert_eq!(
            e.replay_lag(t(12)),
            Duration::from_millis(2),
            "captured, not sent"
        );
        expect(
            &mut e,
            t(12),
            &[seg(ACK | PSH, ISN + 1, irs + 1, b"GET /a 1\r\n")],
        );
        assert_eq!(e.replay_lag(t(13)), Duration::ZERO, "everything sent");
        reply(&mut e, t(15), ACK | PSH, irs + 1, ISN + 11, &[b'x'; 100]);
        let _ = recv(&mut e, t(15));
        // Request 2 (the client acked online's 100-byte answer) at 20 ms, held until the answer
        // came; it goes at once, answered at 27 ms.
        capture(
            &mut e,
            t(20),
            ACK | PSH,
            ISN + 11,
            ONLINE_ACK + 100,
            b"GET /b\r\n",
        );
        expect(
            &mut e,
            t(20),
            &[seg(ACK | PSH, ISN + 11, irs + 101, b"GET /b\r\n")],
        );
        reply(&mut e, t(27), ACK | PSH, irs + 101, ISN + 19, &[b'y'; 100]);
        let _ = recv(&mut e, t(27));
        // The client closes; the test server acknowledges the FIN and closes too.
        capture(&mut e, t(30), ACK | FIN, ISN + 19, ONLINE_ACK + 200, b"");
        expect(&mut e, t(30), &[seg(ACK | FIN, ISN + 19, irs + 201, b"")]);
        reply(&mut e, t(31), ACK | FIN, irs + 201, ISN + 20, b"");
        let _ = recv(&mut e, t(31));
        let Some(Event::Closed {
            outcome, record, ..
        }) = e.poll_event()
        else {
            panic!("closed; {}", e.stats());
        };
        assert_eq!(outcome, Outcome::Completed);
        assert_eq!(
            record,
            SessionRecord {
                captured_client: CLIENT.parse().unwrap(),
                online: ONLINE.parse().unwrap(),
                started: t(0),
                ended: t(31),
                bytes: 18,
                requests: 2,
            }
        );
        let s = e.stats();
        assert_eq!((s.requests, s.payload_bytes_delivered), (2, 18));
        let r = s.response_time;
        assert_eq!(r.count, 2, "two answers");
        assert_eq!(r.sum_us, 3_000 + 7_000, "12 ms -> 15 ms and 20 ms -> 27 ms");
        let buckets: Vec<(u64, u64)> = r.cumulative().collect();
        assert!(buckets.contains(&(2_500, 0)) && buckets.contains(&(5_000, 1)));
        assert!(buckets.contains(&(10_000, 2)));
    }

    /// A keep-alive connection whose replay stays one request behind online for good (each
    /// request is captured before the answer to the one before last has come back): the lag is
    /// the age of the request waiting, and stays there; it is not the time since the replay
    /// was last caught up, which grows for as long as the connection lives.
    #[test]
    fn the_lag_of_a_connection_that_stays_one_request_behind_is_bounded() {
        // Strict pacing: with requests sent ahead the connection would not stay behind.
        let mut cfg = config(MAP);
        cfg.send_ahead = 0;
        let mut e = engine(cfg);
        let irs = open(&mut e, CLIENT, t(0));
        assert!(matches!(e.poll_event(), Some(Event::Register { .. })));
        let request = |k: u32| (ISN + 1 + 10 * (k - 1), ONLINE_ACK + 100 * (k - 1));
        // Request 1 at 10 ms goes at once; request 2 at 20 ms waits for answer 1.
        let (seq, ack) = request(1);
        capture(&mut e, t(10), ACK | PSH, seq, ack, b"GET /a 1\r\n");
        let _ = recv(&mut e, t(10));
        let (seq, ack) = request(2);
        capture(&mut e, t(20), ACK | PSH, seq, ack, b"GET /a 2\r\n");
        for k in 1..=100u32 {
            let at = 10 * u64::from(k);
            // Request k + 2 captured; then answer k, which lets request k + 1 go.
            let (seq, ack) = request(k + 2);
            capture(&mut e, t(at + 20), ACK | PSH, seq, ack, b"GET /a x\r\n");
            let answer_seq = irs + 1 + 100 * (k - 1);
            reply(
                &mut e,
                t(at + 25),
                ACK | PSH,
                answer_seq,
                ISN + 1 + 10 * k,
                &[b'x'; 100],
            );
            let sent = recv(&mut e, t(at + 25));
            assert!(
                sent.iter()
                    .any(|s| s.seq == ISN + 1 + 10 * k && s.payload.len() == 10),
                "request {} released by answer {k}: {sent:?}",
                k + 1
            );
            // Request k + 2 (captured 5 ms ago) waits.
            assert_eq!(
                e.replay_lag(t(at + 25)),
                Duration::from_millis(5),
                "round {k}"
            );
        }
    }
}

/// `Config::send_ahead`: requests captured while the answer before them is still coming (the
/// replay runs behind online) go out ahead of it, within bounds.
mod send_ahead {
    use super::*;

    /// A session whose request 1 is answered (10 bytes, as online's), request 2 out and not
    /// answered yet, and request 3 captured (the client had online's answer to request 2): what
    /// the engine sent at that capture. Before the first answer request 2 was held.
    fn request_3_captured(send_ahead: u8) -> (Engine, Vec<Seg>) {
        let mut cfg = config(MAP);
        cfg.send_ahead = send_ahead;
        let mut e = engine(cfg);
        open(&mut e, CLIENT, t(0));
        capture(&mut e, t(1), ACK | PSH, ISN + 1, ONLINE_ACK, b"GET /1\n");
        expect(
            &mut e,
            t(1),
            &[seg(ACK | PSH, ISN + 1, IRS + 1, b"GET /1\n")],
        );
        capture(
            &mut e,
            t(2),
            ACK | PSH,
            ISN + 8,
            ONLINE_ACK + 10,
            b"GET /2\n",
        );
        // The connection's first answer has not come: nothing goes ahead of it.
        expect(&mut e, t(2), &[]);
        reply(&mut e, t(3), ACK | PSH, IRS + 1, ISN + 8, b"answer 1.\n");
        expect(
            &mut e,
            t(3),
            &[seg(ACK | PSH, ISN + 8, IRS + 11, b"GET /2\n")],
        );
        capture(
            &mut e,
            t(4),
            ACK | PSH,
            ISN + 15,
            ONLINE_ACK + 20,
            b"GET /3\n",
        );
        let out = recv(&mut e, t(4));
        (e, out)
    }

    #[test]
    fn a_request_goes_ahead_of_the_answer_before_it_with_one_and_waits_with_zero() {
        let (e, out) = request_3_captured(0);
        assert_eq!(out, [], "send_ahead 0: request 3 waits for answer 2");
        assert_eq!(e.stats().sent_ahead, 0);
        let (e, out) = request_3_captured(1);
        assert_eq!(out, [seg(ACK | PSH, ISN + 15, IRS + 11, b"GET /3\n")]);
        assert_eq!(e.stats().sent_ahead, 1);
        assert_eq!(e.stats().requests, 3);
    }

    /// Requests sent ahead, answers that come together, and the client's close: one request
    /// ahead at most, the close only once every answer is in, each answer counted for its own
    /// request (the close needs the whole of the last one), response times from the end of the
    /// answer before.
    #[test]
    fn one_ahead_at_most_answers_counted_apart_and_the_close_last() {
        let (mut e, out) = request_3_captured(1);
        assert_eq!(out.len(), 1, "request 3 ahead");
        capture(
            &mut e,
            t(4),
            ACK | PSH,
            ISN + 22,
            ONLINE_ACK + 30,
            b"GET /4\n",
        );
        expect(&mut e, t(4), &[]);
        // Answer 2: request 4 may go ahead of answer 3 now.
        reply(&mut e, t(5), ACK | PSH, IRS + 11, ISN + 22, b"answer 2.\n");
        expect(
            &mut e,
            t(5),
            &[seg(ACK | PSH, ISN + 22, IRS + 21, b"GET /4\n")],
        );
        capture(&mut e, t(6), ACK | FIN, ISN + 29, ONLINE_ACK + 40, b"");
        expect(&mut e, t(6), &[]);
        // Answers 3 and 4 in one segment: 10 bytes for each, so the close may go.
        reply(
            &mut e,
            t(7),
            ACK | PSH,
            IRS + 21,
            ISN + 29,
            b"answer 3.\nanswer 4.\n",
        );
        expect(&mut e, t(7), &[seg(ACK | FIN, ISN + 29, IRS + 41, b"")]);
        let st = e.stats();
        assert_eq!((st.sent_ahead, st.requests), (2, 4), "{st}");
        assert_eq!(
            st.paced_by_bytes, 4,
            "3 requests and the close, by bytes: {st}"
        );
        assert_eq!((st.paced_by_timeout, st.closed_short), (0, 0));
        // Answers 1, 2 and 3 timed, 2 ms each: request 3's from answer 2's end (t5), not from
        // when it went (t4); answer 4 came with answer 3 (not timed).
        assert_eq!(st.response_time.count, 3);
        assert_eq!(st.response_time.sum_us, 6_000);
    }

    /// The test server closes after answer 2 while request 3 went ahead: a new connection
    /// starts from request 3, the first not answered, not from where the old one stopped.
    #[test]
    fn a_close_after_a_request_went_ahead_rebuilds_from_that_request() {
        let (mut e, out) = request_3_captured(1);
        assert_eq!(out.len(), 1, "request 3 ahead");
        reply(&mut e, t(5), ACK | PSH, IRS + 11, ISN + 22, b"answer 2.\n");
        reply(&mut e, t(5), ACK | FIN, IRS + 21, ISN + 22, b"");
        expect(&mut e, t(5), &[seg(ACK, ISN + 22, IRS + 22, b"")]);
        capture(
            &mut e,
            t(6),
            ACK | PSH,
            ISN + 22,
            ONLINE_ACK + 30,
            b"GET /4\n",
        );
        expect(
            &mut e,
            t(6),
            &[seg(RST, ISN + 22, 0, b""), seg(SYN, ISN + 14, 0, b"")],
        );
        reply(&mut e, t(7), SYN | ACK, 9000, ISN + 15, b"");
        // Request 3 again (no push: more was captured after it); request 4 waits for its
        // answer (nothing goes ahead of a new connection's first answer).
        expect(&mut e, t(7), &[seg(ACK, ISN + 15, 9001, b"GET /3\n")]);
        reply(&mut e, t(8), ACK | PSH, 9001, ISN + 22, b"answer 3.\n");
        expect(&mut e, t(8), &[seg(ACK | PSH, ISN + 22, 9011, b"GET /4\n")]);
        assert_eq!(e.stats().rebuilds, 1);
        assert_eq!(e.stats().lost.total(), 0);
    }

    /// As above, but the client closes after request 3: its close does not go on the closed
    /// connection with request 3 unanswered; request 3 goes again first.
    #[test]
    fn a_close_after_a_request_went_ahead_and_the_clients_fin_rebuilds_first() {
        let (mut e, out) = request_3_captured(1);
        assert_eq!(out.len(), 1, "request 3 ahead");
        capture(&mut e, t(4), ACK | FIN, ISN + 22, ONLINE_ACK + 30, b"");
        expect(&mut e, t(4), &[]);
        reply(&mut e, t(5), ACK | PSH, IRS + 11, ISN + 22, b"answer 2.\n");
        reply(&mut e, t(5), ACK | FIN, IRS + 21, ISN + 22, b"");
        expect(
            &mut e,
            t(5),
            &[seg(RST, ISN + 22, 0, b""), seg(SYN, ISN + 14, 0, b"")],
        );
        reply(&mut e, t(6), SYN | ACK, 9000, ISN + 15, b"");
        expect(&mut e, t(6), &[seg(ACK | PSH, ISN + 15, 9001, b"GET /3\n")]);
        reply(&mut e, t(7), ACK | PSH, 9001, ISN + 22, b"answer 3.\n");
        expect(&mut e, t(7), &[seg(ACK | FIN, ISN + 22, 9011, b"")]);
        assert_eq!((e.stats().rebuilds, e.stats().lost.total()), (1, 0));
    }

    /// Without sending ahead: the test server answers request 1 and closes (a keep-alive close
    /// racing request 2, which it never answers) while the client's close waits behind request 2.
    /// Request 2 goes again on a new connection before the close.
    #[test]
    fn a_close_racing_a_request_rebuilds_before_the_clients_close() {
        let mut cfg = config(MAP);
        cfg.send_ahead = 0;
        let mut e = engine(cfg);
        open(&mut e, CLIENT, t(0));
        capture(&mut e, t(1), ACK | PSH, ISN + 1, ONLINE_ACK, b"GET /1\n");
        drain(&mut e, t(1));
        reply(&mut e, t(2), ACK | PSH, IRS + 1, ISN + 8, b"answer 1.\n");
        capture(
            &mut e,
            t(2),
            ACK | PSH,
            ISN + 8,
            ONLINE_ACK + 10,
            b"GET /2\n",
        );
        capture(&mut e, t(2), ACK | FIN, ISN + 15, ONLINE_ACK + 20, b"");
        expect(
            &mut e,
            t(2),
            &[seg(ACK | PSH, ISN + 8, IRS + 11, b"GET /2\n")],
        );
        reply(&mut e, t(3), ACK | FIN, IRS + 11, ISN + 15, b"");
        expect(
            &mut e,
            t(3),
            &[seg(RST, ISN + 15, 0, b""), seg(SYN, ISN + 7, 0, b"")],
        );
        reply(&mut e, t(4), SYN | ACK, 9000, ISN + 8, b"");
        expect(&mut e, t(4), &[seg(ACK | PSH, ISN + 8, 9001, b"GET /2\n")]);
        reply(&mut e, t(5), ACK | PSH, 9001, ISN + 15, b"answer 2.\n");
        expect(&mut e, t(5), &[seg(ACK | FIN, ISN + 15, 9011, b"")]);
        assert_eq!((e.stats().rebuilds, e.stats().sent_ahead), (1, 0));
    }
}
