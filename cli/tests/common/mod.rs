//! A `tmp2p node` process for the CLI tests: started with the given arguments, its
//! `id@addr` read from its first stdout line, killed on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};

/// A running node process.
pub(crate) struct NodeProcess {
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// `id@127.0.0.1:port`.
    pub(crate) address: String,
    home: std::path::PathBuf,
    /// Whether drop removes `home` (it does for the fresh ones `start` makes).
    owns_home: bool,
}

impl NodeProcess {
    /// `tmp2p node --listen 127.0.0.1:0 --home <fresh dir> <args>`, stderr piped.
    pub(crate) fn start(name: &str, args: &[&str]) -> NodeProcess {
        let home = fresh_dir(name);
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut node = NodeProcess::start_in(home, &all);
        node.owns_home = true;
        node
    }

    /// `tmp2p node --home <home> <args>`, stderr piped; `home` is left in place.
    pub(crate) fn start_in(home: std::path::PathBuf, args: &[&str]) -> NodeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
            .args(["node", "--home"])
            .arg(&home)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let first = read_line(&mut stdout);
        // "node ID listening on ADDR"
        let words: Vec<&str> = first.split_whitespace().collect();
        assert_eq!(words.first(), Some(&"node"), "{first:?}");
        let address = format!("{}@{}", words[1], words[4]);
        NodeProcess {
            child,
            stdout,
            address,
            home,
            owns_home: false,
        }
    }

    /// The node's next stdout line.
    pub(crate) fn next_line(&mut self) -> String {
        read_line(&mut self.stdout)
    }

    /// Kills the node and returns what it wrote on stderr.
    pub(crate) fn kill_and_read_stderr(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut log).unwrap();
        }
        log
    }
}

/// An empty directory for one test, unique to this process.
pub(crate) fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tmp2p-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_home {
            let _ = std::fs::remove_dir_all(&self.home);
        }
    }
}

fn read_line(stdout: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    line
}
