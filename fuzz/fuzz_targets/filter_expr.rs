//! Arbitrary text as a `-F` expression: a program or an error, never a panic, deep recursion or
//! an expansion that outgrows the program.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(p) = tcpcopy_abi::filter_expr::compile(&text) {
        assert!(p.len as usize <= tcpcopy_abi::filter::MAX_TERMS);
    }
});
