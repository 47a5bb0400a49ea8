//! The thin AF_XDP layer over xdpilone shared by tcpcopy's sender and the AF_XDP receivers of
//! both binaries: the UMEM's memory, its creation, and binding a socket to one queue (zero-copy if
//! the driver allows, copy mode otherwise). Its `unsafe` blocks, and those of the frame accessors
//! of its users, each say why they hold.

use std::{
    borrow::ToOwned,
    boxed::Box,
    ffi::CString,
    num::NonZeroU32,
    ptr::NonNull,
    string::{String, ToString},
    vec,
};

use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig, User};

/// Bytes per UMEM frame.
pub const FRAME_SIZE: u32 = 4096;

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Page([u8; FRAME_SIZE as usize]);

/// Page-aligned memory for a UMEM. It must outlive the UMEM and every socket using it: owners
/// declare it as their last field so it is dropped last.
pub struct Area(Box<[Page]>);

impl Area {
    pub fn new(frames: u32) -> Self {
        Self(vec![Page([0; FRAME_SIZE as usize]); frames as usize].into_boxed_slice())
    }

    fn mem(&mut self) -> NonNull<[u8]> {
        let len = self.0.len() * FRAME_SIZE as usize;
        let base =
            NonNull::new(self.0.as_mut_ptr().cast::<u8>()).expect("a boxed slice is not null");
        NonNull::slice_from_raw_parts(base, len)
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

/// A socket bound to one queue, with the rings asked for. Field order is drop order: rings and
/// sockets before the UMEM.
pub struct Bound {
    pub rx: Option<RingRx>,
    pub tx: Option<RingTx>,
    pub user: User,
    pub device: DeviceQueue,
    pub umem: Umem,
    pub mode: XskMode,
}

/// Creates a UMEM over `area` and binds a socket on `iface`/`queue` with an RX ring (`rx`) and/or
/// a TX ring (`tx`): zero-copy first, then copy mode over a fresh UMEM (a failed bind leaves the
/// first UMEM's rings set up). The caller keeps `area` alive longer than the result.
pub fn open(
    area: &mut Area,
    iface: &str,
    queue: u32,
    rx: bool,
    tx: bool,
) -> Result<Bound, XskSetupError> {
    let mem = area.mem();
    match bind(mem, iface, queue, rx, tx, SocketConfig::XDP_BIND_ZEROCOPY) {
        Ok(b) => Ok(b),
        Err(zc) => {
            log::debug!("zero-copy refused: {zc}");
            bind(mem, iface, queue, rx, tx, SocketConfig::XDP_BIND_COPY)
        }
    }
}

fn bind(
    mem: NonNull<[u8]>,
    iface: &str,
    queue: u32,
    rx: bool,
    tx: bool,
    mode_flag: u16,
) -> Result<Bound, XskSetupError> {
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
        ..UmemConfig::default()
    };
    // SAFETY: `mem` is the page-aligned memory of an `Area` that the caller keeps alive longer
    // than the returned `Bound` (its owners declare the area last); nothing else reads or writes
    // it except through UMEM frames. A UMEM of a failed attempt is dropped before the next one.
    #[allow(unsafe_code)]
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
        rx_size: if rx { NonZeroU32::new(2048) } else { None },
        tx_size: if tx { NonZeroU32::new(2048) } else { None },
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
    Ok(Bound {
        rx,
        tx,
        user,
        device,
        umem,
        mode,
    })
}
