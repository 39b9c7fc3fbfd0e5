#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Runs the built `tmp2p` binary: keygen → id round trip, exit codes and one-line errors.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::tmp2p;

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tmp2p-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn assert_one_line_error(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "stderr not one line: {err:?}");
    assert!(err.starts_with("tmp2p: "), "{err:?}");
}

#[test]
fn keygen_then_id_prints_the_key_id() {
    let dir = scratch("roundtrip");
    let key = dir.join("node_key.json");
    let key = key.to_str().unwrap();
    let gen = tmp2p(&["keygen", "--out", key]);
    assert!(gen.status.success(), "{}", stderr(&gen));
    let generated_id = stdout(&gen).trim().to_owned();
    assert_eq!(generated_id.len(), 40);

    // The id derived from the file's key, computed independently through core.
    let file = std::fs::read(key).unwrap();
    let from_file = tmp2p_core::NodeKey::from_json(&file).unwrap().node_id();
    assert_eq!(from_file.to_string(), generated_id);

    let out = tmp2p(&[
        "id",
        "--key",
        key,
        "--network",
        "test-chain",
        "--moniker",
        "m1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let (first, rest) = text.split_once('\n').unwrap();
    assert_eq!(first, generated_id);
    let info: serde_json::Value = serde_json::from_str(rest).unwrap();
    assert_eq!(info["id"], generated_id.as_str());
    assert_eq!(info["network"], "test-chain");
    assert_eq!(info["moniker"], "m1");
    assert_eq!(info["protocol_version"]["p2p"], "8");
    assert_eq!(info["listen_addr"], "tcp://0.0.0.0:26656");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "key file readable by others: {mode:o}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keygen_to_stdout_is_a_loadable_key() {
    let out = tmp2p(&["keygen"]);
    assert!(out.status.success());
    tmp2p_core::NodeKey::from_json(out.stdout.as_slice()).unwrap();
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let dir = scratch("overwrite");
    let key = dir.join("node_key.json");
    let key = key.to_str().unwrap();
    assert!(tmp2p(&["keygen", "--out", key]).status.success());
    let before = std::fs::read(key).unwrap();
    let again = tmp2p(&["keygen", "--out", key]);
    assert_one_line_error(&again, 2);
    assert!(stderr(&again).contains("--force"));
    assert_eq!(std::fs::read(key).unwrap(), before, "file was changed");
    let forced = tmp2p(&["keygen", "--out", key, "--force"]);
    assert!(forced.status.success());
    assert_ne!(std::fs::read(key).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn id_without_key_uses_throwaway_and_says_so() {
    let out = tmp2p(&["id"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("throwaway"));
    let id = stdout(&out).lines().next().unwrap().to_owned();
    tmp2p_core::NodeId::parse_canonical(&id).unwrap();
}

#[test]
fn malformed_key_file_exits_2_with_one_line() {
    let dir = scratch("malformed");
    let key = dir.join("node_key.json");
    std::fs::write(
        &key,
        b"{\"priv_key\": {\"type\": \"tendermint/PrivKeyEd25519\", \"value\": \"AAAA\"}}",
    )
    .unwrap();
    let out = tmp2p(&["id", "--key", key.to_str().unwrap()]);
    assert_one_line_error(&out, 2);
    assert!(stderr(&out).contains("64 bytes"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());

    std::fs::write(&key, b"not json").unwrap();
    assert_one_line_error(&tmp2p(&["id", "--key", key.to_str().unwrap()]), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_key_file_exits_2() {
    let dir = scratch("missing");
    let key = dir.join("absent.json");
    assert_one_line_error(&tmp2p(&["id", "--key", key.to_str().unwrap()]), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    assert_one_line_error(&tmp2p(&["id", "--bogus"]), 2);
    assert_one_line_error(&tmp2p(&["frobnicate"]), 2);
    assert_one_line_error(&tmp2p(&[]), 2);
    assert_one_line_error(&tmp2p(&["keygen", "--force"]), 2);
    // Values core would reject as node info are bad arguments too.
    assert_one_line_error(&tmp2p(&["id", "--moniker", ""]), 2);
    assert_one_line_error(&tmp2p(&["id", "--listen", "tcp://0.0.0.0"]), 2);
    assert_one_line_error(&tmp2p(&["id", "--channels", "zz"]), 2);
}

#[test]
fn help_succeeds() {
    let out = tmp2p(&["--help"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("keygen"));
}
