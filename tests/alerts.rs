//! Market monitors and alert delivery, end to end through `cryptosat run`:
//! events pushed into the fake CoinGlass reach exactly the subscribed chats,
//! once, across restarts and crashes, within Telegram's rate limits.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use cryptosat::alerts::AlertKind;
use cryptosat::store::Store;
use cryptosat_fakes::{ChatSpec, RateLimits, WhaleAlert};
use nix::sys::signal::Signal;

const CHANNEL: i64 = -1_001_234_567_890;

struct Env {
    rt: tokio::runtime::Runtime,
    tg: cryptosat_fakes::FakeTelegram,
    cg: cryptosat_fakes::FakeCoinGlass,
    s: Scratch,
    inst: Option<Instance>,
    notify: Option<NotifySocket>,
    launches: usize,
}

/// Monitor settings that poll fast; the liquidation and funding monitors are
/// off unless a test needs them, to keep request counts readable.
const FAST: &str = "[monitors.whales]\ninterval_secs = 5\n[monitors.liquidations]\nenabled = false\n[monitors.funding]\nenabled = false\n";

impl Env {
    fn new() -> Self {
        let rt = runtime();
        let tg = fake_telegram(&rt);
        let cg = fake_coinglass(&rt);
        tg.register_chat(ChatSpec::channel(CHANNEL, "alerts"));
        Env {
            rt,
            tg,
            cg,
            s: Scratch::new(),
            inst: None,
            notify: None,
            launches: 0,
        }
    }

    /// Subscribes chats directly in the database (and makes them known to the fake).
    fn seed(&self, chats: &[i64], symbol: &str, kind: AlertKind) {
        let store = Store::open(&self.s.path("cryptosat.db")).expect("open db");
        for &c in chats {
            self.tg.register_chat(ChatSpec::private(c));
            store.upsert_chat(c, "private", "").unwrap();
            store.subscribe(c, symbol, &[kind]).unwrap();
        }
        store.close().unwrap();
    }

    fn launch(&mut self, telegram_keys: &str, extra: &str) {
        let cfg = self
            .s
            .bot_config(&self.tg.base_url(), &self.cg.base_url(), telegram_keys);
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        // Keys for [coinglass] go into the section the helper already wrote.
        let (coinglass, extra) = match extra.strip_prefix("[coinglass]\n") {
            Some(rest) => {
                let end = rest.find("\n[").map_or(rest.len(), |i| i + 1);
                (&rest[..end], &rest[end..])
            }
            None => ("", extra),
        };
        text = text.replace("[coinglass]\n", &format!("[coinglass]\n{coinglass}"));
        text.push_str(extra);
        std::fs::write(&cfg, text).unwrap();
        self.launches += 1;
        let notify = NotifySocket::bind(&self.s.path(&format!("n{}", self.launches)));
        let inst = Instance::run(&cfg, &notify, None, &[]);
        assert!(
            notify
                .wait_for(Duration::from_secs(20), |l| l == "READY=1")
                .is_some(),
            "not ready:\n{}",
            inst.output()
        );
        self.inst = Some(inst);
        self.notify = Some(notify);
    }

    fn stop(&mut self, sig: Signal) {
        if let Some(mut inst) = self.inst.take() {
            inst.signal(sig);
            inst.wait_timeout(Duration::from_secs(15))
                .expect("bot did not exit");
        }
    }

    fn output(&self) -> String {
        self.inst.as_ref().map(|i| i.output()).unwrap_or_default()
    }

    /// Messages containing `needle`, per chat (one snapshot of the fake: the
    /// fake shares its lock with sendMessage, so tests must not hammer it).
    fn counts(&self, needle: &str) -> HashMap<i64, usize> {
        let mut counts = HashMap::new();
        for m in self.tg.sent_messages() {
            if m.text.contains(needle) {
                *counts.entry(m.chat_id).or_insert(0) += 1;
            }
        }
        counts
    }

    fn alerts_to(&self, chat: i64, needle: &str) -> usize {
        self.counts(needle).get(&chat).copied().unwrap_or(0)
    }

    /// How many of `chats` received `needle` at least once.
    fn reached(&self, chats: &[i64], needle: &str) -> usize {
        let counts = self.counts(needle);
        chats.iter().filter(|c| counts.contains_key(c)).count()
    }

    fn wait_alerts(&self, chats: &[i64], needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let counts = self.counts(needle);
            let missing: Vec<i64> = chats
                .iter()
                .copied()
                .filter(|c| !counts.contains_key(c))
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "alert {needle:?} missing for {missing:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn a_whale_reaches_subscribers_and_the_channel_once_even_across_a_restart() {
    let mut e = Env::new();
    e.seed(&[1, 2], "BTC", AlertKind::Whales);
    e.seed(&[3], "ETH", AlertKind::Whales);
    e.seed(&[4], "BTC", AlertKind::Funding);
    let t0 = now_ms();
    e.cg.push_whale(WhaleAlert::new(
        "0xaaaa00000000000000000000000000000000aaaa",
        "BTC",
        20.0,
        2_000_000.0,
        1,
        t0,
    ));
    e.launch(&format!("alert_chat_ids = [{CHANNEL}]"), FAST);
    e.wait_alerts(&[1, 2, CHANNEL], "Whale alert", Duration::from_secs(20));

    // The same upstream event again, a position below the threshold, and one
    // inside the cooldown: none alerts. The opposite direction does.
    e.cg.push_whale(WhaleAlert::new(
        "0xbbbb00000000000000000000000000000000bbbb",
        "BTC",
        1.0,
        900_000.0,
        1,
        t0 + 1,
    ));
    e.cg.push_whale(WhaleAlert::new(
        "0xcccc00000000000000000000000000000000cccc",
        "BTC",
        30.0,
        3_000_000.0,
        1,
        t0 + 2,
    ));
    std::thread::sleep(Duration::from_secs(7));
    e.cg.push_whale(WhaleAlert::new(
        "0xdddd00000000000000000000000000000000dddd",
        "BTC",
        -30.0,
        3_000_000.0,
        1,
        t0 + 3,
    ));
    e.wait_alerts(&[1, 2, CHANNEL], "SHORT", Duration::from_secs(20));

    // A restart re-reads the same whale list: nothing is alerted again.
    e.stop(Signal::SIGTERM);
    e.launch(&format!("alert_chat_ids = [{CHANNEL}]"), FAST);
    std::thread::sleep(Duration::from_secs(8));
    for chat in [1, 2, CHANNEL] {
        assert_eq!(
            e.alerts_to(chat, "Whale alert"),
            2,
            "chat {chat}: {:?}",
            e.tg.sent_messages()
        );
    }
    for chat in [3, 4] {
        assert_eq!(
            e.alerts_to(chat, "Whale alert"),
            0,
            "chat {chat} is not subscribed to BTC whales"
        );
    }
    assert!(e
        .tg
        .sent_messages()
        .iter()
        .any(|m| m.text.contains("/unsubscribe BTC whales")));
    assert_no_secret(&e.output());
}

#[test]
fn a_plan_without_whales_disables_only_that_monitor() {
    let mut e = Env::new();
    e.cg.restrict_endpoint(cryptosat_fakes::coinglass::PATH_WHALE_ALERT);
    e.launch("", "[monitors.whales]\ninterval_secs = 5\n[monitors.liquidations]\ninterval_secs = 5\n[monitors.funding]\ninterval_secs = 5\n");
    std::thread::sleep(Duration::from_secs(3));
    e.tg.push_message(ChatSpec::private(1), 1, "/status");
    let st =
        wait_reply(&e.rt, &e.tg, 1, "CryptoSat status", Duration::from_secs(15)).expect("status");
    assert!(st.text.contains("Monitor whales: disabled"), "{}", st.text);
    assert!(st.text.contains("Monitor liquidations: ok"), "{}", st.text);
    assert!(st.text.contains("Monitor funding: ok"), "{}", st.text);
    let out = e.output();
    assert_eq!(
        out.matches("monitor disabled").count(),
        1,
        "logged once:\n{out}"
    );
    let whale_requests = e.cg.requests(cryptosat_fakes::coinglass::PATH_WHALE_ALERT);
    assert!(
        whale_requests <= 2,
        "{whale_requests} requests to a restricted endpoint"
    );
    let notify = e.notify.as_ref().unwrap();
    let two = notify.wait_for(Duration::from_secs(15), |l| {
        l.contains("2 monitors running")
            && l.contains("whales monitor disabled: CoinGlass plan does not include whale alerts")
    });
    assert!(two.is_some(), "{:?}\n{}", notify.statuses(), e.output());
}

#[test]
fn coinglass_faults_cause_no_crash_no_loss_and_no_request_storm() {
    let mut e = Env::new();
    e.seed(&[1], "ETH", AlertKind::Whales);
    e.cg.fail_5xx(None, 4);
    e.cg.inject(None, cryptosat_fakes::Fault::MalformedJson, 2);
    e.cg.inject(
        None,
        cryptosat_fakes::Fault::TooManyRequests { retry_after: 2 },
        2,
    );
    e.cg.set_rate_limit(30);
    e.cg.push_whale(WhaleAlert::new(
        "0xeeee00000000000000000000000000000000eeee",
        "ETH",
        500.0,
        2_000_000.0,
        1,
        now_ms(),
    ));
    let started = Instant::now();
    e.launch("", "[coinglass]\nrequests_per_minute = 30\n[monitors.whales]\ninterval_secs = 5\n[monitors.funding]\ninterval_secs = 5\n[monitors.liquidations]\ninterval_secs = 5\nmax_symbols = 2\n");
    e.wait_alerts(&[1], "Whale alert", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(5));
    let inst = e.inst.as_mut().unwrap();
    assert!(
        inst.wait_timeout(Duration::from_millis(10)).is_none(),
        "the bot died"
    );
    let total: u64 = e.cg.request_counts().values().sum();
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    assert!(
        total as f64 <= 30.0 * minutes.ceil() + 1.0,
        "{total} requests in {minutes:.2} min: over the budget"
    );
    assert_eq!(e.cg.too_many_requests_sent(), 2, "only the injected 429s");
    assert_eq!(e.alerts_to(1, "Whale alert"), 1);
}

#[test]
fn sigkill_in_the_middle_of_a_fan_out_loses_nothing() {
    let mut e = Env::new();
    let chats: Vec<i64> = (1000..1250).collect();
    e.seed(&chats, "SOL", AlertKind::Whales);
    e.tg.set_rate_limits(RateLimits {
        global_per_sec: Some(30),
        per_chat_per_sec: Some(1),
        group_per_min: None,
    });
    e.cg.push_whale(WhaleAlert::new(
        "0xffff00000000000000000000000000000000ffff",
        "SOL",
        9_000.0,
        1_500_000.0,
        1,
        now_ms(),
    ));
    e.launch("", FAST);
    // Kill after roughly a third has gone out.
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.reached(&chats, "Whale alert") < 80 {
        assert!(
            Instant::now() < deadline,
            "fan-out did not progress:\n{}",
            e.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    e.stop(Signal::SIGKILL);
    let before = e.reached(&chats, "Whale alert");
    assert!(
        before < chats.len(),
        "fan-out finished before the kill; the test proves nothing"
    );
    e.launch("", FAST);
    e.wait_alerts(&chats, "Whale alert", Duration::from_secs(40));
    let counts = e.counts("Whale alert");
    let duplicates: usize = chats.iter().map(|c| counts[c] - 1).sum();
    assert!(duplicates <= 1, "{duplicates} duplicates after one crash");
    assert_eq!(e.tg.too_many_requests_sent(), 0, "429s from Telegram");
}

#[test]
fn a_fan_out_to_300_chats_stays_within_limits_and_commands_still_answer() {
    let mut e = Env::new();
    let chats: Vec<i64> = (5000..5300).collect();
    e.seed(&chats, "BTC", AlertKind::Whales);
    e.tg.set_rate_limits(RateLimits {
        global_per_sec: Some(30),
        per_chat_per_sec: Some(1),
        group_per_min: None,
    });
    e.cg.push_whale(WhaleAlert::new(
        "0x9999000000000000000000000000000000009999",
        "BTC",
        50.0,
        5_000_000.0,
        1,
        now_ms(),
    ));
    let started = Instant::now();
    e.launch("", FAST);
    // Mid fan-out, a user asks for help.
    while e.reached(&chats, "Whale alert") < 60 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "fan-out did not start:\n{}",
            e.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let asked = Instant::now();
    e.tg.push_message(ChatSpec::private(42), 42, "/help");
    wait_reply(
        &e.rt,
        &e.tg,
        42,
        "CryptoSat commands",
        Duration::from_secs(10),
    )
    .expect("no /help reply");
    let took = asked.elapsed();
    let in_flight = chats.len() - e.reached(&chats, "Whale alert");
    assert!(
        in_flight > 0,
        "the fan-out was over before /help was answered"
    );
    assert!(
        took < Duration::from_secs(2),
        "/help took {took:?} during a fan-out"
    );
    e.wait_alerts(&chats, "Whale alert", Duration::from_secs(40));
    assert_eq!(e.tg.too_many_requests_sent(), 0, "429s from Telegram");
    let counts = e.counts("Whale alert");
    for c in &chats {
        assert_eq!(counts[c], 1, "chat {c}");
    }
    let rate = chats.len() as f64 / started.elapsed().as_secs_f64();
    eprintln!("fan-out: {} chats at {rate:.1} msg/s", chats.len());
}
