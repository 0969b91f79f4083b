//! Chats and their subscriptions.

use rusqlite::{params, OptionalExtension};

use super::{now_unix, Store, StoreError};
use crate::alerts::AlertKind;

/// A subscription of a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub symbol: String,
    pub kind: AlertKind,
}

/// Counts for `/status` and STATUS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberCounts {
    /// Active chats with at least one subscription.
    pub chats: u64,
    /// Subscriptions of active chats.
    pub subscriptions: u64,
    /// Chats marked inactive (blocked the bot, removed it).
    pub inactive_chats: u64,
}

impl Store {
    /// Records a chat the bot has heard from (and marks it active again).
    pub fn upsert_chat(&self, id: i64, kind: &str, title: &str) -> Result<(), StoreError> {
        let now = now_unix();
        self.conn().execute(
            "INSERT INTO chats (id, kind, title, active, created_at, updated_at)
             VALUES (?1, ?2, ?3, 1, ?4, ?4)
             ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, title = excluded.title,
                 active = 1, updated_at = excluded.updated_at",
            params![id, kind, title, now],
        )?;
        Ok(())
    }

    /// Adds subscriptions; returns those that were new.
    pub fn subscribe(
        &self,
        chat_id: i64,
        symbol: &str,
        kinds: &[AlertKind],
    ) -> Result<Vec<AlertKind>, StoreError> {
        let now = now_unix();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut added = Vec::new();
        for kind in kinds {
            let n = tx.execute(
                "INSERT OR IGNORE INTO subscriptions (chat_id, symbol, kind, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![chat_id, symbol, kind.as_str(), now],
            )?;
            if n > 0 {
                added.push(*kind);
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Removes subscriptions of `chat_id`: one symbol (all kinds or one), or
    /// everything when `symbol` is `None`. Returns how many were removed.
    pub fn unsubscribe(
        &self,
        chat_id: i64,
        symbol: Option<&str>,
        kind: Option<AlertKind>,
    ) -> Result<usize, StoreError> {
        let conn = self.conn();
        let n = match (symbol, kind) {
            (None, _) => conn.execute("DELETE FROM subscriptions WHERE chat_id = ?1", [chat_id])?,
            (Some(s), None) => conn.execute(
                "DELETE FROM subscriptions WHERE chat_id = ?1 AND symbol = ?2",
                params![chat_id, s],
            )?,
            (Some(s), Some(k)) => conn.execute(
                "DELETE FROM subscriptions WHERE chat_id = ?1 AND symbol = ?2 AND kind = ?3",
                params![chat_id, s, k.as_str()],
            )?,
        };
        Ok(n)
    }

    /// The subscriptions of one chat, ordered by symbol and kind.
    pub fn subscriptions(&self, chat_id: i64) -> Result<Vec<Subscription>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT symbol, kind FROM subscriptions WHERE chat_id = ?1 ORDER BY symbol, kind",
        )?;
        let rows = stmt.query_map([chat_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (symbol, kind) = row?;
            // A kind this build does not know (written by a newer one) is skipped.
            if let Ok(kind) = kind.parse() {
                out.push(Subscription { symbol, kind });
            }
        }
        // Kinds in their display order, not the database's alphabetical one.
        out.sort_by(|a, b| (&a.symbol, a.kind).cmp(&(&b.symbol, b.kind)));
        Ok(out)
    }

    /// Active chats subscribed to `kind` alerts for `symbol`.
    pub fn subscribers(&self, symbol: &str, kind: AlertKind) -> Result<Vec<i64>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT s.chat_id FROM subscriptions s JOIN chats c ON c.id = s.chat_id
             WHERE s.symbol = ?1 AND s.kind = ?2 AND c.active = 1 ORDER BY s.chat_id",
        )?;
        let ids = stmt
            .query_map(params![symbol, kind.as_str()], |r| r.get(0))?
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(ids)
    }

    /// Marks a chat inactive (it blocked the bot or removed it). Subscriptions
    /// are kept: they come back if the chat talks to the bot again.
    pub fn deactivate_chat(&self, chat_id: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE chats SET active = 0, updated_at = ?2 WHERE id = ?1",
            params![chat_id, now_unix()],
        )?;
        Ok(())
    }

    /// Whether a chat is known and active.
    pub fn chat_active(&self, chat_id: i64) -> Result<Option<bool>, StoreError> {
        let v: Option<i64> = self
            .conn()
            .query_row("SELECT active FROM chats WHERE id = ?1", [chat_id], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(v.map(|a| a != 0))
    }

    /// A group became a supergroup: its subscriptions move to the new id.
    pub fn migrate_chat(&self, old: i64, new: i64) -> Result<(), StoreError> {
        let now = now_unix();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO chats (id, kind, title, active, created_at, updated_at)
             SELECT ?2, 'supergroup', title, 1, created_at, ?3 FROM chats WHERE id = ?1
             ON CONFLICT(id) DO UPDATE SET active = 1, updated_at = excluded.updated_at",
            params![old, new, now],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO subscriptions (chat_id, symbol, kind, created_at)
             SELECT ?2, symbol, kind, created_at FROM subscriptions WHERE chat_id = ?1",
            params![old, new],
        )?;
        tx.execute("DELETE FROM subscriptions WHERE chat_id = ?1", [old])?;
        tx.execute(
            "UPDATE chats SET active = 0, updated_at = ?2 WHERE id = ?1",
            params![old, now],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Subscriber counts.
    pub fn subscriber_counts(&self) -> Result<SubscriberCounts, StoreError> {
        let conn = self.conn();
        let (chats, subscriptions): (i64, i64) = conn.query_row(
            "SELECT COUNT(DISTINCT s.chat_id), COUNT(*) FROM subscriptions s
             JOIN chats c ON c.id = s.chat_id WHERE c.active = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let inactive: i64 =
            conn.query_row("SELECT COUNT(*) FROM chats WHERE active = 0", [], |r| {
                r.get(0)
            })?;
        Ok(SubscriberCounts {
            chats: chats as u64,
            subscriptions: subscriptions as u64,
            inactive_chats: inactive as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("c.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn subscribe_list_unsubscribe() {
        let (_d, s) = store();
        s.upsert_chat(1, "private", "").unwrap();
        s.upsert_chat(2, "group", "traders").unwrap();
        assert_eq!(s.subscribe(1, "BTC", &AlertKind::ALL).unwrap().len(), 3);
        assert!(s
            .subscribe(1, "BTC", &[AlertKind::Whales])
            .unwrap()
            .is_empty());
        s.subscribe(2, "BTC", &[AlertKind::Whales]).unwrap();
        assert_eq!(s.subscribers("BTC", AlertKind::Whales).unwrap(), vec![1, 2]);
        assert_eq!(
            s.subscribers("ETH", AlertKind::Whales).unwrap(),
            Vec::<i64>::new()
        );
        assert_eq!(
            s.unsubscribe(1, Some("BTC"), Some(AlertKind::Whales))
                .unwrap(),
            1
        );
        assert_eq!(s.subscriptions(1).unwrap().len(), 2);
        assert_eq!(s.unsubscribe(1, None, None).unwrap(), 2);
        let c = s.subscriber_counts().unwrap();
        assert_eq!((c.chats, c.subscriptions), (1, 1));
    }

    #[test]
    fn inactive_chats_get_nothing_until_they_return() {
        let (_d, s) = store();
        s.upsert_chat(1, "private", "").unwrap();
        s.subscribe(1, "ETH", &[AlertKind::Funding]).unwrap();
        s.deactivate_chat(1).unwrap();
        assert!(s.subscribers("ETH", AlertKind::Funding).unwrap().is_empty());
        assert_eq!(s.chat_active(1).unwrap(), Some(false));
        s.upsert_chat(1, "private", "").unwrap();
        assert_eq!(s.subscribers("ETH", AlertKind::Funding).unwrap(), vec![1]);
    }

    #[test]
    fn migration_moves_subscriptions() {
        let (_d, s) = store();
        s.upsert_chat(-5, "group", "g").unwrap();
        s.subscribe(-5, "SOL", &AlertKind::ALL).unwrap();
        s.migrate_chat(-5, -1_000_000_000_005).unwrap();
        assert!(s.subscriptions(-5).unwrap().is_empty());
        assert_eq!(s.subscriptions(-1_000_000_000_005).unwrap().len(), 3);
        assert_eq!(
            s.subscribers("SOL", AlertKind::Whales).unwrap(),
            vec![-1_000_000_000_005]
        );
    }
}
