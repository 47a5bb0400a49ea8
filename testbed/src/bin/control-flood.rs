//! A stranger on intercept's control port, for the chaos tests: connects to ADDR:PORT, speaks
//! protocol version 7 as tcpcopy does (or stops where intercept closes the door), registers N
//! made-up clients as fast as it can, prints `sent=N open=BOOL` and keeps the connection (and
//! so its routes) until its standard input closes.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream},
    time::{Duration, Instant},
};

use tcpcopy_proto::{ClientRecord, v7};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(count)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: control-flood ADDR:PORT N");
    };
    let addr: SocketAddr = addr.parse()?;
    let count: u32 = count.parse()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut hello = ClientRecord::version().encode().to_vec();
    hello.extend_from_slice(&v7::offer(v7::CAPS));
    let mut accept = [0u8; v7::ACCEPT_LEN];
    let upgraded = stream.write_all(&hello).is_ok() && stream.read_exact(&mut accept).is_ok();
    if !upgraded || v7::Accept::decode(&accept).is_err() {
        println!("sent=0 open=false");
        return Ok(());
    }
    let target = SocketAddr::from((Ipv4Addr::new(198, 51, 100, 30), 80));
    let started = Instant::now();
    let mut sent = 0u32;
    let mut buf = Vec::with_capacity(1 << 16);
    let mut open = true;
    while sent < count && open {
        buf.clear();
        while sent < count && buf.len() < (1 << 16) - 64 {
            let [_, b, c, d] = sent.to_be_bytes();
            let client = SocketAddrV4::new(Ipv4Addr::new(10, b, c, d), 40_000);
            v7::encode_key(v7::MSG_REGISTER, client.into(), target, &mut buf)?;
            sent += 1;
        }
        open = stream.write_all(&buf).is_ok();
    }
    println!(
        "sent={sent} open={open} seconds={:.1}",
        started.elapsed().as_secs_f64()
    );
    // Hold the routes until told to go.
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    Ok(())
}
