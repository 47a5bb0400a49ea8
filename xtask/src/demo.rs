//! `cargo xtask demo`: the main job in a throwaway testbed, shown to a person.
//!
//! Brings the testbed up in the two-host layout (no assistant: the test host's only route for
//! the replayed clients is its default route), starts `intercept --egress` on the test host and
//! tcpcopy on the online host, sends
//! real HTTP traffic from the client to the online nginx (one-request connections, keep-alive
//! connections, a 1 MB upload), and prints, as it goes and at the end, what online served against
//! what the test nginx received through the replay, with tcpcopy's losses per reason. The testbed
//! goes down at the end, also on failure.

use std::{thread, time::Duration};

use anyhow::ensure;
use tcpcopy_testbed::{
    GATEWAY, Host, IFACE, Leaving, Options, REPLAY_CLIENT_NET, REPLAY_CLIENT_NET6, Testbed,
    rig::{
        codes, counter, curl, logged, replayed_upload, start_intercept, start_tcpcopy, upload,
        wait_until,
    },
};

use crate::sh::step;

pub fn demo() -> anyhow::Result<()> {
    step("bringing up the testbed: two hosts (online, test) and a client on a private bridge");
    let bed = Testbed::up_with(&Options {
        two_hosts: true,
        ..Options::default()
    })?;
    for host in [Host::Client, Host::Online, Host::Test] {
        println!(
            "    {:<10} {}  (netns {})",
            host.name(),
            host.addr(),
            bed.ns(host)
        );
    }
    println!(
        "    the test host's default route goes via {GATEWAY} (forwards nothing); no route for the replayed clients, no assistant"
    );
    step(&format!(
        "starting intercept on the test host: -i {IFACE} --egress -c {REPLAY_CLIENT_NET} -c {REPLAY_CLIENT_NET6} (catches its replies from port 80 to the replayed clients as they leave)"
    ));
    let mut intercept = start_intercept(&bed);
    step(&format!(
        "starting tcpcopy on online: -i {IFACE} --target {}:80 -s {} -c 192.0.2.x",
        Host::Test.addr(),
        Host::Test.addr()
    ));
    let mut tcpcopy = start_tcpcopy(&bed, &[]);

    let progress = |what: &str, path: &str| {
        let online = logged(&bed, Host::Online, path).len();
        let test = logged(&bed, Host::Test, path).len();
        println!("    {what:<40} online served {online:>5}   test received {test:>5}");
    };

    step("300 one-request connections, in 3 rounds");
    for round in 0..3 {
        let answered = codes(curl(
            &bed,
            Host::Online,
            "one",
            round * 100..(round + 1) * 100,
            true,
        ));
        ensure!(
            answered.iter().all(|c| c == "200"),
            "online did not answer every request"
        );
        thread::sleep(Duration::from_millis(300));
        progress(&format!("round {}", round + 1), "one");
    }

    step("10 keep-alive connections of 50 requests each, at once");
    let clients: Vec<_> = (0..10)
        .map(|c| curl(&bed, Host::Online, &format!("keep{c}"), 0..50, false))
        .collect();
    for c in clients {
        ensure!(codes(c).len() == 50, "a keep-alive client failed");
    }
    let keep = |host| {
        bed.requests(host)
            .map(|r| r.iter().filter(|l| l.contains(" /keep")).count())
    };
    wait_until(Duration::from_secs(20), || {
        keep(Host::Test).is_ok_and(|n| n >= 500)
    });
    println!(
        "    {:<40} online served {:>5}   test received {:>5}",
        "keep-alive",
        keep(Host::Online)?,
        keep(Host::Test)?
    );

    let intact = upload_phase(&bed)?;

    thread::sleep(Duration::from_secs(1));
    let last = tcpcopy.finish(Duration::from_secs(10))?;
    let icpt = intercept.finish(Duration::from_secs(10))?;
    summary(&bed, &last, &icpt, intact)?;
    step("demo passed; tearing the testbed down");
    drop(bed);
    Ok(())
}

/// Uploads 1 MB to online; returns whether the test nginx stored an identical body.
fn upload_phase(bed: &Testbed) -> anyhow::Result<bool> {
    step("a 1 MB upload");
    let data: Vec<u8> = (0..1_048_576u32)
        .map(|i| i.to_le_bytes()[0] ^ i.to_le_bytes()[1])
        .collect();
    ensure!(upload(bed, "demo", &data)? == "200", "the upload failed");
    wait_until(Duration::from_secs(20), || {
        replayed_upload(bed, "demo").is_some()
    });
    let got = replayed_upload(bed, "demo").unwrap_or_default();
    let intact = got == data;
    println!(
        "    upload replayed: {} bytes, identical to the original: {intact}",
        got.len()
    );
    Ok(intact)
}

fn summary(bed: &Testbed, last: &str, icpt: &str, intact: bool) -> anyhow::Result<()> {
    let online = bed
        .requests(Host::Online)?
        .iter()
        .filter(|l| !l.contains("/ready"))
        .count();
    let test = bed
        .requests(Host::Test)?
        .iter()
        .filter(|l| !l.contains("/ready"))
        .count();

    step("summary");
    println!("    requests served by online nginx:        {online}");
    println!(
        "    requests received by test nginx:        {test} (replayed {}.{}%)",
        test * 100 / online.max(1),
        test * 1000 / online.max(1) % 10
    );
    println!(
        "    sessions replayed / completed / lost:   {} / {} / {}",
        counter(last, "sessions"),
        counter(last, "completed"),
        counter(last, "lost")
    );
    let losses: Vec<&str> = last
        .split_whitespace()
        .filter(|kv| kv.starts_with("lost_"))
        .collect();
    println!(
        "    losses by reason:                       {}",
        if losses.is_empty() {
            "none".to_owned()
        } else {
            losses.join(" ")
        }
    );
    println!(
        "    captured by XDP / ring full:            {} / {}",
        counter(last, "copied"),
        counter(last, "ring_full")
    );
    println!(
        "    replies caught by intercept:            {}",
        counter(icpt, "forwarded")
    );
    let left = bed.leaving_test(Leaving::Replies)? + bed.leaving_test(Leaving::Replies6)?;
    println!("    replies that left the test host:        {left}");
    println!("    tcpcopy: {last}");
    ensure!(test == online, "not every request was replayed");
    ensure!(intact, "the uploaded body differs");
    ensure!(
        left == 0,
        "replies to the replayed clients left the test host"
    );
    Ok(())
}
