//! A fake CoinGlass API v4 server.
//!
//! Every request needs header `CG-API-KEY`; answers are
//! `{"code":"0","msg":"success","data":…}` with headers `API-KEY-MAX-LIMIT`
//! and `API-KEY-USE-LIMIT` (requests in the last 60 s).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::faults::{self, Fault, FaultPlan, RandomFaults};
use crate::server::ServerHandle;

/// Path of the liquidation order endpoint.
pub const PATH_LIQUIDATION_ORDER: &str = "/api/futures/liquidation/order";
/// Path of the aggregated liquidation history endpoint.
pub const PATH_LIQUIDATION_AGGREGATED: &str = "/api/futures/liquidation/aggregated-history";
/// Path of the per-exchange liquidation endpoint.
pub const PATH_LIQUIDATION_EXCHANGES: &str = "/api/futures/liquidation/exchange-list";
/// Path of the Hyperliquid whale alert endpoint.
pub const PATH_WHALE_ALERT: &str = "/api/hyperliquid/whale-alert";
/// Path of the funding rate endpoint.
pub const PATH_FUNDING: &str = "/api/futures/funding-rate/exchange-list";
/// Path of the supported coins endpoint.
pub const PATH_SUPPORTED_COINS: &str = "/api/futures/supported-coins";

/// `msg` of a plan-restricted endpoint (as reported by users of the real API).
pub const MSG_UPGRADE_PLAN: &str = "Upgrade plan";
/// `msg` for a missing or wrong `CG-API-KEY`.
pub const MSG_BAD_KEY: &str = "API key missing or invalid";
/// Rolling window size of the order and whale lists.
pub const WINDOW: usize = 200;

/// One liquidation order (`/api/futures/liquidation/order` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiquidationOrder {
    /// Exchange, e.g. `Binance`.
    pub exchange_name: String,
    /// Pair, e.g. `BTCUSDT`.
    pub symbol: String,
    /// Coin, e.g. `BTC` (what the `symbol` query parameter filters on).
    pub base_asset: String,
    /// Price.
    pub price: f64,
    /// Value in USD.
    pub usd_value: f64,
    /// 1 = buy (short liquidated), 2 = sell (long liquidated).
    pub side: u8,
    /// Unix milliseconds.
    pub time: i64,
}

impl LiquidationOrder {
    /// An order on `exchange` for `coin` (pair `{coin}USDT`) worth `usd_value` at `time` ms.
    pub fn new(exchange: &str, coin: &str, usd_value: f64, side: u8, time: i64) -> Self {
        Self {
            exchange_name: exchange.to_owned(),
            symbol: format!("{coin}USDT"),
            base_asset: coin.to_owned(),
            price: 100.0,
            usd_value,
            side,
            time,
        }
    }
}

/// One Hyperliquid whale position (`/api/hyperliquid/whale-alert` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhaleAlert {
    /// Wallet address.
    pub user: String,
    /// Coin, e.g. `BTC`.
    pub symbol: String,
    /// Size: positive long, negative short.
    pub position_size: f64,
    /// Entry price.
    pub entry_price: f64,
    /// Liquidation price.
    pub liq_price: f64,
    /// Position value in USD.
    pub position_value_usd: f64,
    /// 1 = open, 2 = close.
    pub position_action: u8,
    /// Unix milliseconds.
    pub create_time: i64,
}

impl WhaleAlert {
    /// A position of `user` in `coin` worth `value_usd` (negative `size` = short).
    pub fn new(user: &str, coin: &str, size: f64, value_usd: f64, action: u8, time: i64) -> Self {
        Self {
            user: user.to_owned(),
            symbol: coin.to_owned(),
            position_size: size,
            entry_price: if size == 0.0 {
                0.0
            } else {
                (value_usd / size).abs()
            },
            liq_price: 0.0,
            position_value_usd: value_usd,
            position_action: action,
            create_time: time,
        }
    }
}

/// One funding rate entry of an exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FundingEntry {
    /// Exchange, e.g. `Binance`.
    pub exchange: String,
    /// Funding rate as CoinGlass reports it (a percentage: `0.01` = 0.01 %).
    pub funding_rate: f64,
    /// Interval in hours.
    pub funding_rate_interval: u32,
    /// Unix milliseconds.
    pub next_funding_time: i64,
}

impl FundingEntry {
    /// An 8-hour funding entry.
    pub fn new(exchange: &str, funding_rate: f64) -> Self {
        Self {
            exchange: exchange.to_owned(),
            funding_rate,
            funding_rate_interval: 8,
            next_funding_time: now_ms() + 3_600_000,
        }
    }
}

/// One row of `/api/futures/liquidation/exchange-list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeLiquidation {
    /// Exchange, or `All` for the total row.
    pub exchange: String,
    /// Total liquidations in USD.
    pub liquidation_usd: f64,
    /// Long liquidations in USD.
    pub long_liquidation_usd: f64,
    /// Short liquidations in USD.
    pub short_liquidation_usd: f64,
}

impl ExchangeLiquidation {
    /// A row; `liquidation_usd` is the sum of both sides.
    pub fn new(exchange: &str, long_usd: f64, short_usd: f64) -> Self {
        Self {
            exchange: exchange.to_owned(),
            liquidation_usd: long_usd + short_usd,
            long_liquidation_usd: long_usd,
            short_liquidation_usd: short_usd,
        }
    }
}

/// One row of `/api/futures/liquidation/aggregated-history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregatedLiquidation {
    /// Unix milliseconds of the bucket.
    pub time: i64,
    /// Long liquidations in USD.
    pub aggregated_long_liquidation_usd: f64,
    /// Short liquidations in USD.
    pub aggregated_short_liquidation_usd: f64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug)]
struct CgState {
    max_per_minute: u32,
    window: VecDeque<Instant>,
    restricted: HashMap<String, (u16, String)>,
    faults: FaultPlan,
    requests: HashMap<String, u64>,
    too_many_sent: u64,
    orders: VecDeque<LiquidationOrder>,
    whales: VecDeque<WhaleAlert>,
    funding: BTreeMap<String, Vec<FundingEntry>>,
    exchange_liqs: HashMap<String, Vec<ExchangeLiquidation>>,
    aggregated: HashMap<String, Vec<AggregatedLiquidation>>,
    coins: Vec<String>,
}

#[derive(Debug)]
struct Shared {
    api_key: String,
    state: Mutex<CgState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, CgState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake CoinGlass v4 server. Stops when dropped.
#[derive(Debug)]
pub struct FakeCoinGlass {
    shared: Arc<Shared>,
    server: ServerHandle,
}

fn default_state() -> CgState {
    let coins = [
        "BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "AVAX", "DOT", "LINK", "LTC", "TRX",
    ];
    let mut funding = BTreeMap::new();
    for (coin, rate) in [("BTC", 0.01), ("ETH", 0.0085), ("SOL", -0.0125)] {
        funding.insert(
            coin.to_owned(),
            vec![
                FundingEntry::new("Binance", rate),
                FundingEntry::new("OKX", rate * 0.9),
                FundingEntry::new("Bybit", rate * 1.1),
            ],
        );
    }
    CgState {
        max_per_minute: 300,
        window: VecDeque::new(),
        restricted: HashMap::new(),
        faults: FaultPlan::default(),
        requests: HashMap::new(),
        too_many_sent: 0,
        orders: VecDeque::new(),
        whales: VecDeque::new(),
        funding,
        exchange_liqs: HashMap::new(),
        aggregated: HashMap::new(),
        coins: coins.iter().map(|c| (*c).to_owned()).collect(),
    }
}

impl FakeCoinGlass {
    /// Start on `127.0.0.1:0` accepting `api_key`.
    ///
    /// # Panics
    /// If binding a loopback port fails.
    pub async fn start(api_key: &str) -> FakeCoinGlass {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), api_key)
            .await
            .expect("bind fake CoinGlass on 127.0.0.1")
    }

    /// Start on `addr` accepting `api_key`.
    pub async fn start_on(addr: SocketAddr, api_key: &str) -> std::io::Result<FakeCoinGlass> {
        let shared = Arc::new(Shared {
            api_key: api_key.to_owned(),
            state: Mutex::new(default_state()),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let server = ServerHandle::spawn(addr, router).await?;
        Ok(FakeCoinGlass { shared, server })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stop serving.
    pub async fn stop(&self) {
        self.server.stop().await;
    }

    /// Add a liquidation order (the list keeps the latest [`WINDOW`] by time).
    pub fn push_liquidation_order(&self, order: LiquidationOrder) {
        let mut st = self.shared.lock();
        st.orders.push_back(order);
        st.orders.make_contiguous().sort_by_key(|o| o.time);
        while st.orders.len() > WINDOW {
            st.orders.pop_front();
        }
    }

    /// Add a whale position (the list keeps the latest [`WINDOW`] by time).
    pub fn push_whale(&self, whale: WhaleAlert) {
        let mut st = self.shared.lock();
        st.whales.push_back(whale);
        st.whales.make_contiguous().sort_by_key(|w| w.create_time);
        while st.whales.len() > WINDOW {
            st.whales.pop_front();
        }
    }

    /// Replace the funding rates of `symbol` (its `stablecoin_margin_list`);
    /// an empty `rows` removes the symbol.
    pub fn set_funding(&self, symbol: &str, rows: Vec<FundingEntry>) {
        let mut st = self.shared.lock();
        if rows.is_empty() {
            st.funding.remove(symbol);
        } else {
            st.funding.insert(symbol.to_owned(), rows);
        }
    }

    /// Set the per-exchange liquidation rows of `symbol`. An `All` total row is
    /// put first automatically unless `rows` has one.
    pub fn set_exchange_liquidations(&self, symbol: &str, rows: Vec<ExchangeLiquidation>) {
        self.shared
            .lock()
            .exchange_liqs
            .insert(symbol.to_owned(), with_total(rows));
    }

    /// Set the aggregated liquidation history of `symbol` (returned oldest first).
    pub fn set_aggregated_history(&self, symbol: &str, rows: Vec<AggregatedLiquidation>) {
        self.shared
            .lock()
            .aggregated
            .insert(symbol.to_owned(), rows);
    }

    /// Replace the supported coins list.
    pub fn set_supported_coins(&self, coins: Vec<String>) {
        self.shared.lock().coins = coins;
    }

    /// Requests allowed per minute (default 300, the Standard plan); beyond it 429.
    pub fn set_rate_limit(&self, per_minute: u32) {
        let mut st = self.shared.lock();
        st.max_per_minute = per_minute;
        st.window.clear();
    }

    /// `path` answers HTTP 401 with `{"code":"401","msg":"Upgrade plan"}`.
    pub fn restrict_endpoint(&self, path: &str) {
        self.restrict_endpoint_with(path, 401, MSG_UPGRADE_PLAN);
    }

    /// `path` answers HTTP `status` with `{"code":"401","msg":msg}` (reports say
    /// the real API sometimes does this over HTTP 200).
    pub fn restrict_endpoint_with(&self, path: &str, status: u16, msg: &str) {
        self.shared
            .lock()
            .restricted
            .insert(path.to_owned(), (status, msg.to_owned()));
    }

    /// Lift a restriction.
    pub fn unrestrict_endpoint(&self, path: &str) {
        self.shared.lock().restricted.remove(path);
    }

    /// Fail the next `times` requests to `path` (`None` = any path) with `fault`.
    pub fn inject(&self, path: Option<&str>, fault: Fault, times: u32) {
        self.shared.lock().faults.add(path, fault, times);
    }

    /// Next `times` requests to `path` answer 502.
    pub fn fail_5xx(&self, path: Option<&str>, times: u32) {
        self.inject(path, Fault::ServerError { status: 502 }, times);
    }

    /// Next `times` requests to `path` answer 429.
    pub fn fail_429(&self, path: Option<&str>, times: u32) {
        self.inject(path, Fault::TooManyRequests { retry_after: 60 }, times);
    }

    /// Next `times` requests to `path` are answered after `delay`.
    pub fn delay(&self, path: Option<&str>, times: u32, delay: Duration) {
        let ms = delay.as_millis() as u64;
        self.inject(path, Fault::Delay { ms }, times);
    }

    /// Enable (or with `None` disable) seeded random faults.
    pub fn set_random_faults(&self, random: Option<RandomFaults>) {
        self.shared.lock().faults.set_random(random);
    }

    /// Drop queued and random faults.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Requests seen for `path` (all of them, rejected ones included).
    pub fn requests(&self, path: &str) -> u64 {
        self.shared.lock().requests.get(path).copied().unwrap_or(0)
    }

    /// Request counts per path.
    pub fn request_counts(&self) -> HashMap<String, u64> {
        self.shared.lock().requests.clone()
    }

    /// How many 429s were sent.
    pub fn too_many_requests_sent(&self) -> u64 {
        self.shared.lock().too_many_sent
    }
}

fn with_total(mut rows: Vec<ExchangeLiquidation>) -> Vec<ExchangeLiquidation> {
    if !rows.iter().any(|r| r.exchange == "All") {
        let long = rows.iter().map(|r| r.long_liquidation_usd).sum();
        let short = rows.iter().map(|r| r.short_liquidation_usd).sum();
        rows.insert(0, ExchangeLiquidation::new("All", long, short));
    }
    rows
}

fn envelope(status: u16, code: &str, msg: &str, data: Option<Value>) -> Response {
    let mut body = json!({"code": code, "msg": msg});
    if let Some(d) = data {
        body["data"] = d;
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, axum::Json(body)).into_response()
}

fn with_limit_headers(mut resp: Response, max: u32, used: usize) -> Response {
    let h = resp.headers_mut();
    h.insert("API-KEY-MAX-LIMIT", HeaderValue::from(max));
    h.insert("API-KEY-USE-LIMIT", HeaderValue::from(used as u64));
    resp
}

async fn handle(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = uri.path().to_owned();
    let key_ok = headers
        .get("CG-API-KEY")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|k| k == sh.api_key);
    let (fault, max, used, limited, restricted) = {
        let mut st = sh.lock();
        *st.requests.entry(path.clone()).or_insert(0) += 1;
        if !key_ok {
            return envelope(401, "401", MSG_BAD_KEY, None);
        }
        let now = Instant::now();
        while st
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            st.window.pop_front();
        }
        let limited = st.window.len() >= st.max_per_minute as usize;
        if limited {
            st.too_many_sent += 1;
        } else {
            st.window.push_back(now);
        }
        let fault = if limited { None } else { st.faults.next(&path) };
        if let Some(Fault::TooManyRequests { .. }) = fault {
            st.too_many_sent += 1;
        }
        let restricted = st.restricted.get(&path).cloned();
        (
            fault,
            st.max_per_minute,
            st.window.len(),
            limited,
            restricted,
        )
    };
    let resp = if limited {
        envelope(429, "429", "Too Many Requests", None)
    } else {
        match fault {
            Some(Fault::Delay { ms }) => {
                faults::sleep_ms(ms).await;
                answer(&sh, &path, &q, restricted)
            }
            Some(Fault::TooManyRequests { .. }) => envelope(429, "429", "Too Many Requests", None),
            Some(Fault::ServerError { status }) => envelope(
                status,
                &status.to_string(),
                Fault::server_error_text(status),
                None,
            ),
            Some(Fault::DropConnection) => faults::dropped_connection(),
            Some(Fault::MalformedJson) => {
                faults::malformed_json("{\"code\":\"0\",\"msg\":\"success\",\"data\":[{")
            }
            None => answer(&sh, &path, &q, restricted),
        }
    };
    with_limit_headers(resp, max, used)
}

fn answer(
    sh: &Shared,
    path: &str,
    q: &HashMap<String, String>,
    restricted: Option<(u16, String)>,
) -> Response {
    if let Some((status, msg)) = restricted {
        return envelope(status, "401", &msg, None);
    }
    let st = sh.lock();
    let symbol = q.get("symbol").map(|s| s.to_ascii_uppercase());
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<f64>().ok());
    let data = match path {
        PATH_SUPPORTED_COINS => json!(st.coins),
        PATH_LIQUIDATION_ORDER => {
            let exchange = q.get("exchange").map(|e| e.to_ascii_lowercase());
            let min = num("min_liquidation_amount").unwrap_or(0.0);
            let start = num("start_time").map(|v| v as i64).unwrap_or(i64::MIN);
            let end = num("end_time").map(|v| v as i64).unwrap_or(i64::MAX);
            let rows: Vec<&LiquidationOrder> = st
                .orders
                .iter()
                .rev()
                .filter(|o| {
                    symbol
                        .as_ref()
                        .is_none_or(|s| o.base_asset.eq_ignore_ascii_case(s))
                })
                .filter(|o| {
                    exchange
                        .as_ref()
                        .is_none_or(|e| e == "all" || o.exchange_name.eq_ignore_ascii_case(e))
                })
                .filter(|o| o.usd_value >= min && o.time >= start && o.time <= end)
                .take(WINDOW)
                .collect();
            json!(rows)
        }
        PATH_WHALE_ALERT => {
            let rows: Vec<&WhaleAlert> = st.whales.iter().rev().collect();
            json!(rows)
        }
        PATH_FUNDING => {
            let rows: Vec<Value> = st
                .funding
                .iter()
                .filter(|(s, _)| symbol.as_ref().is_none_or(|want| *s == want))
                .map(|(s, list)| {
                    json!({"symbol": s, "stablecoin_margin_list": list, "token_margin_list": []})
                })
                .collect();
            json!(rows)
        }
        PATH_LIQUIDATION_EXCHANGES => {
            let sym = symbol.unwrap_or_else(|| "BTC".to_owned());
            let rows = st.exchange_liqs.get(&sym).cloned().unwrap_or_else(|| {
                with_total(vec![
                    ExchangeLiquidation::new("Binance", 1_200_000.0, 800_000.0),
                    ExchangeLiquidation::new("OKX", 600_000.0, 400_000.0),
                    ExchangeLiquidation::new("Bybit", 500_000.0, 300_000.0),
                ])
            });
            json!(rows)
        }
        PATH_LIQUIDATION_AGGREGATED => {
            let sym = symbol.unwrap_or_else(|| "BTC".to_owned());
            let limit = num("limit")
                .map(|v| v as usize)
                .unwrap_or(100)
                .clamp(1, 1000);
            let rows = st.aggregated.get(&sym).cloned().unwrap_or_else(|| {
                let step = 4 * 3_600_000;
                let last = now_ms() / step * step;
                (0..limit as i64)
                    .rev()
                    .map(|i| AggregatedLiquidation {
                        time: last - i * step,
                        aggregated_long_liquidation_usd: 1_000_000.0 + (i % 5) as f64 * 100_000.0,
                        aggregated_short_liquidation_usd: 800_000.0 + (i % 3) as f64 * 50_000.0,
                    })
                    .collect()
            });
            let skip = rows.len().saturating_sub(limit);
            json!(rows[skip..])
        }
        _ => return envelope(404, "404", "Not Found", None),
    };
    envelope(200, "0", "success", Some(data))
}
