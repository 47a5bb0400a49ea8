//! Names and sizes of the maps both XDP programs expose to userspace.

/// Port filter: an array of one byte per TCP port (index: the port in host byte order), non-zero
/// when the port is selected. `tcpcopy` matches destination ports (requests to the online
/// service), `intercept` matches source ports (replies from the test server). An array, not a
/// hash map: the verifier inlines an array lookup into a few instructions, and this lookup is on
/// the path of every packet (a hash lookup cost about 10 ns, half of an unmatched packet's time).
pub const FILTER_PORTS: &str = "FILTER_PORTS";
/// Asks for every port (the `-F` expression decides alone): userspace then sets every entry of
/// [`FILTER_PORTS`], so the program still makes one lookup.
pub const ANY_PORT: u16 = 0;
/// The compiled `-F` expression: an array of one `filter::FilterProgram`.
pub const FILTER_EXPR: &str = "FILTER_EXPR";
/// Entries of [`FILTER_PORTS`]: every port.
pub const FILTER_PORTS_MAX: u32 = 1 << 16;

/// Per-CPU counters, indexed by [`crate::stats::Stat`].
pub const STATS: &str = "STATS";

/// Program names, as userspace finds them in the object.
pub const TCPCOPY_PROGRAM: &str = "tcpcopy_capture";
pub const INTERCEPT_PROGRAM: &str = "intercept_capture";
/// tcpcopy's tc ingress program (same object and maps): captures where XDP is taken.
pub const TCPCOPY_TC_PROGRAM: &str = "tcpcopy_ingress";
/// intercept's tc egress program (same object and maps): catches the replies on the test server.
pub const INTERCEPT_TC_PROGRAM: &str = "intercept_egress";
/// tcpcopy's XDP program for `--mirror --compare` (same object and maps): on a mirror port that
/// carries both directions, it selects the requests (destination port) and the service's
/// responses (source port, `-F` read as for their requests), and hands each frame to the worker
/// that owns its connection: into the AF_XDP socket of its queue when that queue's worker is the
/// connection's (`queue % workers == flow hash % workers`, the frame stamped with the kernel's
/// time, see [`XSK_META_LEN`]), else into the connection's worker's ring buffer.
pub const TCPCOPY_MIRROR_PROGRAM: &str = "tcpcopy_mirror";
/// tcpcopy's tc egress program (same object and maps, `--compare`): copies the online service's
/// responses (source port = a service port) into the ring of the worker that owns their
/// connection (the flow hash of the reversed addresses and ports).
pub const TCPCOPY_EGRESS_PROGRAM: &str = "tcpcopy_egress";
/// An array of one u32: non-zero when intercept's programs copy the replies' payloads too, not
/// only their headers (set by intercept once a tcpcopy asked for payloads: `--compare`).
pub const COPY_PAYLOAD: &str = "COPY_PAYLOAD";

/// Ring buffers of copied frames (`FrameHeader` then the frame's first bytes), one per worker:
/// a frame goes into ring `hash(addresses, ports) % workers` (the `MODE` map's [`MODE_WORKERS`]
/// entry), so each worker sees every packet of the connections it owns, whichever queue or CPU
/// they arrive on. Rings of workers that do not run are one page.
pub const FRAMES: [&str; MAX_WORKERS as usize] = [
    "FRAMES0", "FRAMES1", "FRAMES2", "FRAMES3", "FRAMES4", "FRAMES5", "FRAMES6", "FRAMES7",
];
/// Workers the XDP program can feed (ring buffers it has).
pub const MAX_WORKERS: u32 = 8;
/// Default ring buffer size in bytes (a power-of-2 multiple of the page size).
pub const FRAMES_BYTES: u32 = 16 << 20;
/// Per-CPU scratch buffer a frame is assembled in before it goes into the ring.
pub const SCRATCH: &str = "SCRATCH";

/// Bytes tcpcopy copies of each selected request frame (its snap length): a whole jumbo frame
/// (an IP MTU of 9216 behind an Ethernet header and a VLAN tag) with room to spare.
pub const TCPCOPY_SNAP: usize = 9728;
/// Bytes intercept copies of each reply frame: Ethernet, VLAN, IPv6 and TCP headers with options.
pub const INTERCEPT_SNAP: usize = 128;
/// Bytes intercept copies of each reply frame when payloads are asked for ([`COPY_PAYLOAD`]):
/// as tcpcopy, a whole jumbo frame (the record size of intercept's ring).
pub const INTERCEPT_PAYLOAD_SNAP: usize = TCPCOPY_SNAP;

/// What precedes each frame in the ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes of the frame that follow.
    pub len: u16,
    /// The frame's length on the wire (more than `len` when truncated to the snap length).
    pub wire_len: u16,
    /// Receive queue the frame arrived on.
    pub queue: u32,
    /// When the program saw the frame: `bpf_ktime_get_ns` (`CLOCK_MONOTONIC`, nanoseconds).
    pub ts_ns: u64,
}

/// Size of [`FrameHeader`] in the ring.
pub const FRAME_HEADER_LEN: usize = 16;
const _: () = assert!(core::mem::size_of::<FrameHeader>() == FRAME_HEADER_LEN);

impl FrameHeader {
    /// Reads the header at the start of a ring record (native byte order, as the kernel wrote it).
    pub fn read(record: &[u8]) -> Option<(Self, &[u8])> {
        let h = record.get(..FRAME_HEADER_LEN)?;
        let header = Self {
            len: u16::from_ne_bytes([h[0], h[1]]),
            wire_len: u16::from_ne_bytes([h[2], h[3]]),
            queue: u32::from_ne_bytes([h[4], h[5], h[6], h[7]]),
            ts_ns: u64::from_ne_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]),
        };
        let frame = record.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + usize::from(header.len))?;
        Some((header, frame))
    }
}

/// AF_XDP sockets by receive queue (tcpcopy `--mirror`).
pub const XSKS: &str = "XSKS";
/// Receive queues an interface may have for `--mirror`.
pub const MAX_QUEUES: u32 = 64;
/// How selected frames reach userspace: an array of u32, at [`MODE_INDEX`] [`MODE_COPY`] or
/// [`MODE_MIRROR`], at [`MODE_WORKERS`] the number of workers (ring buffers in use; 0 means 1),
/// at [`MODE_PERCENT`] the percentage of sessions replayed.
pub const MODE: &str = "MODE";
/// Entries of the `MODE` array.
pub const MODE_ENTRIES: u32 = 4;
pub const MODE_INDEX: u32 = 0;
pub const MODE_WORKERS: u32 = 1;
/// A flag in the [`MODE_WORKERS`] entry: each frame goes into ring `cpu % workers` (the CPU the
/// program runs on) instead of `hash(addresses, ports) % workers`. For `bpf-cost`'s comparison
/// of the two layouts only: per-CPU rings are not flow-consistent on their own (a connection's
/// packets reach one CPU only where the NIC's RSS and the interrupt affinity keep them there;
/// on veth and with generic XDP they run on the sender's CPU), so tcpcopy never sets it.
pub const WORKERS_BY_CPU: u32 = 1 << 31;
/// tcpcopy's `-r` (with `-g`, the percentage it ramps up to): only the segments of the sessions
/// the engine replays are copied, chosen by the same hash of the client's address and port
/// (`filter::Fields::selected`, the engine's `select::selected`); the others are counted
/// (`unselected`) and left alone. 0 (never set) or 100: every session.
pub const MODE_PERCENT: u32 = 2;
/// tcpcopy: the shortest time, in milliseconds, between two copied pure ACKs (no payload, no
/// SYN, FIN or RST) of one client connection; 0 (never set): every pure ACK is copied. The
/// engine uses a client's pure ACKs for two things only: the first of a connection (the
/// handshake's third segment) marks where the online server's stream starts, and any packet
/// restarts the session's idle timer (`-t`, `-k`). So the first pure ACK of each connection is
/// always copied (the [`ACKED`] map has no entry for it; a SYN removes the entry), later ones at
/// most once per this gap, which tcpcopy sets to an eighth of its shortest idle timeout (at most
/// a second): a session then ends at most that much earlier than with every ACK copied, and only
/// when its client went quiet for nearly the whole timeout. Applies to the ring buffer
/// (copy mode and tc), not to `--mirror`.
pub const MODE_ACK_GAP: u32 = 3;
/// When each client connection last had a pure ACK copied (an LRU hash: key the connection's
/// addresses and ports as five u64, value `bpf_ktime_get_ns`). An entry evicted only costs one
/// more copied ACK.
pub const ACKED: &str = "ACKED";
/// Entries of [`ACKED`] in tcpcopy's object (intercept's is made as small as the kernel takes).
pub const ACKED_MAX: u32 = 32_768;
/// Copy selected frames into the ring buffer and pass every frame on (the default).
pub const MODE_COPY: u32 = 0;
/// Redirect selected frames into the AF_XDP socket of their queue (tcpcopy on a mirror/tap
/// port; intercept by default).
pub const MODE_MIRROR: u32 = 1;
/// Bytes of an AF_XDP frame (a UMEM chunk).
pub const XSK_FRAME_SIZE: u32 = 4096;
/// Bytes [`TCPCOPY_MIRROR_PROGRAM`] writes into the XDP metadata area (`bpf_xdp_adjust_meta`)
/// of a frame it redirects into an AF_XDP socket; the kernel copies them (copy mode) or leaves
/// them (zero-copy) right before the frame in the UMEM: the kernel's time
/// (`bpf_ktime_get_ns`, `CLOCK_MONOTONIC` nanoseconds, as [`FrameHeader::ts_ns`]) then
/// [`XSK_META_MAGIC`], each a native-endian u64. The reader clears the magic before the frame
/// goes back to the kernel, so a frame that came without metadata is never taken for stamped.
pub const XSK_META_LEN: usize = 16;
/// The mark after the time in the metadata: "tcpcopy" and a version byte, as a u64.
pub const XSK_META_MAGIC: u64 = u64::from_be_bytes(*b"tcpcopy1");

/// The kernel's time in the [`XSK_META_LEN`] bytes before a frame, if they carry the mark.
pub fn xsk_meta_time(meta: &[u8; XSK_META_LEN]) -> Option<u64> {
    let [
        t0,
        t1,
        t2,
        t3,
        t4,
        t5,
        t6,
        t7,
        m0,
        m1,
        m2,
        m3,
        m4,
        m5,
        m6,
        m7,
    ] = *meta;
    (u64::from_ne_bytes([m0, m1, m2, m3, m4, m5, m6, m7]) == XSK_META_MAGIC)
        .then(|| u64::from_ne_bytes([t0, t1, t2, t3, t4, t5, t6, t7]))
}

/// The longest frame an AF_XDP socket takes: the kernel puts it behind `XDP_PACKET_HEADROOM`
/// (256 bytes) in a chunk. Longer frames, and frames in several buffers, are copied into the
/// ring buffer instead of redirected (the sockets are bound without multi-buffer support).
pub const XSK_FRAME_MAX: u64 = XSK_FRAME_SIZE as u64 - 256;
