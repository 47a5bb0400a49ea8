//! Both XDP programs and both tc programs run on fixed bytes through `BPF_PROG_TEST_RUN`: no
//! interface, no traffic. (The kernel takes at most about a page of packet for a tc test run, so
//! the copy of GRO packets longer than the snap length in segments is tested end to end, in
//! `tests/tests/egress.rs`.)
//! Each case asserts the verdict, the counters that moved and, for a copied frame, the bytes
//! that reached the ring. Loading needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON), as the
//! end-to-end tests do.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tcpcopy_abi::{
    filter_expr,
    maps::{INTERCEPT_PROGRAM, INTERCEPT_TC_PROGRAM, TCPCOPY_PROGRAM, TCPCOPY_TC_PROGRAM},
    stats::Stat,
};
use tcpcopy_wire::{TcpFlags, build::Packet};
use tcpcopy_xsk::{
    program::{Counters, Verdict, XdpProgram},
    ring::RingMap,
};

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);

/// An Ethernet frame (with `vlan`, one 802.1Q tag) carrying a TCP segment from `src` to `dst`.
fn frame(src: SocketAddr, dst: SocketAddr, payload: &[u8], vlan: Option<u16>) -> Vec<u8> {
    Packet::between(src, dst)
        .seq(1000)
        .ack(2000)
        .flags(TcpFlags::ACK | TcpFlags::PSH)
        .window(512)
        .payload(payload)
        .ethernet([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], vlan)
}

fn v4(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

fn v6(last: u16, port: u16) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)),
        port,
    )
}

fn load(object: &[u8], name: &'static str, ports: &[u16]) -> XdpProgram {
    let all = filter_expr::compile("").expect("the empty filter");
    XdpProgram::load_configured(object, name, 1 << 16, 1, ports, &all)
        .unwrap_or_else(|e| panic!("loading {name} (needs root): {e}"))
}

/// Counter changes of one run of `frame`.
fn run(program: &XdpProgram, frame: &[u8]) -> (Verdict, Delta) {
    let before = program.counters().expect("counters");
    let verdict = program.test_run(frame, 1).expect("test run").verdict;
    let after = program.counters().expect("counters");
    (verdict, Delta { before, after })
}

struct Delta {
    before: Counters,
    after: Counters,
}

impl Delta {
    fn of(&self, stat: Stat) -> u64 {
        self.after.get(stat) - self.before.get(stat)
    }
}

/// The records in worker 0's ring: (wire length, bytes).
fn ring_records(program: &mut XdpProgram) -> Vec<(u16, Vec<u8>)> {
    let mut ring = RingMap::take(program, 0).expect("worker 0's ring");
    let mut out = Vec::new();
    while ring.read_now(64, |h, bytes| out.push((h.wire_len, bytes.to_vec()))) > 0 {}
    out
}

#[test]
fn tcpcopy_copies_the_requests_to_its_port_and_passes_every_frame() {
    let mut program = load(crate::TCPCOPY_OBJECT, TCPCOPY_PROGRAM, &[80]);
    let request = frame(
        v4(CLIENT, 40_000),
        v4(SERVER, 80),
        b"GET / HTTP/1.1\r\n\r\n",
        None,
    );

    let (verdict, d) = run(&program, &request);
    assert_eq!(verdict, Verdict::Pass, "production traffic goes on");
    assert_eq!(
        (d.of(Stat::Seen), d.of(Stat::Matched), d.of(Stat::Copied)),
        (1, 1, 1)
    );
    assert_eq!(d.of(Stat::MatchedBytes), request.len() as u64);

    // Another port, and the server's answer (source port 80): seen, not selected.
    let other = frame(v4(CLIENT, 40_000), v4(SERVER, 22), b"ssh", None);
    let answer = frame(v4(SERVER, 80), v4(CLIENT, 40_000), b"HTTP/1.1 200", None);
    for f in [&other, &answer] {
        let (verdict, d) = run(&program, f);
        assert_eq!(verdict, Verdict::Pass);
        assert_eq!(
            (d.of(Stat::Seen), d.of(Stat::Matched), d.of(Stat::Copied)),
            (1, 0, 0)
        );
    }

    // A VLAN-tagged request and an IPv6 one are selected too.
    let tagged = frame(v4(CLIENT, 40_001), v4(SERVER, 80), b"GET /v", Some(42));
    let six = frame(v6(10, 40_002), v6(20, 80), b"GET /6", None);
    for f in [&tagged, &six] {
        let (verdict, d) = run(&program, f);
        assert_eq!(verdict, Verdict::Pass);
        assert_eq!(
            (d.of(Stat::Matched), d.of(Stat::Copied)),
            (1, 1),
            "{f:02x?}"
        );
    }

    // The ring holds exactly the three selected frames, byte for byte.
    let records = ring_records(&mut program);
    let expected: Vec<&Vec<u8>> = vec![&request, &tagged, &six];
    assert_eq!(records.len(), 3);
    for ((wire_len, bytes), want) in records.iter().zip(expected) {
        assert_eq!(usize::from(*wire_len), want.len());
        assert_eq!(bytes, want);
    }
}

#[test]
fn tcpcopy_counts_truncated_headers_as_malformed_and_passes_them() {
    let program = load(crate::TCPCOPY_OBJECT, TCPCOPY_PROGRAM, &[80]);
    let request = frame(v4(CLIENT, 40_000), v4(SERVER, 80), b"GET /", None);
    // Cut inside the IPv4 header, inside the TCP ports, and a bare Ethernet header.
    for cut in [14 + 10, 14 + 20 + 2, 14] {
        let (verdict, d) = run(&program, &request[..cut]);
        assert_eq!(verdict, Verdict::Pass, "cut at {cut}");
        let moved = (
            d.of(Stat::Malformed),
            d.of(Stat::Matched),
            d.of(Stat::Copied),
        );
        assert_eq!(moved, (1, 0, 0), "cut at {cut}");
    }
    // Headers that announce more than the frame has (IHL past the end) are malformed.
    let mut lying = request.clone();
    lying[14] = 0x4f; // IHL 15: 60 bytes of IPv4 header
    lying.truncate(14 + 40);
    let (verdict, d) = run(&program, &lying);
    assert_eq!(verdict, Verdict::Pass);
    assert_eq!((d.of(Stat::Matched), d.of(Stat::Malformed)), (0, 1));
}

#[test]
fn tcpcopy_follows_the_capture_filter() {
    let mut program = load(crate::TCPCOPY_OBJECT, TCPCOPY_PROGRAM, &[80]);
    program
        .set_filter(&filter_expr::compile("src net 203.0.113.0/24").expect("a filter"))
        .expect("set the filter");
    let ours = frame(v4(CLIENT, 40_000), v4(SERVER, 80), b"GET /", None);
    let chosen = frame(
        v4(Ipv4Addr::new(203, 0, 113, 5), 40_000),
        v4(SERVER, 80),
        b"GET /",
        None,
    );
    let (_, d) = run(&program, &ours);
    assert_eq!(d.of(Stat::Matched), 0, "outside the -F net");
    let (_, d) = run(&program, &chosen);
    assert_eq!(
        (d.of(Stat::Matched), d.of(Stat::Copied)),
        (1, 1),
        "inside the -F net"
    );
}

/// Without ports, the `-F` expression decides alone (`ANY_PORT` sets every port's entry, so the
/// program's port test stays one lookup): a reply from any port the expression selects is caught.
#[test]
fn intercept_with_any_port_follows_the_expression_alone() {
    let mut program = load(
        crate::INTERCEPT_OBJECT,
        INTERCEPT_PROGRAM,
        &[tcpcopy_abi::maps::ANY_PORT],
    );
    program
        .set_filter(&filter_expr::compile("src net 198.51.100.0/24").expect("a filter"))
        .expect("set the filter");
    for port in [0, 1, 80, 6379, 54_321, u16::MAX] {
        let reply = frame(v4(SERVER, port), v4(CLIENT, 40_000), b"+OK", None);
        let (verdict, d) = run(&program, &reply);
        assert_eq!(verdict, Verdict::Drop, "from port {port}");
        assert_eq!((d.of(Stat::Matched), d.of(Stat::Copied)), (1, 1), "{port}");
    }
    let stranger = frame(
        v4(Ipv4Addr::new(203, 0, 113, 5), 6379),
        v4(CLIENT, 40_000),
        b"+OK",
        None,
    );
    let (verdict, d) = run(&program, &stranger);
    assert_eq!(verdict, Verdict::Pass, "outside the -F net");
    assert_eq!(d.of(Stat::Matched), 0);
}

#[test]
fn intercept_consumes_the_replies_from_its_port_only() {
    let mut program = load(crate::INTERCEPT_OBJECT, INTERCEPT_PROGRAM, &[80]);
    let reply = frame(
        v4(SERVER, 80),
        v4(Ipv4Addr::new(192, 0, 2, 1), 40_000),
        b"HTTP/1.1 200",
        None,
    );
    let (verdict, d) = run(&program, &reply);
    assert_eq!(
        verdict,
        Verdict::Drop,
        "the reply never reaches the assistant's stack"
    );
    assert_eq!((d.of(Stat::Matched), d.of(Stat::Copied)), (1, 1));

    // A request to port 80 and anything else the assistant receives pass.
    let request = frame(v4(CLIENT, 40_000), v4(SERVER, 80), b"GET /", None);
    let (verdict, d) = run(&program, &request);
    assert_eq!(verdict, Verdict::Pass);
    assert_eq!(d.of(Stat::Matched), 0);

    let records = ring_records(&mut program);
    assert_eq!(records.len(), 1);
    // intercept's snap length keeps the headers; the copy starts with the whole reply's bytes.
    let (wire_len, bytes) = &records[0];
    assert_eq!(usize::from(*wire_len), reply.len());
    assert_eq!(bytes[..], reply[..bytes.len()]);
}

/// A jumbo frame (IP MTU 9000): more than a page, so the kernel hands the program a multi-buffer
/// frame (the program is built `xdp.frags`); the ring holds it whole, byte for byte.
#[test]
fn tcpcopy_copies_a_jumbo_frame_whole() {
    let mut program = load(crate::TCPCOPY_OBJECT, TCPCOPY_PROGRAM, &[80]);
    let headers = frame(v4(CLIENT, 40_000), v4(SERVER, 80), &[], None).len();
    let body: Vec<u8> = (0..14 + 9000 - headers)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let jumbo = frame(v4(CLIENT, 40_000), v4(SERVER, 80), &body, None);
    assert_eq!(jumbo.len(), 14 + 9000);
    let (verdict, d) = run(&program, &jumbo);
    assert_eq!(verdict, Verdict::Pass);
    assert_eq!(
        (
            d.of(Stat::Matched),
            d.of(Stat::Copied),
            d.of(Stat::Truncated)
        ),
        (1, 1, 0)
    );
    assert_eq!(d.of(Stat::MatchedBytes), jumbo.len() as u64);
    let records = ring_records(&mut program);
    assert_eq!(records.len(), 1);
    assert_eq!(usize::from(records[0].0), jumbo.len(), "wire length");
    assert!(records[0].1 == jumbo, "the whole frame, every buffer of it");
}

/// What tcpcopy's program does not take apart: an IPv6 request behind an extension header (a
/// hop-by-hop options header before TCP) and IPv4 fragments. The later fragments carry no TCP
/// header (never selected); the first one does, and is copied as it is (the engine, which
/// replays whole segments, counts it as malformed). Every frame passes.
#[test]
fn tcpcopy_passes_extension_headers_and_fragments() {
    let mut program = load(crate::TCPCOPY_OBJECT, TCPCOPY_PROGRAM, &[80]);
    let six = frame(v6(10, 40_002), v6(20, 80), b"GET /6", None);
    // Next header 0 (hop-by-hop, 8 bytes: next header TCP, length 0, PadN) before the TCP header.
    let mut hop = six[..14 + 40].to_vec();
    hop[14 + 6] = 0;
    let payload_len = u16::from_be_bytes([hop[14 + 4], hop[14 + 5]]) + 8;
    hop[14 + 4..14 + 6].copy_from_slice(&payload_len.to_be_bytes());
    hop.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    hop.extend_from_slice(&six[14 + 40..]);
    let (verdict, d) = run(&program, &hop);
    assert_eq!(verdict, Verdict::Pass);
    assert_eq!(
        (d.of(Stat::Seen), d.of(Stat::Matched), d.of(Stat::Malformed)),
        (1, 0, 0),
        "not selected, not malformed"
    );

    let request = frame(v4(CLIENT, 40_000), v4(SERVER, 80), b"GET /frag", None);
    let mut first = request.clone();
    first[14 + 6] = 0x20; // more fragments, offset 0
    let mut later = request.clone();
    later[14 + 6..14 + 8].copy_from_slice(&0x0003u16.to_be_bytes()); // offset 24 bytes
    let (verdict, d) = run(&program, &later);
    assert_eq!(verdict, Verdict::Pass);
    assert_eq!((d.of(Stat::Matched), d.of(Stat::Malformed)), (0, 0));
    let (verdict, d) = run(&program, &first);
    assert_eq!(verdict, Verdict::Pass);
    assert_eq!((d.of(Stat::Matched), d.of(Stat::Copied)), (1, 1));
    let records = ring_records(&mut program);
    assert_eq!(records.len(), 1);
    assert!(records[0].1 == first, "the first fragment, as it came");
}

/// A ring nobody reads fills up: the frames that do not fit are counted (`ring_full`), never
/// silently lost, and still pass to the online service.
#[test]
fn tcpcopy_counts_a_full_ring_and_still_passes() {
    let mut program = load(crate::TCPCOPY_OBJECT, TCPCOPY_PROGRAM, &[80]);
    let body = vec![b'x'; 1400];
    let request = frame(v4(CLIENT, 40_000), v4(SERVER, 80), &body, None);
    // The ring holds 64 KiB: about 45 such frames with their record headers.
    let mut full = 0;
    for i in 0..100 {
        let (verdict, d) = run(&program, &request);
        assert_eq!(verdict, Verdict::Pass, "frame {i}");
        assert_eq!(d.of(Stat::Matched), 1);
        assert_eq!(d.of(Stat::Copied) + d.of(Stat::RingFull), 1, "frame {i}");
        full += d.of(Stat::RingFull);
    }
    let records = ring_records(&mut program);
    assert!(
        (40..50).contains(&records.len()),
        "{} frames fit",
        records.len()
    );
    assert_eq!(
        full,
        100 - records.len() as u64,
        "every other frame counted"
    );
    assert!(records.iter().all(|(_, b)| *b == request));
}

/// intercept `--egress` on the test server: its tc egress program swallows the replies from its
/// port to the replayed clients' networks (a redirect to no device, which the kernel reports to
/// TCP as sent) with their headers in the ring, and leaves everything else to the programs after
/// it (`TCX_NEXT`): replies to other clients, requests, other ports.
#[test]
fn intercept_egress_swallows_the_replies_to_replayed_clients_only() {
    let mut program = load(crate::INTERCEPT_OBJECT, INTERCEPT_TC_PROGRAM, &[80]);
    program
        .set_filter(
            &filter_expr::compile("dst net 192.0.2.0/24 or dst net 2001:db8:2::/64")
                .expect("a filter"),
        )
        .expect("set the filter");
    let replayed = Ipv4Addr::new(192, 0, 2, 7);
    let reply = frame(v4(SERVER, 80), v4(replayed, 40_000), b"HTTP/1.1 200", None);
    let six = frame(
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 30)),
            80,
        ),
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 5)),
            40_000,
        ),
        b"HTTP/1.1 200",
        None,
    );
    for f in [&reply, &six] {
        let (verdict, d) = run(&program, f);
        assert_eq!(verdict, Verdict::Redirect, "swallowed: {f:02x?}");
        assert_eq!(
            (
                d.of(Stat::Matched),
                d.of(Stat::Copied),
                d.of(Stat::Redirected)
            ),
            (1, 1, 1)
        );
    }
    // The test server's own client, a request to port 80, another port: left alone.
    let own = frame(v4(SERVER, 80), v4(CLIENT, 40_000), b"HTTP/1.1 200", None);
    let request = frame(v4(replayed, 40_000), v4(SERVER, 80), b"GET /", None);
    let ssh = frame(v4(SERVER, 22), v4(replayed, 40_000), b"ssh", None);
    for f in [&own, &request, &ssh] {
        let (verdict, d) = run(&program, f);
        assert_eq!(verdict, Verdict::Next, "{f:02x?}");
        assert_eq!((d.of(Stat::Seen), d.of(Stat::Matched)), (1, 0));
    }
    let records = ring_records(&mut program);
    assert_eq!(records.len(), 2);
    for ((wire_len, bytes), want) in records.iter().zip([&reply, &six]) {
        assert_eq!(usize::from(*wire_len), want.len());
        assert_eq!(
            bytes[..],
            want[..bytes.len()],
            "the headers, from Ethernet on"
        );
    }
}

/// tcpcopy's tc ingress program (where XDP is taken): copies the requests to its port into the
/// ring, byte for byte, and never decides a packet's fate (`TCX_NEXT`).
#[test]
fn tcpcopy_tc_ingress_copies_requests_and_decides_nothing() {
    let mut program = load(crate::TCPCOPY_OBJECT, TCPCOPY_TC_PROGRAM, &[80]);
    let request = frame(
        v4(CLIENT, 40_000),
        v4(SERVER, 80),
        b"GET / HTTP/1.1\r\n\r\n",
        None,
    );
    let six = frame(v6(10, 40_002), v6(20, 80), b"GET /6", None);
    let answer = frame(v4(SERVER, 80), v4(CLIENT, 40_000), b"HTTP/1.1 200", None);
    for f in [&request, &six] {
        let (verdict, d) = run(&program, f);
        assert_eq!(verdict, Verdict::Next);
        assert_eq!((d.of(Stat::Matched), d.of(Stat::Copied)), (1, 1));
    }
    let (verdict, d) = run(&program, &answer);
    assert_eq!(verdict, Verdict::Next);
    assert_eq!(d.of(Stat::Matched), 0);
    // Cut inside the TCP ports: malformed, left alone.
    let (verdict, d) = run(&program, &request[..14 + 20 + 2]);
    assert_eq!(verdict, Verdict::Next);
    assert_eq!((d.of(Stat::Malformed), d.of(Stat::Matched)), (1, 0));
    let records = ring_records(&mut program);
    assert_eq!(records.len(), 2);
    for ((wire_len, bytes), want) in records.iter().zip([&request, &six]) {
        assert_eq!(usize::from(*wire_len), want.len());
        assert_eq!(bytes, want);
    }
}

/// `-r` decided in the kernel: for IPv4 and IPv6 clients on many ports, the XDP and the tc
/// ingress programs copy exactly the segments of the sessions the engine's own
/// `select::selected` picks (same inputs on both sides), count the others as `unselected`, and
/// pass every frame.
#[test]
fn tcpcopy_copies_only_the_sessions_the_engine_replays() {
    for name in [TCPCOPY_PROGRAM, TCPCOPY_TC_PROGRAM] {
        let mut program = load(crate::TCPCOPY_OBJECT, name, &[80]);
        program.set_percentage(30).expect("set -r");
        let clients: Vec<SocketAddr> = (0..200u16)
            .map(|i| {
                v4(
                    Ipv4Addr::new(198, 51, 100, 10 + u8::try_from(i % 7).unwrap()),
                    10_000 + i * 251,
                )
            })
            .chain((0..200u16).map(|i| v6(i % 5 + 1, 32_768 + i * 131)))
            .collect();
        let mut expected = Vec::new();
        for client in &clients {
            let server = if client.is_ipv4() {
                v4(SERVER, 80)
            } else {
                v6(20, 80)
            };
            let f = frame(*client, server, b"GET / HTTP/1.1\r\n\r\n", None);
            let (verdict, d) = run(&program, &f);
            assert_ne!(verdict, Verdict::Drop, "{name}: production traffic goes on");
            let engine = tcpcopy_engine::select::selected(*client, 30);
            assert_eq!(d.of(Stat::Matched), 1);
            assert_eq!(
                (d.of(Stat::Copied), d.of(Stat::Unselected)),
                if engine { (1, 0) } else { (0, 1) },
                "{name}: {client}, the engine says selected={engine}"
            );
            if engine {
                expected.push(f);
            }
        }
        // About 30% of each family, and exactly those frames in the ring.
        assert!((90..=150).contains(&expected.len()), "{}", expected.len());
        let records = ring_records(&mut program);
        assert_eq!(records.len(), expected.len(), "{name}");
        assert!(
            records
                .iter()
                .zip(&expected)
                .all(|((_, b), want)| b == want)
        );
        // -r 100: every session again.
        program.set_percentage(100).expect("set -r");
        let (_, d) = run(&program, &frame(clients[1], v4(SERVER, 80), b"GET /", None));
        assert_eq!((d.of(Stat::Copied), d.of(Stat::Unselected)), (1, 0));
    }
}

/// A client's pure ACKs the engine has no use for are not copied (XDP and tc ingress): the
/// first of a connection (the handshake's third segment) is, later ones at most once per gap;
/// SYN, data, FIN and RST always are; a SYN starts over (the next connection's first pure ACK
/// is copied again). A padded frame (a 54-byte ACK padded to Ethernet's 60) is still a pure ACK.
/// Gap 0 copies every one.
#[test]
fn tcpcopy_skips_the_pure_acks_the_engine_does_not_use() {
    let segment = |flags: u8, payload: &[u8]| {
        Packet::between(v4(CLIENT, 40_000), v4(SERVER, 80))
            .seq(1000)
            .ack(2000)
            .flags(flags)
            .payload(payload)
            .ethernet([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], None)
    };
    let (ack, psh) = (TcpFlags::ACK, TcpFlags::ACK | TcpFlags::PSH);
    let syn = segment(TcpFlags::SYN, b"");
    let pure = segment(ack, b"");
    let mut padded = pure.clone();
    padded.resize(60, 0);
    let data = segment(psh, b"GET / HTTP/1.1\r\n\r\n");
    let fin = segment(ack | TcpFlags::FIN, b"");
    let rst = segment(TcpFlags::RST, b"");
    let six = Packet::between(v6(10, 40_002), v6(20, 80))
        .flags(ack)
        .ethernet([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], None);
    for name in [TCPCOPY_PROGRAM, TCPCOPY_TC_PROGRAM] {
        let mut program = load(crate::TCPCOPY_OBJECT, name, &[80]);
        program
            .set_ack_gap(std::time::Duration::from_mins(1))
            .unwrap();
        // (frame, copied?)
        let steps: [(&[u8], bool); 12] = [
            (&syn, true),
            (&pure, true),
            (&pure, false),
            (&data, true),
            (&padded, false),
            (&fin, true),
            (&pure, false),
            (&rst, true),
            (&syn, true),
            (&padded, true),
            (&six, true),
            (&six, false),
        ];
        let mut expected = Vec::new();
        for (i, (f, copied)) in steps.iter().enumerate() {
            let (verdict, d) = run(&program, f);
            assert_ne!(verdict, Verdict::Drop);
            assert_eq!(
                (d.of(Stat::Copied), d.of(Stat::AcksSkipped)),
                if *copied { (1, 0) } else { (0, 1) },
                "{name}, step {i}"
            );
            if *copied {
                expected.push(f.to_vec());
            }
        }
        let records = ring_records(&mut program);
        assert_eq!(records.len(), expected.len());
        assert!(
            records
                .iter()
                .zip(&expected)
                .all(|((_, b), want)| b == want)
        );
        // Past the gap the next one is copied; gap 0 copies all.
        program
            .set_ack_gap(std::time::Duration::from_millis(1))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (_, d) = run(&program, &pure);
        assert_eq!(d.of(Stat::Copied), 1, "{name}: a gap later");
        program.set_ack_gap(std::time::Duration::ZERO).unwrap();
        for _ in 0..3 {
            let (_, d) = run(&program, &pure);
            assert_eq!(d.of(Stat::Copied), 1, "{name}: gap 0");
        }
    }
}

/// The records in worker `w`'s ring: (kernel timestamp, bytes).
fn ring_records_of(program: &mut XdpProgram, w: usize) -> Vec<(u64, Vec<u8>)> {
    let mut ring = RingMap::take(program, w).expect("the worker's ring");
    let mut out = Vec::new();
    ring.read_now(64, |h, bytes| out.push((h.ts_ns, bytes.to_vec())));
    out
}

/// `--compare`: tcpcopy's tc egress program copies the service's responses (source port 80)
/// whole, with the kernel's time, into the ring its requests go to (the reversed flow hash), and
/// decides nothing; requests and other ports are left alone.
#[test]
fn tcpcopy_egress_copies_responses_into_their_requests_ring() {
    use tcpcopy_abi::{
        filter::{Fields, v4_mapped},
        maps::TCPCOPY_EGRESS_PROGRAM,
    };
    let all = filter_expr::compile("").expect("the empty filter");
    let load2 = |name| {
        XdpProgram::load_configured(crate::TCPCOPY_OBJECT, name, 1 << 16, 2, &[80], &all)
            .unwrap_or_else(|e| panic!("loading {name} (needs root): {e}"))
    };
    let mut egress = load2(TCPCOPY_EGRESS_PROGRAM);
    let mut ingress = load2(TCPCOPY_PROGRAM);
    // Several connections, so both rings get some.
    let mut want_rings = Vec::new();
    let mut responses = Vec::new();
    for port in 40_000..40_008u16 {
        let request = frame(
            v4(CLIENT, port),
            v4(SERVER, 80),
            b"GET / HTTP/1.1\r\n\r\n",
            None,
        );
        let response = frame(
            v4(SERVER, 80),
            v4(CLIENT, port),
            b"HTTP/1.1 200 OK\r\n\r\n",
            None,
        );
        let fields = Fields {
            src_port: port,
            dst_port: 80,
            src: v4_mapped(CLIENT.octets()),
            dst: v4_mapped(SERVER.octets()),
        };
        want_rings.push((fields.flow_hash() % 2) as usize);
        let (verdict, d) = run(&egress, &response);
        assert_eq!(verdict, Verdict::Next, "production's answer goes on");
        assert_eq!((d.of(Stat::Matched), d.of(Stat::Copied)), (1, 1));
        let (verdict, d) = run(&egress, &request);
        assert_eq!(
            (verdict, d.of(Stat::Matched)),
            (Verdict::Next, 0),
            "a request"
        );
        let (_, d) = run(&ingress, &request);
        assert_eq!(d.of(Stat::Copied), 1);
        responses.push(response);
    }
    let ssh = frame(v4(SERVER, 22), v4(CLIENT, 40_000), b"ssh", None);
    let (verdict, d) = run(&egress, &ssh);
    assert_eq!((verdict, d.of(Stat::Matched)), (Verdict::Next, 0));
    for w in 0..2 {
        let out = ring_records_of(&mut egress, w);
        let requests = ring_records_of(&mut ingress, w);
        let mine: Vec<&Vec<u8>> = responses
            .iter()
            .zip(&want_rings)
            .filter(|(_, r)| **r == w)
            .map(|(f, _)| f)
            .collect();
        assert_eq!(out.len(), mine.len(), "ring {w}");
        assert_eq!(requests.len(), mine.len(), "the requests' ring is the same");
        for ((ts, bytes), want) in out.iter().zip(mine) {
            assert_eq!(bytes, want, "whole, byte for byte");
            assert!(*ts > 0, "the kernel's time");
        }
        assert!(out.windows(2).all(|p| p[0].0 <= p[1].0), "in time order");
    }
}

/// Once a tcpcopy asks for payloads (`COPY_PAYLOAD`), intercept's programs copy whole replies:
/// the assistant's XDP program and the `--egress` tc program.
#[test]
fn intercept_copies_whole_replies_once_payloads_are_asked_for() {
    let replayed = Ipv4Addr::new(192, 0, 2, 7);
    let body = vec![b'x'; 1400];
    let reply = frame(v4(SERVER, 80), v4(replayed, 40_000), &body, None);
    for name in [INTERCEPT_PROGRAM, INTERCEPT_TC_PROGRAM] {
        let mut program = load(crate::INTERCEPT_OBJECT, name, &[80]);
        run(&program, &reply);
        program
            .payload_switch()
            .expect("the switch")
            .turn_on()
            .expect("turned on");
        run(&program, &reply);
        let records = ring_records(&mut program);
        assert_eq!(records.len(), 2, "{name}");
        assert_eq!(
            records[0].1.len(),
            tcpcopy_abi::maps::INTERCEPT_SNAP,
            "{name}: headers only before"
        );
        assert_eq!(records[1].1, reply, "{name}: the whole reply after");
    }
}

/// `--mirror --compare`: tcpcopy's mirror program takes both directions from a mirror port,
/// requests by their destination port and the service's responses by their source port (`-F`
/// read as for their requests), and hands both directions of a connection to one worker: the
/// AF_XDP socket of the frame's queue when that queue's worker (`queue % workers`) owns the
/// connection, else the owner's ring. Test runs come in on queue 0 and no socket is bound, so
/// the frames of the connections worker 0 owns are stamped for the socket (the kernel's time and
/// the mark in the metadata area before the frame) and, the redirect failing, copied into ring
/// 0; the others go into ring 1 unstamped. Every frame passes.
#[test]
fn tcpcopy_mirror_takes_both_directions_to_the_connections_worker() {
    use tcpcopy_abi::{
        filter::{Fields, v4_mapped},
        maps::{MODE_MIRROR, TCPCOPY_MIRROR_PROGRAM, XSK_META_LEN, xsk_meta_time},
    };
    use tcpcopy_xsk::rx::monotonic_ns;
    let only = filter_expr::compile("src net 198.51.100.0/24").expect("a filter");
    let mut program = XdpProgram::load_configured(
        crate::TCPCOPY_OBJECT,
        TCPCOPY_MIRROR_PROGRAM,
        1 << 16,
        2,
        &[80],
        &only,
    )
    .unwrap_or_else(|e| panic!("loading {TCPCOPY_MIRROR_PROGRAM} (needs root): {e}"));
    program.set_mode(MODE_MIRROR).expect("mirror mode");
    let mut want: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    let mut stamped = 0;
    for port in 40_000..40_016u16 {
        let request = frame(
            v4(CLIENT, port),
            v4(SERVER, 80),
            b"GET / HTTP/1.1\r\n\r\n",
            None,
        );
        let response = frame(
            v4(SERVER, 80),
            v4(CLIENT, port),
            b"HTTP/1.1 200 OK\r\n\r\n",
            None,
        );
        let owner = (Fields {
            src_port: port,
            dst_port: 80,
            src: v4_mapped(CLIENT.octets()),
            dst: v4_mapped(SERVER.octets()),
        }
        .flow_hash()
            % 2) as usize;
        for f in [&request, &response] {
            let before_ns = monotonic_ns();
            let counters = program.counters().expect("counters");
            let (run, out) = program.test_run_data(f, 1).expect("test run");
            let d = Delta {
                before: counters,
                after: program.counters().expect("counters"),
            };
            let after_ns = monotonic_ns();
            assert_eq!(
                run.verdict,
                Verdict::Pass,
                "port {port}: production's frame passes"
            );
            assert_eq!(
                (d.of(Stat::Matched), d.of(Stat::Copied)),
                (1, 1),
                "port {port}"
            );
            assert_eq!(d.of(Stat::Redirected), 0, "no socket bound");
            if owner == 0 {
                // Queue 0 is worker 0's: stamped for its socket.
                assert_eq!(out.len(), XSK_META_LEN + f.len(), "port {port}");
                let meta: [u8; XSK_META_LEN] = out[..XSK_META_LEN].try_into().unwrap();
                let ts = xsk_meta_time(&meta).expect("the mark");
                assert!(
                    (before_ns..=after_ns).contains(&ts),
                    "the kernel's time, CLOCK_MONOTONIC: {before_ns} <= {ts} <= {after_ns}"
                );
                assert_eq!(
                    &out[XSK_META_LEN..],
                    &f[..],
                    "the frame behind it, unchanged"
                );
                stamped += 1;
            } else {
                assert_eq!(&out[..], &f[..], "port {port}: not stamped");
            }
            want[owner].push(f.clone());
        }
    }
    assert!(
        stamped > 0 && stamped < 32,
        "both workers own some: {stamped}"
    );
    // Outside -F (read as for the request: a client outside 198.51.100.0/24), another port:
    // seen, not selected.
    let stranger = Ipv4Addr::new(203, 0, 113, 5);
    for f in [
        frame(v4(SERVER, 80), v4(stranger, 40_000), b"HTTP/1.1 200", None),
        frame(v4(stranger, 40_000), v4(SERVER, 80), b"GET /", None),
        frame(v4(SERVER, 22), v4(CLIENT, 40_000), b"ssh", None),
    ] {
        let (verdict, d) = run(&program, &f);
        assert_eq!((verdict, d.of(Stat::Matched)), (Verdict::Pass, 0));
    }
    for (w, frames) in want.iter().enumerate() {
        let got = ring_records_of(&mut program, w);
        assert_eq!(got.len(), frames.len(), "ring {w}");
        for ((ts, bytes), f) in got.iter().zip(frames) {
            assert_eq!(bytes, f, "ring {w}: request and response, in order, whole");
            assert!(*ts > 0);
        }
    }
}
