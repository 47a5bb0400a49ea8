//! Arbitrary bytes into both control-channel decoders (protocol version 6, as a hostile or broken
//! peer would send them) and into the reply encoder: records or nothing, never a panic, a loop or
//! unbounded memory.
#![no_main]

use tcpcopy_proto::{BatchDecoder, ClientDecoder, encode_response};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut batches = BatchDecoder::default();
    let mut clients = ClientDecoder::default();
    for chunk in data.chunks(7) {
        batches.feed(chunk);
        while batches.next_record().is_some() {}
        clients.feed(chunk);
        while clients.next_record().is_some() {}
    }
    let _ = encode_response(data);
});
