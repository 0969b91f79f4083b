//! Classifies Bot API failures into what the service does about them, with
//! descriptions that are safe to log (no token).

use std::time::Duration;

use teloxide::{ApiError, RequestError};

use crate::secrets::Redactor;

/// What a failed request means for the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 409: another `getUpdates` poller, or a webhook, uses this token.
    Conflict { webhook: bool, description: String },
    /// 401/404 on the bot URL: the token is wrong or revoked.
    InvalidToken,
    /// 429: wait this long.
    RetryAfter(Duration),
    /// 403: the user blocked the bot or it was removed from the chat.
    Forbidden(String),
    /// The group became a supergroup with this id.
    Migrated(i64),
    /// Network trouble, timeouts, 5xx, bad JSON: retry with backoff.
    Transient(String),
    /// Any other API error (a bad request of ours).
    Other(String),
}

impl Failure {
    /// Classifies `err`, scrubbing secrets from every description.
    pub fn classify(err: &RequestError, redactor: &Redactor) -> Self {
        match err {
            RequestError::Api(api) => classify_api(api, redactor),
            RequestError::MigrateToChatId(id) => Failure::Migrated(id.0),
            RequestError::RetryAfter(s) => Failure::RetryAfter(s.duration()),
            RequestError::Network(e) => {
                let mut text = error_chain(e.as_ref());
                if e.is_timeout() {
                    text = format!("timed out: {text}");
                }
                Failure::Transient(redactor.redact(&text))
            }
            // serde's message can quote the input, which may echo a secret.
            RequestError::InvalidJson { source, .. } => Failure::Transient(
                redactor.redact(&format!("malformed answer from the Bot API: {source}")),
            ),
            RequestError::Io(e) => Failure::Transient(redactor.redact(&e.to_string())),
        }
    }
}

/// A short, secret-free description of a failure.
pub fn describe(f: &Failure) -> String {
    match f {
        Failure::Conflict { description, .. } => description.clone(),
        Failure::InvalidToken => "the bot token was rejected (401)".into(),
        Failure::RetryAfter(d) => format!("429 Too Many Requests, retry after {} s", d.as_secs()),
        Failure::Forbidden(t) | Failure::Transient(t) | Failure::Other(t) => t.clone(),
        Failure::Migrated(id) => format!("the group moved to supergroup {id}"),
    }
}

fn classify_api(api: &ApiError, redactor: &Redactor) -> Failure {
    let text = redactor.redact(&api.to_string());
    match api {
        ApiError::TerminatedByOtherGetUpdates => Failure::Conflict {
            webhook: false,
            description: text,
        },
        ApiError::InvalidToken => Failure::InvalidToken,
        ApiError::BotBlocked
        | ApiError::BotKicked
        | ApiError::BotKickedFromSupergroup
        | ApiError::UserDeactivated
        | ApiError::CantInitiateConversation
        | ApiError::CantTalkWithBots => Failure::Forbidden(text),
        ApiError::Unknown(raw) => {
            let raw = redactor.redact(raw);
            // teloxide maps texts by exact match; any "Conflict:" is a conflict
            // (the webhook text does not match its CantGetUpdates variant).
            if raw.starts_with("Conflict:") {
                Failure::Conflict {
                    webhook: raw.contains("webhook"),
                    description: raw,
                }
            } else if raw.starts_with("Forbidden:") {
                Failure::Forbidden(raw)
            } else if is_server_error(&raw) {
                Failure::Transient(raw)
            } else {
                Failure::Other(raw)
            }
        }
        _ => Failure::Other(text),
    }
}

/// `error` and its sources, joined: reqwest's own message ("error sending
/// request") says nothing about the cause (refused, DNS, TLS, timeout).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn is_server_error(text: &str) -> bool {
    [
        "Bad Gateway",
        "Internal Server Error",
        "Service Unavailable",
        "Gateway Timeout",
    ]
    .iter()
    .any(|s| text.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(text: &str) -> Failure {
        let e: ApiError = serde_json::from_value(serde_json::Value::String(text.into())).unwrap();
        Failure::classify(&RequestError::Api(e), &Redactor::default())
    }

    #[test]
    fn conflicts_are_recognised_in_both_forms() {
        assert!(matches!(
            api("Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"),
            Failure::Conflict { webhook: false, .. }
        ));
        assert!(matches!(
            api("Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"),
            Failure::Conflict { webhook: true, .. }
        ));
        assert!(matches!(
            api("Conflict: terminated by setWebhook request"),
            Failure::Conflict { .. }
        ));
    }

    #[test]
    fn malformed_answers_are_redacted() {
        let token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
        let raw = format!("{{\"ok\":false,\"parameters\":{{\"retry_after\":\"{token}\"}}}}");
        let source = serde_json::from_str::<u32>(&format!("\"{token}\"")).unwrap_err();
        let err = RequestError::InvalidJson {
            source: std::sync::Arc::new(source),
            raw: raw.into(),
        };
        let redactor = Redactor::new(vec![crate::secrets::Secret::new_for_tests(token)]);
        let Failure::Transient(text) = Failure::classify(&err, &redactor) else {
            panic!("not transient")
        };
        assert!(!text.contains("AAHdq"), "{text}");
    }

    #[test]
    fn other_failures() {
        assert_eq!(api("Unauthorized"), Failure::InvalidToken);
        assert!(matches!(
            api("Forbidden: bot was blocked by the user"),
            Failure::Forbidden(_)
        ));
        assert!(matches!(api("Bad Gateway"), Failure::Transient(_)));
        assert!(matches!(
            api("Bad Request: chat not found"),
            Failure::Other(_)
        ));
    }
}
