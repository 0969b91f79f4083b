//! The `cryptosat-fakes` binary and its control API.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} missing in {line:?}"))
        .to_owned()
}

#[tokio::test]
async fn binary_serves_fakes_and_control_api() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cryptosat-fakes"))
        .args([
            "--telegram-port",
            "0",
            "--coinglass-port",
            "0",
            "--token",
            "1:T",
            "--api-key",
            "K",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(10), line)
        .await
        .unwrap()
        .unwrap();
    assert!(line.starts_with("READY "), "{line:?}");
    let tg = field(&line, "telegram");
    let cg = field(&line, "coinglass");
    let ctl = field(&line, "control");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap();

    let v: Value = http
        .post(format!("{ctl}/telegram/message"))
        .json(&json!({"chat_id": 5, "user_id": 5, "text": "/status"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let update_id = v["update_id"].as_i64().unwrap();
    let v: Value = http
        .post(format!("{tg}/bot1:T/getUpdates"))
        .json(&json!({"timeout": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["result"][0]["update_id"], update_id);

    let waiter = {
        let http = http.clone();
        let url = format!("{ctl}/telegram/wait_sent?chat_id=5&contains=OK&timeout_ms=5000");
        tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
    };
    let r = http
        .post(format!("{tg}/bot1:T/sendMessage"))
        .json(&json!({"chat_id": 5, "text": "status OK"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(waiter.await.unwrap(), 200);
    let r = http
        .get(format!("{ctl}/telegram/wait_sent?chat_id=6&timeout_ms=100"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let v: Value = http
        .get(format!("{ctl}/telegram/sent?chat_id=5"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v[0]["text"], "status OK");
    let v: Value = http
        .get(format!("{ctl}/telegram/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["requests"]["sendmessage"], 1);

    let r = http
        .post(format!("{ctl}/telegram/fault"))
        .json(&json!({"target": "sendMessage", "times": 1, "fault": {"kind": "too_many_requests", "retry_after": 3}}))
        .send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http
        .post(format!("{tg}/bot1:T/sendMessage"))
        .json(&json!({"chat_id": 5, "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);

    http.post(format!("{ctl}/coinglass/whale"))
        .json(
            &json!({"user": "0x1", "symbol": "ETH", "position_size": 100.0, "entry_price": 3000.0,
                      "liq_price": 2000.0, "position_value_usd": 300000.0, "position_action": 1,
                      "create_time": 1700000000000i64}),
        )
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let v: Value = http
        .get(format!("{cg}/api/hyperliquid/whale-alert"))
        .header("CG-API-KEY", "K")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["user"], "0x1");
    http.post(format!("{ctl}/coinglass/restrict"))
        .json(&json!({"path": "/api/hyperliquid/whale-alert"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let r = http
        .get(format!("{cg}/api/hyperliquid/whale-alert"))
        .header("CG-API-KEY", "K")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = http
        .get(format!("{ctl}/coinglass/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["requests"]["/api/hyperliquid/whale-alert"], 2);

    // SIGTERM ends it cleanly.
    let pid = proc.0.id().to_string();
    let mut proc = proc;
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || {
        for _ in 0..100 {
            if let Some(s) = proc.0.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    })
    .await
    .unwrap();
    assert!(status.expect("exited after SIGTERM").success());
}

#[test]
fn bad_arguments_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_cryptosat-fakes"))
        .args(["--telegram-port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
