//! The systemd notify lifecycle of the real binary, observed on a test
//! NOTIFY_SOCKET: READY, STATUS, WATCHDOG cadence and its stop on a hung task,
//! RELOADING on SIGHUP, STOPPING and a clean exit on SIGTERM.

mod common;

use std::time::{Duration, Instant};

use common::*;
use cryptosat_fakes::ChatSpec;
use nix::sys::signal::Signal;

fn count_watchdogs(n: &NotifySocket, from: Instant, to: Instant) -> usize {
    n.assignments()
        .iter()
        .filter(|(t, l)| l == "WATCHDOG=1" && *t >= from && *t <= to)
        .count()
}

#[test]
fn ready_status_watchdog_reply_and_clean_stop() {
    let rt = runtime();
    let tg = fake_telegram(&rt);
    let s = Scratch::new();
    let config = s.config(&tg.base_url(), "");
    let notify = NotifySocket::bind(s.dir.path());
    let mut inst = Instance::run(&config, &notify, Some(1_000_000), &[]);

    notify
        .wait_for(Duration::from_secs(20), |l| l == "READY=1")
        .unwrap_or_else(|| panic!("no READY=1:\n{}", inst.output()));
    let polling = notify
        .wait_for(Duration::from_secs(10), |l| {
            l.starts_with("STATUS=polling Telegram as @")
        })
        .unwrap_or_else(|| {
            panic!(
                "no polling STATUS: {:?}\n{}",
                notify.statuses(),
                inst.output()
            )
        });
    assert!(polling.1.contains("updates handled"), "{}", polling.1);

    // WATCHDOG_USEC=1 s: a ping every 0.5 s.
    let from = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let pings = count_watchdogs(&notify, from, Instant::now());
    assert!((4..=8).contains(&pings), "{pings} WATCHDOG=1 in 3 s");

    // The bot does its job: /start through the fake gets the welcome.
    tg.push_message(ChatSpec::private(4242), 4242, "/start");
    let reply = wait_reply(&rt, &tg, 4242, "CryptoSat", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no reply to /start:\n{}", inst.output()));
    assert_eq!(reply.parse_mode.as_deref(), Some("HTML"));
    assert!(
        tg.commands().to_string().contains("help"),
        "setMyCommands not called"
    );

    inst.signal(Signal::SIGTERM);
    let status = inst
        .wait_timeout(Duration::from_secs(10))
        .expect("no exit within 10 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", inst.output());
    let all = notify.assignments();
    let stopping = all
        .iter()
        .position(|(_, l)| l == "STOPPING=1")
        .expect("no STOPPING=1");
    let ready = all.iter().position(|(_, l)| l == "READY=1").unwrap();
    assert!(ready < stopping);
    assert!(inst.output().contains("stopped"), "{}", inst.output());
    // The handled update was confirmed to Telegram on the way out.
    assert!(tg.current_offset() > 0, "offset not confirmed on shutdown");
    assert_no_secret(&inst.output());
    assert_no_secret(&notify.statuses().join("\n"));
}

#[test]
fn watchdog_pings_stop_when_an_essential_task_hangs_but_not_during_an_outage() {
    let rt = runtime();
    let tg = fake_telegram(&rt);
    let s = Scratch::new();
    let config = s.config(&tg.base_url(), "");
    let hang_file = s.path("hang");
    let notify = NotifySocket::bind(s.dir.path());
    let inst = Instance::run(
        &config,
        &notify,
        Some(1_000_000),
        &[("CRYPTOSAT_TEST_HANG_FILE", hang_file.to_str().unwrap())],
    );
    notify
        .wait_for(Duration::from_secs(20), |l| l.starts_with("STATUS=polling"))
        .unwrap_or_else(|| panic!("never polling:\n{}", inst.output()));

    // An upstream outage is not a hang: Telegram answers 502 for a while.
    tg.fail_5xx(None, 1_000);
    notify
        .wait_for(Duration::from_secs(15), |l| {
            l.starts_with("STATUS=degraded: Telegram unreachable")
        })
        .unwrap_or_else(|| panic!("no degraded STATUS: {:?}", notify.statuses()));
    let from = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        count_watchdogs(&notify, from, Instant::now()) >= 4,
        "outage starved the watchdog"
    );
    tg.clear_faults();
    notify
        .wait_for(Duration::from_secs(40), |l| l.starts_with("STATUS=polling"))
        .unwrap_or_else(|| panic!("did not recover: {:?}", notify.statuses()));

    // Now make the poller hang for real.
    std::fs::write(&hang_file, "telegram-poller").unwrap();
    let (stalled_at, line) = notify
        .wait_for(Duration::from_secs(40), |l| {
            l.starts_with("STATUS=watchdog: essential task stalled")
        })
        .unwrap_or_else(|| {
            panic!(
                "hang not detected: {:?}\n{}",
                notify.statuses(),
                inst.output()
            )
        });
    assert!(line.contains("telegram-poller"), "{line}");
    std::thread::sleep(Duration::from_secs(3));
    let after = count_watchdogs(&notify, stalled_at, Instant::now());
    assert_eq!(after, 0, "WATCHDOG=1 sent after the stall was detected");
    assert!(
        inst.output().contains("withholding watchdog pings"),
        "{}",
        inst.output()
    );
}

#[test]
fn sighup_reloads_with_reloading_then_ready_and_keeps_running_on_a_bad_file() {
    let rt = runtime();
    let tg = fake_telegram(&rt);
    let s = Scratch::new();
    let config = s.config(&tg.base_url(), "");
    let notify = NotifySocket::bind(s.dir.path());
    let mut inst = Instance::run(&config, &notify, None, &[]);
    notify
        .wait_for(Duration::from_secs(20), |l| l == "READY=1")
        .expect("READY");

    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "shutdown_timeout_secs = 5",
            "shutdown_timeout_secs = 5\nlog_level = \"debug\"",
        ),
    )
    .unwrap();
    inst.signal(Signal::SIGHUP);
    assert!(
        inst.wait_output("configuration reloaded", Duration::from_secs(10)),
        "{}",
        inst.output()
    );
    let all = notify.assignments();
    let reloading = all
        .iter()
        .position(|(_, l)| l == "RELOADING=1")
        .expect("no RELOADING=1");
    assert!(
        all[reloading..]
            .iter()
            .any(|(_, l)| l.starts_with("MONOTONIC_USEC=")),
        "{all:?}"
    );
    assert!(
        all[reloading..].iter().any(|(_, l)| l == "READY=1"),
        "no READY=1 after RELOADING=1"
    );

    std::fs::write(&config, "[telegram]\nno_such_key = 1\n").unwrap();
    inst.signal(Signal::SIGHUP);
    assert!(
        inst.wait_output("configuration NOT reloaded", Duration::from_secs(10)),
        "{}",
        inst.output()
    );
    assert!(inst.output().contains("no_such_key"), "{}", inst.output());
    assert!(
        inst.wait_timeout(Duration::from_millis(500)).is_none(),
        "a bad reload killed the service"
    );
    inst.signal(Signal::SIGTERM);
    assert_eq!(
        inst.wait_timeout(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn handled_updates_are_not_handled_again_after_a_restart() {
    let rt = runtime();
    let tg = fake_telegram(&rt);
    let s = Scratch::new();
    let config = s.config(&tg.base_url(), "");
    let notify = NotifySocket::bind(s.dir.path());
    let mut first = Instance::run(&config, &notify, None, &[]);
    for chat in [1, 2, 3] {
        tg.push_message(ChatSpec::private(chat), chat, "/help");
    }
    for chat in [1, 2, 3] {
        wait_reply(&rt, &tg, chat, "commands", Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no reply for chat {chat}:\n{}", first.output()));
    }
    // Let the offset of the last reply be stored (a kill between a reply and
    // its offset write is the one in-flight update that may be handled twice).
    std::thread::sleep(Duration::from_millis(500));
    // A hard kill: nothing is confirmed on the way out, only the stored offset counts.
    first.signal(Signal::SIGKILL);
    first.wait_timeout(Duration::from_secs(5)).expect("killed");
    tg.push_message(ChatSpec::private(4), 4, "/help");
    let notify2 = NotifySocket::bind(&s.path("2"));
    let _second = Instance::run(&config, &notify2, None, &[]);
    wait_reply(&rt, &tg, 4, "commands", Duration::from_secs(20)).expect("no reply after restart");
    std::thread::sleep(Duration::from_secs(2));
    let sent = tg.sent_messages();
    for chat in [1, 2, 3, 4] {
        let n = sent.iter().filter(|m| m.chat_id == chat).count();
        assert_eq!(n, 1, "chat {chat} got {n} replies");
    }
}
