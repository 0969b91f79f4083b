//! Abuse and access: what users (or anyone who can reach the bot) may try —
//! commands in channels, forged button data, markup in arguments, strangers in
//! allowlist mode, floods in groups — against the real `cryptosat run`.
//! Cases `tests/bot.rs` already covers (non-admin /status, a private flood,
//! `/liq <script>`, two commands from a stranger) are not repeated here.

mod common;

use std::time::{Duration, Instant};

use common::*;
use cryptosat_fakes::{ChatSpec, SentMessage};
use serde_json::Value;

const T: Duration = Duration::from_secs(15);
const CHANNEL: i64 = -1_001_555_000_111;

struct Bot {
    rt: tokio::runtime::Runtime,
    tg: cryptosat_fakes::FakeTelegram,
    _cg: cryptosat_fakes::FakeCoinGlass,
    _scratch: Scratch,
    _notify: NotifySocket,
    inst: Instance,
}

impl Bot {
    fn start(telegram_keys: &str) -> Self {
        let rt = runtime();
        let tg = fake_telegram(&rt);
        let cg = fake_coinglass(&rt);
        let scratch = Scratch::new();
        let notify = NotifySocket::bind(scratch.dir.path());
        let cfg = scratch.bot_config(&tg.base_url(), &cg.base_url(), telegram_keys);
        let inst = Instance::run(&cfg, &notify, None, &[]);
        assert!(
            notify
                .wait_for(Duration::from_secs(20), |l| l.starts_with("STATUS=polling"))
                .is_some(),
            "bot never polled:\n{}",
            inst.output()
        );
        Bot {
            rt,
            tg,
            _cg: cg,
            _scratch: scratch,
            _notify: notify,
            inst,
        }
    }

    fn say(&self, chat: i64, text: &str) {
        self.tg.push_message(ChatSpec::private(chat), chat, text);
    }

    fn reply(&self, chat: i64, needle: &str) -> SentMessage {
        wait_reply(&self.rt, &self.tg, chat, needle, T).unwrap_or_else(|| {
            panic!(
                "no reply containing {needle:?} in chat {chat}; got {:?}\n{}",
                self.texts(chat),
                self.inst.output()
            )
        })
    }

    fn sent_to(&self, chat: i64) -> Vec<SentMessage> {
        self.tg
            .sent_messages()
            .into_iter()
            .filter(|m| m.chat_id == chat)
            .collect()
    }

    fn texts(&self, chat: i64) -> Vec<String> {
        self.sent_to(chat).into_iter().map(|m| m.text).collect()
    }

    /// Waits until `n` button presses were answered; returns all answers.
    fn answers(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + T;
        loop {
            let a = self.tg.callback_answers();
            if a.len() >= n {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} buttons answered: {a:?}\n{}",
                a.len(),
                self.inst.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The bot is still running (abuse must never crash it), and leaked nothing.
    fn assert_healthy(&mut self) {
        assert!(
            self.inst.wait_timeout(Duration::from_millis(1)).is_none(),
            "the bot died:\n{}",
            self.inst.output()
        );
        let out = self.inst.output();
        assert!(!out.contains("panicked"), "{out}");
        assert_no_secret(&out);
    }
}

fn answer_text(a: &Value) -> &str {
    a["text"].as_str().unwrap_or_default()
}

/// Every `<` in `text` opens one of the tags the bot itself writes, and every
/// `&` starts an entity: user text cannot inject markup.
fn assert_safe_html(text: &str) {
    const OWN_TAGS: [&str; 8] = ["b", "/b", "i", "/i", "code", "/code", "pre", "/pre"];
    let mut rest = text;
    while let Some(i) = rest.find('<') {
        let after = &rest[i + 1..];
        let end = after.find('>').unwrap_or(after.len());
        let tag = &after[..end];
        assert!(
            OWN_TAGS.contains(&tag),
            "unexpected markup <{tag}> in a reply: {text}"
        );
        rest = &after[end..];
    }
    for (i, _) in text.match_indices('&') {
        let tail = &text[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&#"]
                .iter()
                .any(|e| tail.starts_with(e)),
            "raw & in a reply: {text}"
        );
    }
}

#[test]
fn commands_in_a_channel_are_answered_without_admin_details_and_chatter_is_ignored() {
    // Open mode: channel posts have no `from`; a channel admin posted them, so
    // known commands are answered (dispatch.rs: `None if ctx.access.is_open()`).
    let mut b = Bot::start("admins = [7]");
    let channel = ChatSpec::channel(CHANNEL, "news");
    b.tg.push_message(channel.clone(), 0, "hello subscribers");
    b.tg.push_message(channel.clone(), 0, "/frobnicate");
    b.tg.push_message(channel.clone(), 0, "/help@SomeOtherBot");
    b.tg.push_message(channel.clone(), 0, "/status");
    let st = b.reply(CHANNEL, "CryptoSat status");
    assert!(
        !st.text.contains("Subscribed chats"),
        "a post without a user must not see admin details: {}",
        st.text
    );
    b.tg.push_message(channel.clone(), 0, "/subscribe btc whales");
    b.reply(CHANNEL, "subscribed to <b>BTC</b>");
    b.tg.push_message(channel, 0, "/alerts");
    b.reply(CHANNEL, "BTC: Whales");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        b.sent_to(CHANNEL).len(),
        3,
        "answered chatter, unknown commands or other bots' commands: {:?}",
        b.texts(CHANNEL)
    );
    b.assert_healthy();
}

#[test]
fn in_allowlist_mode_channel_posts_are_ignored_silently() {
    // Allowlist mode: a post has no user to check, so it is refused — without
    // a refusal message (dispatch.rs: `None => Verdict::Denied { first: false }`).
    let mut b = Bot::start("access = \"allowlist\"\nallowed_users = [100]");
    let channel = ChatSpec::channel(CHANNEL, "news");
    for text in ["/help", "/subscribe btc", "/status", "/start"] {
        b.tg.push_message(channel.clone(), 0, text);
    }
    b.say(100, "/help");
    b.reply(100, "CryptoSat commands");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        b.sent_to(CHANNEL).is_empty(),
        "channel got {:?}",
        b.texts(CHANNEL)
    );
    b.assert_healthy();
}

#[test]
fn forged_button_data_is_refused_and_changes_nothing() {
    let mut b = Bot::start("");
    b.say(5, "/subscribe btc whales");
    let msg = b.reply(5, "subscribed to <b>BTC</b>");
    b.say(6, "/subscribe eth all");
    b.reply(6, "subscribed to <b>ETH</b>");
    let to6 = b.sent_to(6).len();

    let forged = [
        // Oversized (Telegram caps callback data at 64 bytes; a forged client need not).
        format!("unsub:ETH:all:{}", "9".repeat(60)),
        format!("sub:k:{}:all", "A".repeat(70)),
        "x".repeat(4096),
        // Another chat's id embedded, in every position.
        "unsub:ETH:all:6".to_owned(),
        "unsub:6:ETH:all".to_owned(),
        "sub:k:ETH:all:-6".to_owned(),
        "6:unsub:ETH:all".to_owned(),
        // Invalid symbols and kinds.
        "sub:k:btc:all".to_owned(),
        "sub:k:BTC:everything".to_owned(),
        "unsub:<b>:all".to_owned(),
        "unsub:BTC:".to_owned(),
        "cmd:liq:../../etc/passwd".to_owned(),
        "cmd:funding:BTC;DROP TABLE subscriptions".to_owned(),
        "sub:s:".to_owned(),
        String::new(),
        "sub:k:BTC:whales\u{0}".to_owned(),
    ];
    for data in &forged {
        b.tg.press_button(5, 5, msg.message_id, data);
    }
    let answers = b.answers(forged.len());
    for a in &answers {
        assert_eq!(answer_text(a), "This button is no longer valid.", "{a}");
    }

    // Well-formed data naming an unknown coin is re-validated, not trusted.
    b.tg.press_button(5, 5, msg.message_id, "sub:k:ZZZZQ:all");
    let deadline = Instant::now() + T;
    while !b
        .tg
        .edits()
        .iter()
        .any(|e| e.chat_id == 5 && e.text.contains("I don't know ZZZZQ"))
    {
        assert!(
            Instant::now() < deadline,
            "unknown coin accepted from button data: {:?}",
            b.tg.edits()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    b.say(5, "/alerts");
    let list5 = b.reply(5, "Alert subscriptions");
    assert!(
        list5.text.contains("BTC: Whales") && !list5.text.contains("ZZZZQ"),
        "{}",
        list5.text
    );
    b.say(6, "/alerts");
    let list6 = b.reply(6, "Alert subscriptions");
    assert!(
        list6
            .text
            .contains("ETH: Liquidations, Whales, Funding rates"),
        "chat 6 was changed by chat 5's buttons: {}",
        list6.text
    );
    assert_eq!(
        b.sent_to(6).len(),
        to6 + 1,
        "chat 5's buttons sent something to chat 6: {:?}",
        b.texts(6)
    );
    b.assert_healthy();
}

#[test]
fn markup_in_arguments_is_escaped_in_every_reply() {
    let mut b = Bot::start("");
    let cases: [(&str, &str); 9] = [
        ("/liq <img src=x onerror=alert(1)>", "not a coin symbol"),
        ("/funding a&b", "not a coin symbol"),
        ("/whale <u>x</u>", "not a coin symbol"),
        ("/subscribe <tg-spoiler>x", "not a coin symbol"),
        ("/subscribe btc <script>", "is not an alert kind"),
        ("/unsubscribe <a href=\"http://evil\">x</a>", ""),
        ("/unsubscribe BTC &lt;b&gt;", ""),
        ("/frobnicate&<b>", ""),
        ("<u>just</u> & <s>text</s>", "I answer commands only"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let chat = 700 + i as i64;
        b.say(chat, text);
        let r = if needle.is_empty() {
            wait_count(&b.rt, &b.tg, chat, 1, T)
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("no reply to {text:?}"))
        } else {
            b.reply(chat, needle)
        };
        assert_safe_html(&r.text);
        assert_eq!(r.parse_mode.as_deref(), Some("HTML"), "{text}");
    }
    // 4 KB of markup: too long to handle, and not echoed.
    b.say(720, &format!("/liq {}", "<&>".repeat(1400)));
    let r = b.reply(720, "too long");
    assert_safe_html(&r.text);
    b.say(721, &"<b>&".repeat(1400));
    let r = b.reply(721, "I answer commands only");
    assert_safe_html(&r.text);
    b.assert_healthy();
}

#[test]
fn a_stranger_in_allowlist_mode_gets_one_refusal_for_buttons_and_command_floods() {
    let mut b = Bot::start("access = \"allowlist\"\nallowed_users = [100]\nadmins = [101]");
    b.say(100, "/start");
    let start = b.reply(100, "CryptoSat");
    // The stranger presses buttons first (as on a forwarded keyboard), then floods.
    b.tg.press_button(200, 200, start.message_id, "cmd:sub");
    b.tg.press_button(200, 200, start.message_id, "sub:k:BTC:all");
    for text in [
        "/help",
        "/subscribe btc",
        "/subscribe eth all",
        "/liq BTC",
        "/status",
        "/alerts",
        "/start",
        "/whale",
        "/funding BTC",
        "/unsubscribe all",
    ] {
        b.say(200, text);
    }
    b.tg.press_button(200, 200, start.message_id, "cmd:alerts");
    let answers = b.answers(3);
    assert!(
        answers.iter().all(|a| answer_text(a).is_empty()),
        "refused buttons are answered without a toast: {answers:?}"
    );
    // The same stranger in a group with an allowed user: still silence for
    // them, while the allowed user is served in that group.
    let group = ChatSpec::group(-300, "mixed");
    b.tg.push_message(group.clone(), 200, "/help");
    b.tg.push_message(group, 100, "/alerts");
    b.reply(-300, "no alert subscriptions");
    b.say(101, "/status");
    let st = b.reply(101, "CryptoSat status");
    assert!(
        st.text.contains("Subscribed chats: 0"),
        "a refused user subscribed: {}",
        st.text
    );
    std::thread::sleep(Duration::from_secs(1));
    let to200 = b.texts(200);
    assert_eq!(to200.len(), 1, "{to200:?}");
    assert!(to200[0].contains("this bot is private"), "{to200:?}");
    assert_eq!(b.sent_to(-300).len(), 1, "{:?}", b.texts(-300));
    assert!(
        b.tg.edits().iter().all(|e| e.chat_id != 200),
        "a refused button edited a message"
    );
    b.assert_healthy();
}

#[test]
fn a_flood_in_a_group_does_not_starve_other_chats() {
    let mut b = Bot::start("commands_per_minute = 3");
    let flooded = ChatSpec::group(-50, "flooded");
    for _ in 0..12 {
        b.tg.push_message(flooded.clone(), 9, "/help");
    }
    // Let the flood's replies queue up, then others ask.
    b.reply(-50, "CryptoSat commands");
    let asked = Instant::now();
    b.say(10, "/help");
    b.tg.push_message(ChatSpec::group(-51, "calm"), 11, "/help");
    b.reply(10, "CryptoSat commands");
    b.reply(-51, "CryptoSat commands");
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "other chats waited {took:?} behind a flood in a group"
    );
    // Another member of the flooded group has their own budget.
    b.tg.push_message(flooded, 12, "/alerts");
    b.reply(-50, "no alert subscriptions");
    b.reply(-50, "too fast");
    std::thread::sleep(Duration::from_secs(4));
    let texts = b.texts(-50);
    assert_eq!(
        texts.len(),
        5,
        "3 answers, one slow-down and the other member's answer: {texts:?}"
    );
    b.assert_healthy();
}
