//! Who may use intercept's control channel: `--allow` turns strangers away at the door,
//! `--secret-file` makes every tcpcopy prove the shared secret (protocol version 7,
//! challenge-response) before it registers anything, and a peer that sends garbage is closed
//! while the replay goes on. Assertions on intercept's counters and the test nginx's log.

use std::time::Duration;

use tcpcopy_testbed::{Host, Spawned, Testbed};
use tcpcopy_tests::{
    counter, curl_each, logged, start_intercept_with, start_tcpcopy, start_tcpcopy_unlinked,
    wait_settled, wait_until,
};

const WAIT: Duration = Duration::from_mins(1);

/// A stranger on the client host talks HTTP to intercept's control port (curl: a request line
/// is no version record).
fn stranger(bed: &Testbed) {
    let url = format!("http://{}:36524/", Host::Assistant.addr());
    let _ = bed
        .cmd(Host::Client, "curl")
        .args(["-s", "--max-time", "5", &url])
        .output()
        .expect("run curl");
}

/// The latest stats line of intercept for which `done` holds, waiting for it.
fn intercept_stats(p: &mut Spawned, what: &str, done: impl Fn(&str) -> bool) -> String {
    let from = p.lines().len();
    p.wait_for_after(from, |l| l.starts_with("stats") && done(l), what, WAIT)
        .unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn strangers_outside_allow_are_turned_away_and_garbage_is_closed() {
    let bed = Testbed::up().expect("testbed");
    let online = format!("{}/32", Host::Online.addr());
    let mut intercept = start_intercept_with(&bed, &["--allow", &online]);
    stranger(&bed);
    let s = intercept_stats(&mut intercept, "the stranger refused", |l| {
        counter(l, "peers_not_allowed") == 1
    });
    assert_eq!(counter(&s, "tcpcopy_connections"), 0, "{s}");

    // The allowed host replays; garbage from it (an HTTP request to the control port, from
    // curl on the online host) is closed without disturbing the replay's connections.
    let mut tcpcopy = start_tcpcopy(&bed, &[]);
    let url = format!("http://{}:36524/", Host::Assistant.addr());
    let _ = bed
        .cmd(Host::Online, "curl")
        .args(["-s", "--max-time", "5", &url])
        .output()
        .expect("run curl");
    let s = intercept_stats(&mut intercept, "garbage closed", |l| {
        counter(l, "peers_broken") == 1 && counter(l, "tcpcopy_connections") == 2
    });
    assert_eq!(counter(&s, "v7_connections"), 2, "{s}");
    let codes = curl_each(&bed, Host::Online, "allowed", 200);
    assert_eq!(codes.iter().filter(|c| *c == "200").count(), 200);
    assert!(wait_until(WAIT, || logged(&bed, Host::Test, "allowed")
        .len()
        >= 200));
    wait_settled(&bed, &mut tcpcopy, 200, WAIT);
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "lost"), 0, "{last}");
    assert_eq!(logged(&bed, Host::Test, "allowed").len(), 200);
}

#[test]
fn a_shared_secret_is_proven_and_everyone_else_refused() {
    let bed = Testbed::up().expect("testbed");
    let secret = bed.dir().join("secret");
    std::fs::write(&secret, "correct horse battery staple 42\n").unwrap();
    let wrong = bed.dir().join("wrong");
    std::fs::write(&wrong, "not the team's secret at all\n").unwrap();
    let (secret, wrong) = (secret.to_str().unwrap(), wrong.to_str().unwrap());
    let mut intercept = start_intercept_with(&bed, &["--secret-file", secret]);

    // A wrong secret and no secret: refused, tcpcopy says so (`link_refusals`), and no route
    // is taken; version 6, which cannot prove it, is closed by intercept after the offer's
    // moment.
    for extra in [vec!["--secret-file", wrong], vec![]] {
        let mut t = start_tcpcopy_unlinked(&bed, None, &extra);
        let line = t
            .wait_for(
                |l| l.starts_with("stats") && counter(l, "link_refusals") >= 2,
                "both links refused",
                WAIT,
            )
            .unwrap();
        assert_eq!(counter(&line, "v7_links"), 0, "{extra:?}: {line}");
        t.finish(Duration::from_secs(10)).unwrap();
    }
    let before = intercept_stats(&mut intercept, "a stats line", |_| true);
    let mut t = start_tcpcopy_unlinked(&bed, None, &["--protocol", "6"]);
    let s = intercept_stats(&mut intercept, "version 6 closed", |l| {
        counter(l, "peers_broken") >= counter(&before, "peers_broken") + 2
    });
    assert_eq!(counter(&s, "routes"), 0, "{s}");
    t.finish(Duration::from_secs(10)).unwrap();

    // The right secret: proven, and the replay works.
    let mut tcpcopy = start_tcpcopy(&bed, &["--secret-file", secret]);
    let codes = curl_each(&bed, Host::Online, "proven", 200);
    assert_eq!(codes.iter().filter(|c| *c == "200").count(), 200);
    assert!(wait_until(WAIT, || logged(&bed, Host::Test, "proven")
        .len()
        >= 200));
    wait_settled(&bed, &mut tcpcopy, 200, WAIT);
    let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&last, "lost"), 0, "{last}");
    let icpt = intercept.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(counter(&icpt, "deregistered"), 200, "{icpt}");
}
