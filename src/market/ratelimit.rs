//! The request budget: a token bucket whose tokens come back one minute after
//! they are spent.
//!
//! CoinGlass counts requests over the last 60 s (`API-KEY-USE-LIMIT`) against
//! the plan's per-minute limit (`API-KEY-MAX-LIMIT`). A classic bucket that
//! refills continuously at `limit/60` per second would allow `limit` at once and
//! then one more every `60/limit` s, i.e. up to twice the limit in the first
//! minute, which the server answers with 429s. So each token here returns
//! exactly 60 s after it was spent: the bucket holds `limit` tokens, a full
//! burst empties it, and it refills as that burst ages out of the server's
//! window. That is the same rule the server applies, so we never exceed it on
//! our own.
//!
//! Corrections: `API-KEY-MAX-LIMIT` resizes the bucket; `API-KEY-USE-LIMIT`
//! above our own count (another client shares the key, or we just restarted)
//! adds phantom spends at "now"; a 429 empties the bucket until its
//! `Retry-After`. Callers queue in order: a reservation never overtakes an
//! earlier one, and one that would wait longer than the caller's bound is
//! refused instead of hanging.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The window CoinGlass counts requests in.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// The limiter. Uses tokio's clock, so tests can pause time.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Requests allowed per [`WINDOW`].
    capacity: u32,
    /// Whether `capacity` came from `API-KEY-MAX-LIMIT`.
    from_headers: bool,
    /// Spend times (past, or reserved in the future), ascending.
    spent: VecDeque<Instant>,
    /// No request before this (after a 429).
    blocked_until: Option<Instant>,
    /// Last `API-KEY-USE-LIMIT` seen.
    last_used: Option<u32>,
}

/// A snapshot for health reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LimiterState {
    pub capacity: u32,
    pub from_headers: bool,
    pub available: u32,
    pub last_used: Option<u32>,
}

impl RateLimiter {
    /// A full bucket of `per_minute` tokens (at least 1).
    pub fn new(per_minute: u32) -> Self {
        Self {
            state: Mutex::new(State {
                capacity: per_minute.max(1),
                from_headers: false,
                spent: VecDeque::new(),
                blocked_until: None,
                last_used: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves a token at `now`: `Ok(wait)` is how long to sleep before
    /// sending (zero if a token is free), `Err(wait)` means the wait would
    /// exceed `max_wait` and nothing was reserved.
    pub fn reserve_at(&self, now: Instant, max_wait: Duration) -> Result<Duration, Duration> {
        let mut st = self.lock();
        st.prune(now);
        let mut at = now;
        if let Some(b) = st.blocked_until {
            at = at.max(b);
        }
        if let Some(last) = st.spent.back() {
            // Keep reservations in order: nobody overtakes a queued caller.
            at = at.max(*last);
        }
        let cap = st.capacity as usize;
        if st.spent.len() >= cap {
            // The token spent `cap` reservations ago returns a window later.
            at = at.max(st.spent[st.spent.len() - cap] + WINDOW);
        }
        let wait = at.saturating_duration_since(now);
        if wait > max_wait {
            return Err(wait);
        }
        st.spent.push_back(at);
        Ok(wait)
    }

    /// Waits for a token, at most `max_wait`; `Err(wait)` if that is not enough.
    pub async fn acquire(&self, max_wait: Duration) -> Result<(), Duration> {
        let wait = self.reserve_at(Instant::now(), max_wait)?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Applies `API-KEY-MAX-LIMIT` / `API-KEY-USE-LIMIT` seen at `now`.
    /// Returns the new capacity when it changed.
    pub fn observe_headers_at(
        &self,
        now: Instant,
        max: Option<u32>,
        used: Option<u32>,
    ) -> Option<u32> {
        let mut st = self.lock();
        st.prune(now);
        let mut changed = None;
        if let Some(max) = max.filter(|m| *m > 0) {
            if max != st.capacity || !st.from_headers {
                if max != st.capacity {
                    changed = Some(max);
                }
                st.capacity = max;
                st.from_headers = true;
            }
        }
        if let Some(used) = used {
            st.last_used = Some(used);
            // Our own spends the server can have counted: those not in the future.
            let ours = st.spent.iter().filter(|t| **t <= now).count();
            let extra = (used as usize)
                .saturating_sub(ours)
                .min(st.capacity as usize);
            if extra > 0 {
                // Unknown spend times: assume now (the conservative choice).
                let pos = st.spent.partition_point(|t| *t <= now);
                for _ in 0..extra {
                    st.spent.insert(pos, now);
                }
            }
        }
        changed
    }

    /// A 429: no token until `now + wait`.
    pub fn block_at(&self, now: Instant, wait: Duration) {
        let mut st = self.lock();
        let until = now + wait;
        st.blocked_until = Some(st.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Current figures for health reports.
    pub fn snapshot_at(&self, now: Instant) -> LimiterState {
        let mut st = self.lock();
        st.prune(now);
        let in_window = st.spent.len().min(u32::MAX as usize) as u32;
        let blocked = st.blocked_until.is_some_and(|b| b > now);
        LimiterState {
            capacity: st.capacity,
            from_headers: st.from_headers,
            available: if blocked {
                0
            } else {
                st.capacity.saturating_sub(in_window)
            },
            last_used: st.last_used,
        }
    }
}

impl State {
    fn prune(&mut self, now: Instant) {
        while self.spent.front().is_some_and(|t| *t + WINDOW <= now) {
            self.spent.pop_front();
        }
        if self.blocked_until.is_some_and(|b| b <= now) {
            self.blocked_until = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_WAIT: Duration = Duration::ZERO;
    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn full_bucket_allows_a_burst_of_capacity() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(5);
        for _ in 0..5 {
            assert_eq!(rl.reserve_at(t0, NO_WAIT), Ok(Duration::ZERO));
        }
        // The sixth token is the first one back, a full window later.
        assert_eq!(rl.reserve_at(t0, NO_WAIT), Err(WINDOW));
        assert_eq!(rl.snapshot_at(t0).available, 0);
    }

    #[test]
    fn tokens_return_one_window_after_they_were_spent() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(3);
        for i in 0..3 {
            rl.reserve_at(t0 + Duration::from_secs(i * 10), NO_WAIT)
                .unwrap();
        }
        let t = t0 + Duration::from_secs(30);
        assert_eq!(rl.reserve_at(t, NO_WAIT), Err(Duration::from_secs(30)));
        // At 60 s the first token is back, the next ones at 70 s and 80 s.
        assert_eq!(
            rl.reserve_at(t0 + Duration::from_secs(60), NO_WAIT),
            Ok(Duration::ZERO)
        );
        assert_eq!(
            rl.reserve_at(t0 + Duration::from_secs(60), LONG),
            Ok(Duration::from_secs(10))
        );
        assert_eq!(rl.snapshot_at(t0 + Duration::from_secs(60)).available, 0);
    }

    #[test]
    fn waiters_queue_in_order_and_never_exceed_the_window() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(2);
        let waits: Vec<Duration> = (0..6).map(|_| rl.reserve_at(t0, LONG).unwrap()).collect();
        let s = Duration::from_secs;
        assert_eq!(waits, vec![s(0), s(0), s(60), s(60), s(120), s(120)]);
    }

    #[test]
    fn refused_reservation_takes_nothing() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(1);
        rl.reserve_at(t0, NO_WAIT).unwrap();
        for _ in 0..3 {
            assert_eq!(
                rl.reserve_at(t0, Duration::from_secs(30)),
                Err(Duration::from_secs(60))
            );
        }
        assert_eq!(rl.reserve_at(t0 + WINDOW, NO_WAIT), Ok(Duration::ZERO));
    }

    #[test]
    fn max_limit_header_resizes() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(2);
        assert_eq!(rl.observe_headers_at(t0, Some(4), Some(0)), Some(4));
        assert_eq!(rl.observe_headers_at(t0, Some(4), Some(0)), None);
        let snap = rl.snapshot_at(t0);
        assert_eq!(
            (snap.capacity, snap.from_headers, snap.available),
            (4, true, 4)
        );
        for _ in 0..4 {
            rl.reserve_at(t0, NO_WAIT).unwrap();
        }
        assert!(rl.reserve_at(t0, NO_WAIT).is_err());
        // Shrinking keeps what was spent: nothing is free until tokens age out.
        assert_eq!(rl.observe_headers_at(t0, Some(1), None), Some(1));
        assert_eq!(rl.snapshot_at(t0).available, 0);
        assert_eq!(rl.reserve_at(t0, LONG), Ok(WINDOW));
    }

    #[test]
    fn use_limit_header_accounts_for_other_clients() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(10);
        rl.reserve_at(t0, NO_WAIT).unwrap();
        // The server saw 8 requests on this key in its window, we made 1.
        let t1 = t0 + Duration::from_secs(1);
        rl.observe_headers_at(t1, None, Some(8));
        assert_eq!(rl.snapshot_at(t1).available, 2);
        rl.reserve_at(t1, NO_WAIT).unwrap();
        rl.reserve_at(t1, NO_WAIT).unwrap();
        assert_eq!(
            rl.reserve_at(t1, NO_WAIT),
            Err(WINDOW - Duration::from_secs(1))
        );
        // A lower figure than ours gives nothing back.
        rl.observe_headers_at(t1, None, Some(0));
        assert_eq!(rl.snapshot_at(t1).available, 0);
    }

    #[test]
    fn too_many_requests_blocks_until_retry_after() {
        let t0 = Instant::now();
        let rl = RateLimiter::new(100);
        rl.block_at(t0, Duration::from_secs(5));
        assert_eq!(rl.snapshot_at(t0).available, 0);
        assert_eq!(
            rl.reserve_at(t0, Duration::from_secs(4)),
            Err(Duration::from_secs(5))
        );
        assert_eq!(
            rl.reserve_at(t0 + Duration::from_secs(2), LONG),
            Ok(Duration::from_secs(3))
        );
        let t = t0 + Duration::from_secs(6);
        assert_eq!(rl.reserve_at(t, NO_WAIT), Ok(Duration::ZERO));
    }

    #[tokio::test]
    async fn acquire_waits_boundedly() {
        let rl = RateLimiter::new(1);
        rl.acquire(NO_WAIT).await.unwrap();
        // The next token is a minute away: refused at once, nothing reserved.
        let t0 = std::time::Instant::now();
        let wait = rl.acquire(Duration::from_secs(30)).await.unwrap_err();
        assert!(wait > Duration::from_secs(59), "{wait:?}");
        assert!(t0.elapsed() < Duration::from_millis(100));

        let rl = RateLimiter::new(10);
        rl.block_at(Instant::now(), Duration::from_millis(200));
        let t0 = std::time::Instant::now();
        rl.acquire(Duration::from_secs(1)).await.unwrap();
        assert!(
            t0.elapsed() >= Duration::from_millis(190),
            "{:?}",
            t0.elapsed()
        );
    }
}
