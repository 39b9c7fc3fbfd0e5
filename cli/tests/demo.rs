//! `tmp2p demo` as a real process: a short run of 3 nodes reaches every peer, verifies the
//! echoes and exits 0; bad arguments exit 2 with one line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn a_short_demo_reaches_every_peer_and_exits_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args(["demo", "--nodes", "3", "--duration", "1", "--rate", "20"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok: every node reached its 2 peers"),
        "{stdout}"
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("demo-")).collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1], "2", "peers reached: {row}");
        assert!(cols[4].parse::<u64>().unwrap() > 0, "verified: {row}");
        assert_eq!(cols[5], "0", "corrupted: {row}");
    }
}

#[test]
fn bad_demo_arguments_exit_2_with_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args(["demo", "--nodes", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
}
