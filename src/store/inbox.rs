//! The update inbox: updates are stored here, in the same transaction that
//! advances the `getUpdates` offset, before they are confirmed to Telegram and
//! handled. Each row is deleted once its update has been handled, so a crash
//! loses nothing and re-handles at most what was in flight.

use rusqlite::params;

use super::{now_unix, Store, StoreError};

impl Store {
    /// Stores a batch of `(update_id, json)` and sets the next offset, atomically.
    pub fn inbox_put(&self, updates: &[(i64, String)], next_offset: i64) -> Result<(), StoreError> {
        let now = now_unix();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO inbox (update_id, payload, received_at) VALUES (?1, ?2, ?3)",
            )?;
            for (id, payload) in updates {
                stmt.execute(params![id, payload, now])?;
            }
        }
        tx.execute(
            "INSERT INTO state (key, value) VALUES ('telegram_update_offset', ?1)
             ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            [next_offset],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Updates stored but not yet handled, oldest first.
    pub fn inbox_pending(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT update_id, payload FROM inbox ORDER BY update_id")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Marks an update handled.
    pub fn inbox_done(&self, update_id: i64) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM inbox WHERE update_id = ?1", [update_id])?;
        Ok(())
    }

    /// Number of updates waiting to be handled.
    pub fn inbox_len(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM inbox", [], |r| r.get(0))?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_pending_done() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("c.db")).unwrap();
        s.inbox_put(&[(10, "a".into()), (11, "b".into())], 12)
            .unwrap();
        assert_eq!(s.update_offset().unwrap(), 12);
        s.inbox_put(&[(11, "b".into())], 11).unwrap();
        assert_eq!(s.update_offset().unwrap(), 12, "offset never goes back");
        s.inbox_done(10).unwrap();
        assert_eq!(s.inbox_pending().unwrap(), vec![(11, "b".to_owned())]);
        assert_eq!(s.inbox_len().unwrap(), 1);
    }
}
