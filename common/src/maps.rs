//! Names and sizes of the maps both XDP programs expose to userspace.

/// Port filter: key is a TCP port in host byte order, value is non-zero when the port is selected.
/// `tcpcopy` matches destination ports (requests to the online service), `intercept` matches source
/// ports (replies from the test server).
pub const FILTER_PORTS: &str = "FILTER_PORTS";
/// Maximum number of ports in [`FILTER_PORTS`].
pub const FILTER_PORTS_MAX: u32 = 1024;

/// Per-CPU counters, indexed by [`crate::stats::Stat`].
pub const STATS: &str = "STATS";

/// Program names, as userspace finds them in the object.
pub const TCPCOPY_PROGRAM: &str = "tcpcopy_capture";
pub const INTERCEPT_PROGRAM: &str = "intercept_capture";
