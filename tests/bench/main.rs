//! `cryptosat-bench`: measures the real `cryptosat run` binary against the
//! in-process fake Bot API and fake CoinGlass (127.0.0.1 only), beside a
//! minimal python-telegram-bot bot (`tests/bench/ptb_bot.py`) on its own fake,
//! and prints the results as Markdown (see BENCHMARKS.md).
//!
//! ```text
//! cryptosat-bench --bin PATH [--python PATH] [--deb PATH] [--out FILE] [--quick]
//! ```
//!
//! `--quick` (CI) uses small counts and short windows, and fails only on
//! functional errors (a reply or an alert lost, duplicated, a 429), never on
//! times. Every count and every wait is bounded.
//!
//! The fakes record when they received each message on the same monotonic
//! clock as the push of each update, so latencies are exact up to the
//! scheduling of this process, which shares the machine with the bot.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cryptosat::alerts::AlertKind;
use cryptosat::store::Store;
use cryptosat_fakes::{ChatSpec, FakeCoinGlass, FakeTelegram, RateLimits, WhaleAlert};

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const API_KEY: &str = "cg-bench-key-0123456789abcdef";
/// Global send limit the fake enforces in the fan-out runs (msg/s).
const FANOUT_LIMIT: u32 = 300;

const USAGE: &str =
    "usage: cryptosat-bench --bin PATH [--python PATH] [--deb PATH] [--out FILE] [--quick]";

struct Opts {
    quick: bool,
    bin: PathBuf,
    python: Option<PathBuf>,
    deb: Option<PathBuf>,
    out: Option<PathBuf>,
}

fn parse_opts() -> Result<Opts, String> {
    let mut opts = Opts {
        quick: false,
        bin: PathBuf::new(),
        python: None,
        deb: None,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--bin" => opts.bin = PathBuf::from(value()?),
            "--python" => opts.python = Some(PathBuf::from(value()?)),
            "--deb" => opts.deb = Some(PathBuf::from(value()?)),
            "--out" => opts.out = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if opts.bin.as_os_str().is_empty() {
        return Err(format!("--bin is required\n{USAGE}"));
    }
    Ok(opts)
}

/// Sizes of one run.
struct Plan {
    /// (distinct chats, updates per chat in the burst).
    chats: Vec<(usize, usize)>,
    /// Length of the steady (light load) window.
    steady: Duration,
    /// Idle window for the CPU measurement.
    idle: Duration,
    /// Subscribers per fan-out.
    fanout: Vec<usize>,
    /// Chats that /subscribe (then hold that many subscribers).
    subscribers: usize,
    /// Ignored group messages in the ingest run.
    chatter: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                chats: vec![(1, 2), (10, 2), (300, 1)],
                steady: Duration::from_secs(1),
                idle: Duration::from_secs(3),
                fanout: vec![100, 300],
                subscribers: 300,
                chatter: 500,
            }
        } else {
            Plan {
                chats: vec![(1, 10), (100, 10), (10_000, 1)],
                steady: Duration::from_secs(5),
                idle: Duration::from_secs(60),
                fanout: vec![1_000, 10_000],
                subscribers: 10_000,
                chatter: 9_000,
            }
        }
    }
}

// ---------------------------------------------------------------- processes

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of `pid` in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name in parentheses; utime and stime are
    // fields 14 and 15 of the whole line, so 11 and 12 after the ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// Resident set size of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A test NOTIFY_SOCKET that stamps every datagram on arrival.
struct NotifySocket {
    path: PathBuf,
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifySocket {
    fn bind(path: PathBuf) -> Self {
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("socket timeout");
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

    fn wait_ready(&self, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let hit = self
                .messages
                .lock()
                .unwrap()
                .iter()
                .find(|(_, m)| m.lines().any(|l| l == "READY=1"))
                .map(|(t, _)| *t);
            if hit.is_some() {
                return hit;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }
}

/// A bot process under test; SIGTERM then kill on drop.
struct Bot {
    child: Child,
    spawned: Instant,
    log: PathBuf,
}

impl Bot {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn stop(mut self) {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.alive() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_logged(mut cmd: Command, log: PathBuf) -> Bot {
    let file = std::fs::File::create(&log).expect("create log");
    let err = file.try_clone().expect("clone log");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err));
    let spawned = Instant::now();
    let child = cmd.spawn().expect("spawn bot");
    Bot {
        child,
        spawned,
        log,
    }
}

/// Writes a config into `dir` and starts `cryptosat run` reporting to `notify`.
fn spawn_cryptosat(
    bin: &Path,
    dir: &Path,
    tg: &FakeTelegram,
    cg: &FakeCoinGlass,
    telegram_keys: &str,
    extra: &str,
    notify: &NotifySocket,
) -> Bot {
    let config = dir.join("config.toml");
    let text = format!(
        "[service]\nlock_file = {lock:?}\nshutdown_timeout_secs = 5\n\n\
         [telegram]\napi_url = {tg:?}\n{telegram_keys}\n\n\
         [storage]\npath = {db:?}\n\n\
         [coinglass]\nbase_url = {cg:?}\ncache_secs = 3600\n\n{extra}",
        lock = dir.join("cryptosat.lock").display().to_string(),
        tg = tg.base_url(),
        db = dir.join("cryptosat.db").display().to_string(),
        cg = cg.base_url(),
    );
    std::fs::write(&config, text).expect("write config");
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(&config).arg("run");
    for k in [
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "CREDENTIALS_DIRECTORY",
        "JOURNAL_STREAM",
        "RUST_LOG",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("NOTIFY_SOCKET", &notify.path)
        .env("CRYPTOSAT_TELEGRAM_TOKEN", TOKEN)
        .env("CRYPTOSAT_COINGLASS_API_KEY", API_KEY);
    spawn_logged(cmd, dir.join("cryptosat.log"))
}

fn spawn_ptb(python: &Path, dir: &Path, tg: &FakeTelegram) -> Bot {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ptb_bot.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .env("BENCH_TOKEN", TOKEN)
        .env("BENCH_BASE_URL", tg.base_url());
    spawn_logged(cmd, dir.join("ptb.log"))
}

/// Waits for the first `getUpdates` at `tg`; time since the spawn.
fn first_poll(bot: &mut Bot, tg: &FakeTelegram, timeout: Duration) -> Option<Duration> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && bot.alive() {
        if tg.requests("getUpdates") > 0 {
            return Some(bot.spawned.elapsed());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    None
}

// ------------------------------------------------------------ measurements

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How updates are offered.
#[derive(Clone, Copy)]
enum Load {
    /// All at once: throughput, and latency including the queue.
    Burst,
    /// Evenly at `per_sec` for a while: latency below saturation.
    Steady { per_sec: f64, n: usize },
}

struct Phase {
    label: String,
    sent: usize,
    replied: usize,
    unexpected: usize,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_per_1000: f64,
}

fn wait_pending_zero(tg: &FakeTelegram, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while tg.pending_updates() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Offers `load` of `text` from `chats` (round robin) and matches each reply
/// (k-th reply to a chat ↔ k-th update from it).
#[allow(clippy::too_many_arguments)]
fn command_phase(
    rt: &tokio::runtime::Runtime,
    tg: &FakeTelegram,
    pid: u32,
    label: &str,
    text: &str,
    needle: &str,
    chats: &[i64],
    load: Load,
    n_burst: usize,
) -> Phase {
    wait_pending_zero(tg, Duration::from_secs(10));
    let start = tg.sent_messages().len();
    let n = match load {
        Load::Burst => n_burst,
        Load::Steady { n, .. } => n,
    };
    let cpu0 = cpu_secs(pid);
    let mut pushes: Vec<(i64, Instant)> = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n {
        let chat = chats[i % chats.len()];
        if let Load::Steady { per_sec, .. } = load {
            let due = t0 + Duration::from_secs_f64(i as f64 / per_sec);
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        let t = Instant::now();
        tg.push_message(ChatSpec::private(chat), chat, text);
        pushes.push((chat, t));
    }
    // Bounded: the slowest legitimate case is one chat at 1 msg/s.
    let per_chat = n.div_ceil(chats.len()) as u64;
    let timeout = Duration::from_secs(30 + per_chat * 2 + n as u64 / 50);
    let all = rt
        .block_on(tg.wait_for_sent_count(start + n, timeout))
        .unwrap_or_else(|| tg.sent_messages());
    let cpu1 = cpu_secs(pid);
    let mut replies: HashMap<i64, VecDeque<(Instant, bool)>> = HashMap::new();
    for m in &all[start.min(all.len())..] {
        replies
            .entry(m.chat_id)
            .or_default()
            .push_back((m.at, m.text.contains(needle)));
    }
    let mut lat = Vec::with_capacity(n);
    let mut unexpected = 0;
    let mut last = t0;
    for (chat, t) in &pushes {
        if let Some((at, ok)) = replies.get_mut(chat).and_then(VecDeque::pop_front) {
            if !ok {
                unexpected += 1;
            }
            lat.push(at.saturating_duration_since(*t).as_secs_f64() * 1000.0);
            last = last.max(at);
        }
    }
    lat.sort_by(f64::total_cmp);
    let span = last.saturating_duration_since(t0).as_secs_f64();
    Phase {
        label: label.to_owned(),
        sent: n,
        replied: lat.len(),
        unexpected,
        rate: if span > 0.0 {
            lat.len() as f64 / span
        } else {
            f64::NAN
        },
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        cpu_per_1000: (cpu1 - cpu0) / n as f64 * 1000.0,
    }
}

/// Raw update handling without replies: `n` chatter messages in groups (which
/// both bots ignore), then one `/help` in a private chat as a sentinel; its
/// reply proves every earlier update was taken and dispatched.
fn ingest_phase(
    rt: &tokio::runtime::Runtime,
    tg: &FakeTelegram,
    pid: u32,
    who: &str,
    n: usize,
) -> Phase {
    wait_pending_zero(tg, Duration::from_secs(10));
    let start = tg.sent_messages().len();
    let cpu0 = cpu_secs(pid);
    let t0 = Instant::now();
    for i in 0..n {
        let g = -(5_000 + (i % 50) as i64);
        tg.push_message(
            ChatSpec::group(g, "bench"),
            9_000_000 + (i % 50) as i64,
            "gm, what a pump",
        );
    }
    let sentinel = 8_000_000;
    tg.push_message(ChatSpec::private(sentinel), sentinel, "/help");
    let timeout = Duration::from_secs(30 + n as u64 / 50);
    let reply = rt.block_on(tg.wait_for_sent(
        |m| m.chat_id == sentinel && m.text.contains("CryptoSat commands"),
        timeout,
    ));
    let cpu1 = cpu_secs(pid);
    let replied_all = reply.is_some() && tg.sent_messages().len() == start + 1;
    let span = reply.as_ref().map_or(f64::NAN, |m| {
        m.at.saturating_duration_since(t0).as_secs_f64()
    });
    Phase {
        label: format!("{who} group chatter (ignored) + 1 `/help`, burst"),
        sent: n + 1,
        replied: if replied_all { n + 1 } else { 0 },
        unexpected: 0,
        rate: (n + 1) as f64 / span,
        p50_ms: f64::NAN,
        p99_ms: span * 1000.0,
        cpu_per_1000: (cpu1 - cpu0) / (n + 1) as f64 * 1000.0,
    }
}

/// Burst and steady phases of `text` at every chat count of the plan.
#[allow(clippy::too_many_arguments)]
fn command_suite(
    rt: &tokio::runtime::Runtime,
    tg: &FakeTelegram,
    pid: u32,
    who: &str,
    text: &str,
    needle: &str,
    first_chat: i64,
    plan: &Plan,
    per_chat_pace: bool,
    out: &mut Vec<Phase>,
) {
    // Fresh chats per run: teloxide's Throttle also allows only 20 messages
    // a minute per chat, which would otherwise carry over between runs.
    for (i, &(c, per_chat)) in plan.chats.iter().enumerate() {
        let first = first_chat + 100_000 * i as i64;
        let chats: Vec<i64> = (first..first + c as i64).collect();
        let label = format!("{who} `{text}`, {c} chat{}", if c == 1 { "" } else { "s" });
        let burst = command_phase(
            rt,
            tg,
            pid,
            &format!("{label}, burst"),
            text,
            needle,
            &chats,
            Load::Burst,
            c * per_chat,
        );
        eprintln!("  {}: {:.0}/s", burst.label, burst.rate);
        out.push(burst);
        // Let every chat's one-second gap pass before the steady window.
        std::thread::sleep(Duration::from_millis(1100));
        // Light load: half of what the per-chat pace allows, at most 200/s.
        let per_sec = if per_chat_pace {
            (c as f64 * 0.5).min(200.0)
        } else {
            200.0
        };
        let n = ((per_sec * plan.steady.as_secs_f64()) as usize).max(2);
        let steady = command_phase(
            rt,
            tg,
            pid,
            &format!("{label}, steady {per_sec:.1}/s"),
            text,
            needle,
            &chats,
            Load::Steady { per_sec, n },
            0,
        );
        eprintln!(
            "  {}: p50 {:.1} ms p99 {:.1} ms",
            steady.label, steady.p50_ms, steady.p99_ms
        );
        out.push(steady);
        std::thread::sleep(Duration::from_millis(1100));
    }
}

struct Footprint {
    who: &'static str,
    ready_ms: Option<f64>,
    first_poll_ms: Option<f64>,
    rss_idle_kib: u64,
    idle_cpu_pct: f64,
    rss_loaded_kib: u64,
}

struct Fanout {
    chats: usize,
    delivered: usize,
    first_after_push_s: f64,
    rate: f64,
    too_many: u64,
    duplicates: usize,
    lost: usize,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn fanout_suite(
    rt: &tokio::runtime::Runtime,
    bin: &Path,
    cg: &FakeCoinGlass,
    plan: &Plan,
) -> Result<Vec<Fanout>, String> {
    let tg = rt.block_on(FakeTelegram::start(TOKEN));
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let symbols = ["ETH", "SOL", "BTC"];
    let mut groups = Vec::new();
    {
        let store = Store::open(&dir.path().join("cryptosat.db")).map_err(|e| e.to_string())?;
        for (i, &size) in plan.fanout.iter().enumerate() {
            let first = 10_000_000 * (i as i64 + 1);
            let chats: Vec<i64> = (first..first + size as i64).collect();
            for &c in &chats {
                tg.register_chat(ChatSpec::private(c));
                store
                    .upsert_chat(c, "private", "")
                    .map_err(|e| e.to_string())?;
                store
                    .subscribe(c, symbols[i], &[AlertKind::Whales])
                    .map_err(|e| e.to_string())?;
            }
            groups.push((symbols[i], chats));
        }
        store.close().map_err(|e| e.to_string())?;
    }
    tg.set_rate_limits(RateLimits {
        global_per_sec: Some(FANOUT_LIMIT),
        per_chat_per_sec: Some(1),
        group_per_min: None,
    });
    let notify = NotifySocket::bind(dir.path().join("notify.sock"));
    let bot = spawn_cryptosat(
        bin,
        dir.path(),
        &tg,
        cg,
        &format!("messages_per_second = {FANOUT_LIMIT}"),
        "[monitors.whales]\ninterval_secs = 5\n[monitors.liquidations]\nenabled = false\n\
         [monitors.funding]\nenabled = false\n",
        &notify,
    );
    if notify.wait_ready(Duration::from_secs(30)).is_none() {
        return Err(format!("fan-out bot not ready:\n{}", bot.log_tail()));
    }
    let mut results = Vec::new();
    for (i, (symbol, chats)) in groups.iter().enumerate() {
        let start = tg.sent_messages().len();
        let too0 = tg.too_many_requests_sent();
        let pushed = Instant::now();
        cg.push_whale(WhaleAlert::new(
            &format!("0x{:040x}", 0xbe9c_0000 + i),
            symbol,
            50.0,
            5_000_000.0,
            1,
            now_ms(),
        ));
        let size = chats.len();
        let timeout = Duration::from_secs(30 + (size as u64 * 2) / u64::from(FANOUT_LIMIT));
        rt.block_on(tg.wait_for_sent_count(start + size, timeout));
        // Anything sent twice would arrive right after.
        std::thread::sleep(Duration::from_secs(2));
        let all = tg.sent_messages();
        let mut counts: HashMap<i64, usize> = HashMap::new();
        let mut times = Vec::new();
        for m in &all[start.min(all.len())..] {
            if m.text.contains("Whale alert") && m.text.contains(symbol) {
                *counts.entry(m.chat_id).or_insert(0) += 1;
                times.push(m.at);
            }
        }
        times.sort();
        let delivered = chats.iter().filter(|c| counts.contains_key(c)).count();
        let rate = match (times.first(), times.last()) {
            (Some(a), Some(b)) if b > a => (times.len() - 1) as f64 / (*b - *a).as_secs_f64(),
            _ => f64::NAN,
        };
        let r = Fanout {
            chats: size,
            delivered,
            first_after_push_s: times.first().map_or(f64::NAN, |t| {
                t.saturating_duration_since(pushed).as_secs_f64()
            }),
            rate,
            too_many: tg.too_many_requests_sent() - too0,
            duplicates: counts.values().map(|n| n - 1).sum(),
            lost: size - delivered,
        };
        eprintln!(
            "  fan-out {size}: {rate:.1} msg/s, {} lost, {} dup, {} 429",
            r.lost, r.duplicates, r.too_many
        );
        results.push(r);
    }
    bot.stop();
    Ok(results)
}

// ------------------------------------------------------------------ report

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or("unknown".into(), |k| {
            format!("{:.1} GiB", k as f64 / 1048576.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "nproc {cpus}, CPU {model}, RAM {mem}, kernel {}",
        kernel.trim()
    )
}

fn python_versions(python: &Path) -> String {
    Command::new(python)
        .args([
            "-c",
            "import sys, telegram; print('Python', sys.version.split()[0], '· python-telegram-bot', telegram.__version__)",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn ms(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0} ms"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn num(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        format!("{v:.digits$}")
    }
}

fn file_size(p: &Path) -> String {
    std::fs::metadata(p).map_or("n/a".into(), |m| {
        format!("{:.2} MiB ({} bytes)", m.len() as f64 / 1048576.0, m.len())
    })
}

struct Report {
    machine: String,
    baseline: String,
    phases: Vec<Phase>,
    footprints: Vec<Footprint>,
    fanouts: Vec<Fanout>,
    binary: String,
    deb: String,
    idle: Duration,
    subscribers: usize,
}

impl Report {
    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Machine: {}  ", self.machine);
        let _ = writeln!(s, "Baseline: {}\n", self.baseline);
        let _ = writeln!(s, "### Command path\n");
        let _ = writeln!(
            s,
            "| run | updates | replies | replies/s | p50 | p99 | CPU s / 1,000 updates |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for p in &self.phases {
            let odd = if p.unexpected > 0 {
                format!(" ({} unexpected)", p.unexpected)
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "| {} | {} | {}{odd} | {} | {} ms | {} ms | {} |",
                p.label,
                p.sent,
                p.replied,
                num(p.rate, 1),
                num(p.p50_ms, 1),
                num(p.p99_ms, 1),
                num(p.cpu_per_1000, 3)
            );
        }
        let _ = writeln!(
            s,
            "\n### Fan-out (fake enforces L = {FANOUT_LIMIT} msg/s global and 1 msg/s per chat; bot messages_per_second = {FANOUT_LIMIT})\n"
        );
        let _ = writeln!(
            s,
            "| chats | delivered | first alert after push | rate | rate / L | 429s | duplicates | lost |"
        );
        let _ = writeln!(
            s,
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for f in &self.fanouts {
            let _ = writeln!(
                s,
                "| {} | {} | {} s | {} msg/s | {} % | {} | {} | {} |",
                f.chats,
                f.delivered,
                num(f.first_after_push_s, 2),
                num(f.rate, 1),
                num(f.rate / f64::from(FANOUT_LIMIT) * 100.0, 1),
                f.too_many,
                f.duplicates,
                f.lost
            );
        }
        let _ = writeln!(s, "\n### Footprint\n");
        let _ = writeln!(
            s,
            "| bot | start → READY=1 | start → first getUpdates | RSS idle | CPU idle ({} s) | RSS after the command runs |",
            self.idle.as_secs()
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: |");
        for f in &self.footprints {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} % | {} |",
                f.who,
                ms(f.ready_ms),
                ms(f.first_poll_ms),
                mib(f.rss_idle_kib),
                num(f.idle_cpu_pct, 3),
                mib(f.rss_loaded_kib)
            );
        }
        let _ = writeln!(
            s,
            "\nCryptoSat's \"after\" RSS: {} subscribers (made by `/subscribe`) and every update above handled.  ",
            self.subscribers
        );
        let _ = writeln!(
            s,
            "Binary (stripped by the release profile): {}  ",
            self.binary
        );
        let _ = writeln!(s, ".deb: {}", self.deb);
        s
    }

    /// Functional failures (never times).
    fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        for p in &self.phases {
            if p.replied < p.sent || p.unexpected > 0 {
                f.push(format!(
                    "{}: {} of {} replies ({} unexpected)",
                    p.label, p.replied, p.sent, p.unexpected
                ));
            }
        }
        for o in &self.fanouts {
            if o.lost > 0 || o.duplicates > 0 || o.too_many > 0 {
                f.push(format!(
                    "fan-out to {}: {} lost, {} duplicates, {} 429s",
                    o.chats, o.lost, o.duplicates, o.too_many
                ));
            }
        }
        f
    }
}

// -------------------------------------------------------------------- main

fn run(opts: &Opts) -> Result<Report, String> {
    let plan = Plan::new(opts.quick);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let tg = rt.block_on(FakeTelegram::start(TOKEN));
    let cg = rt.block_on(FakeCoinGlass::start(API_KEY));
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut phases = Vec::new();
    let mut footprints = Vec::new();

    // --- CryptoSat: start-up, idle, command path.
    eprintln!("cryptosat: start-up");
    let notify = NotifySocket::bind(dir.path().join("notify.sock"));
    let mut bot = spawn_cryptosat(
        &opts.bin,
        dir.path(),
        &tg,
        &cg,
        "messages_per_second = 1000\ncommands_per_minute = 600",
        "",
        &notify,
    );
    let ready = notify
        .wait_ready(Duration::from_secs(30))
        .map(|t| t.saturating_duration_since(bot.spawned).as_secs_f64() * 1000.0);
    if ready.is_none() {
        return Err(format!("cryptosat not ready:\n{}", bot.log_tail()));
    }
    let first = first_poll(&mut bot, &tg, Duration::from_secs(10));

    // --- The baseline on its own fake (one poller per token and server).
    let tg_ptb = rt.block_on(FakeTelegram::start(TOKEN));
    let mut ptb = match &opts.python {
        Some(python) => {
            eprintln!("python-telegram-bot: start-up");
            let mut p = spawn_ptb(python, dir.path(), &tg_ptb);
            let first = first_poll(&mut p, &tg_ptb, Duration::from_secs(60));
            if first.is_none() {
                return Err(format!("ptb bot did not poll:\n{}", p.log_tail()));
            }
            Some((p, first))
        }
        None => None,
    };

    // Both idle at once: neither uses a CPU while idle.
    eprintln!("idle window: {} s", plan.idle.as_secs());
    std::thread::sleep(Duration::from_secs(2));
    let rss_idle = rss_kib(bot.pid());
    let ptb_rss_idle = ptb.as_ref().map_or(0, |(p, _)| rss_kib(p.pid()));
    let c0 = cpu_secs(bot.pid());
    let p0 = ptb.as_ref().map_or(0.0, |(p, _)| cpu_secs(p.pid()));
    std::thread::sleep(plan.idle);
    let idle_cpu = (cpu_secs(bot.pid()) - c0) / plan.idle.as_secs_f64() * 100.0;
    let ptb_idle_cpu = ptb.as_ref().map_or(f64::NAN, |(p, _)| {
        (cpu_secs(p.pid()) - p0) / plan.idle.as_secs_f64() * 100.0
    });

    // Warm the funding cache (one CoinGlass request), then measure.
    eprintln!("cryptosat: command path");
    tg.push_message(ChatSpec::private(1), 1, "/funding BTC");
    rt.block_on(tg.wait_for_sent(|m| m.chat_id == 1, Duration::from_secs(20)))
        .ok_or_else(|| format!("no warm-up /funding reply:\n{}", bot.log_tail()))?;
    let pid = bot.pid();
    let ingest = ingest_phase(&rt, &tg, pid, "CryptoSat", plan.chatter);
    eprintln!("  {}: {:.0}/s", ingest.label, ingest.rate);
    phases.push(ingest);
    std::thread::sleep(Duration::from_millis(1100));
    command_suite(
        &rt,
        &tg,
        pid,
        "CryptoSat",
        "/help",
        "CryptoSat commands",
        1_000_000,
        &plan,
        true,
        &mut phases,
    );
    command_suite(
        &rt,
        &tg,
        pid,
        "CryptoSat",
        "/funding BTC",
        "funding rates",
        2_000_000,
        &plan,
        true,
        &mut phases,
    );
    // The write path, which also leaves `subscribers` subscribers behind.
    let chats: Vec<i64> = (3_000_000..3_000_000 + plan.subscribers as i64).collect();
    let sub = command_phase(
        &rt,
        &tg,
        pid,
        &format!(
            "CryptoSat `/subscribe BTC whales`, {} chats, burst",
            plan.subscribers
        ),
        "/subscribe BTC whales",
        "alerts:",
        &chats,
        Load::Burst,
        chats.len(),
    );
    eprintln!("  {}: {:.0}/s", sub.label, sub.rate);
    phases.push(sub);
    std::thread::sleep(Duration::from_secs(1));
    footprints.push(Footprint {
        who: "CryptoSat",
        ready_ms: ready,
        first_poll_ms: first.map(|d| d.as_secs_f64() * 1000.0),
        rss_idle_kib: rss_idle,
        idle_cpu_pct: idle_cpu,
        rss_loaded_kib: rss_kib(pid),
    });
    if !bot.alive() {
        return Err(format!("cryptosat died:\n{}", bot.log_tail()));
    }
    bot.stop();

    // --- The baseline's command path.
    let mut baseline = "not run (no --python)".to_owned();
    if let (Some((mut p, first)), Some(python)) = (ptb.take(), &opts.python) {
        baseline = python_versions(python);
        eprintln!("python-telegram-bot: command path");
        let pid = p.pid();
        let ingest = ingest_phase(&rt, &tg_ptb, pid, "PTB", plan.chatter);
        eprintln!("  {}: {:.0}/s", ingest.label, ingest.rate);
        phases.push(ingest);
        std::thread::sleep(Duration::from_millis(1100));
        command_suite(
            &rt,
            &tg_ptb,
            pid,
            "PTB",
            "/help",
            "CryptoSat commands",
            1_000_000,
            &plan,
            false,
            &mut phases,
        );
        footprints.push(Footprint {
            who: "python-telegram-bot",
            ready_ms: None,
            first_poll_ms: first.map(|d| d.as_secs_f64() * 1000.0),
            rss_idle_kib: ptb_rss_idle,
            idle_cpu_pct: ptb_idle_cpu,
            rss_loaded_kib: rss_kib(pid),
        });
        if !p.alive() {
            return Err(format!("ptb bot died:\n{}", p.log_tail()));
        }
        p.stop();
    }

    eprintln!("cryptosat: fan-out");
    let fanouts = fanout_suite(&rt, &opts.bin, &cg, &plan)?;
    Ok(Report {
        machine: machine(),
        baseline,
        phases,
        footprints,
        fanouts,
        binary: file_size(&opts.bin),
        deb: opts
            .deb
            .as_deref()
            .map_or("n/a (no --deb given)".into(), file_size),
        idle: plan.idle,
        subscribers: plan.subscribers,
    })
}

fn main() -> ExitCode {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let report = match run(&opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cryptosat-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let md = report.markdown();
    print!("{md}");
    if let Some(out) = &opts.out {
        if let Err(e) = std::fs::write(out, &md) {
            eprintln!("cryptosat-bench: write {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    let failures = report.failures();
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
