//! CoinGlass: does the key work, what rate limit does the plan have, which
//! monitors does it allow.
//!
//! This deliberately bypasses the shared CoinGlass client in `crate::market`
//! (its cache and rate limiter): doctor runs as a separate, short-lived
//! process whose few requests must reach the API and whose raw answers
//! (status, envelope `code`, headers) are what it reports.

use std::time::Duration;

use serde_json::{json, Value};

use super::Check;
use crate::config::CoinGlassConfig;
use crate::secrets::{Redactor, Secret, PACKAGED_API_KEY_FILE};

const PATH_SUPPORTED_COINS: &str = "/api/futures/supported-coins";
const PATH_WHALE_ALERT: &str = "/api/hyperliquid/whale-alert";
const PATH_LIQUIDATION_ORDER: &str = "/api/futures/liquidation/order";

/// One CoinGlass answer, reduced to what doctor reports.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The envelope's `code` (a string in v4; a number is accepted too).
    code: Option<String>,
    msg: String,
    max_limit: Option<u32>,
    data_len: Option<usize>,
}

impl Answer {
    fn success(&self) -> bool {
        self.status == 200 && self.code.as_deref() == Some("0")
    }

    /// An endpoint outside the plan answers 401 with a message (or, per user
    /// reports, an envelope code other than "0" with an "upgrade" message).
    fn not_in_plan(&self) -> bool {
        let msg = self.msg.to_ascii_lowercase();
        self.status == 401
            || self.status == 403
            || (self.code.as_deref() != Some("0")
                && ["plan", "upgrade", "permission"]
                    .iter()
                    .any(|w| msg.contains(w)))
    }

    fn describe(&self) -> String {
        format!(
            "HTTP {}, code {}, \"{}\"",
            self.status,
            self.code.as_deref().unwrap_or("?"),
            self.msg
        )
    }
}

async fn get(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    query: &[(&str, &str)],
    key: &Secret,
    redactor: &Redactor,
) -> Result<Answer, String> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let resp = http
        .get(&url)
        .query(query)
        .header("CG-API-KEY", key.expose())
        .send()
        .await
        .map_err(|e| redactor.redact(&error_chain(&e)))?;
    let status = resp.status().as_u16();
    let max_limit = resp
        .headers()
        .get("API-KEY-MAX-LIMIT")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let code = match body.get("code") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let msg = body
        .get("msg")
        .and_then(Value::as_str)
        .map(|m| redactor.redact(m))
        .unwrap_or_default();
    let data_len = body.get("data").and_then(Value::as_array).map(Vec::len);
    Ok(Answer {
        status,
        code,
        msg,
        max_limit,
        data_len,
    })
}

fn error_chain(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn plan_name(per_minute: u32) -> &'static str {
    match per_minute {
        30 => "Hobbyist",
        80 => "Startup",
        300 => "Standard",
        1200 => "Professional",
        _ => "custom plan",
    }
}

/// `coinglass` and `coinglass_plan`.
///
/// `coinglass` details: `base_url`, `http_status`, `supported_coins`,
/// `rate_limit_per_minute` (from `API-KEY-MAX-LIMIT`, null if absent), `plan`,
/// `configured_requests_per_minute`.
///
/// `coinglass_plan` details: `monitors`, an object mapping `liquidations`,
/// `whales`, `funding` to `available`, `not_in_plan` or `unknown`.
pub(super) async fn check(
    cfg: &CoinGlassConfig,
    key: Option<&Secret>,
    redactor: &Redactor,
) -> Vec<Check> {
    let Some(key) = key else {
        return vec![
            Check::skip("coinglass", "no API key (see api_key)"),
            Check::skip("coinglass_plan", "no API key (see api_key)"),
        ];
    };
    let base = &cfg.base_url;
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(cfg.request_timeout_secs))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return vec![
                Check::fail("coinglass", format!("cannot build the HTTP client: {e}")),
                Check::skip("coinglass_plan", "needs a working API key"),
            ]
        }
    };
    let key_fix = format!(
        "copy the key from your CoinGlass account (API key page), put it into {PACKAGED_API_KEY_FILE} (one line), then: systemctl restart cryptosat"
    );
    let answer = match get(&http, base, PATH_SUPPORTED_COINS, &[], key, redactor).await {
        Ok(a) => a,
        Err(why) => {
            return vec![
                Check::fail("coinglass", format!("cannot reach CoinGlass at {base}: {why}"))
                    .fix("check DNS, firewall and proxy from this host; coinglass.base_url is set in the config file")
                    .details(json!({ "base_url": base, "http_status": null })),
                Check::skip("coinglass_plan", "needs a reachable CoinGlass"),
            ]
        }
    };
    let plan = answer.max_limit.map(plan_name);
    let details = json!({
        "base_url": base,
        "http_status": answer.status,
        "supported_coins": answer.data_len,
        "rate_limit_per_minute": answer.max_limit,
        "plan": plan,
        "configured_requests_per_minute": cfg.requests_per_minute,
    });
    let skip_plan = |why: &str| Check::skip("coinglass_plan", why.to_owned());
    if !answer.success() {
        let first = match answer.status {
            401 | 403 => Check::fail(
                "coinglass",
                format!("CoinGlass rejected the API key ({})", answer.describe()),
            )
            .fix(key_fix),
            429 => Check::warn(
                "coinglass",
                format!(
                    "rate limited right now ({}): the plan's budget is used up, probably by the running service",
                    answer.describe()
                ),
            )
            .fix("nothing, if it passes; if it persists, lower coinglass.requests_per_minute"),
            500..=599 => Check::warn(
                "coinglass",
                format!("CoinGlass has trouble ({}); the bot retries", answer.describe()),
            ),
            _ => Check::fail(
                "coinglass",
                format!("unexpected answer to {PATH_SUPPORTED_COINS}: {}", answer.describe()),
            )
            .fix("check coinglass.base_url (it must be the v4 API, https://open-api-v4.coinglass.com)"),
        };
        return vec![first.details(details), skip_plan("needs a working API key")];
    }
    let limit = match (answer.max_limit, plan) {
        (Some(max), Some(plan)) => format!("plan limit {max} requests/min ({plan})"),
        _ => "no API-KEY-MAX-LIMIT header, plan limit unknown".to_owned(),
    };
    let mut first = Check::ok(
        "coinglass",
        format!(
            "the API key works ({} supported coins); {limit}",
            answer.data_len.unwrap_or(0)
        ),
    );
    if let Some(max) = answer.max_limit.filter(|m| cfg.requests_per_minute > *m) {
        first.notes.push(format!(
            "coinglass.requests_per_minute = {} is above the plan's {max}: the service corrects it at run time; set it to {max} to match",
            cfg.requests_per_minute
        ));
    }
    vec![
        first.details(details),
        plan_check(&http, base, key, redactor).await,
    ]
}

/// A monitor and the endpoint that tells whether the plan allows it.
struct MonitorProbe {
    /// Key in `details.monitors`.
    id: &'static str,
    /// Its name in sentences ("the whale monitor").
    name: &'static str,
    path: &'static str,
    query: &'static [(&'static str, &'static str)],
    /// The cheapest plan that has it.
    needs: &'static str,
}

/// Which monitors the plan allows, by asking each monitor's endpoint once.
async fn plan_check(
    http: &reqwest::Client,
    base: &str,
    key: &Secret,
    redactor: &Redactor,
) -> Check {
    let probes = [
        MonitorProbe {
            id: "liquidations",
            name: "liquidation",
            path: PATH_LIQUIDATION_ORDER,
            query: &[("exchange", "Binance"), ("symbol", "BTC")],
            needs: "Standard",
        },
        MonitorProbe {
            id: "whales",
            name: "whale",
            path: PATH_WHALE_ALERT,
            query: &[],
            needs: "Startup",
        },
    ];
    let mut monitors = serde_json::Map::new();
    // Funding rates are on every plan (CoinGlass v4 docs): not spent a request on.
    monitors.insert("funding".into(), json!("available"));
    let mut missing: Vec<String> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    for MonitorProbe {
        id,
        name,
        path,
        query,
        needs,
    } in probes
    {
        let state = match get(http, base, path, query, key, redactor).await {
            Ok(a) if a.success() => "available",
            Ok(a) if a.not_in_plan() => {
                missing.push(name.to_owned());
                reasons.push(format!(
                    "{path} answered {} (needs {needs} or higher)",
                    a.describe()
                ));
                "not_in_plan"
            }
            Ok(a) => {
                unknown.push(format!("{name}: {}", a.describe()));
                "unknown"
            }
            Err(why) => {
                unknown.push(format!("{name}: {why}"));
                "unknown"
            }
        };
        monitors.insert(id.into(), json!(state));
    }
    let details = json!({ "monitors": Value::Object(monitors) });
    if !missing.is_empty() {
        let (names, verb) = match missing.as_slice() {
            [one] => (format!("the {one} monitor is"), "it"),
            many => (format!("the {} monitors are", many.join(" and ")), "they"),
        };
        return Check::warn(
            "coinglass_plan",
            format!("{names} unavailable on this plan: {}", reasons.join("; ")),
        )
        .fix(format!(
            "upgrade the CoinGlass plan (https://www.coinglass.com/pricing), or accept it: the bot runs without {verb} (those commands and alerts stay off)"
        ))
        .notes(unknown)
        .details(details);
    }
    if !unknown.is_empty() {
        return Check::warn(
            "coinglass_plan",
            format!(
                "could not tell whether the plan allows: {}",
                unknown.join("; ")
            ),
        )
        .fix("run doctor again in a minute")
        .details(details);
    }
    Check::ok(
        "coinglass_plan",
        "this plan allows every monitor: liquidations, whales, funding rates",
    )
    .details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_restrictions_are_recognised() {
        let a = |status, code: &str, msg: &str| Answer {
            status,
            code: Some(code.into()),
            msg: msg.into(),
            max_limit: None,
            data_len: None,
        };
        assert!(a(401, "401", "Upgrade plan").not_in_plan());
        assert!(a(200, "40001", "Please upgrade your plan").not_in_plan());
        assert!(!a(200, "0", "success").not_in_plan());
        assert!(a(200, "0", "success").success());
        assert!(!a(500, "500", "Internal Server Error").not_in_plan());
        assert_eq!(plan_name(80), "Startup");
    }
}
