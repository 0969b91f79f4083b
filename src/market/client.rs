//! The CoinGlass v4 client: one HTTP client, one request budget, per-feature
//! plan state and short-lived caches, shared by every caller.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::cache::Cache;
use super::error::MarketError;
use super::models::{self, Envelope, Feature};
use super::models::{
    AggregatedQuery, FundingSnapshot, LiquidationBucket, LiquidationOrder, LiquidationSummary,
    OrderQuery, WhalePosition,
};
use super::normalize_symbol;
use super::ratelimit::RateLimiter;
use crate::config::CoinGlassConfig;
use crate::secrets::Secret;

const API_KEY_HEADER: &str = "CG-API-KEY";
const MAX_LIMIT_HEADER: &str = "API-KEY-MAX-LIMIT";
const USE_LIMIT_HEADER: &str = "API-KEY-USE-LIMIT";

/// Tuning that is not in the config file. The defaults suit the service;
/// tests shorten the waits.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Longest a call waits for a rate-limit token before giving up with
    /// [`MarketError::RateLimited`]. Commands need fast answers.
    pub max_rate_wait: Duration,
    /// Attempts per call (first try included) on 5xx/timeouts/network errors/429.
    pub attempts: u32,
    /// First backoff delay; doubled per retry, with ±50 % jitter.
    pub backoff_base: Duration,
    /// Upper bound of one backoff delay.
    pub backoff_max: Duration,
    /// Pause after a 429 without `Retry-After`.
    pub default_retry_after: Duration,
    /// Upper bound on a `Retry-After` we honour.
    pub max_retry_after: Duration,
    /// How long the supported coins list is cached.
    pub coins_ttl: Duration,
    /// How long a plan-restricted feature stays off before one request re-checks it.
    pub plan_recheck: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            max_rate_wait: Duration::from_secs(30),
            attempts: 3,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
            default_retry_after: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(120),
            coins_ttl: Duration::from_secs(3600),
            plan_recheck: Duration::from_secs(3600),
        }
    }
}

/// Health of one feature, for `/status` and the systemd STATUS line.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureHealth {
    /// The feature.
    pub feature: Feature,
    /// Last successful answer.
    pub last_success: Option<SystemTime>,
    /// Last failure (secret-free text) and when.
    pub last_error: Option<(SystemTime, String)>,
    /// Why the feature is off (plan or missing key), if it is.
    pub disabled: Option<String>,
}

/// Health of the CoinGlass client.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketHealth {
    /// Whether an API key is configured at all.
    pub api_key_configured: bool,
    /// Whether the last authenticated answer rejected the key.
    pub key_rejected: bool,
    /// Requests per minute the limiter allows.
    pub rate_limit_per_minute: u32,
    /// Whether that figure came from `API-KEY-MAX-LIMIT` (else from the config).
    pub rate_limit_from_headers: bool,
    /// Tokens free right now.
    pub tokens_available: u32,
    /// Requests in the current window as CoinGlass last reported (`API-KEY-USE-LIMIT`).
    pub used_in_window: Option<u32>,
    /// HTTP requests sent since start.
    pub requests_made: u64,
    /// 429 answers received since start.
    pub rate_limited_responses: u64,
    /// One entry per [`Feature`], in [`Feature::ALL`] order.
    pub features: Vec<FeatureHealth>,
}

impl MarketHealth {
    /// The entry of `feature`.
    pub fn feature(&self, feature: Feature) -> Option<&FeatureHealth> {
        self.features.iter().find(|f| f.feature == feature)
    }

    /// One line for STATUS / logs, e.g.
    /// `CoinGlass: 42 requests, limit 30/min; off: whale alerts (Upgrade plan)`.
    pub fn summary(&self) -> String {
        if !self.api_key_configured {
            return "CoinGlass: no API key, market data off".to_owned();
        }
        let mut s = format!(
            "CoinGlass: {} requests, limit {}/min",
            self.requests_made, self.rate_limit_per_minute
        );
        if self.key_rejected {
            s.push_str("; API key rejected");
        }
        let off: Vec<String> = self
            .features
            .iter()
            .filter_map(|f| f.disabled.as_ref().map(|_| f.feature.name().to_owned()))
            .collect();
        if !off.is_empty() {
            s.push_str("; not in plan: ");
            s.push_str(&off.join(", "));
        }
        s
    }
}

#[derive(Debug, Default)]
struct FeatureState {
    last_success: Option<SystemTime>,
    last_error: Option<(SystemTime, String)>,
    disabled: Option<Disabled>,
}

#[derive(Debug)]
struct Disabled {
    message: String,
    /// No request before this; then one request re-checks.
    recheck_at: Instant,
}

#[derive(Debug, Default)]
struct Health {
    features: [FeatureState; 6],
    key_rejected: bool,
}

/// The CoinGlass v4 client. Cheap to clone: clones share the HTTP client,
/// the request budget, the plan state and the caches.
#[derive(Clone)]
pub struct CoinGlass {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    /// `None`: no key configured, every call is [`MarketError::NoApiKey`].
    api_key: Option<HeaderValue>,
    /// The key text, only to scrub it out of server texts.
    scrub: Option<String>,
    timeout: Duration,
    options: ClientOptions,
    limiter: RateLimiter,
    health: Mutex<Health>,
    requests: AtomicU64,
    too_many: AtomicU64,
    coins: Cache<(), Arc<Vec<String>>, MarketError>,
    exchange_liqs: Cache<(String, String), LiquidationSummary, MarketError>,
    funding: Cache<String, FundingSnapshot, MarketError>,
    whales: Cache<(), Arc<Vec<WhalePosition>>, MarketError>,
}

impl fmt::Debug for CoinGlass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoinGlass")
            .field("base_url", &self.inner.base_url)
            .field(
                "api_key",
                &self.inner.api_key.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

/// What one HTTP exchange meant.
#[derive(Debug)]
enum Attempt {
    Data(serde_json::Value),
    /// Worth another attempt after a backoff.
    Transient(String),
    /// 429: pause this long (from `Retry-After`, if it said).
    TooMany(Option<Duration>),
    Fatal(MarketError),
}

impl CoinGlass {
    /// A client for `config`; without `api_key` every call is [`MarketError::NoApiKey`].
    pub fn new(config: &CoinGlassConfig, api_key: Option<Secret>) -> Result<Self, MarketError> {
        Self::with_options(
            config,
            api_key.as_ref().map(Secret::expose),
            ClientOptions::default(),
        )
    }

    /// Like [`CoinGlass::new`] with explicit [`ClientOptions`] and the key as text
    /// (for tests and tools that have no [`Secret`]).
    pub fn with_options(
        config: &CoinGlassConfig,
        api_key: Option<&str>,
        options: ClientOptions,
    ) -> Result<Self, MarketError> {
        let base_url = config.base_url.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base_url)
            .map_err(|e| MarketError::Config(format!("coinglass.base_url {base_url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(MarketError::Config(format!(
                "coinglass.base_url {base_url:?} is not http(s)"
            )));
        }
        let api_key = match api_key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(k) => {
                let mut v = HeaderValue::from_str(k).map_err(|_| {
                    MarketError::Config(
                        "the CoinGlass API key contains characters not allowed in an HTTP header"
                            .into(),
                    )
                })?;
                v.set_sensitive(true);
                Some((v, k.to_owned()))
            }
            None => None,
        };
        let timeout = Duration::from_secs(config.request_timeout_secs.max(1));
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("cryptosat/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MarketError::Config(format!("HTTP client: {e}")))?;
        let ttl = Duration::from_secs(config.cache_secs);
        let (api_key, scrub) = match api_key {
            Some((v, k)) => (Some(v), Some(k)),
            None => (None, None),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url,
                api_key,
                scrub,
                timeout,
                limiter: RateLimiter::new(config.requests_per_minute),
                health: Mutex::new(Health::default()),
                requests: AtomicU64::new(0),
                too_many: AtomicU64::new(0),
                coins: Cache::new(options.coins_ttl),
                exchange_liqs: Cache::new(ttl),
                funding: Cache::new(ttl),
                whales: Cache::new(ttl),
                options,
            }),
        })
    }

    /// The coins CoinGlass has futures data for (cached for an hour).
    pub async fn supported_coins(&self) -> Result<Arc<Vec<String>>, MarketError> {
        let me = self.clone();
        self.inner
            .coins
            .get_or_fetch((), || async move {
                me.recorded(Feature::SupportedCoins, async {
                    let raw: Vec<String> = me.fetch(Feature::SupportedCoins, &[]).await?;
                    let mut coins: Vec<String> = raw
                        .into_iter()
                        .map(|c| c.trim().to_ascii_uppercase())
                        .filter(|c| !c.is_empty())
                        .collect();
                    coins.sort();
                    coins.dedup();
                    Ok(Arc::new(coins))
                })
                .await
            })
            .await
    }

    /// `input` as a coin symbol, checked against the supported coins when that
    /// list is available (if it is not, the normalised symbol is accepted).
    pub async fn resolve_symbol(&self, input: &str) -> Result<String, MarketError> {
        let symbol =
            normalize_symbol(input).ok_or_else(|| MarketError::UnknownSymbol(input.to_owned()))?;
        match self.supported_coins().await {
            Ok(coins) if !coins.is_empty() && coins.binary_search(&symbol).is_err() => {
                Err(MarketError::UnknownSymbol(symbol))
            }
            Ok(_) => Ok(symbol),
            Err(e) => {
                tracing::debug!(error = %e, "supported coins unavailable; accepting {symbol}");
                Ok(symbol)
            }
        }
    }

    /// Liquidations of `symbol` per exchange over `range` (e.g. `24h`), cached
    /// for `coinglass.cache_secs`.
    pub async fn exchange_liquidations(
        &self,
        symbol: &str,
        range: &str,
    ) -> Result<LiquidationSummary, MarketError> {
        let symbol = normalize_symbol(symbol)
            .ok_or_else(|| MarketError::UnknownSymbol(symbol.to_owned()))?;
        let range = match range.trim() {
            "" => "24h".to_owned(),
            r => r.to_ascii_lowercase(),
        };
        let me = self.clone();
        self.inner
            .exchange_liqs
            .get_or_fetch((symbol.clone(), range.clone()), || async move {
                me.recorded(Feature::ExchangeLiquidations, async {
                    let rows: Vec<models::RawExchangeLiq> = me
                        .fetch(
                            Feature::ExchangeLiquidations,
                            &[("symbol", symbol.clone()), ("range", range.clone())],
                        )
                        .await?;
                    Ok(models::liquidation_summary(&symbol, &range, rows))
                })
                .await
            })
            .await
    }

    /// Current funding rates of `symbol` across exchanges, cached for
    /// `coinglass.cache_secs`. [`MarketError::UnknownSymbol`] if CoinGlass
    /// does not list it.
    pub async fn funding_rates(&self, symbol: &str) -> Result<FundingSnapshot, MarketError> {
        let symbol = normalize_symbol(symbol)
            .ok_or_else(|| MarketError::UnknownSymbol(symbol.to_owned()))?;
        let me = self.clone();
        self.inner
            .funding
            .get_or_fetch(symbol.clone(), || async move {
                me.recorded(Feature::Funding, async {
                    let coins: Vec<models::RawFundingCoin> = me
                        .fetch(Feature::Funding, &[("symbol", symbol.clone())])
                        .await?;
                    models::funding_snapshot(&symbol, coins)
                        .ok_or_else(|| MarketError::UnknownSymbol(symbol.clone()))
                })
                .await
            })
            .await
    }

    /// The latest Hyperliquid whale positions (one call for all symbols),
    /// cached for `coinglass.cache_secs`: what `/whale` shows.
    pub async fn whale_alerts(&self) -> Result<Arc<Vec<WhalePosition>>, MarketError> {
        let me = self.clone();
        self.inner
            .whales
            .get_or_fetch((), || async move { me.fetch_whales().await.map(Arc::new) })
            .await
    }

    /// The latest whale positions, bypassing the cache: the whale monitor
    /// must see every poll's new positions, not a list up to `cache_secs` old.
    pub async fn whale_alerts_fresh(&self) -> Result<Vec<WhalePosition>, MarketError> {
        self.fetch_whales().await
    }

    async fn fetch_whales(&self) -> Result<Vec<WhalePosition>, MarketError> {
        self.recorded(Feature::Whales, async {
            let raw: Vec<models::RawWhale> = self.fetch(Feature::Whales, &[]).await?;
            raw.into_iter()
                .map(models::whale)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.malformed(Feature::Whales, &e))
        })
        .await
    }

    /// Single liquidation orders (not cached: this is what the monitor polls).
    pub async fn liquidation_orders(
        &self,
        q: &OrderQuery,
    ) -> Result<Vec<LiquidationOrder>, MarketError> {
        let symbol = normalize_symbol(&q.symbol)
            .ok_or_else(|| MarketError::UnknownSymbol(q.symbol.clone()))?;
        let mut query = vec![
            ("exchange", q.exchange.clone()),
            ("symbol", symbol),
            ("min_liquidation_amount", fmt_number(q.min_usd)),
        ];
        if let Some(t) = q.start_ms {
            query.push(("start_time", t.to_string()));
        }
        if let Some(t) = q.end_ms {
            query.push(("end_time", t.to_string()));
        }
        self.recorded(Feature::LiquidationOrders, async {
            let raw: Vec<models::RawLiqOrder> =
                self.fetch(Feature::LiquidationOrders, &query).await?;
            raw.into_iter()
                .map(models::liquidation_order)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.malformed(Feature::LiquidationOrders, &e))
        })
        .await
    }

    /// Aggregated liquidation history, oldest bucket first (not cached).
    pub async fn aggregated_liquidations(
        &self,
        q: &AggregatedQuery,
    ) -> Result<Vec<LiquidationBucket>, MarketError> {
        let symbol = normalize_symbol(&q.symbol)
            .ok_or_else(|| MarketError::UnknownSymbol(q.symbol.clone()))?;
        let query = [
            ("exchange_list", q.exchanges.join(",")),
            ("symbol", symbol),
            ("interval", q.interval.clone()),
            ("limit", q.limit.to_string()),
        ];
        self.recorded(Feature::AggregatedLiquidations, async {
            let raw: Vec<models::RawAggregated> =
                self.fetch(Feature::AggregatedLiquidations, &query).await?;
            let mut buckets: Vec<LiquidationBucket> = raw.into_iter().map(models::bucket).collect();
            buckets.sort_by_key(|b| b.time_ms);
            Ok(buckets)
        })
        .await
    }

    /// Why `feature` is off, if it is: the plan does not include it (with
    /// CoinGlass' message), or there is no API key at all.
    pub fn is_disabled(&self, feature: Feature) -> Option<String> {
        if self.inner.api_key.is_none() {
            return Some(MarketError::NoApiKey.to_string());
        }
        self.health().features[feature.index()].disabled.clone()
    }

    /// Per-feature state and the request budget, for `/status` and STATUS.
    pub fn health(&self) -> MarketHealth {
        let limiter = self.inner.limiter.snapshot_at(Instant::now());
        let h = self.lock_health();
        let features = Feature::ALL
            .iter()
            .map(|f| {
                let st = &h.features[f.index()];
                FeatureHealth {
                    feature: *f,
                    last_success: st.last_success,
                    last_error: st.last_error.clone(),
                    disabled: st.disabled.as_ref().map(|d| plan_reason(&d.message)),
                }
            })
            .collect();
        MarketHealth {
            api_key_configured: self.inner.api_key.is_some(),
            key_rejected: h.key_rejected,
            rate_limit_per_minute: limiter.capacity,
            rate_limit_from_headers: limiter.from_headers,
            tokens_available: limiter.available,
            used_in_window: limiter.last_used,
            requests_made: self.inner.requests.load(Ordering::Relaxed),
            rate_limited_responses: self.inner.too_many.load(Ordering::Relaxed),
            features,
        }
    }

    // -----------------------------------------------------------------------

    fn lock_health(&self) -> MutexGuard<'_, Health> {
        self.inner.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn malformed(&self, feature: Feature, problem: &str) -> MarketError {
        MarketError::Malformed(format!("{}: {}", feature.path(), self.scrub(problem)))
    }

    fn scrub(&self, text: &str) -> String {
        match &self.inner.scrub {
            Some(k) if text.contains(k.as_str()) => text.replace(k.as_str(), "[REDACTED]"),
            _ => text.to_owned(),
        }
    }

    /// Runs `fut` and records its outcome in the feature's health.
    async fn recorded<T>(
        &self,
        feature: Feature,
        fut: impl std::future::Future<Output = Result<T, MarketError>>,
    ) -> Result<T, MarketError> {
        let result = fut.await;
        let mut h = self.lock_health();
        let st = &mut h.features[feature.index()];
        match &result {
            Ok(_) => st.last_success = Some(SystemTime::now()),
            Err(e) => st.last_error = Some((SystemTime::now(), e.to_string())),
        }
        result
    }

    /// One logical call: plan check, then attempts with budget, backoff and
    /// classification; the `data` of a successful envelope, typed.
    async fn fetch<T: DeserializeOwned>(
        &self,
        feature: Feature,
        query: &[(&str, String)],
    ) -> Result<T, MarketError> {
        let data = self.call(feature, query).await?;
        serde_json::from_value(data).map_err(|e| self.malformed(feature, &e.to_string()))
    }

    async fn call(
        &self,
        feature: Feature,
        query: &[(&str, String)],
    ) -> Result<serde_json::Value, MarketError> {
        let Some(key) = self.inner.api_key.clone() else {
            return Err(MarketError::NoApiKey);
        };
        let rechecking = self.plan_gate(feature)?;
        let opts = &self.inner.options;
        let url = format!("{}{}", self.inner.base_url, feature.path());
        let attempts = opts.attempts.max(1);
        let mut last_problem = String::new();
        for attempt in 1..=attempts {
            if let Err(wait) = self.inner.limiter.acquire(opts.max_rate_wait).await {
                return Err(MarketError::RateLimited {
                    retry_after: Some(wait),
                });
            }
            self.inner.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = self.attempt(feature, &url, &key, query).await;
            match outcome {
                Attempt::Data(v) => {
                    self.on_authorised(feature, rechecking);
                    return Ok(v);
                }
                Attempt::Fatal(e) => {
                    self.on_fatal(feature, &e, rechecking);
                    return Err(e);
                }
                Attempt::TooMany(retry_after) => {
                    self.inner.too_many.fetch_add(1, Ordering::Relaxed);
                    let pause = retry_after
                        .unwrap_or(opts.default_retry_after)
                        .min(opts.max_retry_after);
                    self.inner.limiter.block_at(Instant::now(), pause);
                    tracing::debug!(
                        path = feature.path(),
                        attempt,
                        "CoinGlass answered 429; pausing {} ms",
                        pause.as_millis()
                    );
                    if attempt == attempts {
                        return Err(MarketError::RateLimited {
                            retry_after: Some(pause),
                        });
                    }
                    // The next acquire waits out the pause (or gives up).
                }
                Attempt::Transient(problem) => {
                    tracing::debug!(path = feature.path(), attempt, %problem, "CoinGlass request failed");
                    last_problem = problem;
                    if attempt < attempts {
                        tokio::time::sleep(self.backoff(attempt)).await;
                    }
                }
            }
        }
        Err(MarketError::Upstream(format!(
            "{} after {attempts} attempts: {last_problem}",
            feature.path()
        )))
    }

    /// `Err(PlanRestricted)` while `feature` is off; `Ok(true)` when this call
    /// is the periodic re-check of a disabled feature.
    fn plan_gate(&self, feature: Feature) -> Result<bool, MarketError> {
        let mut h = self.lock_health();
        let Some(d) = h.features[feature.index()].disabled.as_mut() else {
            return Ok(false);
        };
        let now = Instant::now();
        if now < d.recheck_at {
            return Err(MarketError::PlanRestricted {
                feature,
                message: d.message.clone(),
            });
        }
        // Exactly one caller re-checks; the others keep getting the answer.
        d.recheck_at = now + self.inner.options.plan_recheck;
        Ok(true)
    }

    fn on_authorised(&self, feature: Feature, rechecking: bool) {
        let mut h = self.lock_health();
        if h.key_rejected {
            h.key_rejected = false;
            tracing::info!("CoinGlass accepts the API key again");
        }
        let st = &mut h.features[feature.index()];
        if st.disabled.take().is_some() || rechecking {
            tracing::info!(
                feature = feature.name(),
                "CoinGlass {feature} available again on this plan"
            );
        }
    }

    fn on_fatal(&self, feature: Feature, err: &MarketError, rechecking: bool) {
        let mut h = self.lock_health();
        match err {
            MarketError::PlanRestricted { message, .. } => {
                let recheck_at = Instant::now() + self.inner.options.plan_recheck;
                let st = &mut h.features[feature.index()];
                // A failed re-check keeps quiet: the warning was given once.
                let first = st.disabled.is_none() && !rechecking;
                st.disabled = Some(Disabled {
                    message: message.clone(),
                    recheck_at,
                });
                if first {
                    tracing::warn!(
                        feature = feature.name(),
                        path = feature.path(),
                        "CoinGlass {feature} disabled: not included in the API plan ({message}); \
                         re-checking in {} min",
                        self.inner.options.plan_recheck.as_secs() / 60
                    );
                } else {
                    tracing::debug!(feature = feature.name(), "{feature} still not in the plan");
                }
            }
            MarketError::InvalidKey => {
                if !h.key_rejected {
                    h.key_rejected = true;
                    tracing::warn!(
                        "CoinGlass rejected the API key: market data unavailable until it is fixed"
                    );
                }
            }
            _ => {
                // Any other answer means the key and the plan passed the check.
                if h.key_rejected {
                    h.key_rejected = false;
                }
                h.features[feature.index()].disabled = None;
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let opts = &self.inner.options;
        let exp = opts
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(opts.backoff_max);
        exp.mul_f64(0.5 + fastrand::f64())
    }

    async fn attempt(
        &self,
        feature: Feature,
        url: &str,
        key: &HeaderValue,
        query: &[(&str, String)],
    ) -> Attempt {
        let resp = match self
            .inner
            .http
            .get(url)
            .header(API_KEY_HEADER, key.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .query(query)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Attempt::Transient(self.describe(&e)),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.observe_limits(&headers);
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Attempt::Transient(self.describe(&e)),
        };
        let retry_after = parse_retry_after(&headers);
        match classify(feature, status, retry_after, &body) {
            Attempt::Fatal(e) => Attempt::Fatal(self.scrub_error(e)),
            Attempt::Transient(t) => Attempt::Transient(self.scrub(&t)),
            other => other,
        }
    }

    fn scrub_error(&self, e: MarketError) -> MarketError {
        match e {
            MarketError::PlanRestricted { feature, message } => MarketError::PlanRestricted {
                feature,
                message: self.scrub(&message),
            },
            MarketError::Api { code, message } => MarketError::Api {
                code: self.scrub(&code),
                message: self.scrub(&message),
            },
            MarketError::Malformed(m) => MarketError::Malformed(self.scrub(&m)),
            MarketError::Upstream(m) => MarketError::Upstream(self.scrub(&m)),
            other => other,
        }
    }

    fn describe(&self, e: &reqwest::Error) -> String {
        let kind = if e.is_timeout() {
            format!("timed out after {} s", self.inner.timeout.as_secs())
        } else if e.is_connect() {
            "connection failed".to_owned()
        } else if e.is_body() || e.is_decode() {
            "answer cut off".to_owned()
        } else {
            "request failed".to_owned()
        };
        // The chain without the URL (it has no key, but keep logs short).
        let mut text = kind;
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        self.scrub(&text)
    }

    fn observe_limits(&self, headers: &HeaderMap) {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        let (max, used) = (num(MAX_LIMIT_HEADER), num(USE_LIMIT_HEADER));
        if max.is_none() && used.is_none() {
            return;
        }
        if let Some(new) = self
            .inner
            .limiter
            .observe_headers_at(Instant::now(), max, used)
        {
            tracing::info!("CoinGlass plan limit: {new} requests/min (from {MAX_LIMIT_HEADER})");
        }
    }
}

fn plan_reason(message: &str) -> String {
    format!("not included in the CoinGlass API plan: {message}")
}

/// `min_liquidation_amount` without a needless `.0`.
fn fmt_number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not worth supporting here).
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Whether a 401/403 `msg` is about the key (rather than the plan).
fn is_key_message(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    let about_plan = [
        "plan",
        "upgrade",
        "subscri",
        "permission",
        "level",
        "not available",
    ]
    .iter()
    .any(|w| m.contains(w));
    m.contains("key") && !about_plan
}

/// Classifies one answer by HTTP status and envelope `code`.
fn classify(feature: Feature, status: u16, retry_after: Option<Duration>, body: &[u8]) -> Attempt {
    if status == 429 {
        return Attempt::TooMany(retry_after);
    }
    if (500..600).contains(&status) {
        let detail = serde_json::from_slice::<Envelope>(body)
            .ok()
            .and_then(|e| e.msg)
            .filter(|m| !m.is_empty())
            .map(|m| format!(" {m}"))
            .unwrap_or_default();
        return Attempt::Transient(format!("HTTP {status}{detail}"));
    }
    let auth_status = status == 401 || status == 403;
    let env = match serde_json::from_slice::<Envelope>(body) {
        Ok(env) => env,
        Err(e) => {
            return if auth_status {
                auth_failure(feature, "")
            } else if (200..300).contains(&status) {
                Attempt::Fatal(MarketError::Malformed(format!("{}: {e}", feature.path())))
            } else {
                Attempt::Fatal(MarketError::Api {
                    code: status.to_string(),
                    message: format!("HTTP {status}"),
                })
            };
        }
    };
    let msg = env.msg.clone().unwrap_or_default();
    let code = env.code.0.clone();
    if auth_status || code == "401" || code == "403" {
        return auth_failure(feature, &msg);
    }
    if code == "429" {
        return Attempt::TooMany(retry_after);
    }
    if !(200..300).contains(&status) {
        return Attempt::Fatal(MarketError::Api {
            code: if code.is_empty() || code == "0" {
                status.to_string()
            } else {
                code
            },
            message: if msg.is_empty() {
                format!("HTTP {status}")
            } else {
                msg
            },
        });
    }
    if env.code.is_success() {
        return match env.data {
            Some(d) if !d.is_null() => Attempt::Data(d),
            _ => Attempt::Fatal(MarketError::Malformed(format!(
                "{}: success without data",
                feature.path()
            ))),
        };
    }
    if code.len() == 3 && code.starts_with('5') {
        return Attempt::Transient(format!("code {code} {msg}"));
    }
    Attempt::Fatal(MarketError::Api { code, message: msg })
}

/// Parses `body` as a `200 OK` answer of `feature` the way a call does: the
/// envelope classification, the typed `data`, and the conversion to the domain
/// types (with `BTC`/`24h` where a call would pass its query). No network, no
/// client state. Only for the fuzz targets in `fuzz/`: not a stable API.
#[doc(hidden)]
pub fn parse_body_for_fuzzing(feature: Feature, body: &[u8]) -> Result<(), MarketError> {
    fn typed<T: DeserializeOwned>(
        feature: Feature,
        data: serde_json::Value,
    ) -> Result<T, MarketError> {
        serde_json::from_value(data)
            .map_err(|e| MarketError::Malformed(format!("{}: {e}", feature.path())))
    }
    let malformed = |e: String| MarketError::Malformed(format!("{}: {e}", feature.path()));
    let data = match classify(feature, 200, None, body) {
        Attempt::Data(v) => v,
        Attempt::Fatal(e) => return Err(e),
        Attempt::Transient(t) => return Err(MarketError::Upstream(t)),
        Attempt::TooMany(retry_after) => return Err(MarketError::RateLimited { retry_after }),
    };
    match feature {
        Feature::SupportedCoins => {
            typed::<Vec<String>>(feature, data)?;
        }
        Feature::ExchangeLiquidations => {
            models::liquidation_summary("BTC", "24h", typed(feature, data)?);
        }
        Feature::Funding => {
            models::funding_snapshot("BTC", typed(feature, data)?);
        }
        Feature::Whales => {
            typed::<Vec<models::RawWhale>>(feature, data)?
                .into_iter()
                .map(models::whale)
                .collect::<Result<Vec<_>, _>>()
                .map_err(malformed)?;
        }
        Feature::LiquidationOrders => {
            typed::<Vec<models::RawLiqOrder>>(feature, data)?
                .into_iter()
                .map(models::liquidation_order)
                .collect::<Result<Vec<_>, _>>()
                .map_err(malformed)?;
        }
        Feature::AggregatedLiquidations => {
            let mut buckets: Vec<_> = typed::<Vec<models::RawAggregated>>(feature, data)?
                .into_iter()
                .map(models::bucket)
                .collect();
            buckets.sort_by_key(|b| b.time_ms);
        }
    }
    Ok(())
}

fn auth_failure(feature: Feature, msg: &str) -> Attempt {
    if is_key_message(msg) {
        Attempt::Fatal(MarketError::InvalidKey)
    } else {
        let message = if msg.trim().is_empty() {
            "access denied".to_owned()
        } else {
            msg.trim().to_owned()
        };
        Attempt::Fatal(MarketError::PlanRestricted { feature, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn classification_checks_status_and_code() {
        let f = Feature::Whales;
        let ok = body(serde_json::json!({"code": "0", "msg": "success", "data": []}));
        assert!(matches!(classify(f, 200, None, &ok), Attempt::Data(_)));

        let plan = body(serde_json::json!({"code": "401", "msg": "Upgrade plan"}));
        for status in [200, 401, 403] {
            match classify(f, status, None, &plan) {
                Attempt::Fatal(MarketError::PlanRestricted { feature, message }) => {
                    assert_eq!(feature, Feature::Whales);
                    assert_eq!(message, "Upgrade plan");
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        let key = body(serde_json::json!({"code": "401", "msg": "API key missing or invalid"}));
        assert!(matches!(
            classify(f, 401, None, &key),
            Attempt::Fatal(MarketError::InvalidKey)
        ));
        let e403 = body(serde_json::json!({"code": "403", "msg": "Invalid API key"}));
        assert!(matches!(
            classify(f, 200, None, &e403),
            Attempt::Fatal(MarketError::InvalidKey)
        ));

        let api = body(serde_json::json!({"code": "40001", "msg": "bad param"}));
        assert!(matches!(
            classify(f, 200, None, &api),
            Attempt::Fatal(MarketError::Api { ref code, .. }) if code == "40001"
        ));
        assert!(matches!(
            classify(f, 502, None, b"<html>"),
            Attempt::Transient(_)
        ));
        let busy = body(serde_json::json!({"code": "500", "msg": "busy"}));
        assert!(matches!(
            classify(f, 200, None, &busy),
            Attempt::Transient(_)
        ));
        let s = Some(Duration::from_secs(3));
        assert!(matches!(classify(f, 429, s, b""), Attempt::TooMany(d) if d == s));
        let tm = body(serde_json::json!({"code": "429", "msg": "Too Many Requests"}));
        assert!(matches!(
            classify(f, 200, None, &tm),
            Attempt::TooMany(None)
        ));
        assert!(matches!(
            classify(f, 200, None, b"{\"code\":\"0\",\"data\":[{"),
            Attempt::Fatal(MarketError::Malformed(_))
        ));
        let nodata = body(serde_json::json!({"code": "0", "msg": "success"}));
        assert!(matches!(
            classify(f, 200, None, &nodata),
            Attempt::Fatal(MarketError::Malformed(_))
        ));
        assert!(matches!(
            classify(f, 404, None, b"not found"),
            Attempt::Fatal(MarketError::Api { ref code, .. }) if code == "404"
        ));
    }

    #[test]
    fn key_versus_plan_messages() {
        assert!(is_key_message("API key missing or invalid"));
        assert!(is_key_message("Invalid API Key"));
        assert!(!is_key_message("Upgrade plan"));
        assert!(!is_key_message(
            "Your API key plan does not include this endpoint"
        ));
        assert!(!is_key_message(""));
    }

    #[test]
    fn retry_after_header() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn numbers_in_queries() {
        assert_eq!(fmt_number(500000.0), "500000");
        assert_eq!(fmt_number(1.5), "1.5");
    }

    #[test]
    fn debug_and_errors_hide_the_key() {
        let cfg = CoinGlassConfig::default();
        let cg = CoinGlass::with_options(&cfg, Some("sekrit-key-123"), ClientOptions::default())
            .unwrap();
        assert!(!format!("{cg:?}").contains("sekrit"));
        assert_eq!(cg.scrub("echo sekrit-key-123"), "echo [REDACTED]");
        let bad =
            CoinGlass::with_options(&cfg, Some("bad\nkey"), ClientOptions::default()).unwrap_err();
        assert!(!bad.to_string().contains("bad\nkey"));
        let none = CoinGlass::with_options(&cfg, None, ClientOptions::default()).unwrap();
        assert!(none.is_disabled(Feature::Funding).is_some());
        assert!(!none.health().api_key_configured);
    }
}
