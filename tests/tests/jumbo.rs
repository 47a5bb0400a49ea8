//! Jumbo frames: every testbed link at MTU 9000. The XDP programs take multi-buffer frames
//! (`xdp.frags`), tcpcopy copies whole 9000-byte frames, intercept catches the test server's
//! 9000-byte answers (through the ring buffer: an AF_XDP frame holds no more than 3840 bytes),
//! and the replay's packets follow the path's MTU (AF_XDP frames cap them at 4082 bytes; the raw
//! socket sends them whole). Assertions on the bytes the test nginx stored.

use std::time::Duration;

use tcpcopy_testbed::{Host, Options, Testbed};
use tcpcopy_tests::{
    counter, logged, replayed_upload, start_intercept, start_tcpcopy, upload, upload_each,
    wait_settled, wait_until,
};

const WAIT: Duration = Duration::from_mins(2);

/// `n` bytes that differ from request to request (`seed`).
fn body(seed: usize, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| u8::try_from((i * 31 + seed * 7 + i / 4096) % 251).unwrap())
        .collect()
}

#[test]
fn jumbo_frames_replay_bodies_byte_for_byte() {
    let bed = Testbed::up_with(&Options {
        mtu: Some(9000),
        ..Options::default()
    })
    .expect("testbed at MTU 9000");
    // A large answer: the test server sends it in 9000-byte frames to the replayed client.
    let statics = bed.dir().join("static");
    std::fs::create_dir_all(&statics).unwrap();
    std::fs::write(statics.join("big"), body(0, 1 << 20)).unwrap();

    for (round, send) in ["auto", "raw"].into_iter().enumerate() {
        let mut intercept = start_intercept(&bed);
        let mut tcpcopy = start_tcpcopy(&bed, &["--send", send]);
        let attached = tcpcopy
            .lines()
            .into_iter()
            .find(|l| l.starts_with("attached"))
            .unwrap();
        let want = if send == "raw" {
            "send=raw"
        } else {
            "send=af_xdp"
        };
        assert!(attached.contains(want), "{attached}");

        // 200 POSTs of 64 KiB, one connection each.
        let prefix = format!("j{round}-");
        let bodies: Vec<Vec<u8>> = (0..200).map(|i| body(i + round * 1000, 64 << 10)).collect();
        let codes = upload_each(&bed, &prefix, &bodies).unwrap();
        assert_eq!(
            codes.iter().filter(|c| *c == "200").count(),
            200,
            "{codes:?}"
        );
        // A 10 MiB upload.
        let ten = body(7 + round, 10 << 20);
        let name = format!("ten{round}");
        assert_eq!(upload(&bed, &name, &ten).unwrap(), "200");
        // The large answer, over one connection.
        let got = bed
            .cmd(Host::Client, "curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{size_download}"])
            .arg(format!("http://{}/static/big", Host::Online.addr()))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&got.stdout), (1 << 20).to_string());

        assert!(
            wait_until(WAIT, || {
                (0..200).all(|i| replayed_upload(&bed, &format!("{prefix}{i}")).is_some())
                    && replayed_upload(&bed, &name).is_some_and(|b| b.len() == ten.len())
            }),
            "uploads replayed: {:?}",
            tcpcopy.lines().last()
        );
        let settled = wait_settled(&bed, &mut tcpcopy, 202, WAIT);
        for (i, b) in bodies.iter().enumerate() {
            let replayed = replayed_upload(&bed, &format!("{prefix}{i}")).unwrap();
            assert!(
                replayed == *b,
                "POST {i} of round {round}: {} bytes",
                replayed.len()
            );
        }
        assert!(
            replayed_upload(&bed, &name).unwrap() == ten,
            "the 10 MiB body"
        );
        assert_eq!(
            logged(&bed, Host::Test, "static").len(),
            round + 1,
            "the large answer's request"
        );
        assert_eq!(counter(&settled, "truncated"), 0, "whole frames: {settled}");
        assert_eq!(counter(&settled, "capture_malformed"), 0, "{settled}");
        assert!(counter(&settled, "matched_bytes") > (22 << 20), "{settled}");
        let last = tcpcopy.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(counter(&last, "lost"), 0, "{last}");
        let icpt = intercept.finish(Duration::from_secs(10)).unwrap();
        // The answer's 9000-byte frames do not fit an AF_XDP frame: their headers came through
        // the ring, the small replies through AF_XDP.
        assert!(counter(&icpt, "copied") > 100, "{icpt}");
        assert!(counter(&icpt, "redirected") > 0, "{icpt}");
        assert_eq!(
            counter(&icpt, "deregistered"),
            202,
            "every route withdrawn: {icpt}"
        );
    }
}
