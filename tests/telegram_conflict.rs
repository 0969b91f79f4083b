//! Conflicts the lock cannot see: another poller of the same token elsewhere,
//! a webhook, a revoked token.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

#[test]
fn two_bots_with_different_locks_report_the_conflict_and_back_off() {
    let rt = runtime();
    let tg = fake_telegram(&rt);
    let a = Scratch::new();
    let b = Scratch::new();
    let na = NotifySocket::bind(a.dir.path());
    let nb = NotifySocket::bind(b.dir.path());
    let ia = Instance::run(&a.config(&tg.base_url(), ""), &na, None, &[]);
    na.wait_for(Duration::from_secs(20), |l| l.starts_with("STATUS=polling"))
        .expect("first bot polling");
    let ib = Instance::run(&b.config(&tg.base_url(), ""), &nb, None, &[]);
    std::thread::sleep(Duration::from_secs(12));

    assert!(tg.conflicts_sent() >= 1, "the fake saw no competing polls");
    let conflicted: Vec<(&Instance, &NotifySocket)> = [(&ia, &na), (&ib, &nb)]
        .into_iter()
        .filter(|(_, n)| {
            n.statuses()
                .iter()
                .any(|s| s.starts_with("CONFLICT: another poller uses this bot token"))
        })
        .collect();
    assert!(
        !conflicted.is_empty(),
        "no CONFLICT status: {:?} / {:?}",
        na.statuses(),
        nb.statuses()
    );
    for (inst, _) in &conflicted {
        let out = inst.output();
        assert_eq!(
            out.matches("Telegram answered 409").count(),
            1,
            "logged once per conflict streak:\n{out}"
        );
        assert!(
            out.contains("elsewhere") && out.contains("cryptosat doctor"),
            "{out}"
        );
        assert_no_secret(&out);
    }
    // Backing off: with 1 s long polls, fighting would mean dozens of getUpdates.
    let polls = tg.requests("getUpdates");
    assert!(polls < 30, "{polls} getUpdates in 12 s: not backing off");
}

#[test]
fn on_conflict_exit_gives_up_with_code_69() {
    let rt = runtime();
    let tg = fake_telegram(&rt);
    let a = Scratch::new();
    let b = Scratch::new();
    let na = NotifySocket::bind(a.dir.path());
    let nb = NotifySocket::bind(b.dir.path());
    // The other poller: a plain instance that keeps polling.
    let _other = Instance::run(&a.config(&tg.base_url(), ""), &na, None, &[]);
    na.wait_for(Duration::from_secs(20), |l| l.starts_with("STATUS=polling"))
        .expect("other polling");
    let cfg = b.config(&tg.base_url(), "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "poll_timeout_secs = 1",
        "poll_timeout_secs = 1\non_conflict = \"exit\"\nconflict_exit_after_secs = 1",
    );
    std::fs::write(&cfg, text).unwrap();
    let mut quitter = Instance::run(&cfg, &nb, None, &[]);
    let status = quitter.wait_timeout(Duration::from_secs(60));
    // Either side may lose a given round; if the quitter never lost one, the test
    // setup is broken rather than the feature.
    let status =
        status.unwrap_or_else(|| panic!("did not exit on conflict:\n{}", quitter.output()));
    assert_eq!(status.code(), Some(69), "{}", quitter.output());
    assert!(
        quitter.output().contains("on_conflict = \"exit\""),
        "{}",
        quitter.output()
    );
}

#[test]
fn webhook_is_deleted_by_default_and_refused_when_configured() {
    let rt = runtime();
    let tg = fake_telegram(&rt);
    tg.set_webhook(Some("https://old-deployment.example/hook"));
    let s = Scratch::new();
    let cfg = s.config(&tg.base_url(), "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "poll_timeout_secs = 1",
            "poll_timeout_secs = 1\ndelete_webhook = false",
        ),
    )
    .unwrap();
    let (code, out) = run_to_end(&cfg, &["run"], &[]);
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("a webhook is set") && out.contains("delete_webhook"),
        "{out}"
    );
    assert!(
        tg.webhook().is_some(),
        "webhook deleted although delete_webhook = false"
    );

    std::fs::write(&cfg, text).unwrap();
    let notify = NotifySocket::bind(s.dir.path());
    let mut inst = Instance::run(&cfg, &notify, None, &[]);
    notify
        .wait_for(Duration::from_secs(20), |l| l.starts_with("STATUS=polling"))
        .expect("polling");
    assert!(tg.webhook().is_none(), "webhook not deleted");
    assert!(inst.output().contains("deleting it"), "{}", inst.output());
    inst.signal(Signal::SIGTERM);
    inst.wait_timeout(Duration::from_secs(10));
}

#[test]
fn revoked_token_exits_78_with_a_clear_message() {
    let rt = runtime();
    let tg = rt.block_on(cryptosat_fakes::FakeTelegram::start(
        "987654321:ANOTHERTOKENabcdefghijklmnopqrstuv",
    ));
    let s = Scratch::new();
    let (code, out) = run_to_end(&s.config(&tg.base_url(), ""), &["run"], &[]);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("rejected the bot token"), "{out}");
    assert_no_secret(&out);
}
