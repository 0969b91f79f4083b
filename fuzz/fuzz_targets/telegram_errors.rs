//! Bot API answers (arbitrary JSON or text) → teloxide's `ApiError` /
//! `RequestError`, built the way teloxide builds them from a response →
//! `Failure::classify`.
//!
//! teloxide's response type is crate-private, so the `{"ok":false,…}` →
//! `RequestError` step is mirrored here from teloxide-core 0.13
//! (`net/telegram_response.rs`): `parameters` wins (RetryAfter /
//! MigrateToChatId), otherwise `description` becomes `ApiError`.
//! `RequestError::Network` needs a real `reqwest::Error` and is not fuzzed.
//!
//! Invariants: no panic; no description contains the bot token or the API key
//! (both are in the redactor, as in the service).
#![no_main]

use std::sync::{Arc, OnceLock};

use cryptosat::secrets::{Redactor, Secrets};
use cryptosat::telegram::errors::Failure;
use libfuzzer_sys::fuzz_target;
use teloxide::types::ResponseParameters;
use teloxide::{ApiError, RequestError};

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const TOKEN_SECRET: &str = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const API_KEY: &str = "cg-fuzz-key-0123456789abcdef";

fn redactor() -> &'static Redactor {
    static R: OnceLock<Redactor> = OnceLock::new();
    R.get_or_init(|| {
        std::env::remove_var("CREDENTIALS_DIRECTORY");
        std::env::set_var("CRYPTOSAT_TELEGRAM_TOKEN", TOKEN);
        std::env::set_var("CRYPTOSAT_COINGLASS_API_KEY", API_KEY);
        Secrets::load().expect("test secrets load").redactor()
    })
}

fn check(err: &RequestError) {
    let f = Failure::classify(err, redactor());
    let text = format!("{f:?}");
    assert!(
        !text.contains(TOKEN_SECRET) && !text.contains(API_KEY),
        "secret in {text}"
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The description alone, as teloxide maps it (exact texts and Unknown).
    if let Ok(api) = serde_json::from_value::<ApiError>(serde_json::Value::String(text.to_string()))
    {
        check(&RequestError::Api(api));
    }
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(v) if v.get("ok") == Some(&serde_json::Value::Bool(false)) => {
            let params = v
                .get("parameters")
                .filter(|p| !p.is_null())
                .map(|p| serde_json::from_value::<ResponseParameters>(p.clone()));
            let description = v
                .get("description")
                .map(|d| serde_json::from_value::<ApiError>(d.clone()));
            let err = match (params, description) {
                (Some(Ok(ResponseParameters::RetryAfter(s))), Some(Ok(_))) => {
                    RequestError::RetryAfter(s)
                }
                (Some(Ok(ResponseParameters::MigrateToChatId(c))), Some(Ok(_))) => {
                    RequestError::MigrateToChatId(c)
                }
                (None, Some(Ok(api))) => RequestError::Api(api),
                (_, Some(Err(e))) | (Some(Err(e)), _) => RequestError::InvalidJson {
                    source: Arc::new(e),
                    raw: text.clone().into(),
                },
                (_, None) => return,
            };
            check(&err);
        }
        Ok(_) => {}
        Err(e) => check(&RequestError::InvalidJson {
            source: Arc::new(e),
            raw: text.clone().into(),
        }),
    }
    check(&RequestError::Io(Arc::new(std::io::Error::other(text.to_string()))));
});
