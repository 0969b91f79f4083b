//! Versioned schema migrations, tracked in SQLite's `user_version`.
//!
//! Each entry moves the schema from version N to N+1 and runs in one
//! transaction with the version bump. Never edit a released migration: add one.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: key/value state (the Telegram update offset).
    "CREATE TABLE state (
        key   TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
    ) STRICT;",
    // 2: chats, subscriptions, and the update inbox.
    "CREATE TABLE chats (
        id         INTEGER PRIMARY KEY NOT NULL,
        kind       TEXT NOT NULL,
        title      TEXT NOT NULL DEFAULT '',
        active     INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE subscriptions (
        chat_id    INTEGER NOT NULL REFERENCES chats(id) ON UPDATE CASCADE ON DELETE CASCADE,
        symbol     TEXT NOT NULL,
        kind       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (chat_id, symbol, kind)
    ) STRICT;
    CREATE INDEX subscriptions_by_symbol ON subscriptions (symbol, kind);
    CREATE TABLE inbox (
        update_id   INTEGER PRIMARY KEY NOT NULL,
        payload     TEXT NOT NULL,
        received_at INTEGER NOT NULL
    ) STRICT;",
    // 3: monitors' memory (seen events, cooldowns, funding zones) and the
    // alert outbox with one delivery row per recipient.
    "CREATE TABLE seen_events (
        key     TEXT PRIMARY KEY NOT NULL,
        seen_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE cooldowns (
        kind      TEXT NOT NULL,
        symbol    TEXT NOT NULL,
        direction TEXT NOT NULL,
        until     INTEGER NOT NULL,
        PRIMARY KEY (kind, symbol, direction)
    ) STRICT;
    CREATE TABLE funding_zones (
        symbol     TEXT PRIMARY KEY NOT NULL,
        zone       INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE alerts (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        kind       TEXT NOT NULL,
        symbol     TEXT NOT NULL,
        event_key  TEXT NOT NULL,
        text       TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE deliveries (
        alert_id        INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
        chat_id         INTEGER NOT NULL,
        status          TEXT NOT NULL DEFAULT 'pending',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        delivered_to    INTEGER,
        sent_at         INTEGER,
        PRIMARY KEY (alert_id, chat_id)
    ) STRICT;
    CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at, alert_id);",
];

/// The schema version this build writes.
pub const CURRENT: i64 = MIGRATIONS.len() as i64;

pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > CURRENT {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: CURRENT,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i64 + 1;
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
        tx.commit()?;
        tracing::info!(path = %path.display(), version, "database schema migrated");
    }
    Ok(())
}
