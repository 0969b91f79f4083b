//! Configuration and secret errors: exit code 78 with messages that say what to
//! fix, and secrets that never reach any output.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn unknown_key_is_named_with_its_line_and_exits_78() {
    let s = Scratch::new();
    let config = s.config(
        &refused_url(),
        "[coinglass]\nbase_url = \"http://127.0.0.1:1\"\nrequests_per_minnute = 30\n",
    );
    let lines = std::fs::read_to_string(&config).unwrap();
    let line_no = lines
        .lines()
        .position(|l| l.starts_with("requests_per_minnute"))
        .unwrap()
        + 1;
    for args in [&["run"][..], &["check-config"][..]] {
        let (code, out) = run_to_end(&config, args, &[]);
        assert_eq!(code, 78, "{args:?}: {out}");
        assert!(out.contains("requests_per_minnute"), "{out}");
        assert!(out.contains(&format!("line {line_no}")), "{out}");
        assert!(out.contains(&config.display().to_string()), "{out}");
    }
}

#[test]
fn bad_value_and_missing_file() {
    let s = Scratch::new();
    let config = s.config(&refused_url(), "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("poll_timeout_secs = 1", "poll_timeout_secs = 99");
    std::fs::write(&config, text).unwrap();
    let (code, out) = run_to_end(&config, &["run"], &[]);
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("telegram.poll_timeout_secs") && out.contains("between 1 and 50"),
        "{out}"
    );

    let (code, out) = run_to_end(&s.path("nope.toml"), &["check-config"], &[]);
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("cannot read config file") && out.contains("nope.toml"),
        "{out}"
    );
}

#[test]
fn missing_token_names_where_it_was_looked_for() {
    let s = Scratch::new();
    let config = s.config(&refused_url(), "");
    let (code, out) = run_to_end(&config, &["run"], &[("CRYPTOSAT_TELEGRAM_TOKEN", "")]);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("Telegram bot token"), "{out}");
    assert!(out.contains("CRYPTOSAT_TELEGRAM_TOKEN"), "{out}");

    // Under systemd (LoadCredential=) with the packaged empty file.
    let creds = s.path("creds");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("telegram-token"), "").unwrap();
    let (code, out) = run_to_end(
        &config,
        &["run"],
        &[
            ("CREDENTIALS_DIRECTORY", creds.to_str().unwrap()),
            ("CRYPTOSAT_TELEGRAM_TOKEN", ""),
        ],
    );
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("is empty") && out.contains("/etc/cryptosat/telegram-token"),
        "{out}"
    );
    assert_eq!(
        out.matches("ERROR").count(),
        1,
        "one clear error line expected:\n{out}"
    );
}

#[test]
fn malformed_token_is_rejected_without_echoing_it() {
    let s = Scratch::new();
    let config = s.config(&refused_url(), "");
    let bad = "123456789:AAHdqTcvCH1vGWJx fSeofSAs0K5PALDsaw";
    let (code, out) = run_to_end(
        &config,
        &["check-config"],
        &[("CRYPTOSAT_TELEGRAM_TOKEN", bad)],
    );
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("malformed"), "{out}");
    assert!(!out.contains("AAHdqTcvCH1vGWJx"), "{out}");
}

#[test]
fn check_config_accepts_a_good_setup_and_shows_only_the_bot_id() {
    let s = Scratch::new();
    let config = s.config(&refused_url(), "");
    let (code, out) = run_to_end(&config, &["check-config"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("bot id 123456789"), "{out}");
    assert_no_secret(&out);
}

#[test]
fn token_never_appears_when_telegram_fails_in_every_way() {
    let rt = runtime();
    let tg = fake_telegram(&rt);
    let s = Scratch::new();
    // A proxy URL that refuses, a fake that errors, and one that is slow: each
    // produces errors that would print the request URL.
    for (i, url) in [refused_url(), tg.base_url()].into_iter().enumerate() {
        let config = s.config(&url, "[service]\n");
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("\n[service]\n", "\n");
        std::fs::write(
            &config,
            text.replace(
                "shutdown_timeout_secs = 5",
                "shutdown_timeout_secs = 5\nlog_level = \"trace\"",
            ),
        )
        .unwrap();
        // teloxide sleeps 10 s after a 5xx before it returns the error.
        tg.fail_5xx(None, 1);
        tg.inject(None, cryptosat_fakes::Fault::MalformedJson, 2);
        let notify = NotifySocket::bind(&s.path(&format!("n{i}")));
        let mut inst = Instance::run(&config, &notify, None, &[]);
        let expected = if i == 0 {
            "Connection refused"
        } else {
            "malformed answer"
        };
        assert!(
            inst.wait_output(expected, Duration::from_secs(25)),
            "iteration {i}:\n{}",
            inst.output()
        );
        inst.signal(nix::sys::signal::Signal::SIGTERM);
        inst.wait_timeout(Duration::from_secs(10)).expect("exit");
        let out = inst.output();
        assert!(
            out.contains("TRACE") || out.contains("DEBUG"),
            "trace logging was not on:\n{out}"
        );
        assert!(
            out.contains("WARN"),
            "iteration {i}: no failure was logged:\n{out}"
        );
        assert_no_secret(&out);
        assert_no_secret(&notify.statuses().join("\n"));
    }
}

#[test]
fn check_config_no_secrets_checks_only_the_file() {
    let s = Scratch::new();
    let config = s.config(&refused_url(), "");
    let (code, out) = run_to_end(
        &config,
        &["check-config", "--no-secrets"],
        &[("CRYPTOSAT_TELEGRAM_TOKEN", "")],
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("token"), "{out}");
}
