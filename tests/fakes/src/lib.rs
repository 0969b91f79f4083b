//! Fake Telegram Bot API and CoinGlass v4 servers for CryptoSat's tests.
//!
//! Both fakes bind to `127.0.0.1`, serve from a tokio task and are driven by
//! the test through methods on [`FakeTelegram`] and [`FakeCoinGlass`]. Nothing
//! in this crate talks to the real services.
//!
//! The binary `cryptosat-fakes` starts both fakes plus a small HTTP control
//! API so shell-driven system tests can drive them with `curl`.
//!
//! ```no_run
//! use std::time::Duration;
//! use cryptosat_fakes::{ChatSpec, FakeCoinGlass, FakeTelegram, WhaleAlert};
//!
//! # async fn demo() {
//! let tg = FakeTelegram::start("123:TEST").await;
//! let cg = FakeCoinGlass::start("cg-key").await;
//! // Point the bot at tg.base_url() and cg.base_url(), then:
//! tg.push_message(ChatSpec::private(42), 42, "/whale");
//! cg.push_whale(WhaleAlert::new("0xabc", "BTC", 30.0, 3_000_000.0, 1, 1_700_000_000_000));
//! let reply = tg
//!     .wait_for_sent(|m| m.chat_id == 42, Duration::from_secs(10))
//!     .await
//!     .expect("the bot answered");
//! assert!(reply.text.contains("BTC"));
//! # }
//! ```

pub mod coinglass;
pub mod faults;
mod server;
pub mod telegram;

pub use coinglass::{
    AggregatedLiquidation, ExchangeLiquidation, FakeCoinGlass, FundingEntry, LiquidationOrder,
    WhaleAlert,
};
pub use faults::{Fault, RandomFaults};
pub use telegram::{ChatSpec, FakeTelegram, RateLimits, SentMessage};
