//! Fake Telegram Bot API, driven with a plain HTTP client.

use std::time::{Duration, Instant};

use cryptosat_fakes::telegram::{CONFLICT_OTHER_GET_UPDATES, CONFLICT_WEBHOOK_ACTIVE};
use cryptosat_fakes::{ChatSpec, FakeTelegram, Fault, RateLimits};
use serde_json::{json, Value};

const TOKEN: &str = "123456:TEST-token";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .no_proxy()
        .build()
        .unwrap()
}

async fn call(tg: &FakeTelegram, method: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/bot{}/{}", tg.base_url(), TOKEN, method);
    let resp = client().post(url).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn get_me_and_case_insensitive_methods() {
    let tg = FakeTelegram::start(TOKEN).await;
    for m in ["getMe", "GetMe", "getme", "GETME"] {
        let (s, v) = call(&tg, m, json!({})).await;
        assert_eq!(s, 200, "{m}");
        assert_eq!(v["ok"], true);
        assert_eq!(v["result"]["is_bot"], true);
        assert!(v["result"]["username"].is_string());
        assert!(v["result"]["can_join_groups"].is_boolean());
        assert!(v["result"]["supports_inline_queries"].is_boolean());
    }
    assert_eq!(tg.requests("getMe"), 4);
}

#[tokio::test]
async fn wrong_token_and_unknown_method() {
    let tg = FakeTelegram::start(TOKEN).await;
    let url = format!("{}/botWRONG/getMe", tg.base_url());
    let resp = client().get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    let (s, v) = call(&tg, "fooBar", json!({})).await;
    assert_eq!(s, 404);
    assert_eq!(
        v,
        json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"})
    );
}

#[tokio::test]
async fn query_string_params_work() {
    let tg = FakeTelegram::start(TOKEN).await;
    tg.push_message(ChatSpec::private(42), 42, "hi");
    let url = format!(
        "{}/bot{}/getUpdates?offset=0&timeout=0",
        tg.base_url(),
        TOKEN
    );
    let v: Value = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["result"][0]["message"]["text"], "hi");
    let url = format!(
        "{}/bot{}/sendMessage?chat_id=42&text=yo",
        tg.base_url(),
        TOKEN
    );
    let v: Value = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["ok"], true, "{v}");
    // Form-encoded body.
    let url = format!("{}/bot{}/sendMessage", tg.base_url(), TOKEN);
    let v: Value = client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("chat_id=42&text=form%20text")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["result"]["text"], "form text", "{v}");
}

#[tokio::test]
async fn long_poll_returns_when_message_pushed() {
    let tg = FakeTelegram::start(TOKEN).await;
    let url = format!("{}/bot{}/GetUpdates", tg.base_url(), TOKEN);
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        let resp = client()
            .post(url)
            .json(&json!({"offset": 0, "timeout": 10}))
            .send()
            .await
            .unwrap();
        resp.json::<Value>().await.unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = tg.push_message(ChatSpec::private(42), 42, "/start now");
    let v = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let upd = &v["result"][0];
    assert_eq!(upd["update_id"], id);
    let msg = &upd["message"];
    assert_eq!(msg["text"], "/start now");
    assert_eq!(
        msg["chat"],
        json!({"id": 42, "type": "private", "first_name": "User42", "username": "user42"})
    );
    assert_eq!(msg["from"]["id"], 42);
    assert_eq!(msg["from"]["is_bot"], false);
    assert_eq!(
        msg["entities"],
        json!([{"offset": 0, "length": 6, "type": "bot_command"}])
    );
    assert!(msg["date"].is_i64());
    assert!(msg["message_id"].is_i64());
}

#[tokio::test]
async fn long_poll_times_out_empty() {
    let tg = FakeTelegram::start(TOKEN).await;
    let t = Instant::now();
    let (s, v) = call(&tg, "getUpdates", json!({"timeout": 1})).await;
    assert_eq!(s, 200);
    assert_eq!(v["result"], json!([]));
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(900) && e < Duration::from_secs(3),
        "{e:?}"
    );
}

#[tokio::test]
async fn offset_confirms_updates() {
    let tg = FakeTelegram::start(TOKEN).await;
    let a = tg.push_message(ChatSpec::group(-5, "G"), 1, "a");
    let b = tg.push_message(ChatSpec::group(-5, "G"), 2, "b");
    let c = tg.push_message(ChatSpec::group(-5, "G"), 3, "c");
    assert_eq!((b, c), (a + 1, a + 2));
    let (_, v) = call(&tg, "getUpdates", json!({"limit": 2})).await;
    assert_eq!(v["result"].as_array().unwrap().len(), 2);
    assert_eq!(v["result"][0]["message"]["chat"]["type"], "group");
    assert_eq!(v["result"][0]["message"]["chat"]["title"], "G");
    // Without a new offset the same updates come again.
    let (_, v) = call(&tg, "getUpdates", json!({})).await;
    assert_eq!(v["result"].as_array().unwrap().len(), 3);
    let (_, v) = call(&tg, "getUpdates", json!({"offset": b + 1})).await;
    assert_eq!(v["result"].as_array().unwrap().len(), 1);
    assert_eq!(v["result"][0]["update_id"], c);
    assert_eq!(tg.current_offset(), b + 1);
    assert_eq!(tg.confirmed_update_id(), Some(b));
    assert_eq!(tg.pending_updates(), 1);
    // An older offset cannot bring confirmed updates back.
    let (_, v) = call(&tg, "getUpdates", json!({"offset": a})).await;
    assert_eq!(v["result"].as_array().unwrap().len(), 1);
    let (_, v) = call(&tg, "getWebhookInfo", json!({})).await;
    assert_eq!(v["result"]["url"], "");
    assert_eq!(v["result"]["pending_update_count"], 1);
}

#[tokio::test]
async fn newer_long_poll_knocks_out_older_with_409() {
    let tg = FakeTelegram::start(TOKEN).await;
    let url = format!("{}/bot{}/getUpdates", tg.base_url(), TOKEN);
    let u1 = url.clone();
    let older = tokio::spawn(async move {
        let r = client()
            .post(u1)
            .json(&json!({"timeout": 10}))
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap(),
            Instant::now(),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A timeout=0 call does not knock it out.
    let (s, _) = call(&tg, "getUpdates", json!({"timeout": 0})).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!older.is_finished());
    let newer_started = Instant::now();
    let newer = tokio::spawn(async move {
        let r = client()
            .post(url)
            .json(&json!({"timeout": 2}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    let (status, body, ended) = tokio::time::timeout(Duration::from_secs(5), older)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 409);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 409, "description": CONFLICT_OTHER_GET_UPDATES})
    );
    assert_eq!(
        CONFLICT_OTHER_GET_UPDATES,
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
    );
    assert!(ended.duration_since(newer_started) < Duration::from_secs(1));
    let (status, body) = newer.await.unwrap();
    assert_eq!((status, body["result"].clone()), (200, json!([])));
    assert_eq!(tg.conflicts_sent(), 1);
}

#[tokio::test]
async fn webhook_blocks_get_updates() {
    let tg = FakeTelegram::start(TOKEN).await;
    tg.set_webhook(Some("https://example.invalid/hook"));
    let (s, v) = call(&tg, "getUpdates", json!({"timeout": 5})).await;
    assert_eq!(s, 409);
    assert_eq!(v["description"], CONFLICT_WEBHOOK_ACTIVE);
    assert_eq!(
        CONFLICT_WEBHOOK_ACTIVE,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
    );
    let (_, v) = call(&tg, "getWebhookInfo", json!({})).await;
    assert_eq!(v["result"]["url"], "https://example.invalid/hook");
    let (s, v) = call(&tg, "deleteWebhook", json!({"drop_pending_updates": true})).await;
    assert_eq!((s, v["result"].clone()), (200, json!(true)));
    let (s, _) = call(&tg, "getUpdates", json!({})).await;
    assert_eq!(s, 200);
    let (s, _) = call(&tg, "setWebhook", json!({"url": "https://x.invalid/"})).await;
    assert_eq!(s, 200);
    assert_eq!(tg.webhook().as_deref(), Some("https://x.invalid/"));
}

#[tokio::test]
async fn send_message_records_and_echoes() {
    let tg = FakeTelegram::start(TOKEN).await;
    tg.push_message(ChatSpec::private(42), 42, "/subscribe");
    let markup = json!({"inline_keyboard": [[{"text": "All", "callback_data": "sub:all"}]]});
    let (s, v) = call(
        &tg,
        "SendMessage",
        json!({"chat_id": 42, "text": "pick", "parse_mode": "HTML", "reply_markup": markup}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let msg = &v["result"];
    assert_eq!(msg["text"], "pick");
    assert_eq!(msg["chat"]["id"], 42);
    assert_eq!(msg["from"]["is_bot"], true);
    assert_eq!(msg["reply_markup"], markup);
    let mid = msg["message_id"].as_i64().unwrap();
    let sent = tg.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].chat_id, 42);
    assert_eq!(sent[0].parse_mode.as_deref(), Some("HTML"));
    assert_eq!(sent[0].reply_markup, markup);

    // Button press → callback_query → answer + edit.
    let upd = tg.press_button(42, 42, mid, "sub:all");
    let (_, v) = call(&tg, "getUpdates", json!({"offset": upd})).await;
    let cb = &v["result"][0]["callback_query"];
    assert_eq!(cb["data"], "sub:all");
    assert_eq!(cb["message"]["message_id"], mid);
    assert!(cb["chat_instance"].is_string());
    let (s, _) = call(
        &tg,
        "answerCallbackQuery",
        json!({"callback_query_id": cb["id"], "text": "ok"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(tg.callback_answers().len(), 1);
    let (s, v) = call(
        &tg,
        "answerCallbackQuery",
        json!({"callback_query_id": "nope"}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = call(
        &tg,
        "editMessageText",
        json!({"chat_id": 42, "message_id": mid, "text": "done"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"]["text"], "done");
    let (s, v) = call(
        &tg,
        "editMessageText",
        json!({"chat_id": 42, "message_id": mid, "text": "done"}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(v["description"]
        .as_str()
        .unwrap()
        .starts_with("Bad Request: message is not modified"));
    let (s, _) = call(
        &tg,
        "editMessageReplyMarkup",
        json!({"chat_id": 42, "message_id": mid, "reply_markup": markup}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(tg.edits().len(), 2);

    let (s, v) = call(
        &tg,
        "setMyCommands",
        json!({"commands": [{"command": "start", "description": "Start"}]}),
    )
    .await;
    assert_eq!((s, v["result"].clone()), (200, json!(true)));
    let (_, v) = call(&tg, "getMyCommands", json!({})).await;
    assert_eq!(v["result"][0]["command"], "start");
    assert_eq!(tg.commands()[0]["command"], "start");
}

#[tokio::test]
async fn wait_for_sent_is_event_driven() {
    let tg = FakeTelegram::start(TOKEN).await;
    tg.register_chat(ChatSpec::channel(-1001, "alerts"));
    assert!(tg
        .wait_for_sent(|m| m.chat_id == -1001, Duration::from_millis(200))
        .await
        .is_none());
    let url = format!("{}/bot{}/sendMessage", tg.base_url(), TOKEN);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        client()
            .post(url)
            .json(&json!({"chat_id": "-1001", "text": "BTC liquidation"}))
            .send()
            .await
            .unwrap();
    });
    let m = tg
        .wait_for_sent(|m| m.text.contains("BTC"), Duration::from_secs(5))
        .await
        .expect("message");
    assert_eq!(m.chat_id, -1001);
    assert!(tg
        .wait_for_sent_count(1, Duration::from_secs(1))
        .await
        .is_some());
}

#[tokio::test]
async fn unknown_chat_blocked_and_migrated() {
    let tg = FakeTelegram::start(TOKEN).await;
    let (s, v) = call(&tg, "sendMessage", json!({"chat_id": 999, "text": "x"})).await;
    assert_eq!(s, 400);
    assert_eq!(v["description"], "Bad Request: chat not found");

    tg.push_message(ChatSpec::private(7), 7, "hi");
    tg.block_chat(7);
    let (s, v) = call(&tg, "sendMessage", json!({"chat_id": 7, "text": "x"})).await;
    assert_eq!(s, 403);
    assert_eq!(
        v,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
    );

    tg.push_message(ChatSpec::group(-77, "old group"), 7, "hi");
    tg.migrate_chat(-77, -1_000_000_000_077);
    let (s, v) = call(&tg, "sendMessage", json!({"chat_id": -77, "text": "x"})).await;
    assert_eq!(s, 400);
    assert_eq!(
        v["description"],
        "Bad Request: group chat was upgraded to a supergroup chat"
    );
    assert_eq!(v["parameters"]["migrate_to_chat_id"], -1_000_000_000_077i64);
    let (s, v) = call(
        &tg,
        "sendMessage",
        json!({"chat_id": -1_000_000_000_077i64, "text": "x"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["result"]["chat"]["type"], "supergroup");
    assert!(tg.sent_messages().len() == 1);
}

#[tokio::test]
async fn injected_429_5xx_and_delay() {
    let tg = FakeTelegram::start(TOKEN).await;
    tg.push_message(ChatSpec::private(1), 1, "hi");
    tg.fail_429(Some("sendMessage"), 2, 7);
    for _ in 0..2 {
        let (s, v) = call(&tg, "sendMessage", json!({"chat_id": 1, "text": "x"})).await;
        assert_eq!(s, 429);
        assert_eq!(
            v,
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}})
        );
    }
    let (s, _) = call(&tg, "sendMessage", json!({"chat_id": 1, "text": "x"})).await;
    assert_eq!(s, 200);
    assert_eq!(tg.too_many_requests_sent(), 2);

    tg.fail_5xx(None, 1);
    let (s, v) = call(&tg, "getMe", json!({})).await;
    assert_eq!((s, v["description"].clone()), (502, json!("Bad Gateway")));

    tg.delay(Some("getme"), 1, Duration::from_secs(3));
    let url = format!("{}/bot{}/getMe", tg.base_url(), TOKEN);
    let err = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());

    tg.inject(Some("getme"), Fault::MalformedJson, 1);
    let url = format!("{}/bot{}/getMe", tg.base_url(), TOKEN);
    let r = client().get(&url).send().await.unwrap();
    assert!(r.json::<Value>().await.is_err());

    tg.inject(Some("getme"), Fault::DropConnection, 1);
    let r = client().get(&url).send().await;
    let failed = match r {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed);
    // Back to normal afterwards.
    let (s, _) = call(&tg, "getMe", json!({})).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn per_chat_rate_limit() {
    let tg = FakeTelegram::start(TOKEN).await;
    tg.push_message(ChatSpec::private(1), 1, "hi");
    tg.push_message(ChatSpec::private(2), 2, "hi");
    tg.set_rate_limits(RateLimits {
        per_chat_per_sec: Some(1),
        global_per_sec: Some(2),
        ..RateLimits::default()
    });
    let (s, _) = call(&tg, "sendMessage", json!({"chat_id": 1, "text": "a"})).await;
    assert_eq!(s, 200);
    let (s, v) = call(&tg, "sendMessage", json!({"chat_id": 1, "text": "b"})).await;
    assert_eq!(s, 429);
    assert_eq!(v["parameters"]["retry_after"], 1);
    let (s, _) = call(&tg, "sendMessage", json!({"chat_id": 2, "text": "c"})).await;
    assert_eq!(s, 200);
    tg.push_message(ChatSpec::private(3), 3, "hi");
    let (s, _) = call(&tg, "sendMessage", json!({"chat_id": 3, "text": "d"})).await;
    assert_eq!(s, 429, "global limit 2/s");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _) = call(&tg, "sendMessage", json!({"chat_id": 1, "text": "e"})).await;
    assert_eq!(s, 200);
    assert_eq!(tg.too_many_requests_sent(), 2);
}

#[tokio::test]
async fn stop_ends_waiting_poll() {
    let tg = FakeTelegram::start(TOKEN).await;
    let url = format!("{}/bot{}/getUpdates", tg.base_url(), TOKEN);
    let poll = tokio::spawn(async move {
        client()
            .post(url)
            .json(&json!({"timeout": 30}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(5), tg.stop())
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(r, Ok(200) | Err(_)), "{r:?}");
    let url = format!("{}/bot{}/getMe", tg.base_url(), TOKEN);
    assert!(client().get(url).send().await.is_err());
}
