//! `cryptosat doctor` names the right cause in each scenario, against the fake
//! Bot API and the fake CoinGlass.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use cryptosat_fakes::coinglass::PATH_WHALE_ALERT;
use cryptosat_fakes::{FakeCoinGlass, FakeTelegram};
use serde_json::Value;

/// The fakes of one test (the runtime must outlive them).
struct Fakes {
    tg: FakeTelegram,
    cg: FakeCoinGlass,
    rt: tokio::runtime::Runtime,
}

fn fakes() -> Fakes {
    let rt = runtime();
    let tg = fake_telegram(&rt);
    let cg = fake_coinglass(&rt);
    Fakes { tg, cg, rt }
}

/// A config in `s` pointing at both fakes (CoinGlass never at the real API).
fn config(s: &Scratch, tg_url: &str, cg: &FakeCoinGlass) -> PathBuf {
    s.config(
        tg_url,
        &format!("[coinglass]\nbase_url = {:?}\n", cg.base_url()),
    )
}

fn doctor(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let (code, out, err) = run_split(config, &all, &[]);
    let text = format!("{out}{err}");
    assert_no_secret(&text);
    (code, text)
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

#[test]
fn healthy_setup_passes_in_text_and_json() {
    let f = fakes();
    let s = Scratch::new();
    let cfg = config(&s, &f.tg.base_url(), &f.cg);

    let (code, out) = doctor(&cfg, &["--probe-seconds", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok   config"), "{out}");
    assert!(out.contains("bot id 123456789"), "{out}");
    assert!(
        out.contains("the token works: bot @cryptosat_test_bot"),
        "{out}"
    );
    assert!(out.contains("no webhook set"), "{out}");
    assert!(
        out.contains("no other poller answered during a 1 s getUpdates probe"),
        "{out}"
    );
    assert!(out.contains("plan limit"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");

    let (code, stdout, _) = run_split(&cfg, &["doctor", "--json", "--probe-seconds", "1"], &[]);
    assert_no_secret(&stdout);
    assert_eq!(code, 0, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).expect("--json prints one JSON object");
    assert_eq!(report["version"], 1);
    assert_eq!(report["ok"], true);
    for id in [
        "config",
        "token",
        "api_key",
        "secret_files",
        "lock",
        "processes",
        "systemd",
        "telegram",
        "webhook",
        "conflict",
        "coinglass",
        "coinglass_plan",
    ] {
        let c = check(&report, id);
        let status = c["status"].as_str().unwrap_or("");
        assert!(
            ["ok", "warn", "skip"].contains(&status),
            "{id}: {status}: {c:#}"
        );
        assert!(
            c["summary"].is_string() && c["details"].is_object(),
            "{c:#}"
        );
    }
    assert_eq!(check(&report, "conflict")["details"]["probed"], true);
    assert_eq!(check(&report, "telegram")["details"]["bot_id"], "123456789");
    assert_eq!(
        check(&report, "coinglass_plan")["details"]["monitors"]["whales"],
        "available"
    );
    // The probe confirmed nothing.
    assert_eq!(f.tg.current_offset(), 0);
    drop(f.rt);
}

#[test]
fn webhook_is_named_with_the_fix_and_left_alone() {
    let f = fakes();
    f.tg.set_webhook(Some("https://old-deployment.example/hook/secretpath"));
    let s = Scratch::new();
    let (code, out) = doctor(
        &config(&s, &f.tg.base_url(), &f.cg),
        &["--probe-seconds", "1"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL webhook")
            && out.contains("a webhook is set (https://old-deployment.example)"),
        "{out}"
    );
    assert!(
        out.contains("deleteWebhook") && out.contains("delete_webhook"),
        "{out}"
    );
    assert!(
        !out.contains("secretpath"),
        "webhook path may hold secrets:\n{out}"
    );
    assert!(f.tg.webhook().is_some(), "doctor must not change anything");
}

#[test]
fn second_poller_elsewhere_is_proven_by_the_probe() {
    let f = fakes();
    // The other poller: a bot with its own lock file and database.
    let other = Scratch::new();
    let notify = NotifySocket::bind(other.dir.path());
    let inst = Instance::run(&config(&other, &f.tg.base_url(), &f.cg), &notify, None, &[]);
    notify
        .wait_for(Duration::from_secs(20), |l| l.starts_with("STATUS=polling"))
        .expect("other bot polling");

    // Doctor with a third lock file: the lock cannot see the other bot. The
    // probe knocks the other's long poll off; the other retries after its
    // 5 s conflict backoff and knocks the probe off in turn.
    let s = Scratch::new();
    let (code, out) = doctor(
        &config(&s, &f.tg.base_url(), &f.cg),
        &["--probe-seconds", "9"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL conflict") && out.contains("another poller is using this bot token"),
        "{out}"
    );
    assert!(out.contains("@BotFather"), "{out}");
    // It is on this host here, so doctor names it as a suspect.
    assert!(
        out.contains(&format!("PID {}: ", inst.pid())),
        "the other bot is not listed:\n{out}"
    );
    assert!(f.tg.conflicts_sent() >= 1);
}

#[test]
fn lock_held_by_a_shell_started_instance_is_named_and_not_probed() {
    let f = fakes();
    let s = Scratch::new();
    let cfg = config(&s, &f.tg.base_url(), &f.cg);
    let notify = NotifySocket::bind(s.dir.path());
    let inst = Instance::run(&cfg, &notify, None, &[]);
    notify
        .wait_for(Duration::from_secs(20), |l| l.starts_with("STATUS=polling"))
        .expect("instance polling");

    let (code, out) = doctor(&cfg, &["--probe-seconds", "3"]);
    assert_eq!(code, 0, "a running instance is not a failure:\n{out}");
    let lock_line = out
        .lines()
        .find(|l| l.starts_with("warn lock"))
        .unwrap_or_else(|| panic!("no lock warning:\n{out}"));
    assert!(
        lock_line.contains(&format!("is held by PID {} (", inst.pid()))
            && lock_line.contains(&format!("--config {} run", cfg.display())),
        "{out}"
    );
    assert!(lock_line.contains("not by cryptosat.service"), "{out}");
    assert!(out.contains(&format!("kill {}", inst.pid())), "{out}");
    assert!(
        out.contains("skip conflict") && out.contains("not probing: the running instance"),
        "{out}"
    );
    assert_eq!(
        f.tg.conflicts_sent(),
        0,
        "doctor knocked the running instance's poll off"
    );
}

#[test]
fn missing_token_says_where_doctor_looked() {
    let f = fakes();
    let s = Scratch::new();
    let (code, out, err) = run_split(
        &config(&s, &f.tg.base_url(), &f.cg),
        &["doctor", "--probe-seconds", "1"],
        &["CRYPTOSAT_TELEGRAM_TOKEN"],
    );
    let out = format!("{out}{err}");
    assert_no_secret(&out);
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("FAIL token"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("looked for") && line.contains("$CRYPTOSAT_TELEGRAM_TOKEN"),
        "{out}"
    );
    assert!(out.contains("skip telegram"), "{out}");
    assert_eq!(f.tg.requests("getMe"), 0);
}

#[test]
fn invalid_token_is_revoked_or_mistyped() {
    let rt = runtime();
    let tg = rt.block_on(FakeTelegram::start(
        "987654321:ANOTHERTOKENabcdefghijklmnopqrstuv",
    ));
    let cg = fake_coinglass(&rt);
    let s = Scratch::new();
    let (code, out) = doctor(&config(&s, &tg.base_url(), &cg), &["--probe-seconds", "1"]);
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("FAIL telegram"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("revoked or mistyped") && line.contains("123456789"),
        "{out}"
    );
    assert!(out.contains("@BotFather"), "{out}");
    assert!(out.contains("skip conflict"), "{out}");
}

#[test]
fn coinglass_plan_without_whale_alerts_is_a_warning() {
    let f = fakes();
    f.cg.restrict_endpoint(PATH_WHALE_ALERT);
    let s = Scratch::new();
    let cfg = config(&s, &f.tg.base_url(), &f.cg);
    let (code, out) = doctor(&cfg, &["--probe-seconds", "1"]);
    assert_eq!(code, 0, "a plan limit is a warning, not a failure:\n{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("warn coinglass_plan"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("the whale monitor is unavailable on this plan"),
        "{out}"
    );
    assert!(out.contains("coinglass.com/pricing"), "{out}");

    let (_, stdout, _) = run_split(&cfg, &["doctor", "--json", "--probe-seconds", "1"], &[]);
    let report: Value = serde_json::from_str(&stdout).expect("json");
    let plan = check(&report, "coinglass_plan");
    assert_eq!(plan["status"], "warn");
    assert_eq!(plan["details"]["monitors"]["whales"], "not_in_plan");
    assert_eq!(plan["details"]["monitors"]["liquidations"], "available");
}
