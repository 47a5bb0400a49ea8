#![no_std]
// The XDP program is the binary target (src/main.rs); this empty library lets the userspace crate
// name this one as a build-dependency, so cargo rebuilds the userspace binary when it changes.
