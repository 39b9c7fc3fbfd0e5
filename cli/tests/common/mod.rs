//! A `tmp2p node` process for the CLI tests: started with the given arguments, its
//! `id@addr` read from its first stdout line, killed on drop; and a scrape of its
//! `--metrics` endpoint over real HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a test waits for a node's next stdout line before it fails (rather than
/// hangs).
const LINE_WAIT: Duration = Duration::from_secs(30);

/// A running node process.
pub(crate) struct NodeProcess {
    child: Child,
    /// Its stdout lines after the first, read on a thread of their own.
    lines: mpsc::Receiver<String>,
    /// Its stderr so far, read on a thread of its own (so a chatty node never blocks on a
    /// full pipe).
    stderr: Arc<Mutex<String>>,
    /// `id@127.0.0.1:port`.
    pub(crate) address: String,
    home: std::path::PathBuf,
    /// Whether drop removes `home` (it does for the fresh ones `start` makes).
    owns_home: bool,
}

impl NodeProcess {
    /// `tmp2p node --listen 127.0.0.1:0 --home <fresh dir> <args>`; the home is removed on
    /// drop.
    pub(crate) fn start(name: &str, args: &[&str]) -> NodeProcess {
        let home = fresh_dir(name);
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut node = NodeProcess::start_in(home, &all);
        node.owns_home = true;
        node
    }

    /// `tmp2p node --home <home> <args>`; `home` is left in place.
    pub(crate) fn start_in(home: std::path::PathBuf, args: &[&str]) -> NodeProcess {
        NodeProcess::run("node", home, args)
    }

    /// `tmp2p <command> --home <home> <args>`, for a command whose first line names an
    /// address (`node` and `seed`); `home` is left in place.
    pub(crate) fn run(command: &str, home: std::path::PathBuf, args: &[&str]) -> NodeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tmp2p"))
            .args([command, "--home"])
            .arg(&home)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let address = address_in(&first);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buffer) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        NodeProcess {
            child,
            lines,
            stderr,
            address,
            home,
            owns_home: false,
        }
    }

    /// The node's next stdout line (without its newline); panics after [`LINE_WAIT`].
    pub(crate) fn next_line(&mut self) -> String {
        self.lines
            .recv_timeout(LINE_WAIT)
            .unwrap_or_else(|e| panic!("no stdout line from the node within {LINE_WAIT:?}: {e}"))
    }

    /// The node id.
    pub(crate) fn id(&self) -> &str {
        self.address.split('@').next().unwrap()
    }

    /// Waits for a stdout line containing every one of `words`; panics after `limit`.
    pub(crate) fn expect_line(&self, words: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if words.iter().all(|w| line.contains(w)) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {words:?} within {limit:?}"),
            }
        }
    }

    /// Kills the node and returns what it wrote on stderr.
    pub(crate) fn kill_and_read_stderr(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread ends at the pipe's end; give it a moment to take the rest.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.stderr) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let log = self.stderr.lock().unwrap().clone();
        log
    }
}

/// The `id@addr` a first line names: "node ID listening on ADDR" (tmp2p node) or "seed
/// for CHAIN is ID@ADDR" (tmp2p seed).
pub(crate) fn address_in(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["node", id, "listening", "on", addr, ..] => format!("{id}@{addr}"),
        ["seed", "for", _, "is", address, ..] => (*address).to_owned(),
        _ => panic!("no address in {line:?}"),
    }
}

/// Runs the built `tmp2p` with `args` to completion.
pub(crate) fn tmp2p(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tmp2p"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs the built `tmp2p` with `args`, asserts it succeeded (showing its stderr if not)
/// and returns its stdout.
pub(crate) fn tmp2p_ok(args: &[&str]) -> String {
    let out = tmp2p(args);
    assert!(
        out.status.success(),
        "tmp2p {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `field` of every reached node in a `tmp2p crawl --json` census.
pub(crate) fn reached<T: FromIterator<String>>(census: &serde_json::Value, field: &str) -> T {
    census["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["reachable"] == true)
        .map(|n| n[field].as_str().unwrap().to_owned())
        .collect()
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

/// One `GET /metrics`: the Content-Type header and the body.
pub(crate) fn scrape(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!("GET /{path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or_default()
        .to_owned();
    (content_type, body.to_owned())
}

/// The value of the sample whose name and labels start with `prefix`.
pub(crate) fn sample(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
