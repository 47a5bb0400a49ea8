//! The comparison of replayed responses with production's (issue 17's core): sans-IO and
//! deterministic, in the style of the session engine.
//!
//! For every replayed session, both connections go in segment by segment: the *online* one (the
//! captured client requests and production's responses) and the *test* one (the requests as
//! replayed and the test server's responses). Each direction is reassembled by sequence number
//! ([`reassembly`]), split into requests and responses ([`http`] for HTTP/1.x, otherwise a
//! response is the bytes the server sent between one request and the next), and summarized
//! ([`digest`]: lengths and digests, never the bodies). The k-th exchange of one side is
//! compared with the k-th of the other ([`verdict`]): same, differ (with a [`Record`] of what),
//! or not compared (with a [`Reason`]); each with both latencies.
//!
//! It performs no I/O and reads no clock: time is the engine's [`Time`] (microseconds from the
//! caller's epoch), the clock tcpcopy's workers already give the engine, so the same inputs give
//! the same verdicts. Memory is bounded per session ([`Config::session_cap`]). See [`Session`]
//! for the call order.

pub mod config;
pub mod digest;
pub mod http;
pub mod log;
pub mod reassembly;
mod session;
mod side;
pub mod verdict;

pub use config::{Config, DEFAULT_IGNORED_HEADERS, Ignore, Protocol};
pub use digest::{ByteSummary, Digest, Offset};
pub use session::{Progress, Session, Which};
pub use side::{Direction, Exchange, Response, Segment};
pub use tcpcopy_engine::{Seq, Time};
pub use verdict::{Difference, Outcome, Reason, Record, ResponseFacts, Stats, Verdict, compare};
