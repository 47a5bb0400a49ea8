//! The end-to-end tests live in tests/*.rs; their helpers are the testbed's `rig` module, shared
//! with `cargo xtask demo`.

pub use tcpcopy_testbed::rig::*;
