//! Multiplexed connections: HTTP/2 cleartext against nginx on online and test (port 8080), driven
//! by a real HTTP/2 client (h2load) with many concurrent streams per connection. The client closes
//! only after production answered all its streams; an HTTP/2 server drops the streams it has not
//! answered when the client closes, so the replayed close must wait for the test server's answers:
//! the test nginx logs exactly what the online nginx logged, every run.

use std::time::Duration;

use tcpcopy_testbed::{Host, Testbed};
use tcpcopy_tests::{logged, start_intercept_with, start_tcpcopy, wait_settled_on};

const WAIT: Duration = Duration::from_mins(1);
const RUNS: usize = 3;
const REQUESTS: usize = 2000;

#[test]
fn every_http2_stream_reaches_the_test_server_every_run() {
    let bed = Testbed::up().expect("testbed");
    let _intercept = start_intercept_with(&bed, &["-F", "tcp and (src port 80 or src port 8080)"]);
    let target = format!("8080-{}:8080", Host::Test.addr());
    let mut tcpcopy = start_tcpcopy(&bed, &["-x", &target]);
    let mut sessions = 0;
    for run in 0..RUNS {
        let path = format!("h2run{run}");
        // 10 connections with 10 concurrent streams each.
        let out = bed
            .cmd(Host::Client, "h2load")
            .args([
                "-n",
                &REQUESTS.to_string(),
                "-c",
                "10",
                "-m",
                "10",
                &format!("http://{}:8080/{path}/x", Host::Online.addr()),
            ])
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && report.contains(&format!("{REQUESTS} succeeded")),
            "h2load: {report}"
        );
        sessions += 10;
        let settled = wait_settled_on(&bed, 8080, &mut tcpcopy, sessions, WAIT);
        let online = logged(&bed, Host::Online, &path);
        let test = logged(&bed, Host::Test, &path);
        assert_eq!(online.len(), REQUESTS, "online served every stream");
        assert!(
            online.iter().all(|l| l.contains("HTTP/2.0")),
            "HTTP/2: {:?}",
            online.first()
        );
        assert_eq!(
            test.len(),
            REQUESTS,
            "run {run}: the test nginx logged every stream online logged; {settled}"
        );
    }
}
