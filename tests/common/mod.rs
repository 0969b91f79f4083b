//! Test support: run the real `cryptosat` binary in a scratch directory with a
//! test NOTIFY_SOCKET, and read what it tells systemd and logs.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A syntactically valid bot token used by every test; asserted absent from output.
pub const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
/// The secret part alone, to catch partial leaks too.
pub const TOKEN_SECRET: &str = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
pub const API_KEY: &str = "cg-test-key-0123456789abcdef";

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cryptosat"))
}

/// A scratch directory with a config file for one instance.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `config.toml` with the lock and db inside the scratch dir, the
    /// given Telegram URL, and `extra` appended (whole sections).
    pub fn config(&self, telegram_url: &str, extra: &str) -> PathBuf {
        self.config_with_lock(telegram_url, &self.path("run/cryptosat.lock"), extra)
    }

    pub fn config_with_lock(&self, telegram_url: &str, lock: &Path, extra: &str) -> PathBuf {
        self.write_config(telegram_url, lock, "", extra)
    }

    /// Like [`Scratch::config`], with keys added to `[telegram]` and a CoinGlass URL.
    pub fn bot_config(
        &self,
        telegram_url: &str,
        coinglass_url: &str,
        telegram_keys: &str,
    ) -> PathBuf {
        self.write_config(
            telegram_url,
            &self.path("run/cryptosat.lock"),
            telegram_keys,
            &format!("[coinglass]\nbase_url = {coinglass_url:?}\n"),
        )
    }

    fn write_config(
        &self,
        telegram_url: &str,
        lock: &Path,
        telegram_keys: &str,
        extra: &str,
    ) -> PathBuf {
        let path = self.path("config.toml");
        let mut text = format!(
            "[service]\nlock_file = {lock:?}\nshutdown_timeout_secs = 5\n\n\
             [telegram]\napi_url = {telegram_url:?}\npoll_timeout_secs = 1\n{telegram_keys}\n\n\
             [storage]\npath = {db:?}\n\n{extra}",
            lock = lock.display().to_string(),
            db = self.path("cryptosat.db").display().to_string(),
        );
        // Never the real CoinGlass: without a fake, point it at a closed port.
        if !extra.contains("[coinglass]") {
            text.push_str(&format!("\n[coinglass]\nbase_url = {:?}\n", refused_url()));
        }
        std::fs::write(&path, text).expect("write config");
        path
    }
}

/// A test NOTIFY_SOCKET: collects every datagram with its arrival time.
pub struct NotifySocket {
    pub path: PathBuf,
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifySocket {
    pub fn bind(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("create notify socket dir");
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let messages: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let sink = messages.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => sink.lock().unwrap().push((
                        Instant::now(),
                        String::from_utf8_lossy(&buf[..n]).into_owned(),
                    )),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        // Stop when the test dropped us (only this thread holds a ref).
                        if Arc::strong_count(&sink) == 1 {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Self { path, messages }
    }

    /// All messages so far.
    pub fn messages(&self) -> Vec<(Instant, String)> {
        self.messages.lock().unwrap().clone()
    }

    /// Every `KEY=value` assignment so far, in order.
    pub fn assignments(&self) -> Vec<(Instant, String)> {
        self.messages()
            .into_iter()
            .flat_map(|(t, m)| m.lines().map(|l| (t, l.to_owned())).collect::<Vec<_>>())
            .collect()
    }

    /// Waits until an assignment satisfying `pred` arrives.
    pub fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(hit) = self.assignments().into_iter().find(|(_, l)| pred(l)) {
                return Some(hit);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn statuses(&self) -> Vec<String> {
        self.assignments()
            .into_iter()
            .filter_map(|(_, l)| l.strip_prefix("STATUS=").map(str::to_owned))
            .collect()
    }
}

/// A running `cryptosat` process with captured stderr.
pub struct Instance {
    pub child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Instance {
    /// Starts `cryptosat --config CONFIG ARGS…` with the test token in its
    /// environment (plus `env`), stdout/stderr captured.
    pub fn start(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin());
        cmd.arg("--config").arg(config).args(args);
        cmd.env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("JOURNAL_STREAM")
            .env_remove("RUST_LOG")
            .env("CRYPTOSAT_TELEGRAM_TOKEN", TOKEN)
            .env("CRYPTOSAT_COINGLASS_API_KEY", API_KEY);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn cryptosat");
        let stderr: Arc<Mutex<String>> = Arc::default();
        for pipe in [
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Self { child, stderr }
    }

    /// Starts `cryptosat run` reporting to `notify` (with an optional watchdog).
    pub fn run(
        config: &Path,
        notify: &NotifySocket,
        watchdog_usec: Option<u64>,
        env: &[(&str, &str)],
    ) -> Self {
        let mut all: Vec<(&str, String)> =
            vec![("NOTIFY_SOCKET", notify.path.display().to_string())];
        if let Some(w) = watchdog_usec {
            // WATCHDOG_PID is optional; without it any PID may use the watchdog.
            all.push(("WATCHDOG_USEC", w.to_string()));
        }
        let mut refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        refs.extend_from_slice(env);
        Self::start(config, &["run"], &refs)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything written to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("kill");
    }

    /// Waits for exit up to `timeout`; `None` if still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Give the reader threads a moment to drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the output contains `needle`.
    pub fn wait_output(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.output().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cryptosat ARGS…` to completion (bounded), returning (exit code, output).
pub fn run_to_end(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut inst = Instance::start(config, args, env);
    let status = inst
        .wait_timeout(Duration::from_secs(20))
        .expect("command did not finish in 20 s");
    (status.code().unwrap_or(-1), inst.output())
}

/// Asserts that no part of the token appears in `text`.
pub fn assert_no_secret(text: &str) {
    assert!(
        !text.contains(TOKEN_SECRET),
        "bot token leaked into output:\n{text}"
    );
    assert!(
        !text.contains(API_KEY),
        "API key leaked into output:\n{text}"
    );
}

/// An address on 127.0.0.1 where nothing listens (connection refused).
pub fn refused_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// A runtime for the async fakes; keep it alive as long as the fake.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Starts a fake Bot API that knows the test token.
pub fn fake_telegram(rt: &tokio::runtime::Runtime) -> cryptosat_fakes::FakeTelegram {
    rt.block_on(cryptosat_fakes::FakeTelegram::start(TOKEN))
}

/// Waits (blocking) until the fake received a message to `chat_id` containing `needle`.
pub fn wait_reply(
    rt: &tokio::runtime::Runtime,
    tg: &cryptosat_fakes::FakeTelegram,
    chat_id: i64,
    needle: &str,
    timeout: Duration,
) -> Option<cryptosat_fakes::SentMessage> {
    let needle = needle.to_owned();
    rt.block_on(tg.wait_for_sent(
        move |m| m.chat_id == chat_id && m.text.contains(&needle),
        timeout,
    ))
}

/// Starts a fake CoinGlass that knows the test API key.
pub fn fake_coinglass(rt: &tokio::runtime::Runtime) -> cryptosat_fakes::FakeCoinGlass {
    rt.block_on(cryptosat_fakes::FakeCoinGlass::start(API_KEY))
}

/// Waits until `n` messages to `chat_id` were sent; returns them all.
pub fn wait_count(
    rt: &tokio::runtime::Runtime,
    tg: &cryptosat_fakes::FakeTelegram,
    chat_id: i64,
    n: usize,
    timeout: Duration,
) -> Vec<cryptosat_fakes::SentMessage> {
    let deadline = Instant::now() + timeout;
    loop {
        let got: Vec<_> = tg
            .sent_messages()
            .into_iter()
            .filter(|m| m.chat_id == chat_id)
            .collect();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        let _ = rt;
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cryptosat --config CONFIG ARGS…` to completion (bounded) with the test
/// secrets in its environment, minus the variables in `remove`; returns (exit
/// code, stdout, stderr) separately (for `--json`).
pub fn run_split(config: &Path, args: &[&str], remove: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.arg("--config").arg(config).args(args);
    for k in [
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "CREDENTIALS_DIRECTORY",
        "JOURNAL_STREAM",
        "RUST_LOG",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("CRYPTOSAT_TELEGRAM_TOKEN", TOKEN)
        .env("CRYPTOSAT_COINGLASS_API_KEY", API_KEY);
    for k in remove {
        cmd.env_remove(k);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn cryptosat");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cryptosat {args:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code().unwrap_or(-1),
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}
