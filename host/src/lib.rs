//! Host and runtime helpers shared by `tcpcopy` and `intercept`: the capabilities each needs and
//! the start-up check ([`caps`]), starting as a daemon
//! ([`daemon`]), worker threads pinned to cores ([`workers`]), routes, neighbours and interface
//! facts read from the kernel ([`neigh`], [`iface`]), the ticks of periodic reports
//! ([`report`]), the log format ([`logfmt`]) and the metrics endpoint ([`metrics`]). Nothing here touches the packet path.

pub mod caps;
pub mod daemon;
pub mod iface;
pub mod logfmt;
pub mod metrics;
pub mod neigh;
pub mod report;
pub mod workers;
