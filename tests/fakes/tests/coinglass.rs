//! Fake CoinGlass v4, driven with a plain HTTP client.

use std::time::Duration;

use cryptosat_fakes::coinglass::{
    PATH_FUNDING, PATH_LIQUIDATION_AGGREGATED, PATH_LIQUIDATION_EXCHANGES, PATH_LIQUIDATION_ORDER,
    PATH_SUPPORTED_COINS, PATH_WHALE_ALERT,
};
use cryptosat_fakes::{
    ExchangeLiquidation, FakeCoinGlass, Fault, FundingEntry, LiquidationOrder, WhaleAlert,
};
use serde_json::{json, Value};

const KEY: &str = "cg-test-key";

async fn get(
    cg: &FakeCoinGlass,
    path_and_query: &str,
    key: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap();
    let mut req = client.get(format!("{}{}", cg.base_url(), path_and_query));
    if let Some(k) = key {
        req = req.header("CG-API-KEY", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

#[tokio::test]
async fn fresh_fake_answers_every_endpoint_with_envelope_and_headers() {
    let cg = FakeCoinGlass::start(KEY).await;
    for path in [
        PATH_SUPPORTED_COINS,
        PATH_FUNDING,
        PATH_WHALE_ALERT,
        PATH_LIQUIDATION_ORDER,
        "/api/futures/liquidation/exchange-list?symbol=BTC&range=24h",
        "/api/futures/liquidation/aggregated-history?symbol=BTC&interval=4h&limit=10",
    ] {
        let (s, h, v) = get(&cg, path, Some(KEY)).await;
        assert_eq!(s, 200, "{path}");
        assert_eq!(v["code"], "0", "{path}");
        assert_eq!(v["msg"], "success");
        assert!(v["data"].is_array(), "{path}: {v}");
        assert_eq!(h["API-KEY-MAX-LIMIT"], "300");
        assert!(h.contains_key("API-KEY-USE-LIMIT"));
    }
    let (_, h, v) = get(&cg, PATH_SUPPORTED_COINS, Some(KEY)).await;
    assert_eq!(h["API-KEY-USE-LIMIT"], "7");
    assert!(v["data"].as_array().unwrap().contains(&json!("BTC")));
    let (_, _, v) = get(&cg, PATH_FUNDING, Some(KEY)).await;
    let btc = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["symbol"] == "BTC")
        .unwrap();
    let first = &btc["stablecoin_margin_list"][0];
    assert!(first["exchange"].is_string() && first["funding_rate"].is_f64());
    assert!(first["funding_rate_interval"].is_u64() && first["next_funding_time"].is_i64());
    let (_, _, v) = get(
        &cg,
        "/api/futures/liquidation/exchange-list?symbol=ETH",
        Some(KEY),
    )
    .await;
    assert_eq!(v["data"][0]["exchange"], "All");
    let (_, _, v) = get(
        &cg,
        "/api/futures/liquidation/aggregated-history?symbol=BTC&limit=10",
        Some(KEY),
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 10);
    assert!(v["data"][0]["aggregated_long_liquidation_usd"].is_f64());
    assert_eq!(cg.requests(PATH_SUPPORTED_COINS), 2);
    assert_eq!(cg.requests(PATH_LIQUIDATION_EXCHANGES), 2);
    assert_eq!(cg.requests(PATH_LIQUIDATION_AGGREGATED), 2);
}

#[tokio::test]
async fn api_key_is_required() {
    let cg = FakeCoinGlass::start(KEY).await;
    for key in [None, Some("wrong")] {
        let (s, _, v) = get(&cg, PATH_SUPPORTED_COINS, key).await;
        assert_eq!(s, 401);
        assert_eq!(
            v,
            json!({"code": "401", "msg": "API key missing or invalid"})
        );
    }
}

#[tokio::test]
async fn plan_restriction_answers_401() {
    let cg = FakeCoinGlass::start(KEY).await;
    cg.restrict_endpoint(PATH_LIQUIDATION_ORDER);
    let (s, _, v) = get(
        &cg,
        "/api/futures/liquidation/order?symbol=BTC&exchange=Binance",
        Some(KEY),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(v, json!({"code": "401", "msg": "Upgrade plan"}));
    // Other endpoints still work.
    let (s, _, _) = get(&cg, PATH_WHALE_ALERT, Some(KEY)).await;
    assert_eq!(s, 200);
    // HTTP 200 variant.
    cg.restrict_endpoint_with(PATH_WHALE_ALERT, 200, "Upgrade plan");
    let (s, _, v) = get(&cg, PATH_WHALE_ALERT, Some(KEY)).await;
    assert_eq!((s, v["code"].clone()), (200, json!("401")));
    cg.unrestrict_endpoint(PATH_LIQUIDATION_ORDER);
    let (s, _, _) = get(&cg, PATH_LIQUIDATION_ORDER, Some(KEY)).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn per_minute_rate_limit() {
    let cg = FakeCoinGlass::start(KEY).await;
    cg.set_rate_limit(3);
    for i in 1..=3 {
        let (s, h, _) = get(&cg, PATH_SUPPORTED_COINS, Some(KEY)).await;
        assert_eq!(s, 200);
        assert_eq!(h["API-KEY-MAX-LIMIT"], "3");
        assert_eq!(h["API-KEY-USE-LIMIT"], i.to_string().as_str());
    }
    let (s, h, v) = get(&cg, PATH_SUPPORTED_COINS, Some(KEY)).await;
    assert_eq!(s, 429);
    assert_eq!(v["code"], "429");
    assert_eq!(h["API-KEY-USE-LIMIT"], "3");
    assert_eq!(cg.too_many_requests_sent(), 1);
    assert_eq!(cg.requests(PATH_SUPPORTED_COINS), 4);
}

#[tokio::test]
async fn liquidation_orders_filter_and_window() {
    let cg = FakeCoinGlass::start(KEY).await;
    let t0 = 1_700_000_000_000i64;
    cg.push_liquidation_order(LiquidationOrder::new("Binance", "BTC", 600_000.0, 2, t0));
    cg.push_liquidation_order(LiquidationOrder::new("OKX", "BTC", 50_000.0, 1, t0 + 1000));
    cg.push_liquidation_order(LiquidationOrder::new(
        "Binance",
        "ETH",
        300_000.0,
        1,
        t0 + 2000,
    ));
    let q = |s: &str| format!("{PATH_LIQUIDATION_ORDER}?{s}");
    let (_, _, v) = get(&cg, &q("symbol=BTC"), Some(KEY)).await;
    let rows = v["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["time"], t0 + 1000, "newest first");
    assert_eq!(rows[0]["symbol"], "BTCUSDT");
    assert_eq!(rows[0]["base_asset"], "BTC");
    for k in ["exchange_name", "price", "usd_value", "side"] {
        assert!(rows[0].get(k).is_some(), "{k}");
    }
    let (_, _, v) = get(
        &cg,
        &q("symbol=BTC&exchange=Binance&min_liquidation_amount=100000"),
        Some(KEY),
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let (_, _, v) = get(
        &cg,
        &q(&format!("start_time={}&end_time={}", t0 + 500, t0 + 5000)),
        Some(KEY),
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    for i in 0..250 {
        cg.push_liquidation_order(LiquidationOrder::new(
            "Bybit",
            "SOL",
            1.0,
            1,
            t0 + 10_000 + i,
        ));
    }
    let (_, _, v) = get(&cg, PATH_LIQUIDATION_ORDER, Some(KEY)).await;
    let rows = v["data"].as_array().unwrap();
    assert_eq!(rows.len(), 200);
    assert_eq!(rows[0]["time"], t0 + 10_249);
}

#[tokio::test]
async fn whales_funding_exchanges_and_coins_set_by_test() {
    let cg = FakeCoinGlass::start(KEY).await;
    cg.push_whale(WhaleAlert::new(
        "0xabc",
        "BTC",
        -20.0,
        2_000_000.0,
        1,
        1_700_000_000_000,
    ));
    let (_, _, v) = get(&cg, PATH_WHALE_ALERT, Some(KEY)).await;
    let w = &v["data"][0];
    assert_eq!(w["user"], "0xabc");
    assert_eq!(w["position_size"], -20.0);
    for k in [
        "symbol",
        "entry_price",
        "liq_price",
        "position_value_usd",
        "position_action",
        "create_time",
    ] {
        assert!(w.get(k).is_some(), "{k}");
    }
    cg.set_funding("DOGE", vec![FundingEntry::new("Binance", 0.5)]);
    let (_, _, v) = get(&cg, &format!("{PATH_FUNDING}?symbol=DOGE"), Some(KEY)).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["data"][0]["stablecoin_margin_list"][0]["funding_rate"],
        0.5
    );
    assert_eq!(v["data"][0]["token_margin_list"], json!([]));
    cg.set_exchange_liquidations("BTC", vec![ExchangeLiquidation::new("Binance", 10.0, 5.0)]);
    let (_, _, v) = get(
        &cg,
        "/api/futures/liquidation/exchange-list?symbol=BTC&range=24h",
        Some(KEY),
    )
    .await;
    assert_eq!(v["data"][0]["exchange"], "All");
    assert_eq!(v["data"][0]["liquidation_usd"], 15.0);
    assert_eq!(v["data"][1]["exchange"], "Binance");
    cg.set_supported_coins(vec!["BTC".into()]);
    let (_, _, v) = get(&cg, PATH_SUPPORTED_COINS, Some(KEY)).await;
    assert_eq!(v["data"], json!(["BTC"]));
}

#[tokio::test]
async fn injected_faults() {
    let cg = FakeCoinGlass::start(KEY).await;
    cg.fail_5xx(Some(PATH_WHALE_ALERT), 1);
    let (s, _, v) = get(&cg, PATH_WHALE_ALERT, Some(KEY)).await;
    assert_eq!((s, v["code"].clone()), (502, json!("502")));
    cg.fail_429(None, 1);
    let (s, _, _) = get(&cg, PATH_FUNDING, Some(KEY)).await;
    assert_eq!(s, 429);
    cg.inject(Some(PATH_FUNDING), Fault::MalformedJson, 1);
    let url = format!("{}{}", cg.base_url(), PATH_FUNDING);
    let r = reqwest::Client::new()
        .get(&url)
        .header("CG-API-KEY", KEY)
        .send()
        .await
        .unwrap();
    assert!(r.json::<Value>().await.is_err());
    let (s, _, _) = get(&cg, PATH_WHALE_ALERT, Some(KEY)).await;
    assert_eq!(s, 200);
    let (s, _, v) = get(&cg, "/api/nope", Some(KEY)).await;
    assert_eq!((s, v["code"].clone()), (404, json!("404")));
}
