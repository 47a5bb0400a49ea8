//! `cargo xtask testbed up|down|status`: the testbed for people, kept until `down`.

use tcpcopy_testbed::{
    Host, IFACE, Options, REPLAY_CLIENT_NET, Testbed, project_namespaces, sweep_stale, teardown,
};

use crate::sh::step;

/// The id of the testbed `up` keeps (its namespaces are `tcx-bed-<host>`).
pub const PERSISTENT_ID: &str = "tcx-bed";

pub fn up(queues: u16) -> anyhow::Result<()> {
    if project_namespaces()
        .iter()
        .any(|n| n.starts_with(&format!("{PERSISTENT_ID}-")))
    {
        step(&format!("testbed {PERSISTENT_ID} is already up"));
        status();
        return Ok(());
    }
    let bed = Testbed::up_with(&Options {
        queues,
        persistent: true,
        id: Some(PERSISTENT_ID.into()),
        mirror: true,
        mtu: None,
        two_hosts: false,
    })?;
    step(&format!("testbed {} is up", bed.id()));
    describe(&bed);
    Ok(())
}

pub fn down() {
    teardown(PERSISTENT_ID);
    let stale = sweep_stale();
    step(&format!(
        "testbed {PERSISTENT_ID} is down{}",
        if stale.is_empty() {
            String::new()
        } else {
            format!("; also removed stale {}", stale.join(", "))
        }
    ));
}

pub fn status() {
    let names = project_namespaces();
    if names.is_empty() {
        step("no testbed namespaces exist");
        return;
    }
    step(&format!("project namespaces: {}", names.join(" ")));
    if let Ok(bed) = Testbed::existing(PERSISTENT_ID) {
        describe(&bed);
    }
}

fn describe(bed: &Testbed) {
    println!("hosts (interface {IFACE} in each namespace):");
    for host in Host::ALL {
        let http = if host.serves_http() {
            "  nginx on :80"
        } else {
            ""
        };
        println!(
            "  {:<10} {:<15} netns {}{http}",
            host.name(),
            host.addr().to_string(),
            bed.ns(host)
        );
    }
    println!(
        "the test host routes {REPLAY_CLIENT_NET} via the assistant; logs in {}",
        bed.dir().display()
    );
    println!(
        "try:  ip netns exec {} curl http://{}/",
        bed.ns(Host::Client),
        Host::Online.addr()
    );
    println!(
        "      cargo xtask run --netns {} intercept -i {IFACE}",
        bed.ns(Host::Assistant)
    );
    println!(
        "      cargo xtask run --netns {} tcpcopy -i {IFACE} --target {}:80 -s {} -c 192.0.2.x",
        bed.ns(Host::Online),
        Host::Test.addr(),
        Host::Assistant.addr()
    );
}
