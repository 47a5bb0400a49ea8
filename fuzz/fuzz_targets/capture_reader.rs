//! Arbitrary bytes as a capture file: packets or an error naming the byte offset, never a panic,
//! an endless loop or an allocation the input does not justify.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tcpcopy_capfile::read_all(data);
});
