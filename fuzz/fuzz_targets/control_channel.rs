//! Arbitrary bytes into both ends of the control channel (protocol versions 6 and 7, as a
//! hostile or broken peer would send them) and into the reply encoder: requests, replies, an
//! error or nothing, never a panic, a loop or unbounded memory. Also a tcpcopy end that
//! negotiated payloads (capability 4, `--compare`) reading replies with payloads (type 3), and
//! the payload encoder's output read back.
#![no_main]

use std::time::{Duration, Instant};

use tcpcopy_proto::{
    BatchDecoder, ClientDecoder, InterceptEnd, Secret, TcpcopyEnd, encode_response, v7,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut batches = BatchDecoder::default();
    let mut clients = ClientDecoder::default();
    let now = Instant::now();
    // tcpcopy's end reading an intercept; intercept's end reading a tcpcopy.
    let mut tcpcopy = TcpcopyEnd::new(now, true, None);
    let mut intercept = InterceptEnd::new(true, [0; 16], None);
    // And one that requires the shared secret: nothing registers without the proof.
    let secret = Secret::new(b"0123456789abcdef").expect("16 bytes");
    let mut guarded = InterceptEnd::new(true, [0; 16], Some(secret));
    let mut guarded_ok = true;
    let (mut tcpcopy_ok, mut intercept_ok) = (true, true);
    // A tcpcopy end that offered payloads and had them accepted.
    let caps = v7::CAPS | v7::CAP_PAYLOAD;
    let mut comparing = TcpcopyEnd::offering(now, true, None, caps);
    let accept = v7::Accept {
        caps,
        nonce: [0; 16],
    };
    let mut comparing_ok = comparing.handle_input(&accept.encode()).is_ok() && comparing.payloads();
    assert!(comparing_ok, "payloads are negotiated");
    for chunk in data.chunks(7) {
        batches.feed(chunk);
        while batches.next_record().is_some() {}
        clients.feed(chunk);
        while clients.next_record().is_some() {}
        if tcpcopy_ok {
            tcpcopy_ok = tcpcopy.handle_input(chunk).is_ok();
            while let Ok(Some(_)) = tcpcopy.poll_reply() {}
        }
        if comparing_ok {
            comparing_ok = comparing.handle_input(chunk).is_ok();
            loop {
                match comparing.poll_reply() {
                    Ok(Some(r)) => {
                        if let Some(p) = r.payload {
                            assert!(p.len() <= v7::MAX_PAYLOAD);
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        comparing_ok = false;
                        break;
                    }
                }
            }
        }
        if intercept_ok {
            intercept.handle_input(chunk);
            loop {
                match intercept.poll_request() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        intercept_ok = false;
                        break;
                    }
                }
            }
            let _ = intercept.poll_transmit();
        }
        if guarded_ok {
            guarded.handle_input(chunk);
            loop {
                match guarded.poll_request() {
                    Ok(Some(tcpcopy_proto::Event::Register(..))) => {
                        panic!("a registration without the proof of the secret")
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        guarded_ok = false;
                        break;
                    }
                }
            }
            let _ = guarded.poll_transmit();
        }
    }
    tcpcopy.handle_timeout(now + Duration::from_secs(2));
    while let Ok(Some(_)) = tcpcopy.poll_reply() {}
    // The payload encoder: whatever it writes, a payload-capable end reads back whole.
    if let Ok(r) = encode_response(data) {
        let split = data.len() / 2;
        let mut wire = Vec::new();
        let with = v7::encode_reply_payload(&r.headers, &data[split..], &mut wire);
        let mut reader = TcpcopyEnd::offering(now, true, None, caps);
        reader.handle_input(&accept.encode()).expect("accept");
        reader.handle_input(&wire).expect("our own encoding");
        let got = reader
            .poll_reply()
            .expect("our own encoding")
            .expect("one reply");
        assert_eq!(got.headers, r.headers);
        assert_eq!(got.payload.is_some(), with);
        if with {
            assert_eq!(got.payload.as_deref(), Some(&data[split..]));
        }
    }
});
