//! `cargo xtask demo`: the main job in a throwaway testbed, shown to a person.
//!
//! Brings the testbed up, starts tcpcopy on the online host, sends HTTP requests from the client
//! to the online nginx in batches while printing tcpcopy's live counters, then prints a summary
//! and checks it: every request answered, XDP's count equal to the kernel's own TCP segment count.
//! The testbed goes down at the end, also on failure.

use std::{thread, time::Duration};

use anyhow::{Context as _, bail, ensure};
use tcpcopy_testbed::{Host, IFACE, Spawned, Testbed, binary};

use crate::sh::step;

const BATCHES: usize = 10;
const PER_BATCH: usize = 10;

pub fn demo() -> anyhow::Result<()> {
    step("bringing up the testbed (client, online, test, assistant on a private bridge)");
    let bed = Testbed::up()?;
    for host in Host::ALL {
        println!(
            "    {:<10} {}  (netns {})",
            host.name(),
            host.addr(),
            bed.ns(host)
        );
    }

    let target = format!("{}:80", Host::Test.addr());
    step(&format!(
        "starting tcpcopy on online: -i {IFACE} --target {target}"
    ));
    let mut cmd = bed.cmd(Host::Online, &binary("tcpcopy")?.to_string_lossy());
    cmd.args(["-i", IFACE, "--target", &target, "--stats-interval", "0.5"]);
    let mut tcpcopy = Spawned::start(cmd)?;
    let attached = tcpcopy.wait_for_line("attached", Duration::from_secs(20))?;
    println!("    tcpcopy: {attached}");
    let in_segs_before = bed.tcp_in_segs(Host::Online)?;

    step(&format!(
        "sending {} requests from client to online nginx",
        BATCHES * PER_BATCH
    ));
    let mut ok = 0;
    for batch in 0..BATCHES {
        ok += curl_batch(&bed, batch)?;
        thread::sleep(Duration::from_millis(300));
        let live = tcpcopy
            .lines()
            .into_iter()
            .rev()
            .find(|l| l.starts_with("stats"))
            .unwrap_or_default();
        println!("    {ok:>3} answered   tcpcopy {live}");
    }
    thread::sleep(Duration::from_millis(500));
    let in_segs = bed.tcp_in_segs(Host::Online)? - in_segs_before;

    tcpcopy.signal("TERM")?;
    tcpcopy.wait(Duration::from_secs(10))?;
    let last = tcpcopy
        .lines()
        .into_iter()
        .find(|l| l.starts_with("final"))
        .context("tcpcopy printed no final counters")?;
    let matched = value(&last, "matched")?;
    let logged = bed
        .requests(Host::Online)?
        .iter()
        .filter(|l| l.contains("GET /demo/"))
        .count();

    step("summary");
    println!(
        "    requests answered by online nginx:   {ok}/{}",
        BATCHES * PER_BATCH
    );
    println!("    requests in online's access log:     {logged}");
    println!("    segments to :80 counted by XDP:      {matched}");
    println!("    segments the online kernel received: {in_segs}");
    ensure!(ok == BATCHES * PER_BATCH, "not every request was answered");
    ensure!(
        logged == BATCHES * PER_BATCH,
        "online's log misses requests"
    );
    ensure!(matched == in_segs, "XDP's count differs from the kernel's");
    step("demo passed; tearing the testbed down");
    drop(bed);
    Ok(())
}

fn curl_batch(bed: &Testbed, batch: usize) -> anyhow::Result<usize> {
    let mut args = vec![
        "-s".to_owned(),
        "-H".into(),
        "Connection: close".into(),
        "-w".into(),
        "%{http_code}\\n".into(),
    ];
    for i in 0..PER_BATCH {
        args.extend(["-o".into(), "/dev/null".into()]);
        args.push(format!(
            "http://{}/demo/{}",
            Host::Online.addr(),
            batch * PER_BATCH + i
        ));
    }
    let out = bed.cmd(Host::Client, "curl").args(&args).output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| *l == "200")
        .count())
}

fn value(line: &str, name: &str) -> anyhow::Result<u64> {
    let Some(v) = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
    else {
        bail!("no {name} in {line:?}");
    };
    Ok(v.parse()?)
}
