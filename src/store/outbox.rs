//! The alert outbox and the monitors' memory.
//!
//! An upstream event is recorded, deduplicated, checked against its cooldown,
//! and — if it alerts — written as one alert row plus one delivery row per
//! recipient, all in one transaction, before anything is sent. The delivery
//! task then works through due rows and marks each one after Telegram's answer.

use rusqlite::{params, OptionalExtension};

use super::{now_unix, Store, StoreError};
use crate::alerts::AlertKind;

/// An alert a monitor wants to send.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub kind: AlertKind,
    pub symbol: String,
    /// Cooldowns are per (kind, symbol, direction), e.g. `long`, `short`, `up`.
    pub direction: String,
    /// Stable identity of the upstream event (deduplication, also across restarts).
    pub event_key: String,
    pub text: String,
    pub cooldown_secs: u64,
}

/// What happened to a recorded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Queued for these many recipients (possibly zero).
    Queued { alert_id: i64, recipients: usize },
    /// Seen before: nothing to do.
    Duplicate,
    /// New, but its (kind, symbol, direction) is cooling down: remembered, not sent.
    CoolingDown,
}

/// A delivery that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub alert_id: i64,
    pub chat_id: i64,
    pub text: String,
    pub attempts: u32,
}

/// Outbox figures for `/status` and STATUS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub pending: u64,
    pub failed: u64,
    pub sent_24h: u64,
}

impl Store {
    /// Records an event and, unless it is a duplicate or cooling down, queues
    /// it for every active subscriber of (symbol, kind) plus `extra_chats`.
    pub fn record_alert(
        &self,
        alert: &NewAlert,
        extra_chats: &[i64],
    ) -> Result<Recorded, StoreError> {
        let now = now_unix();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let fresh = tx.execute(
            "INSERT OR IGNORE INTO seen_events (key, seen_at) VALUES (?1, ?2)",
            params![alert.event_key, now],
        )?;
        if fresh == 0 {
            return Ok(Recorded::Duplicate);
        }
        let until: Option<i64> = tx
            .query_row(
                "SELECT until FROM cooldowns WHERE kind = ?1 AND symbol = ?2 AND direction = ?3",
                params![alert.kind.as_str(), alert.symbol, alert.direction],
                |r| r.get(0),
            )
            .optional()?;
        if until.is_some_and(|u| u > now) {
            tx.commit()?;
            return Ok(Recorded::CoolingDown);
        }
        tx.execute(
            "INSERT INTO alerts (kind, symbol, event_key, text, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![alert.kind.as_str(), alert.symbol, alert.event_key, alert.text, now],
        )?;
        let alert_id = tx.last_insert_rowid();
        let mut recipients = tx.execute(
            "INSERT OR IGNORE INTO deliveries (alert_id, chat_id, next_attempt_at)
             SELECT ?1, s.chat_id, ?4 FROM subscriptions s JOIN chats c ON c.id = s.chat_id
             WHERE s.symbol = ?2 AND s.kind = ?3 AND c.active = 1",
            params![alert_id, alert.symbol, alert.kind.as_str(), now],
        )?;
        for chat in extra_chats {
            recipients += tx.execute(
                "INSERT OR IGNORE INTO deliveries (alert_id, chat_id, next_attempt_at) VALUES (?1, ?2, ?3)",
                params![alert_id, chat, now],
            )?;
        }
        tx.execute(
            "INSERT INTO cooldowns (kind, symbol, direction, until) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(kind, symbol, direction) DO UPDATE SET until = excluded.until",
            params![
                alert.kind.as_str(),
                alert.symbol,
                alert.direction,
                now + alert.cooldown_secs as i64
            ],
        )?;
        tx.commit()?;
        Ok(Recorded::Queued {
            alert_id,
            recipients,
        })
    }

    /// Up to `limit` deliveries due now, oldest alert first.
    pub fn due_deliveries(&self, limit: usize) -> Result<Vec<Due>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT d.alert_id, d.chat_id, a.text, d.attempts FROM deliveries d
             JOIN alerts a ON a.id = d.alert_id
             WHERE d.status = 'pending' AND d.next_attempt_at <= ?1
             ORDER BY d.alert_id, d.chat_id LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![now_unix(), limit as i64], |r| {
                Ok(Due {
                    alert_id: r.get(0)?,
                    chat_id: r.get(1)?,
                    text: r.get(2)?,
                    attempts: r.get::<_, i64>(3)? as u32,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Seconds until the next pending delivery is due (`None`: nothing pending).
    pub fn next_delivery_in(&self) -> Result<Option<i64>, StoreError> {
        let next: Option<i64> = self.conn().query_row(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )?;
        Ok(next.map(|n| (n - now_unix()).max(0)))
    }

    /// Telegram accepted the message (sent to `delivered_to`, which differs from
    /// the chat after a group→supergroup migration).
    pub fn delivery_sent(
        &self,
        alert_id: i64,
        chat_id: i64,
        delivered_to: i64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE deliveries SET status = 'sent', attempts = attempts + 1, sent_at = ?3,
                 delivered_to = ?4, last_error = NULL
             WHERE alert_id = ?1 AND chat_id = ?2",
            params![alert_id, chat_id, now_unix(), delivered_to],
        )?;
        Ok(())
    }

    /// A failed attempt: retry at `retry_in_secs`, or give up (`final_status`
    /// `failed` or `skipped`), keeping the row and its error.
    pub fn delivery_failed(
        &self,
        alert_id: i64,
        chat_id: i64,
        error: &str,
        retry_in_secs: Option<i64>,
        final_status: &str,
    ) -> Result<(), StoreError> {
        let now = now_unix();
        let conn = self.conn();
        match retry_in_secs {
            Some(s) => conn.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?3, next_attempt_at = ?4
                 WHERE alert_id = ?1 AND chat_id = ?2",
                params![alert_id, chat_id, error, now + s],
            )?,
            None => conn.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?3, status = ?4
                 WHERE alert_id = ?1 AND chat_id = ?2",
                params![alert_id, chat_id, error, final_status],
            )?,
        };
        Ok(())
    }

    /// Outbox figures.
    pub fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let conn = self.conn();
        let (pending, failed, sent): (i64, i64, i64) = conn.query_row(
            "SELECT
                COALESCE(SUM(status = 'pending'), 0),
                COALESCE(SUM(status = 'failed'), 0),
                COALESCE(SUM(status = 'sent' AND sent_at >= ?1), 0)
             FROM deliveries",
            [now_unix() - 86_400],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(OutboxStats {
            pending: pending as u64,
            failed: failed as u64,
            sent_24h: sent as u64,
        })
    }

    /// Symbols with at least one active subscriber for `kind`.
    pub fn subscribed_symbols(&self, kind: AlertKind) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT s.symbol, COUNT(*) AS n FROM subscriptions s JOIN chats c ON c.id = s.chat_id
             WHERE s.kind = ?1 AND c.active = 1 GROUP BY s.symbol ORDER BY n DESC, s.symbol",
        )?;
        let rows = stmt
            .query_map([kind.as_str()], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(rows)
    }

    /// The funding zone last seen for `symbol` (-1, 0, 1).
    pub fn funding_zone(&self, symbol: &str) -> Result<i64, StoreError> {
        let z: Option<i64> = self
            .conn()
            .query_row(
                "SELECT zone FROM funding_zones WHERE symbol = ?1",
                [symbol],
                |r| r.get(0),
            )
            .optional()?;
        Ok(z.unwrap_or(0))
    }

    /// Records the funding zone of `symbol`.
    pub fn set_funding_zone(&self, symbol: &str, zone: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO funding_zones (symbol, zone, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(symbol) DO UPDATE SET zone = excluded.zone, updated_at = excluded.updated_at",
            params![symbol, zone, now_unix()],
        )?;
        Ok(())
    }

    /// Forgets seen events, expired cooldowns and finished alerts older than
    /// `retention_days`. Pending deliveries are never pruned.
    pub fn prune(&self, retention_days: u64) -> Result<usize, StoreError> {
        let cutoff = now_unix() - (retention_days as i64) * 86_400;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut n = tx.execute("DELETE FROM seen_events WHERE seen_at < ?1", [cutoff])?;
        n += tx.execute("DELETE FROM cooldowns WHERE until < ?1", [now_unix()])?;
        n += tx.execute(
            "DELETE FROM alerts WHERE created_at < ?1
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.alert_id = alerts.id AND d.status = 'pending')",
            [cutoff],
        )?;
        tx.commit()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(key: &str, dir: &str) -> NewAlert {
        NewAlert {
            kind: AlertKind::Whales,
            symbol: "BTC".into(),
            direction: dir.into(),
            event_key: key.into(),
            text: "whale".into(),
            cooldown_secs: 300,
        }
    }

    #[test]
    fn dedup_cooldown_and_fan_out() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("c.db")).unwrap();
        for chat in [1, 2, 3] {
            s.upsert_chat(chat, "private", "").unwrap();
        }
        s.subscribe(1, "BTC", &[AlertKind::Whales]).unwrap();
        s.subscribe(2, "BTC", &[AlertKind::Whales]).unwrap();
        s.subscribe(3, "ETH", &[AlertKind::Whales]).unwrap();
        s.deactivate_chat(2).unwrap();
        let r = s.record_alert(&alert("k1", "long"), &[-100]).unwrap();
        assert!(matches!(r, Recorded::Queued { recipients: 2, .. }), "{r:?}");
        assert_eq!(
            s.record_alert(&alert("k1", "long"), &[]).unwrap(),
            Recorded::Duplicate
        );
        assert_eq!(
            s.record_alert(&alert("k2", "long"), &[]).unwrap(),
            Recorded::CoolingDown
        );
        assert!(matches!(
            s.record_alert(&alert("k3", "short"), &[]).unwrap(),
            Recorded::Queued { recipients: 1, .. }
        ));
        let due = s.due_deliveries(10).unwrap();
        assert_eq!(
            due.iter().map(|d| d.chat_id).collect::<Vec<_>>(),
            vec![-100, 1, 1]
        );
        s.delivery_sent(due[0].alert_id, -100, -100).unwrap();
        s.delivery_failed(due[1].alert_id, 1, "502", Some(60), "failed")
            .unwrap();
        s.delivery_failed(due[2].alert_id, 1, "chat not found", None, "failed")
            .unwrap();
        assert!(s.due_deliveries(10).unwrap().is_empty());
        let st = s.outbox_stats().unwrap();
        assert_eq!((st.pending, st.failed, st.sent_24h), (1, 1, 1));
        assert_eq!(
            s.subscribed_symbols(AlertKind::Whales).unwrap(),
            vec!["BTC", "ETH"]
        );
    }
}
