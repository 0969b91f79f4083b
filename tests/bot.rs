//! The bot as users meet it: the real `cryptosat run` against the fake Bot API
//! and the fake CoinGlass, driven by posting messages and pressing buttons.

mod common;

use std::time::{Duration, Instant};

use common::*;
use cryptosat_fakes::{ChatSpec, ExchangeLiquidation, FundingEntry, WhaleAlert};
use nix::sys::signal::Signal;
use serde_json::Value;

const T: Duration = Duration::from_secs(15);

struct Bot {
    rt: tokio::runtime::Runtime,
    tg: cryptosat_fakes::FakeTelegram,
    cg: cryptosat_fakes::FakeCoinGlass,
    scratch: Scratch,
    notify: NotifySocket,
    inst: Option<Instance>,
}

impl Bot {
    fn start(telegram_keys: &str) -> Self {
        let mut bot = Self::new();
        bot.launch(telegram_keys);
        bot
    }

    /// The fakes, without the bot yet (to set upstream data first: the
    /// monitors fetch and cache some of it at start-up).
    fn new() -> Self {
        let rt = runtime();
        let tg = fake_telegram(&rt);
        let cg = fake_coinglass(&rt);
        let scratch = Scratch::new();
        let notify = NotifySocket::bind(scratch.dir.path());
        Bot {
            rt,
            tg,
            cg,
            scratch,
            notify,
            inst: None,
        }
    }

    fn launch(&mut self, telegram_keys: &str) {
        let cfg = self
            .scratch
            .bot_config(&self.tg.base_url(), &self.cg.base_url(), telegram_keys);
        let inst = Instance::run(&cfg, &self.notify, None, &[]);
        let polling = self
            .notify
            .wait_for(Duration::from_secs(20), |l| l.starts_with("STATUS=polling"));
        assert!(polling.is_some(), "bot never polled:\n{}", inst.output());
        self.inst = Some(inst);
    }

    fn say(&self, chat: i64, text: &str) {
        self.tg.push_message(ChatSpec::private(chat), chat, text);
    }

    fn reply(&self, chat: i64, needle: &str) -> cryptosat_fakes::SentMessage {
        wait_reply(&self.rt, &self.tg, chat, needle, T).unwrap_or_else(|| {
            let sent: Vec<String> = self
                .tg
                .sent_messages()
                .iter()
                .filter(|m| m.chat_id == chat)
                .map(|m| m.text.clone())
                .collect();
            panic!(
                "no reply containing {needle:?} in chat {chat}; got {sent:?}\n{}",
                self.output()
            )
        })
    }

    fn sent_to(&self, chat: i64) -> Vec<cryptosat_fakes::SentMessage> {
        self.tg
            .sent_messages()
            .into_iter()
            .filter(|m| m.chat_id == chat)
            .collect()
    }

    fn output(&self) -> String {
        self.inst.as_ref().map(|i| i.output()).unwrap_or_default()
    }
}

fn buttons(markup: &Value) -> Vec<(String, String)> {
    markup["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().into_iter().flatten())
        .map(|b| {
            (
                b["text"].as_str().unwrap_or_default().to_owned(),
                b["callback_data"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_command_answers_with_real_data() {
    let mut b = Bot::new();
    b.cg.set_exchange_liquidations(
        "BTC",
        vec![
            ExchangeLiquidation::new("Binance", 6_000_000.0, 2_000_000.0),
            ExchangeLiquidation::new("OKX", 1_000_000.0, 1_000_000.0),
        ],
    );
    b.cg.set_funding(
        "ETH",
        vec![
            FundingEntry::new("Binance", 0.0100),
            FundingEntry::new("Bybit", 0.0300),
        ],
    );
    b.cg.push_whale(WhaleAlert::new(
        "0x1234567890abcdef1234",
        "BTC",
        -25.0,
        2_500_000.0,
        1,
        now_ms(),
    ));

    b.launch("admins = [7]");
    b.say(7, "/start");
    let start = b.reply(7, "CryptoSat");
    assert!(!buttons(&start.reply_markup).is_empty(), "no main keyboard");
    b.say(7, "/help");
    let help = b.reply(7, "CryptoSat commands");
    for c in [
        "/liq",
        "/funding",
        "/whale",
        "/unsubscribe",
        "/alerts",
        "/status",
    ] {
        assert!(
            help.text.contains(c),
            "{c} missing from help: {}",
            help.text
        );
    }
    b.say(7, "/liq btc");
    let liq = b.reply(7, "BTC liquidations");
    assert!(liq.text.contains("Total: <b>$10.00M</b>"), "{}", liq.text);
    assert!(
        liq.text.contains("Binance") && !liq.text.contains("\nAll:"),
        "{}",
        liq.text
    );
    b.say(7, "/funding ETHUSDT");
    let f = b.reply(7, "ETH funding rates");
    assert!(
        f.text.contains("+0.0200%"),
        "average of 0.01 and 0.03: {}",
        f.text
    );
    b.say(7, "/whale BTC");
    let w = b.reply(7, "Latest Hyperliquid whale positions");
    assert!(
        w.text.contains("SHORT") && w.text.contains("$2.50M"),
        "{}",
        w.text
    );
    b.say(7, "/status");
    let st = b.reply(7, "CryptoSat status");
    assert!(
        st.text.contains("Telegram: ok") && st.text.contains("CoinGlass:"),
        "{}",
        st.text
    );
    assert!(
        st.text.contains("Subscribed chats"),
        "admin details missing: {}",
        st.text
    );
    b.say(8, "/status");
    let st8 = b.reply(8, "CryptoSat status");
    assert!(
        !st8.text.contains("Subscribed chats"),
        "non-admin sees admin details: {}",
        st8.text
    );
    // Registered commands.
    let cmds = b.tg.commands().to_string();
    for c in [
        "liq",
        "funding",
        "whale",
        "subscribe",
        "unsubscribe",
        "alerts",
        "status",
    ] {
        assert!(
            cmds.contains(&format!("\"{c}\"")),
            "{c} not registered: {cmds}"
        );
    }
    assert_no_secret(&b.output());
}

#[test]
fn subscribe_with_buttons_then_list_and_unsubscribe() {
    let b = Bot::start("");
    b.say(5, "/subscribe");
    let menu = b.reply(5, "Alerts for which coin");
    let (_, eth) = buttons(&menu.reply_markup)
        .into_iter()
        .find(|(t, _)| t == "ETH")
        .expect("ETH button");
    b.tg.press_button(5, 5, menu.message_id, &eth);
    let edit = b.rt.block_on(async {
        let deadline = Instant::now() + T;
        loop {
            if let Some(e) =
                b.tg.edits()
                    .into_iter()
                    .find(|e| e.chat_id == 5 && e.text.contains("Which"))
            {
                return e;
            }
            assert!(Instant::now() < deadline, "kind menu never shown");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let (_, whales) = buttons(&edit.reply_markup)
        .into_iter()
        .find(|(t, _)| t == "Whales")
        .expect("Whales button");
    b.tg.press_button(5, 5, menu.message_id, &whales);
    b.rt.block_on(async {
        let deadline = Instant::now() + T;
        while !b
            .tg
            .edits()
            .iter()
            .any(|e| e.chat_id == 5 && e.text.contains("subscribed to <b>ETH</b>"))
        {
            assert!(
                Instant::now() < deadline,
                "subscription not confirmed: {:?}",
                b.tg.edits()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(b.tg.callback_answers().len() >= 2, "buttons not answered");

    b.say(5, "/subscribe sol all");
    b.reply(5, "subscribed to <b>SOL</b>");
    b.say(5, "/alerts");
    let list = b.reply(5, "Alert subscriptions");
    assert!(list.text.contains("ETH: Whales"), "{}", list.text);
    assert!(
        list.text
            .contains("SOL: Liquidations, Whales, Funding rates"),
        "{}",
        list.text
    );
    b.say(5, "/unsubscribe SOL funding");
    b.reply(5, "SOL Funding rates alerts (1 removed)");
    b.say(5, "/unsubscribe all");
    b.reply(5, "all alerts (3 removed)");
    b.say(5, "/alerts");
    b.reply(5, "no alert subscriptions");
    // Another chat's subscriptions cannot be touched by forged button data.
    b.say(6, "/subscribe btc whales");
    b.reply(6, "subscribed to <b>BTC</b>");
    b.tg.press_button(5, 5, menu.message_id, "unsub:BTC:all:-6");
    b.tg.press_button(5, 5, menu.message_id, "unsub:BTC:all");
    std::thread::sleep(Duration::from_secs(1));
    b.say(6, "/alerts");
    b.reply(6, "BTC: Whales");
}

#[test]
fn bad_input_gets_short_helpful_replies_and_groups_are_left_alone() {
    let b = Bot::start("");
    b.say(3, "/liq");
    b.reply(3, "Which coin?");
    b.say(3, "/liq ???");
    b.reply(3, "is not a coin symbol");
    b.say(3, "/funding NOTACOIN");
    b.reply(3, "I don't know NOTACOIN");
    b.say(3, "/subscribe btc everything");
    b.reply(3, "is not an alert kind");
    b.say(3, "/frobnicate");
    b.reply(3, "I don't know /frobnicate");
    b.say(3, &format!("/help {}", "x".repeat(4096)));
    b.reply(3, "too long");
    b.say(3, "<b>hi</b> & bye");
    b.reply(3, "I answer commands only");
    b.say(3, "/liq <script>");
    let r = b.reply(3, "not a coin symbol");
    assert!(
        !r.text.contains("<script>"),
        "user text not escaped: {}",
        r.text
    );

    let group = ChatSpec::group(-42, "traders");
    b.tg.push_message(group.clone(), 3, "/help@SomeOtherBot");
    b.tg.push_message(group.clone(), 3, "hello everyone");
    b.tg.push_message(group.clone(), 3, "/frobnicate");
    b.tg.push_message(group, 3, "/help@cryptosat_test_bot");
    b.reply(-42, "CryptoSat commands");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        b.sent_to(-42).len(),
        1,
        "answered chatter or other bots' commands: {:?}",
        b.sent_to(-42)
    );
}

#[test]
fn allowlist_refuses_others_once() {
    let b = Bot::start("access = \"allowlist\"\nallowed_users = [100]");
    b.say(100, "/help");
    b.reply(100, "CryptoSat commands");
    b.say(200, "/help");
    b.reply(200, "this bot is private");
    b.say(200, "/liq BTC");
    b.say(100, "/help");
    wait_count(&b.rt, &b.tg, 100, 2, T);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b.sent_to(200).len(), 1, "{:?}", b.sent_to(200));
}

#[test]
fn a_slow_upstream_does_not_delay_other_chats() {
    let b = Bot::start("");
    b.cg.delay(None, 1, Duration::from_secs(6));
    b.say(1, "/funding BTC");
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    b.say(2, "/help");
    b.reply(2, "CryptoSat commands");
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "/help waited {took:?} behind a slow /funding"
    );
    b.reply(1, "funding rates");
}

#[test]
fn flooding_chat_is_limited_without_starving_others() {
    let b = Bot::start("commands_per_minute = 5");
    for _ in 0..15 {
        b.say(9, "/help");
    }
    b.say(10, "/help");
    b.reply(10, "CryptoSat commands");
    b.reply(9, "too fast");
    std::thread::sleep(Duration::from_secs(1));
    let to9 = b.sent_to(9);
    assert_eq!(
        to9.len(),
        6,
        "5 answers and one slow-down: {:?}",
        to9.iter().map(|m| &m.text).collect::<Vec<_>>()
    );
}

#[test]
fn blocked_chats_are_marked_inactive_and_migrated_groups_followed() {
    let b = Bot::start("admins = [1]");
    // A user who blocked the bot.
    b.tg.block_chat(50);
    b.say(50, "/subscribe btc");
    std::thread::sleep(Duration::from_secs(1));
    b.say(1, "/status");
    let st = b.reply(1, "inactive chats: 1");
    assert!(st.text.contains("Subscribed chats: 0"), "{}", st.text);
    // A group that became a supergroup: the reply follows it, and so do its subscriptions.
    let old = ChatSpec::group(-77, "g");
    b.tg.push_message(old.clone(), 1, "/subscribe eth whales");
    b.reply(-77, "subscribed to <b>ETH</b>");
    let new_id = -1_000_000_000_077;
    b.tg.register_chat(ChatSpec::supergroup(new_id, "g"));
    b.tg.migrate_chat(-77, new_id);
    b.tg.push_message(old, 1, "/alerts");
    let moved = b.reply(new_id, "ETH: Whales");
    assert!(moved.text.contains("Alert subscriptions"), "{}", moved.text);
}

#[test]
fn nothing_is_lost_or_handled_twice_across_sigkill() {
    let mut b = Bot::start("");
    // The first /funding hangs upstream; the bot is killed while handling it.
    b.cg.delay(None, 1, Duration::from_secs(30));
    b.say(20, "/funding BTC");
    for chat in 21..26 {
        b.say(chat, "/help");
    }
    for chat in 21..26 {
        b.reply(chat, "CryptoSat commands");
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut inst = b.inst.take().unwrap();
    inst.signal(Signal::SIGKILL);
    inst.wait_timeout(Duration::from_secs(5)).expect("killed");
    b.cg.clear_faults();
    b.say(26, "/help");
    b.launch("");
    b.reply(26, "CryptoSat commands");
    // The in-flight /funding is answered after the restart.
    b.reply(20, "funding rates");
    std::thread::sleep(Duration::from_secs(1));
    for chat in 20..27 {
        assert_eq!(
            b.sent_to(chat).len(),
            1,
            "chat {chat}: {:?}",
            b.sent_to(chat)
        );
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
