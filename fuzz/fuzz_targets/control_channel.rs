//! Arbitrary bytes into both ends of the control channel (protocol versions 6 and 7, as a
//! hostile or broken peer would send them) and into the reply encoder: requests, replies, an
//! error or nothing, never a panic, a loop or unbounded memory.
#![no_main]

use std::time::{Duration, Instant};

use tcpcopy_proto::{
    BatchDecoder, ClientDecoder, InterceptEnd, Secret, TcpcopyEnd, encode_response,
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
    for chunk in data.chunks(7) {
        batches.feed(chunk);
        while batches.next_record().is_some() {}
        clients.feed(chunk);
        while clients.next_record().is_some() {}
        if tcpcopy_ok {
            tcpcopy_ok = tcpcopy.handle_input(chunk).is_ok();
            while let Ok(Some(_)) = tcpcopy.poll_reply() {}
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
    let _ = encode_response(data);
});
