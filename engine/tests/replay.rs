//! The engine against real TCP stacks (smoltcp) on a simulated network: the test server must
//! receive exactly each client byte stream, per copy, in order.

mod sim;

use sim::{ClientScript, Knobs, Net, Server};
use tcpcopy_engine::{Config, LossReason, Mapping};

fn config() -> Config {
    Config::new(vec![Mapping::parse("80-198.51.100.30:80").unwrap()])
}

fn net(cfg: Config, knobs: Knobs, seed: u64) -> Net {
    Net::new(
        cfg,
        Server::new("online", 120),
        Server::new("test", 118),
        knobs,
        seed,
    )
}

/// Every client stream arrived at the test server exactly `copies` times, and nothing else did.
fn assert_replayed(net: &Net, copies: usize) {
    let mut expected: Vec<Vec<u8>> = net
        .client_streams()
        .into_iter()
        .flat_map(|s| std::iter::repeat_n(s, copies))
        .collect();
    let mut got = net.test_app.streams();
    expected.sort();
    got.sort();
    assert_eq!(
        got.len(),
        expected.len(),
        "connections at the test server; stats: {}",
        net.engine.stats()
    );
    for (g, e) in got.iter().zip(&expected) {
        assert!(
            g == e,
            "stream differs: got {} bytes, expected {} ({:?}...)",
            g.len(),
            e.len(),
            String::from_utf8_lossy(&e[..e.len().min(40)])
        );
    }
    assert_eq!(net.engine.stats().lost.total(), 0, "{}", net.engine.stats());
}

#[test]
fn one_request_connections() {
    let mut n = net(config(), Knobs::default(), 1);
    for i in 0..50 {
        n.add_client(ClientScript::requests(1), i * 2_000);
    }
    assert!(n.run(30_000_000), "settles; {}", n.engine.stats());
    assert_replayed(&n, 1);
    assert_eq!(n.engine.stats().sessions_completed, 50);
}

#[test]
fn keep_alive_100_back_to_back_requests_are_paced_not_collapsed() {
    let mut n = net(config(), Knobs::default(), 2);
    n.add_client(ClientScript::requests(100), 0);
    assert!(n.run(60_000_000), "settles; {}", n.engine.stats());
    assert_replayed(&n, 1);
    let st = n.engine.stats();
    // Each of requests 2..=100 waited for the test server's answer to the one before, and was
    // released by that answer, not by a timeout (the test server is as fast as online; its
    // answers are 2 bytes shorter, so the end of each answer releases the next). The client's
    // FIN is held to a stricter rule: the whole answer production had sent, the test server's
    // own close, or the response wait; 2 bytes short, it went after the wait and is counted.
    assert_eq!(st.paced_by_bytes + st.paced_by_burst_end, 99, "{st:?}");
    assert_eq!(st.paced_by_timeout, 1, "{st:?}");
    assert_eq!(st.closed_short, 1, "{st:?}");
    let test_lines = n.test_app.streams()[0]
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    assert_eq!(test_lines, 100, "all 100 requests replayed");
}

#[test]
fn pipelined_requests() {
    let mut n = net(config(), Knobs::default(), 3);
    let mut script = ClientScript::requests(20);
    script.pipelined = true;
    n.add_client(script, 0);
    n.add_client(ClientScript::requests(5), 100);
    assert!(n.run(30_000_000), "settles; {}", n.engine.stats());
    assert_replayed(&n, 1);
}

#[test]
fn server_first_protocol_waits_for_the_greeting() {
    let mut online = Server::new("online", 64);
    online.greeting = Some(b"220 online ready\n".to_vec());
    let mut test = Server::new("test", 64);
    test.greeting = Some(b"220 test ready\n".to_vec());
    let mut n = Net::new(config(), online, test, Knobs::default(), 4);
    let mut script = ClientScript::requests(10);
    script.wait_greeting = true;
    n.add_client(script, 0);
    assert!(n.run(30_000_000), "settles; {}", n.engine.stats());
    assert_replayed(&n, 1);
    let st = n.engine.stats();
    // The greeting, 9 answers and the close: the first request waited for the greeting.
    assert_eq!(st.paced_by_bytes + st.paced_by_burst_end, 11, "{st:?}");
}

#[test]
fn one_megabyte_upload() {
    let mut n = net(config(), Knobs::default(), 5);
    let mut body: Vec<u8> = (0..1_000_000u32)
        .map(|i| b'a' + u8::try_from(i % 26).unwrap())
        .collect();
    body.push(b'\n');
    n.add_client(
        ClientScript {
            requests: vec![b"POST /upload\n".to_vec(), body, b"GET /after\n".to_vec()],
            ..ClientScript::default()
        },
        0,
    );
    assert!(n.run(60_000_000), "settles; {}", n.engine.stats());
    assert_replayed(&n, 1);
    assert!(n.engine.stats().payload_bytes_sent >= 1_000_000);
}

#[test]
fn session_captured_mid_stream_gets_a_faked_syn() {
    // Capture starts after the client has done its first requests.
    let knobs = Knobs {
        capture_from_us: 20_000,
        ..Knobs::default()
    };
    let mut n = net(config(), knobs, 6);
    let mut script = ClientScript::requests(30);
    script.think_us = 1_000;
    n.add_client(script, 0);
    assert!(n.run(60_000_000), "settles; {}", n.engine.stats());
    let st = *n.engine.stats();
    assert_eq!(st.sessions_faked_syn, 1, "{st}");
    let sent = &n.client_streams()[0];
    let got = &n.test_app.streams()[0];
    assert!(
        !got.is_empty() && got.len() < sent.len(),
        "only the captured part: {} of {}",
        got.len(),
        sent.len()
    );
    assert!(
        sent.ends_with(got),
        "the test server got exactly the captured suffix of the stream"
    );
    assert!(got.starts_with(b"GET /"), "from a request boundary");
    assert_eq!(st.lost.total(), 0, "{st}");
}

#[test]
fn only_syn_leaves_mid_stream_sessions_out() {
    let knobs = Knobs {
        capture_from_us: 20_000,
        ..Knobs::default()
    };
    let mut cfg = config();
    cfg.only_syn = true;
    let mut n = net(cfg, knobs, 6);
    let mut script = ClientScript::requests(30);
    script.think_us = 1_000;
    n.add_client(script, 0);
    assert!(n.run(60_000_000));
    assert_eq!(n.engine.stats().sessions_started, 0);
    assert!(n.engine.stats().captured_orphan > 0);
    assert!(n.test_app.streams().is_empty());
}

#[test]
fn five_copies_of_every_session() {
    let mut cfg = config();
    cfg.copies = 5;
    let mut n = net(cfg, Knobs::default(), 7);
    for i in 0..10 {
        n.add_client(ClientScript::requests(3), i * 1_000);
    }
    assert!(n.run(60_000_000), "settles; {}", n.engine.stats());
    assert_replayed(&n, 5);
    let mut remotes = n.test_app.remotes();
    remotes.sort_by_key(|r| (r.addr.to_string(), r.port));
    remotes.dedup();
    assert_eq!(remotes.len(), 50, "50 distinct client address/port pairs");
}

#[test]
fn thirty_percent_of_sessions_whole() {
    let mut cfg = config();
    cfg.percentage = 30;
    let mut n = net(cfg, Knobs::default(), 8);
    for i in 0..200 {
        n.add_client(ClientScript::requests(2), i * 500);
    }
    assert!(n.run(60_000_000), "settles; {}", n.engine.stats());
    let sent = n.client_streams();
    let got = n.test_app.streams();
    assert!(
        (40..=80).contains(&got.len()),
        "about 30% of 200: {}",
        got.len()
    );
    for g in &got {
        assert!(sent.contains(g), "every replayed session is whole");
    }
    assert_eq!(
        n.engine.stats().sessions_skipped + n.engine.stats().sessions_started,
        200
    );
}

#[test]
fn client_addresses_rewritten_with_c() {
    let mut cfg = config();
    cfg.client_addrs = tcpcopy_engine::parse_client_addrs("192.0.2.x", &[]).unwrap();
    let mut n = net(cfg, Knobs::default(), 9);
    for i in 0..5 {
        n.add_client(ClientScript::requests(2), i * 1_000);
    }
    assert!(n.run(30_000_000));
    assert_replayed(&n, 1);
    assert!(
        n.test_app
            .remotes()
            .iter()
            .all(|r| r.addr.to_string().starts_with("192.0.2."))
    );
}

#[test]
fn loss_reordering_and_duplication_towards_the_test_server() {
    for seed in 10..14 {
        let knobs = Knobs {
            loss: 50,
            reorder: 50,
            duplicate: 20,
            response_loss: 20,
            ..Knobs::default()
        };
        let mut n = net(config(), knobs, seed);
        n.add_client(ClientScript::requests(50), 0);
        let mut body = vec![b'x'; 200_000];
        body.push(b'\n');
        n.add_client(
            ClientScript {
                requests: vec![body, b"GET /end\n".to_vec()],
                ..ClientScript::default()
            },
            0,
        );
        for i in 0..10 {
            n.add_client(ClientScript::requests(1), 1_000 + i * 3_000);
        }
        assert!(
            n.run(300_000_000),
            "settles (seed {seed}); {}",
            n.engine.stats()
        );
        assert_replayed(&n, 1);
        assert!(
            n.engine.stats().retransmits > 0,
            "loss was repaired by retransmission"
        );
    }
}

#[test]
fn capture_gap_gives_up_with_a_reason() {
    let knobs = Knobs {
        capture_loss: 1000,
        ..Knobs::default()
    };
    let mut n = net(config(), knobs, 15);
    // Every captured data packet is lost: the client's FIN shows bytes are missing.
    let mut script = ClientScript::requests(3);
    script.pipelined = true;
    n.add_client(script, 0);
    assert!(n.run(60_000_000), "settles; {}", n.engine.stats());
    let st = n.engine.stats();
    assert_eq!(st.sessions_started, 1);
    assert_eq!(st.lost.get(LossReason::CaptureGap), 1, "{st}");
    assert!(
        n.test_app.streams().iter().all(Vec::is_empty),
        "nothing past the gap was sent"
    );
}

#[test]
fn nothing_listening_is_refused_and_silence_is_a_handshake_timeout() {
    let mut cfg = config();
    cfg.mappings = vec![Mapping::parse("80-198.51.100.30:81").unwrap()];
    cfg.restart_window = std::time::Duration::ZERO;
    let mut n = net(cfg, Knobs::default(), 16);
    n.add_client(ClientScript::requests(1), 0);
    assert!(n.run(30_000_000));
    assert_eq!(
        n.engine.stats().lost.get(LossReason::Refused),
        1,
        "{}",
        n.engine.stats()
    );

    let knobs = Knobs {
        loss: 1000,
        ..Knobs::default()
    };
    let mut cfg = config();
    cfg.restart_window = std::time::Duration::ZERO;
    let mut n = net(cfg, knobs, 17);
    n.add_client(ClientScript::requests(1), 0);
    assert!(n.run(30_000_000));
    assert_eq!(
        n.engine.stats().lost.get(LossReason::HandshakeTimeout),
        1,
        "{}",
        n.engine.stats()
    );
}

#[test]
fn same_size_answers_release_requests_by_byte_count() {
    let mut n = Net::new(
        config(),
        Server::new("online", 200),
        Server::new("test!!", 200),
        Knobs::default(),
        18,
    );
    n.add_client(ClientScript::requests(100), 0);
    assert!(n.run(60_000_000), "settles; {}", n.engine.stats());
    assert_replayed(&n, 1);
    let st = n.engine.stats();
    assert_eq!(st.paced_by_bytes, 100, "{st:?}");
}

/// A multiplexed connection (as HTTP/2 streams): ten requests at once, answered out of order and
/// each after its own delay; the test server is slower than online and drops what it has not
/// answered when the client closes, as an HTTP/2 server does. The client closes after all its
/// answers came, so the replayed close waits until the test server has answered as much as online
/// had: every stream is answered on the test side too, and nothing is counted short.
#[test]
fn a_multiplexed_connection_is_closed_only_after_every_stream_is_answered() {
    for seed in 0..5 {
        let mut online = Server::new("online", 120);
        online.delay_us = |i| 1_000 + (i as u64 % 3) * 500;
        let mut test = Server::new("test", 120);
        test.delay_us = |i| 5_000 + (9 - i as u64) * 3_000;
        test.abort_on_close = true;
        let mut n = Net::new(config(), online, test, Knobs::default(), seed);
        n.add_client(
            ClientScript {
                pipelined: true,
                ..ClientScript::requests(10)
            },
            0,
        );
        assert!(n.run(30_000_000), "settles; {}", n.engine.stats());
        assert_replayed(&n, 1);
        let st = n.engine.stats();
        assert_eq!(n.test_app.aborted, 0, "seed {seed}: streams dropped; {st}");
        assert_eq!(n.test_app.answered, 10, "seed {seed}; {st}");
        assert_eq!(st.closed_short, 0, "seed {seed}; {st}");
    }
}

/// A stream the test server never answers in time: the close goes after the response wait and
/// the shortfall is counted, never silent.
#[test]
fn a_close_before_the_test_server_answered_everything_is_counted() {
    let mut online = Server::new("online", 120);
    online.delay_us = |_| 1_000;
    let mut test = Server::new("test", 120);
    // One stream takes far longer than the response wait (500 ms).
    test.delay_us = |i| if i == 3 { 5_000_000 } else { 2_000 };
    test.abort_on_close = true;
    let mut n = Net::new(config(), online, test, Knobs::default(), 1);
    n.add_client(
        ClientScript {
            pipelined: true,
            ..ClientScript::requests(10)
        },
        0,
    );
    assert!(n.run(30_000_000), "settles; {}", n.engine.stats());
    let st = n.engine.stats();
    assert_eq!(n.test_app.answered, 9, "{st}");
    assert_eq!(n.test_app.aborted, 1, "{st}");
    assert_eq!(st.closed_short, 1, "{st}");
    assert_eq!(st.sessions_completed, 1, "{st}");
}

/// The test server restarts in the middle of 30 keep-alive clients of 20 requests each: every
/// connection is reset, and for a second nothing listens. Sessions are rebuilt on new
/// connections and their SYNs retried until it listens again; no session is lost, and every
/// request reaches the test server (one the reset cut before the test server acknowledged it
/// goes again on the new connection).
#[test]
fn a_test_server_restart_costs_no_session() {
    let mut test = Server::new("test", 118);
    test.down = Some((100_000, 1_100_000));
    let mut n = Net::new(
        config(),
        Server::new("online", 120),
        test,
        Knobs::default(),
        40,
    );
    for i in 0..30 {
        let mut script = ClientScript::requests(20);
        script.think_us = 20_000;
        n.add_client(script, i * 3_000);
    }
    assert!(n.run(120_000_000), "settles; {}", n.engine.stats());
    let s = n.engine.stats();
    assert_eq!(s.lost.total(), 0, "{s}");
    assert!(s.rebuilds >= 30, "every connection rebuilt: {s}");
    assert!(s.syn_retries > 0, "{s}");
    let sent: usize = n
        .client_streams()
        .iter()
        .map(|c| c.iter().filter(|b| **b == b'\n').count())
        .sum();
    let got: usize = n
        .test_app
        .streams()
        .iter()
        .map(|c| c.iter().filter(|b| **b == b'\n').count())
        .sum();
    assert_eq!(sent, 600);
    assert_eq!(got, sent, "{s}");
}

/// The test server's bytes (per connection, by sequence number) that never reached the engine:
/// holes between the SYN and the last byte seen (`net` recording its replies).
fn reply_holes(net: &Net) -> usize {
    use std::collections::BTreeMap;
    use tcpcopy_engine::wire::{Payload, parse};
    // Per connection (a SYN-ACK with a new sequence number starts the next one on its port):
    // where its stream starts and the ranges seen.
    let mut conns: Vec<(u32, Vec<(u32, u32)>)> = Vec::new();
    let mut current: BTreeMap<u16, usize> = BTreeMap::new();
    let replies = net.replies.as_deref().expect("a net recording its replies");
    for pkt in replies {
        let p = parse(pkt, Payload::HeadersOnly).unwrap();
        let seq = p.tcp.seq.raw();
        let port = p.tcp.dst_port;
        if p.tcp.flags.syn() {
            let start = seq.wrapping_add(1);
            if current.get(&port).is_none_or(|&i| conns[i].0 != start) {
                current.insert(port, conns.len());
                conns.push((start, Vec::new()));
            }
        } else if p.tcp.payload_len > 0
            && let Some(&i) = current.get(&port)
        {
            conns[i].1.push((seq, seq.wrapping_add(p.tcp.payload_len)));
        }
    }
    let mut holes = 0;
    for (start, mut ranges) in conns {
        ranges.sort_by_key(|&(s, _)| s.wrapping_sub(start));
        let mut reached = start;
        for (s, e) in ranges {
            if s.wrapping_sub(start) > reached.wrapping_sub(start) {
                holes += 1;
            }
            if e.wrapping_sub(start) > reached.wrapping_sub(start) {
                reached = e;
            }
        }
    }
    holes
}

/// Replies lost on their way to the engine (to intercept): by default the engine acknowledges
/// past the hole (the replay needs no answer bytes) and the test server never sends them
/// again; with `in_order_acks` (`tcpcopy --compare`) it acknowledges only what came in order,
/// and every byte of every answer reaches it in the end.
#[test]
fn in_order_acks_get_every_reply_byte_despite_reply_loss() {
    for in_order in [false, true] {
        let mut cfg = config();
        cfg.in_order_acks = in_order;
        // As `tcpcopy --compare` runs it (no requests sent ahead).
        cfg.send_ahead = 0;
        let knobs = Knobs {
            response_loss: 100,
            ..Knobs::default()
        };
        let mut n = net(cfg, knobs, 21).recording_replies();
        n.add_client(ClientScript::requests(200), 0);
        for i in 0..20 {
            n.add_client(ClientScript::requests(1), 1_000 + i * 3_000);
        }
        assert!(n.run(300_000_000), "settles; {}", n.engine.stats());
        assert_replayed(&n, 1);
        let holes = reply_holes(&n);
        if in_order {
            assert_eq!(holes, 0, "every answer byte reached the engine");
        } else {
            assert!(holes > 0, "reply loss leaves holes without in-order acks");
        }
    }
}

/// A fast keep-alive client (its next request the moment online answers) and a test server that
/// takes 25 ms per answer (online's cycle, with smoltcp's delayed ACKs, is about 13 ms): the captured requests run ahead of the replay. With `send_ahead` the
/// next requests go before the answers (pipelined, answered in order); how long the replay took
/// and the stats.
fn behind(send_ahead: u8, close_after: Option<usize>, seed: u64) -> (u64, Net) {
    let mut cfg = config();
    cfg.send_ahead = send_ahead;
    let mut test = Server::new("test", 118);
    test.delay_us = |_| 25_000;
    test.close_after = close_after;
    let mut n = Net::new(
        cfg,
        Server::new("online", 120),
        test,
        Knobs::default(),
        seed,
    );
    n.add_client(ClientScript::requests(60), 0);
    assert!(n.run(60_000_000), "settles; {}", n.engine.stats());
    // Every request answered by the test server exactly once, in the client's order.
    let processed: Vec<u8> = n.test_app.processed.concat();
    assert_eq!(
        String::from_utf8_lossy(&processed),
        String::from_utf8_lossy(&n.client_streams()[0]),
        "{}",
        n.engine.stats()
    );
    assert_eq!(n.engine.stats().lost.total(), 0, "{}", n.engine.stats());
    (n.now_us, n)
}

#[test]
fn requests_go_ahead_of_a_slow_answer_only_with_send_ahead() {
    let (none, n0) = behind(0, None, 20);
    assert_eq!(n0.engine.stats().sent_ahead, 0);
    assert_replayed(&n0, 1);
    let (one, n1) = behind(1, None, 20);
    assert_replayed(&n1, 1);
    let (four, n4) = behind(4, None, 20);
    assert_replayed(&n4, 1);
    let (s1, s4) = (n1.engine.stats(), n4.engine.stats());
    // Request 2 waits for the first answer; after it, requests go ahead.
    assert!(s1.sent_ahead >= 20, "{s1}");
    assert!(s4.sent_ahead >= 50, "{s4}");
    assert_eq!((s1.requests, s4.requests), (60, 60));
    assert!(
        one * 3 < none * 2 && four < one,
        "replay times: {none} us, {one} us with one ahead, {four} us with four"
    );
}

#[test]
fn a_server_closing_connections_after_requests_went_ahead_gets_each_request_once() {
    for seed in [21, 22] {
        for ahead in [0, 1, 4] {
            let (_, n) = behind(ahead, Some(7), seed);
            let st = n.engine.stats();
            assert!(st.rebuilds >= 8, "60 requests, 7 per connection: {st}");
            if ahead > 0 {
                assert!(st.sent_ahead > 0, "{st}");
            }
        }
    }
}
