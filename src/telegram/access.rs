//! Who may use the bot, and how fast.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::config::{Access, TelegramConfig};

/// The access policy, replaceable on reload.
#[derive(Debug)]
pub struct AccessControl {
    policy: RwLock<Policy>,
    /// Users already told they are not allowed (told once per process life).
    refused: Mutex<std::collections::HashSet<i64>>,
}

#[derive(Debug, Clone)]
struct Policy {
    access: Access,
    allowed: Vec<i64>,
    admins: Vec<i64>,
}

/// The verdict for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Not allowed; `first` is true the first time, when a polite reply is due.
    Denied {
        first: bool,
    },
}

impl AccessControl {
    /// Builds the policy from the `[telegram]` config.
    pub fn new(config: &TelegramConfig) -> Self {
        Self {
            policy: RwLock::new(Policy::from(config)),
            refused: Mutex::default(),
        }
    }

    /// Applies a reloaded configuration.
    pub fn reload(&self, config: &TelegramConfig) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Policy::from(config);
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn policy(&self) -> Policy {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `user_id` may use the bot.
    pub fn check(&self, user_id: i64) -> Verdict {
        let p = self.policy();
        if p.access == Access::Open || p.allowed.contains(&user_id) || p.admins.contains(&user_id) {
            return Verdict::Allowed;
        }
        let first = self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(user_id);
        Verdict::Denied { first }
    }

    /// Whether everyone may use the bot (channel posts have no user to check).
    pub fn is_open(&self) -> bool {
        self.policy().access == Access::Open
    }

    /// Whether `user_id` is an admin.
    pub fn is_admin(&self, user_id: i64) -> bool {
        self.policy().admins.contains(&user_id)
    }
}

impl From<&TelegramConfig> for Policy {
    fn from(c: &TelegramConfig) -> Self {
        Self {
            access: c.access,
            allowed: c.allowed_users.clone(),
            admins: c.admins.clone(),
        }
    }
}

/// What the rate limiter says about one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Ok,
    /// Over the limit: tell the user once…
    SlowDown,
    /// …then stay silent until the bucket refills.
    Drop,
}

/// A token bucket per user: `per_minute` commands, refilled continuously.
#[derive(Debug)]
pub struct UserRateLimit {
    per_minute: Mutex<u32>,
    buckets: Mutex<HashMap<i64, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    warned: bool,
}

/// Above this many tracked users, full buckets are forgotten.
const MAX_TRACKED: usize = 10_000;

impl UserRateLimit {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: Mutex::new(per_minute.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Changes the rate on reload.
    pub fn set_per_minute(&self, per_minute: u32) {
        *self.per_minute.lock().unwrap_or_else(|p| p.into_inner()) = per_minute.max(1);
    }

    /// Takes a token for `user_id` at `now`.
    pub fn check(&self, user_id: i64, now: Instant) -> Rate {
        let capacity = f64::from(*self.per_minute.lock().unwrap_or_else(|p| p.into_inner()));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > MAX_TRACKED {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * capacity / 60.0
                    < capacity
            });
        }
        let b = buckets.entry(user_id).or_insert(Bucket {
            tokens: capacity,
            at: now,
            warned: false,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * capacity / 60.0;
        b.tokens = (b.tokens + refill).min(capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.warned = false;
            Rate::Ok
        } else if !b.warned {
            b.warned = true;
            Rate::SlowDown
        } else {
            Rate::Drop
        }
    }

    /// How long until `user_id` may send again (for the slow-down reply).
    pub fn retry_in(&self, user_id: i64) -> Duration {
        let capacity = f64::from(*self.per_minute.lock().unwrap_or_else(|p| p.into_inner()));
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let missing = buckets
            .get(&user_id)
            .map_or(0.0, |b| (1.0 - b.tokens).max(0.0));
        Duration::from_secs_f64(missing * 60.0 / capacity).max(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_refuses_others_once() {
        let mut c = TelegramConfig {
            access: Access::Allowlist,
            allowed_users: vec![1],
            admins: vec![9],
            ..TelegramConfig::default()
        };
        let a = AccessControl::new(&c);
        assert_eq!(a.check(1), Verdict::Allowed);
        assert_eq!(a.check(9), Verdict::Allowed);
        assert!(a.is_admin(9) && !a.is_admin(1));
        assert_eq!(a.check(2), Verdict::Denied { first: true });
        assert_eq!(a.check(2), Verdict::Denied { first: false });
        c.access = Access::Open;
        a.reload(&c);
        assert_eq!(a.check(2), Verdict::Allowed);
    }

    #[test]
    fn rate_limit_warns_once_then_drops_then_refills() {
        let r = UserRateLimit::new(3);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.check(7, t), Rate::Ok);
        }
        assert_eq!(r.check(7, t), Rate::SlowDown);
        assert_eq!(r.check(7, t), Rate::Drop);
        assert_eq!(r.check(8, t), Rate::Ok, "other users are not affected");
        assert_eq!(r.check(7, t + Duration::from_secs(20)), Rate::Ok);
    }
}
