//! The CoinGlass client against the fake CoinGlass server on 127.0.0.1.

use std::time::{Duration, Instant};

use cryptosat::config::CoinGlassConfig;
use cryptosat::market::{
    AggregatedQuery, ClientOptions, CoinGlass, Feature, LiqSide, MarketError, OrderQuery,
    WhaleAction,
};
use cryptosat_fakes::coinglass::{
    PATH_FUNDING, PATH_LIQUIDATION_AGGREGATED, PATH_LIQUIDATION_EXCHANGES, PATH_LIQUIDATION_ORDER,
    PATH_SUPPORTED_COINS, PATH_WHALE_ALERT,
};
use cryptosat_fakes::{
    ExchangeLiquidation, FakeCoinGlass, Fault, FundingEntry, LiquidationOrder, WhaleAlert,
};

const KEY: &str = "cg-test-key-5f1d9a";

fn opts() -> ClientOptions {
    ClientOptions {
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        default_retry_after: Duration::from_millis(800),
        ..ClientOptions::default()
    }
}

fn config(fake: &FakeCoinGlass) -> CoinGlassConfig {
    CoinGlassConfig {
        base_url: fake.base_url(),
        requests_per_minute: 300,
        cache_secs: 30,
        request_timeout_secs: 5,
    }
}

fn client(fake: &FakeCoinGlass) -> CoinGlass {
    CoinGlass::with_options(&config(fake), Some(KEY), opts()).expect("client")
}

fn assert_secret_free(e: &MarketError) {
    let text = format!("{e} {e:?}");
    assert!(!text.contains(KEY), "key leaked: {text}");
}

#[tokio::test]
async fn every_endpoint_parses() {
    let fake = FakeCoinGlass::start(KEY).await;
    let cg = client(&fake);

    let coins = cg.supported_coins().await.unwrap();
    assert!(coins.contains(&"BTC".to_owned()) && coins.contains(&"DOGE".to_owned()));
    assert_eq!(cg.resolve_symbol("dogeusdt").await.unwrap(), "DOGE");
    assert_eq!(
        cg.resolve_symbol("NOPE").await,
        Err(MarketError::UnknownSymbol("NOPE".into()))
    );
    assert_eq!(fake.requests(PATH_SUPPORTED_COINS), 1, "coins are cached");

    let liq = cg.exchange_liquidations("btc", "24h").await.unwrap();
    assert_eq!(liq.symbol, "BTC");
    assert_eq!(liq.total_usd, 3_800_000.0);
    assert_eq!(liq.exchanges[0].exchange, "Binance");

    let f = cg.funding_rates("BTC/USDT").await.unwrap();
    assert_eq!(f.symbol, "BTC");
    assert_eq!(f.rates.len(), 3);
    assert!((f.average_pct - 0.01).abs() < 1e-9, "{}", f.average_pct);
    assert!(f.next_funding_time_ms.is_some());
    assert_eq!(
        cg.funding_rates("DOGE").await,
        Err(MarketError::UnknownSymbol("DOGE".into()))
    );

    fake.push_whale(WhaleAlert::new(
        "0xa",
        "BTC",
        30.0,
        3_000_000.0,
        1,
        1_700_000_000_000,
    ));
    fake.push_whale(WhaleAlert::new(
        "0xb",
        "ETH",
        -500.0,
        1_500_000.0,
        2,
        1_700_000_001_000,
    ));
    let whales = cg.whale_alerts().await.unwrap();
    assert_eq!(whales.len(), 2);
    let short = whales.iter().find(|w| w.user == "0xb").unwrap();
    assert!(!short.is_long());
    assert_eq!(short.action, WhaleAction::Close);
    assert_eq!(short.liq_price, None);
    assert_eq!(short.dedup_key(), "0xb|ETH|1700000001000");

    fake.push_liquidation_order(LiquidationOrder::new(
        "Binance",
        "BTC",
        750_000.0,
        2,
        1_700_000_000_000,
    ));
    fake.push_liquidation_order(LiquidationOrder::new(
        "Binance",
        "BTC",
        50_000.0,
        1,
        1_700_000_000_500,
    ));
    fake.push_liquidation_order(LiquidationOrder::new(
        "OKX",
        "BTC",
        900_000.0,
        1,
        1_700_000_001_000,
    ));
    let orders = cg
        .liquidation_orders(&OrderQuery {
            exchange: "Binance".into(),
            symbol: "BTCUSDT".into(),
            min_usd: 100_000.0,
            start_ms: Some(1_699_999_999_000),
            end_ms: None,
        })
        .await
        .unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].side, LiqSide::Long);
    assert_eq!(orders[0].coin, "BTC");
    assert_eq!(
        orders[0].dedup_key(),
        "Binance|BTCUSDT|1700000000000|750000"
    );

    let buckets = cg
        .aggregated_liquidations(&AggregatedQuery {
            symbol: "ETH".into(),
            exchanges: vec!["Binance".into(), "OKX".into()],
            interval: "4h".into(),
            limit: 6,
        })
        .await
        .unwrap();
    assert_eq!(buckets.len(), 6);
    assert!(buckets.windows(2).all(|w| w[0].time_ms < w[1].time_ms));

    let h = cg.health();
    assert!(h.api_key_configured && !h.key_rejected);
    for f in Feature::ALL {
        let fh = h.feature(f).unwrap();
        assert!(fh.last_success.is_some(), "{f}");
        assert!(fh.disabled.is_none());
    }
}

#[tokio::test]
async fn the_all_row_is_not_double_counted() {
    let fake = FakeCoinGlass::start(KEY).await;
    fake.set_exchange_liquidations(
        "ETH",
        vec![
            ExchangeLiquidation::new("OKX", 100.0, 50.0),
            ExchangeLiquidation::new("Binance", 300.0, 200.0),
            ExchangeLiquidation::new("Bybit", 10.0, 20.0),
        ],
    );
    let cg = client(&fake);
    let s = cg.exchange_liquidations("ETH", "1h").await.unwrap();
    assert_eq!(s.total_usd, 680.0);
    assert_eq!(s.long_usd, 410.0);
    assert_eq!(s.short_usd, 270.0);
    let names: Vec<&str> = s.exchanges.iter().map(|e| e.exchange.as_str()).collect();
    assert_eq!(names, ["Binance", "OKX", "Bybit"]);
    let sum: f64 = s.exchanges.iter().map(|e| e.total_usd).sum();
    assert_eq!(sum, s.total_usd);
}

#[tokio::test]
async fn concurrent_identical_questions_cost_one_request() {
    let fake = FakeCoinGlass::start(KEY).await;
    // A slow answer, so all callers really overlap.
    fake.delay(Some(PATH_FUNDING), 1, Duration::from_millis(300));
    let cg = client(&fake);
    let spellings = ["BTC", "btc", "BTCUSDT", "BTC/USDT", "BTC-PERP"];
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let cg = cg.clone();
            tokio::spawn(async move { cg.funding_rates(spellings[i % spellings.len()]).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().symbol, "BTC");
    }
    assert_eq!(fake.requests(PATH_FUNDING), 1);
}

#[tokio::test]
async fn cached_answers_expire() {
    let fake = FakeCoinGlass::start(KEY).await;
    let cfg = CoinGlassConfig {
        cache_secs: 1,
        ..config(&fake)
    };
    let cg = CoinGlass::with_options(&cfg, Some(KEY), opts()).unwrap();
    cg.funding_rates("ETH").await.unwrap();
    cg.funding_rates("ETH").await.unwrap();
    assert_eq!(fake.requests(PATH_FUNDING), 1);
    fake.set_funding("ETH", vec![FundingEntry::new("Binance", 0.05)]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let f = cg.funding_rates("ETH").await.unwrap();
    assert_eq!(fake.requests(PATH_FUNDING), 2);
    assert_eq!(f.average_pct, 0.05);
}

#[tokio::test]
async fn a_5xx_is_retried() {
    let fake = FakeCoinGlass::start(KEY).await;
    fake.fail_5xx(Some(PATH_WHALE_ALERT), 1);
    let cg = client(&fake);
    cg.whale_alerts().await.unwrap();
    assert_eq!(fake.requests(PATH_WHALE_ALERT), 2);
}

#[tokio::test]
async fn timeouts_and_dropped_connections_are_retried() {
    let fake = FakeCoinGlass::start(KEY).await;
    let cfg = CoinGlassConfig {
        request_timeout_secs: 1,
        ..config(&fake)
    };
    let cg = CoinGlass::with_options(&cfg, Some(KEY), opts()).unwrap();
    fake.delay(Some(PATH_SUPPORTED_COINS), 1, Duration::from_millis(2500));
    fake.inject(Some(PATH_SUPPORTED_COINS), Fault::DropConnection, 1);
    cg.supported_coins().await.unwrap();
    assert_eq!(fake.requests(PATH_SUPPORTED_COINS), 3);
}

#[tokio::test]
async fn persistent_5xx_is_an_upstream_error_after_bounded_attempts() {
    let fake = FakeCoinGlass::start(KEY).await;
    fake.fail_5xx(None, 100);
    let cg = client(&fake);
    let started = Instant::now();
    let err = cg.funding_rates("BTC").await.unwrap_err();
    assert!(matches!(err, MarketError::Upstream(_)), "{err:?}");
    assert!(err.to_string().contains("502"), "{err}");
    assert_secret_free(&err);
    assert_eq!(fake.requests(PATH_FUNDING), 3);
    assert!(started.elapsed() < Duration::from_secs(3));
    let h = cg.health();
    assert!(h.feature(Feature::Funding).unwrap().last_error.is_some());
    assert_eq!(h.requests_made, 3);
    // Not a plan problem: nothing disabled.
    assert_eq!(cg.is_disabled(Feature::Funding), None);
}

#[tokio::test]
async fn too_many_requests_is_honoured() {
    let fake = FakeCoinGlass::start(KEY).await;
    fake.fail_429(Some(PATH_SUPPORTED_COINS), 1);
    let cg = client(&fake);
    let started = Instant::now();
    cg.supported_coins().await.unwrap();
    // No Retry-After from the fake: the default pause (800 ms here) is kept.
    assert!(
        started.elapsed() >= Duration::from_millis(750),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests(PATH_SUPPORTED_COINS), 2);
    assert_eq!(fake.too_many_requests_sent(), 1);
    assert_eq!(cg.health().rate_limited_responses, 1);
}

#[tokio::test]
async fn too_many_requests_with_a_short_wait_bound_fails_fast() {
    let fake = FakeCoinGlass::start(KEY).await;
    fake.fail_429(None, 1);
    let o = ClientOptions {
        max_rate_wait: Duration::from_millis(100),
        ..opts()
    };
    let cg = CoinGlass::with_options(&config(&fake), Some(KEY), o).unwrap();
    let err = cg.whale_alerts().await.unwrap_err();
    match &err {
        MarketError::RateLimited {
            retry_after: Some(d),
        } => {
            assert!(*d > Duration::from_millis(500), "{d:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_secret_free(&err);
    // The bucket is empty: another feature is refused without a request.
    let err = cg.funding_rates("BTC").await.unwrap_err();
    assert!(matches!(err, MarketError::RateLimited { .. }), "{err:?}");
    assert_eq!(fake.requests(PATH_FUNDING), 0);
    assert_eq!(fake.requests(PATH_WHALE_ALERT), 1);
    // After the pause it works again.
    tokio::time::sleep(Duration::from_millis(850)).await;
    cg.funding_rates("BTC").await.unwrap();
}

#[tokio::test]
async fn malformed_json_is_an_error_value() {
    let fake = FakeCoinGlass::start(KEY).await;
    fake.inject(Some(PATH_LIQUIDATION_EXCHANGES), Fault::MalformedJson, 1);
    let cg = client(&fake);
    let err = cg.exchange_liquidations("BTC", "24h").await.unwrap_err();
    assert!(matches!(err, MarketError::Malformed(_)), "{err:?}");
    assert_secret_free(&err);
    assert_eq!(fake.requests(PATH_LIQUIDATION_EXCHANGES), 1);
    // Errors are not cached: the next call asks again and succeeds.
    cg.exchange_liquidations("BTC", "24h").await.unwrap();
    assert_eq!(fake.requests(PATH_LIQUIDATION_EXCHANGES), 2);
}

#[tokio::test]
async fn a_plan_restricted_endpoint_disables_only_its_feature() {
    let fake = FakeCoinGlass::start(KEY).await;
    fake.restrict_endpoint(PATH_WHALE_ALERT);
    let cg = client(&fake);
    let err = cg.whale_alerts().await.unwrap_err();
    assert_eq!(
        err,
        MarketError::PlanRestricted {
            feature: Feature::Whales,
            message: "Upgrade plan".into()
        }
    );
    let reason = cg.is_disabled(Feature::Whales).expect("disabled");
    assert!(reason.contains("Upgrade plan"), "{reason}");
    assert_eq!(fake.requests(PATH_WHALE_ALERT), 1);

    // Later calls answer at once, without a request.
    let again = cg.whale_alerts().await.unwrap_err();
    assert!(matches!(again, MarketError::PlanRestricted { .. }));
    assert_eq!(fake.requests(PATH_WHALE_ALERT), 1);

    // Everything else still works and is not disabled.
    cg.funding_rates("BTC").await.unwrap();
    cg.exchange_liquidations("BTC", "24h").await.unwrap();
    assert_eq!(cg.is_disabled(Feature::Funding), None);
    let h = cg.health();
    assert!(h.feature(Feature::Whales).unwrap().disabled.is_some());
    assert!(h.summary().contains("whale alerts"), "{}", h.summary());
    assert!(!h.key_rejected);
}

#[tokio::test]
async fn plan_restriction_over_http_200_and_recheck() {
    let fake = FakeCoinGlass::start(KEY).await;
    fake.restrict_endpoint_with(PATH_LIQUIDATION_ORDER, 200, "Upgrade plan");
    let o = ClientOptions {
        plan_recheck: Duration::from_millis(300),
        ..opts()
    };
    let cg = CoinGlass::with_options(&config(&fake), Some(KEY), o).unwrap();
    let q = OrderQuery {
        exchange: "Binance".into(),
        symbol: "BTC".into(),
        min_usd: 0.0,
        start_ms: None,
        end_ms: None,
    };
    let err = cg.liquidation_orders(&q).await.unwrap_err();
    assert!(matches!(
        err,
        MarketError::PlanRestricted {
            feature: Feature::LiquidationOrders,
            ..
        }
    ));
    assert!(cg.is_disabled(Feature::LiquidationOrders).is_some());
    cg.liquidation_orders(&q).await.unwrap_err();
    assert_eq!(fake.requests(PATH_LIQUIDATION_ORDER), 1);

    // The plan was upgraded: after the re-check interval one request finds out.
    fake.unrestrict_endpoint(PATH_LIQUIDATION_ORDER);
    tokio::time::sleep(Duration::from_millis(350)).await;
    cg.liquidation_orders(&q).await.unwrap();
    assert_eq!(cg.is_disabled(Feature::LiquidationOrders), None);
    assert_eq!(fake.requests(PATH_LIQUIDATION_ORDER), 2);
}

#[tokio::test]
async fn a_server_message_echoing_the_key_is_scrubbed() {
    let fake = FakeCoinGlass::start(KEY).await;
    fake.restrict_endpoint_with(PATH_FUNDING, 401, &format!("Upgrade plan (account {KEY})"));
    let cg = client(&fake);
    let err = cg.funding_rates("BTC").await.unwrap_err();
    assert!(matches!(err, MarketError::PlanRestricted { .. }), "{err:?}");
    assert_secret_free(&err);
    let reason = cg.is_disabled(Feature::Funding).unwrap();
    assert!(!reason.contains(KEY), "{reason}");
    assert!(!format!("{:?}", cg.health()).contains(KEY));
}

#[tokio::test]
async fn a_bad_key_is_invalid_key() {
    let fake = FakeCoinGlass::start("the-right-key").await;
    let cg = client(&fake);
    let err = cg.funding_rates("BTC").await.unwrap_err();
    assert_eq!(err, MarketError::InvalidKey);
    assert_secret_free(&err);
    assert_eq!(fake.requests(PATH_FUNDING), 1, "not retried");
    let h = cg.health();
    assert!(h.key_rejected);
    // A bad key is not a plan restriction: nothing is disabled.
    assert_eq!(cg.is_disabled(Feature::Funding), None);
    assert!(!format!("{cg:?} {h:?}").contains(KEY));
}

#[tokio::test]
async fn without_a_key_nothing_is_requested() {
    let fake = FakeCoinGlass::start(KEY).await;
    let cg = CoinGlass::with_options(&config(&fake), None, opts()).unwrap();
    assert_eq!(cg.whale_alerts().await.unwrap_err(), MarketError::NoApiKey);
    assert_eq!(
        cg.funding_rates("BTC").await.unwrap_err(),
        MarketError::NoApiKey
    );
    assert!(cg.is_disabled(Feature::Whales).is_some());
    assert!(fake.request_counts().values().all(|n| *n == 0));
    assert!(!cg.health().api_key_configured);
}

#[tokio::test]
async fn the_rate_limit_holds_for_a_burst_of_different_questions() {
    let fake = FakeCoinGlass::start(KEY).await;
    // The plan (as the server enforces and reports it) matches the config.
    fake.set_rate_limit(5);
    let cfg = CoinGlassConfig {
        requests_per_minute: 5,
        ..config(&fake)
    };
    let cg = CoinGlass::with_options(&cfg, Some(KEY), opts()).unwrap();
    const SYMBOLS: [&str; 8] = ["BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "AVAX"];
    let started = Instant::now();
    let tasks: Vec<_> = SYMBOLS
        .iter()
        .map(|s| {
            let cg = cg.clone();
            tokio::spawn(async move { cg.exchange_liquidations(s, "24h").await })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(MarketError::RateLimited { retry_after }) => {
                // The sixth token comes back a minute after the first was spent:
                // beyond the 30 s bound, so these fail at once.
                let d = retry_after.expect("retry_after");
                assert!(d > Duration::from_secs(50), "{d:?}");
                limited += 1;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!((ok, limited), (5, 3));
    assert_eq!(fake.requests(PATH_LIQUIDATION_EXCHANGES), 5);
    assert_eq!(fake.too_many_requests_sent(), 0);
    let h = cg.health();
    assert_eq!(h.rate_limit_per_minute, 5);
    assert!(h.rate_limit_from_headers);
    assert_eq!(h.tokens_available, 0);
    assert_eq!(h.requests_made, 5);
}

#[tokio::test]
async fn the_plan_limit_header_corrects_the_config() {
    let fake = FakeCoinGlass::start(KEY).await;
    fake.set_rate_limit(80);
    let cg = client(&fake); // configured 300
    assert_eq!(cg.health().rate_limit_per_minute, 300);
    cg.supported_coins().await.unwrap();
    let h = cg.health();
    assert_eq!(h.rate_limit_per_minute, 80);
    assert!(h.rate_limit_from_headers);
    assert_eq!(h.used_in_window, Some(1));
    assert_eq!(h.tokens_available, 79);
}

#[tokio::test]
async fn the_aggregated_endpoint_can_be_restricted_alone() {
    let fake = FakeCoinGlass::start(KEY).await;
    fake.restrict_endpoint(PATH_LIQUIDATION_AGGREGATED);
    let cg = client(&fake);
    let q = AggregatedQuery {
        symbol: "BTC".into(),
        exchanges: vec!["Binance".into()],
        interval: "1h".into(),
        limit: 10,
    };
    assert!(matches!(
        cg.aggregated_liquidations(&q).await,
        Err(MarketError::PlanRestricted {
            feature: Feature::AggregatedLiquidations,
            ..
        })
    ));
    assert!(cg.is_disabled(Feature::AggregatedLiquidations).is_some());
    assert!(cg.is_disabled(Feature::ExchangeLiquidations).is_none());
}
