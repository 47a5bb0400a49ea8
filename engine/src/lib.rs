//! The replay session engine of tcpcopy: a deterministic, sans-IO state machine.
//!
//! Captured client packets, reply headers from intercept and timer ticks go in; packets for the
//! test server, registrations for intercept and session outcomes come out. It performs no I/O and
//! reads no clock (time is an argument), so it is tested against a real TCP stack on a simulated
//! network with loss and reordering (`tests/`), and benchmarked alone (`benches/`). See
//! [`Engine`] for the call order.

pub mod config;
pub mod engine;
pub mod mapping;
pub mod select;
mod session;
pub mod stats;
pub mod stream;
pub mod time;
pub use tcpcopy_wire as wire;

pub use config::{
    Config, ConfigError, MAX_SEND_AHEAD, MAX_SHARES, WorkerShare, parse_client_addrs,
};
pub use engine::{Engine, Event, SessionRecord, Transmit};
pub use mapping::{Mapping, MappingError};
pub use stats::{LossReason, Outcome, RESPONSE_TIME_BOUNDS_US, ResponseTimes, Stats};
pub use tcpcopy_wire::Seq;
pub use time::Time;
