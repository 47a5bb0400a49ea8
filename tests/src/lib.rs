//! Helpers for the end-to-end tests: finding the built binaries and running them in the testbed.

mod procs;

pub use procs::{Spawned, binary};
