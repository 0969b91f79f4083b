//! Fault-injection soak: the real `cryptosat run` against both fakes while they
//! inject random 5xx, 429s, answers slower than the client timeouts, dropped
//! connections and malformed JSON; 50 chats keep sending commands, whales keep
//! arriving for subscribed chats, and the bot is SIGKILLed and restarted a few
//! times. After the faults stop and the bot drained, every command has its
//! reply, every subscriber every alert (duplicates bounded by the crashes), the
//! watchdog was fed throughout, memory stayed flat and no secret leaked.
//!
//! Bounded by `CRYPTOSAT_SOAK_SECS` (default 120 s of faults, plus start-up and
//! draining). Ignored in the default run because of its length:
//!
//! ```sh
//! cargo test --test soak -- --ignored --nocapture
//! CRYPTOSAT_SOAK_SECS=1800 cargo test --release --test soak -- --ignored --nocapture
//! ```

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use cryptosat::alerts::AlertKind;
use cryptosat::store::Store;
use cryptosat_fakes::{ChatSpec, RandomFaults, WhaleAlert};
use nix::sys::signal::Signal;

/// Chats that send commands (private chats, user id = chat id).
const CHATS: std::ops::Range<i64> = 3001..3051;
/// Of those, these are subscribed to whale alerts.
const SUBSCRIBERS: std::ops::Range<i64> = 3001..3021;
/// "Others" symbols (no default group), so the soak's own cooldown applies.
const SYMBOLS: [&str; 5] = ["PEPE", "WIF", "ARB", "OP", "INJ"];
/// Pause between two user messages (over all chats): about 6.7 per second,
/// one message per chat every 7.5 s.
const MESSAGE_EVERY: Duration = Duration::from_millis(150);
/// Pause between two whales pushed into the fake CoinGlass.
const WHALE_EVERY: Duration = Duration::from_secs(3);
/// Forced SIGKILL + restart cycles.
const KILLS: usize = 3;
/// The watchdog interval given to the bot (it pings every half of it).
const WATCHDOG_USEC: u64 = 10_000_000;
/// How long the bot may take to deliver what is left once faults stop.
const DRAIN: Duration = Duration::from_secs(120);

const HELP: &str = "CryptoSat commands";
const ALERTS_LIST: &str = "Alert subscriptions of this chat";
const ALERTS_EMPTY: &str = "This chat has no alert subscriptions";
const TIMED_OUT: &str = "Sorry, that took too long";

fn soak_secs() -> u64 {
    std::env::var("CRYPTOSAT_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Which symbols a subscriber gets whale alerts for: two of the five.
fn symbols_of(chat: i64) -> [&'static str; 2] {
    let i = chat as usize;
    [SYMBOLS[i % SYMBOLS.len()], SYMBOLS[(i + 2) % SYMBOLS.len()]]
}

fn telegram_faults() -> RandomFaults {
    RandomFaults {
        seed: 0x50A4_7E1E,
        p_server_error: 0.02,
        p_too_many_requests: 0.02,
        retry_after: 1,
        p_delay: 0.01,
        // Past the client timeout (poll_timeout_secs 1 + 10 s).
        delay_ms: 12_000,
        p_drop_connection: 0.02,
        p_malformed_json: 0.02,
    }
}

fn coinglass_faults() -> RandomFaults {
    RandomFaults {
        seed: 0xC01_6A55,
        p_server_error: 0.05,
        p_too_many_requests: 0.03,
        retry_after: 1,
        p_delay: 0.03,
        // Past coinglass.request_timeout_secs = 3.
        delay_ms: 4_000,
        p_drop_connection: 0.03,
        p_malformed_json: 0.03,
    }
}

/// One run of the bot: its notify socket, RSS samples and when it started.
struct Life {
    inst: Instance,
    notify: NotifySocket,
    rss_kb: Arc<Mutex<Vec<(Instant, u64)>>>,
    sampling: Arc<AtomicBool>,
    output_at_end: String,
}

fn vm_rss_kb(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn launch(s: &Scratch, cfg: &std::path::Path, n: usize) -> Life {
    let notify = NotifySocket::bind(&s.path(&format!("notify{n}")));
    let inst = Instance::run(cfg, &notify, Some(WATCHDOG_USEC), &[]);
    assert!(
        notify
            .wait_for(Duration::from_secs(30), |l| l == "READY=1")
            .is_some(),
        "launch {n}: not ready:\n{}",
        inst.output()
    );
    let rss_kb: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
    let sampling = Arc::new(AtomicBool::new(true));
    let (pid, sink, on) = (inst.pid(), rss_kb.clone(), sampling.clone());
    std::thread::spawn(move || {
        while on.load(Ordering::Relaxed) {
            match vm_rss_kb(pid) {
                Some(kb) => sink.lock().unwrap().push((Instant::now(), kb)),
                None => return,
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    Life {
        inst,
        notify,
        rss_kb,
        sampling,
        output_at_end: String::new(),
    }
}

impl Life {
    /// Asserts the process is alive (it may only die by our hand).
    fn assert_alive(&mut self, when: &str) {
        if let Some(status) = self.inst.wait_timeout(Duration::from_millis(1)) {
            panic!(
                "the bot died on its own {when}: {status}\n{}",
                self.inst.output()
            );
        }
    }

    fn end(&mut self, sig: Signal) -> std::process::ExitStatus {
        self.sampling.store(false, Ordering::Relaxed);
        self.inst.signal(sig);
        let status = self
            .inst
            .wait_timeout(Duration::from_secs(30))
            .expect("the bot did not exit after the signal");
        self.output_at_end = self.inst.output();
        status
    }

    /// The largest gap between WATCHDOG=1 pings from READY to `until`
    /// (the kill, or the end of the run).
    fn max_watchdog_gap(&self, until: Instant) -> Duration {
        let all = self.notify.assignments();
        let ready = all
            .iter()
            .find(|(_, l)| l == "READY=1")
            .map(|(t, _)| *t)
            .expect("READY=1");
        let mut pings: Vec<Instant> = all
            .iter()
            .filter(|(_, l)| l == "WATCHDOG=1")
            .map(|(t, _)| *t)
            .collect();
        pings.insert(0, ready);
        pings.push(until);
        pings
            .windows(2)
            .map(|w| w[1].saturating_duration_since(w[0]))
            .max()
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Sent {
    /// Per chat: commands sent (/help, /alerts).
    help: HashMap<i64, usize>,
    alerts: HashMap<i64, usize>,
    /// (whale number, symbol) of every whale pushed.
    whales: Vec<(u32, &'static str)>,
}

#[test]
#[ignore = "long: run with `cargo test --test soak -- --ignored --nocapture`"]
fn soak() {
    let soak = Duration::from_secs(soak_secs());
    let rt = runtime();
    let tg = Arc::new(fake_telegram(&rt));
    let cg = Arc::new(fake_coinglass(&rt));
    let s = Scratch::new();

    // Subscribers, straight into the database before the first start.
    {
        let store = Store::open(&s.path("cryptosat.db")).expect("open db");
        for chat in SUBSCRIBERS {
            store.upsert_chat(chat, "private", "").unwrap();
            for sym in symbols_of(chat) {
                store.subscribe(chat, sym, &[AlertKind::Whales]).unwrap();
            }
        }
        store.close().unwrap();
    }
    for chat in CHATS {
        tg.register_chat(ChatSpec::private(chat));
    }

    let cfg = s.bot_config(
        &tg.base_url(),
        &cg.base_url(),
        "commands_per_minute = 60\nadmins = [3001]",
    );
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text = text.replace(
        "[coinglass]\n",
        "[coinglass]\nrequests_per_minute = 300\nrequest_timeout_secs = 3\n",
    );
    text.push_str(
        "\n[monitors.whales]\ninterval_secs = 5\n\
         [monitors.liquidations]\ninterval_secs = 10\nmax_symbols = 2\n\
         [monitors.funding]\ninterval_secs = 30\n\
         [monitors.others]\nliquidation_usd = 100000.0\nwhale_usd = 200000.0\ncooldown_secs = 0\n",
    );
    std::fs::write(&cfg, text).unwrap();

    tg.set_random_faults(Some(telegram_faults()));
    cg.set_random_faults(Some(coinglass_faults()));

    let started = Instant::now();
    let mut lives: Vec<Life> = vec![launch(&s, &cfg, 0)];
    let mut kill_times: Vec<Instant> = Vec::new();

    // User traffic and market events, in their own threads.
    let running = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(Mutex::new(Sent::default()));
    let traffic = {
        let (tg, running, sent) = (tg.clone(), running.clone(), sent.clone());
        std::thread::spawn(move || {
            let chats: Vec<i64> = CHATS.collect();
            let mut i = 0usize;
            while running.load(Ordering::Relaxed) {
                let chat = chats[i % chats.len()];
                // Alternate per round so every chat sends both commands.
                let help = (i / chats.len()).is_multiple_of(2);
                tg.push_message(
                    ChatSpec::private(chat),
                    chat,
                    if help { "/help" } else { "/alerts" },
                );
                let mut s = sent.lock().unwrap();
                let map = if help { &mut s.help } else { &mut s.alerts };
                *map.entry(chat).or_insert(0) += 1;
                drop(s);
                i += 1;
                std::thread::sleep(MESSAGE_EVERY);
            }
        })
    };
    let market = {
        let (cg, running, sent) = (cg.clone(), running.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut n: u32 = 0;
            while running.load(Ordering::Relaxed) {
                n += 1;
                let sym = SYMBOLS[n as usize % SYMBOLS.len()];
                let size = if n.is_multiple_of(2) { 1000.0 } else { -1000.0 };
                cg.push_whale(WhaleAlert::new(
                    &format!("0x5eed{:032}{n:04}", 0),
                    sym,
                    size,
                    300_000.0 + f64::from(n),
                    1,
                    now_ms(),
                ));
                sent.lock().unwrap().whales.push((n, sym));
                std::thread::sleep(WHALE_EVERY);
            }
        })
    };

    // Kills in the first half; the second half is one long life, for RSS.
    for k in 1..=KILLS {
        let at = started + soak.mul_f64(0.15 * k as f64);
        while Instant::now() < at {
            lives.last_mut().unwrap().assert_alive("between kills");
            std::thread::sleep(Duration::from_millis(200));
        }
        let life = lives.last_mut().unwrap();
        life.assert_alive("before a kill");
        kill_times.push(Instant::now());
        let status = life.end(Signal::SIGKILL);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        lives.push(launch(&s, &cfg, k));
    }
    while started.elapsed() < soak {
        lives.last_mut().unwrap().assert_alive("during the soak");
        std::thread::sleep(Duration::from_millis(200));
    }
    running.store(false, Ordering::Relaxed);
    traffic.join().unwrap();
    market.join().unwrap();
    let faults_off = Instant::now();
    tg.clear_faults();
    cg.clear_faults();
    let faulted_for = faults_off - started;

    // Drain: wait until every command has its reply and every alert arrived.
    let sent = Arc::try_unwrap(sent).ok().unwrap().into_inner().unwrap();
    let expected_alerts: Vec<(i64, String)> = sent
        .whales
        .iter()
        .flat_map(|(n, sym)| {
            SUBSCRIBERS
                .filter(|c| symbols_of(*c).contains(sym))
                .map(move |c| (c, format!("{sym} ")))
                .map(move |(c, s)| (c, format!("{s}|…{n:04}")))
        })
        .collect();
    let check = || -> (Vec<String>, HashMap<(i64, String), usize>) {
        let msgs = tg.sent_messages();
        let mut problems = Vec::new();
        for chat in CHATS {
            let to: Vec<&str> = msgs
                .iter()
                .filter(|m| m.chat_id == chat)
                .map(|m| m.text.as_str())
                .collect();
            let helps = to.iter().filter(|t| t.contains(HELP)).count();
            let lists = to
                .iter()
                .filter(|t| t.contains(ALERTS_LIST) || t.contains(ALERTS_EMPTY))
                .count();
            let sorry = to.iter().filter(|t| t.contains(TIMED_OUT)).count();
            let want_help = sent.help.get(&chat).copied().unwrap_or(0);
            let want_lists = sent.alerts.get(&chat).copied().unwrap_or(0);
            if helps + sorry < want_help
                || lists + sorry < want_lists
                || helps + lists + sorry < want_help + want_lists
            {
                problems.push(format!(
                    "chat {chat}: sent {want_help} /help and {want_lists} /alerts, got {helps} help, {lists} lists, {sorry} timeouts"
                ));
            }
        }
        let mut counts: HashMap<(i64, String), usize> = HashMap::new();
        for (chat, key) in &expected_alerts {
            let (sym, marker) = key.split_once('|').unwrap();
            let n = msgs
                .iter()
                .filter(|m| {
                    m.chat_id == *chat
                        && m.text.contains("Whale alert")
                        && m.text.contains(sym)
                        && m.text.contains(marker)
                })
                .count();
            if n == 0 {
                problems.push(format!("chat {chat}: alert {key} missing"));
            }
            counts.insert((*chat, key.clone()), n);
        }
        (problems, counts)
    };
    let (problems, counts) = loop {
        let (problems, counts) = check();
        if problems.is_empty() || faults_off.elapsed() > DRAIN {
            break (problems, counts);
        }
        lives.last_mut().unwrap().assert_alive("while draining");
        std::thread::sleep(Duration::from_secs(1));
    };
    let drained_in = faults_off.elapsed();
    lives.last_mut().unwrap().assert_alive("at the end");
    let end = Instant::now();
    if !problems.is_empty() {
        // What every life logged about the chats concerned.
        let mut lines = Vec::new();
        for p in &problems {
            let chat = p.split(':').next().unwrap_or_default().replace("chat ", "");
            let needle = format!("chat_id={chat}");
            for (i, life) in lives.iter().enumerate() {
                let out = if life.output_at_end.is_empty() {
                    life.inst.output()
                } else {
                    life.output_at_end.clone()
                };
                lines.extend(
                    out.lines()
                        .filter(|l| l.contains(&needle) && !l.contains("handled command"))
                        .map(|l| format!("life {i}: {l}")),
                );
            }
        }
        panic!(
            "{} problems after draining {drained_in:?}:\n{}\nlog lines of these chats:\n{}",
            problems.len(),
            problems.join("\n"),
            lines.join("\n")
        );
    }

    // Alerts not for subscribed symbols must not have been sent; duplicates
    // only from the crashes (one message in flight per kill).
    let msgs = tg.sent_messages();
    let whale_msgs = msgs
        .iter()
        .filter(|m| m.text.contains("Whale alert"))
        .count();
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    let worst = counts.values().copied().max().unwrap_or(0);
    assert_eq!(
        whale_msgs,
        expected_alerts.len() + duplicates,
        "alerts to chats not subscribed to them"
    );
    assert!(
        worst <= 1 + KILLS,
        "a chat got one alert {worst} times with {KILLS} crashes"
    );
    assert!(
        duplicates <= KILLS,
        "{duplicates} duplicate alerts with {KILLS} crashes (one message in flight each)"
    );

    // The watchdog was fed in every life, up to its kill (or now).
    let limit = Duration::from_micros(WATCHDOG_USEC);
    let mut max_gap = Duration::ZERO;
    for (i, life) in lives.iter().enumerate() {
        let until = kill_times.get(i).copied().unwrap_or(end);
        let gap = life.max_watchdog_gap(until);
        max_gap = max_gap.max(gap);
        assert!(
            gap <= limit,
            "life {i}: watchdog starved for {gap:?} (limit {limit:?}); statuses: {:?}",
            life.notify.statuses()
        );
    }

    // Memory of the long last life: late samples against early ones (after
    // a warm-up), with a generous bound.
    let last = lives.last_mut().unwrap();
    let rss = last.rss_kb.lock().unwrap().clone();
    assert!(rss.len() >= 10, "too few RSS samples: {}", rss.len());
    let t0 = rss[0].0;
    let early = rss
        .iter()
        .filter(|(t, _)| *t - t0 >= Duration::from_secs(5) && *t - t0 <= Duration::from_secs(15))
        .map(|(_, kb)| *kb)
        .max()
        .unwrap_or(rss[0].1);
    let tail = rss.len() - rss.len() / 5;
    let late = rss[tail..].iter().map(|(_, kb)| *kb).max().unwrap();
    let peak = rss.iter().map(|(_, kb)| *kb).max().unwrap();
    assert!(
        late < early * 2 && peak < 100 * 1024,
        "RSS grew: early {early} kB, late {late} kB, peak {peak} kB"
    );

    // A clean stop at the end, and no secret anywhere.
    let status = last.end(Signal::SIGTERM);
    assert_eq!(status.code(), Some(0), "{}", last.output_at_end);
    for (i, life) in lives.iter().enumerate() {
        let out = if life.output_at_end.is_empty() {
            life.inst.output()
        } else {
            life.output_at_end.clone()
        };
        assert_no_secret(&out);
        assert_no_secret(&life.notify.statuses().join("\n"));
        assert!(!out.contains("panicked"), "life {i} panicked:\n{out}");
    }
    for m in &msgs {
        assert_no_secret(&m.text);
    }

    let logs: String = lives.iter().map(|l| l.output_at_end.as_str()).collect();
    let reply_retries = logs.matches("could not reply, retrying").count();
    let delivery_retries = logs.matches("alert delivery will be retried").count();
    let poll_failures = logs.matches("getUpdates failed").count();
    let commands: usize = sent.help.values().sum::<usize>() + sent.alerts.values().sum::<usize>();
    let tg_requests: u64 = tg.request_counts().values().sum();
    let cg_requests: u64 = cg.request_counts().values().sum();
    eprintln!(
        "soak: {:.0} s of faults, drained in {:.1} s; {commands} commands from {} chats, {} replies; \
         {} whales -> {} alert deliveries expected, {whale_msgs} sent ({duplicates} duplicates); \
         {KILLS} SIGKILLs; max watchdog gap {:.2} s (limit {:.0} s); RSS early {early} kB, late {late} kB, peak {peak} kB; \
         Telegram requests {tg_requests} ({} 429s; {poll_failures} failed polls, {reply_retries} reply retries, \
         {delivery_retries} alert retries), CoinGlass requests {cg_requests} ({} 429s)",
        faulted_for.as_secs_f64(),
        drained_in.as_secs_f64(),
        CHATS.count(),
        msgs.len() - whale_msgs,
        sent.whales.len(),
        expected_alerts.len(),
        max_gap.as_secs_f64(),
        limit.as_secs_f64(),
        tg.too_many_requests_sent(),
        cg.too_many_requests_sent(),
    );
}
