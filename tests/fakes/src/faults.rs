//! Fault injection shared by both fakes.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

/// One injected fault, applied to a single request.
///
/// Serialized with a `kind` tag, e.g. `{"kind":"too_many_requests","retry_after":3}`
/// (this is the form the control API of the binary accepts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer HTTP 429 with `retry_after` seconds (Telegram: `parameters.retry_after`).
    TooManyRequests {
        /// Seconds the client is told to wait.
        retry_after: u32,
    },
    /// Answer with a 5xx status (502 Bad Gateway is the usual one).
    ServerError {
        /// HTTP status, e.g. 500, 502, 503, 504.
        status: u16,
    },
    /// Sleep this long before answering normally (to exceed client timeouts).
    Delay {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// Send the response headers, then abort the connection mid-body.
    DropConnection,
    /// Answer HTTP 200 with a truncated, unparsable JSON body.
    MalformedJson,
}

impl Fault {
    /// The HTTP status text used for a 5xx fault.
    pub(crate) fn server_error_text(status: u16) -> &'static str {
        match status {
            500 => "Internal Server Error",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "Server Error",
        }
    }
}

/// Random faults for soak tests; every probability is in `0.0..=1.0` and is
/// checked per request with a seeded RNG, so a run is reproducible.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RandomFaults {
    /// RNG seed.
    pub seed: u64,
    /// Probability of a 502.
    pub p_server_error: f64,
    /// Probability of a 429.
    pub p_too_many_requests: f64,
    /// `retry_after` used for random 429s (seconds).
    pub retry_after: u32,
    /// Probability of a delayed answer.
    pub p_delay: f64,
    /// Delay used for random delays (milliseconds).
    pub delay_ms: u64,
    /// Probability of a dropped connection.
    pub p_drop_connection: f64,
    /// Probability of a malformed JSON body.
    pub p_malformed_json: f64,
}

/// SplitMix64: tiny, deterministic, good enough for fault dice.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Clone)]
struct Rule {
    /// Lower-cased method name / path; `None` matches every request.
    target: Option<String>,
    fault: Fault,
    remaining: u32,
}

/// Pending faults of one fake.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    rules: Vec<Rule>,
    random: Option<(RandomFaults, Rng)>,
}

impl FaultPlan {
    /// Queue `fault` for the next `times` requests to `target` (all if `None`).
    pub(crate) fn add(&mut self, target: Option<&str>, fault: Fault, times: u32) {
        if times == 0 {
            return;
        }
        self.rules.push(Rule {
            target: target.map(str::to_ascii_lowercase),
            fault,
            remaining: times,
        });
    }

    /// Enable (or with `None` disable) random faults.
    pub(crate) fn set_random(&mut self, random: Option<RandomFaults>) {
        self.random = random.map(|r| {
            let rng = Rng(r.seed);
            (r, rng)
        });
    }

    /// Forget every queued fault and random faults.
    pub(crate) fn clear(&mut self) {
        self.rules.clear();
        self.random = None;
    }

    /// The fault to apply to the next request to `key` (lower-cased), if any.
    pub(crate) fn next(&mut self, key: &str) -> Option<Fault> {
        let key = key.to_ascii_lowercase();
        if let Some(pos) = self
            .rules
            .iter()
            .position(|r| r.target.as_deref().is_none_or(|t| t == key))
        {
            let rule = &mut self.rules[pos];
            rule.remaining -= 1;
            let fault = rule.fault.clone();
            if rule.remaining == 0 {
                self.rules.remove(pos);
            }
            return Some(fault);
        }
        let (cfg, rng) = self.random.as_mut()?;
        let roll = rng.next_f64();
        let mut acc = 0.0;
        let table = [
            (cfg.p_server_error, Fault::ServerError { status: 502 }),
            (
                cfg.p_too_many_requests,
                Fault::TooManyRequests {
                    retry_after: cfg.retry_after.max(1),
                },
            ),
            (cfg.p_delay, Fault::Delay { ms: cfg.delay_ms }),
            (cfg.p_drop_connection, Fault::DropConnection),
            (cfg.p_malformed_json, Fault::MalformedJson),
        ];
        for (p, fault) in table {
            acc += p;
            if roll < acc {
                return Some(fault);
            }
        }
        None
    }
}

/// A response whose body errors after the headers were sent, so hyper aborts
/// the connection and the client sees an incomplete message.
pub(crate) fn dropped_connection() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("connection dropped"))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("static response parts are valid")
}

/// A 200 response with a truncated JSON body.
pub(crate) fn malformed_json(prefix: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(prefix))
        .expect("static response parts are valid")
}

/// Sleep for a `Delay` fault.
pub(crate) async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_count_down_and_match_targets() {
        let mut plan = FaultPlan::default();
        plan.add(Some("SendMessage"), Fault::ServerError { status: 502 }, 2);
        assert_eq!(plan.next("getme"), None);
        assert!(plan.next("sendmessage").is_some());
        assert!(plan.next("SENDMESSAGE").is_some());
        assert_eq!(plan.next("sendmessage"), None);
    }

    #[test]
    fn random_faults_are_reproducible() {
        let cfg = RandomFaults {
            seed: 7,
            p_server_error: 0.5,
            ..RandomFaults::default()
        };
        let run = || {
            let mut plan = FaultPlan::default();
            plan.set_random(Some(cfg.clone()));
            (0..50)
                .map(|_| plan.next("x").is_some())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let hits = a.iter().filter(|b| **b).count();
        assert!((10..40).contains(&hits), "{hits}");
    }
}
