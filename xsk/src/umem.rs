//! The thin AF_XDP layer over xdpilone under the receivers ([`crate::rx`]) and the transmit queue
//! ([`crate::tx`]): the UMEM's memory, its creation, and binding a socket to one queue (zero-copy
//! if the driver allows, copy mode otherwise). A [`Bound`] owns its memory; each `unsafe` block
//! says why it holds.

use std::{
    borrow::ToOwned,
    ffi::CString,
    num::NonZeroU32,
    ptr::NonNull,
    string::{String, ToString},
};

use xdpilone::{
    BufIdx, DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig, User,
};

/// Bytes per UMEM frame (the XDP programs know it: they redirect no longer frame).
pub const FRAME_SIZE: u32 = tcpcopy_abi::maps::XSK_FRAME_SIZE;

/// The fewest descriptors of each RX and TX ring and of the fill and completion rings; a socket
/// over more UMEM frames gets rings that hold them all (see [`Bound::open`]).
pub const RING_SIZE: u32 = 2048;

/// Memory for a UMEM, mapped for it alone (anonymous, page-aligned) and unmapped on drop;
/// [`Bound`] keeps it after the UMEM and sockets that use it. Not heap memory: a zero-copy driver
/// may still write into its frames for a moment after the socket is gone (the kernel tears the
/// driver side down later); unmapping leaves the pinned pages to the kernel until then, where
/// memory handed back to the allocator could already hold other data.
struct Area {
    base: NonNull<u8>,
    frames: u32,
}

// SAFETY: the mapping is owned by the `Area` alone; nothing in it is tied to a thread.
unsafe impl Send for Area {}

impl Area {
    fn new(frames: u32) -> Result<Self, String> {
        let len = Self::len_of(frames);
        // SAFETY: a fresh anonymous private mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().to_string());
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or("mmap returned null")?;
        Ok(Self { base, frames })
    }

    fn len_of(frames: u32) -> usize {
        frames as usize * FRAME_SIZE as usize
    }

    fn mem(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.base, Self::len_of(self.frames))
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: `base` and the length are those of the mapping `new` made; `Bound` drops the
        // area after every ring, socket and UMEM that uses it, and nothing else refers to it.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), Self::len_of(self.frames));
        }
    }
}

/// Whether a socket is bound in zero-copy mode or copy mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XskMode {
    ZeroCopy,
    Copy,
}

impl XskMode {
    /// How the start-up lines name it (`capture=..`, `send=..`).
    pub const fn name(self) -> &'static str {
        match self {
            XskMode::ZeroCopy => "af_xdp-zerocopy",
            XskMode::Copy => "af_xdp-copy",
        }
    }
}

/// Why an AF_XDP socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("AF_XDP socket on {iface} queue {queue}: {step}: {errno}")]
pub struct XskSetupError {
    pub iface: String,
    pub queue: u32,
    pub step: &'static str,
    pub errno: String,
}

/// A socket bound to one queue, with the rings asked for, its UMEM and the UMEM's memory.
///
/// Owning the memory is what makes this sound by construction: the fields drop in order, so the
/// rings and the socket go before the UMEM and the UMEM before the memory the kernel maps, and
/// nothing outside this crate can take one part out and keep it past the others.
pub struct Bound {
    pub(crate) rx: Option<RingRx>,
    pub(crate) tx: Option<RingTx>,
    pub(crate) user: User,
    pub(crate) device: DeviceQueue,
    pub(crate) umem: Umem,
    area: Area,
    mode: XskMode,
}

impl Bound {
    /// Creates a UMEM over `frames` frames of fresh memory and binds a socket on `iface`/`queue`
    /// with an RX ring (`rx`) and/or a TX ring (`tx`): zero-copy first, then copy mode over a
    /// fresh UMEM (a failed bind leaves the first UMEM's rings set up). Each ring has
    /// [`RING_SIZE`] descriptors, or `frames` rounded up to a power of two where that is more
    /// (so the fill ring can hold every frame).
    pub fn open(
        frames: u32,
        iface: &str,
        queue: u32,
        rx: bool,
        tx: bool,
    ) -> Result<Self, XskSetupError> {
        let area = Area::new(frames).map_err(|errno| XskSetupError {
            iface: iface.to_owned(),
            queue,
            step: "umem memory",
            errno,
        })?;
        let mem = area.mem();
        let ring = RING_SIZE.max(frames.next_power_of_two());
        let socket = Want {
            iface,
            queue,
            ring,
            rx,
            tx,
        };
        let parts = match bind(mem, &socket, SocketConfig::XDP_BIND_ZEROCOPY) {
            Ok(b) => b,
            Err(zc) => {
                log::debug!("zero-copy refused: {zc}");
                bind(mem, &socket, SocketConfig::XDP_BIND_COPY)?
            }
        };
        let (rx, tx, user, device, umem, mode) = parts;
        Ok(Self {
            rx,
            tx,
            user,
            device,
            umem,
            area,
            mode,
        })
    }

    /// Zero-copy or copy mode.
    pub fn mode(&self) -> XskMode {
        self.mode
    }

    /// The socket's descriptor (for the `XSKS` map and readiness).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.user.as_raw_fd()
    }

    /// Frames in the UMEM.
    pub fn frames(&self) -> u32 {
        self.area.frames
    }
}

/// The `len` bytes at address `addr` (within one frame) of the UMEM of a [`Bound`].
///
/// # Safety
/// `umem` must be a [`Bound`]'s (whose memory outlives it), and the frame holding `addr` must be
/// this process's at the time: not on the fill or TX ring (the kernel may write or read it
/// there), and not borrowed through another call.
#[expect(
    clippy::mut_from_ref,
    reason = "the bytes are the UMEM's memory, not the Umem handle's; exclusivity is the caller's contract"
)]
pub(crate) unsafe fn frame_bytes(umem: &Umem, addr: u64, len: usize) -> Option<&mut [u8]> {
    let frame = u64::from(FRAME_SIZE);
    let offset = usize::try_from(addr % frame).ok()?;
    let chunk = umem.frame(BufIdx(u32::try_from(addr / frame).ok()?))?;
    if offset.checked_add(len)? > FRAME_SIZE as usize {
        return None;
    }
    // SAFETY: `chunk.addr` covers the FRAME_SIZE bytes of one frame of the `Bound`'s memory,
    // which outlives `umem`; offset + len was checked against the frame's size; the caller
    // guarantees that neither the kernel nor another borrow uses the frame meanwhile.
    Some(unsafe { &mut (&mut *chunk.addr.as_ptr())[offset..offset + len] })
}

/// The parts of a bound socket, before they are put together with their memory.
type Parts = (
    Option<RingRx>,
    Option<RingTx>,
    User,
    DeviceQueue,
    Umem,
    XskMode,
);

/// The socket [`bind`] sets up: where, its rings' size, which rings.
#[derive(Clone, Copy)]
struct Want<'a> {
    iface: &'a str,
    queue: u32,
    ring: u32,
    rx: bool,
    tx: bool,
}

fn bind(mem: NonNull<[u8]>, want: &Want<'_>, mode_flag: u16) -> Result<Parts, XskSetupError> {
    let Want {
        iface,
        queue,
        ring,
        rx,
        tx,
    } = *want;
    let err = |step: &'static str| {
        move |e: xdpilone::Errno| XskSetupError {
            iface: iface.to_owned(),
            queue,
            step,
            errno: e.to_string(),
        }
    };
    let config = UmemConfig {
        frame_size: FRAME_SIZE,
        fill_size: ring,
        complete_size: ring,
        ..UmemConfig::default()
    };
    // SAFETY: `mem` is the page-aligned memory of the `Area` that `Bound::open` stores in the
    // same `Bound` as this UMEM, after it, so the memory outlives the UMEM and its sockets;
    // nothing else reads or writes it except through UMEM frames. A UMEM of a failed attempt is
    // dropped before the next one.
    let umem = unsafe { Umem::new(config, mem) }.map_err(err("umem"))?;
    let name = CString::new(iface).map_err(|_| XskSetupError {
        iface: iface.to_owned(),
        queue,
        step: "name",
        errno: "contains NUL".into(),
    })?;
    let mut info = IfInfo::invalid();
    info.from_name(&name).map_err(err("interface"))?;
    info.set_queue(queue);
    let sock = Socket::with_shared(&info, &umem).map_err(err("socket"))?;
    let device = umem.fq_cq(&sock).map_err(err("fill/completion rings"))?;
    let cfg = SocketConfig {
        rx_size: if rx { NonZeroU32::new(ring) } else { None },
        tx_size: if tx { NonZeroU32::new(ring) } else { None },
        bind_flags: SocketConfig::XDP_BIND_NEED_WAKEUP | mode_flag,
    };
    let user = umem.rx_tx(&sock, &cfg).map_err(err("rings"))?;
    let rx = if rx {
        Some(user.map_rx().map_err(err("map rx"))?)
    } else {
        None
    };
    let tx = if tx {
        Some(user.map_tx().map_err(err("map tx"))?)
    } else {
        None
    };
    umem.bind(&user)
        .map_err(err(if mode_flag == SocketConfig::XDP_BIND_ZEROCOPY {
            "bind (zero-copy)"
        } else {
            "bind (copy)"
        }))?;
    let mode = if mode_flag == SocketConfig::XDP_BIND_ZEROCOPY {
        XskMode::ZeroCopy
    } else {
        XskMode::Copy
    };
    Ok((rx, tx, user, device, umem, mode))
}
