//! A short-lived cache with in-flight de-duplication.
//!
//! Each key has a slot guarded by an async mutex. The first caller of a stale
//! key fetches while holding the slot; callers arriving meanwhile wait on the
//! same slot and then take the fetch's result, value or error. So twenty users
//! asking `/funding BTC` at once cost one request, and a failing upstream is
//! not hit once per waiter either. Errors are handed only to the callers that
//! waited for that fetch; they are not cached for later callers.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Beyond this many keys, idle stale slots are dropped (keys come from user input).
const MAX_KEYS: usize = 512;

#[derive(Debug)]
pub(crate) struct Cache<K, V, E> {
    ttl: Duration,
    slots: Mutex<HashMap<K, Arc<Slot<V, E>>>>,
}

#[derive(Debug)]
struct Slot<V, E> {
    /// Bumped (under `inner`) each time a fetch completes.
    generation: AtomicU64,
    inner: tokio::sync::Mutex<SlotState<V, E>>,
}

#[derive(Debug)]
struct SlotState<V, E> {
    value: Option<(Instant, V)>,
    last: Option<Result<V, E>>,
}

impl<K, V, E> Cache<K, V, E>
where
    K: Eq + Hash + Clone,
    V: Clone,
    E: Clone,
{
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, key: &K) -> Arc<Slot<V, E>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slots.get(key) {
            return s.clone();
        }
        if slots.len() >= MAX_KEYS {
            let ttl = self.ttl;
            slots.retain(|_, s| {
                // Keep slots in use (someone holds an Arc) or still fresh.
                Arc::strong_count(s) > 1
                    || s.inner.try_lock().map_or(true, |st| {
                        st.value.as_ref().is_some_and(|(t, _)| t.elapsed() < ttl)
                    })
            });
        }
        let slot = Arc::new(Slot {
            generation: AtomicU64::new(0),
            inner: tokio::sync::Mutex::new(SlotState {
                value: None,
                last: None,
            }),
        });
        slots.insert(key.clone(), slot.clone());
        slot
    }

    /// The cached value of `key` if younger than the TTL, else `fetch()`'s
    /// result (stored on success). Concurrent callers share one fetch.
    pub async fn get_or_fetch<F, Fut>(&self, key: K, fetch: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let slot = self.slot(&key);
        let seen = slot.generation.load(Ordering::Acquire);
        let mut st = slot.inner.lock().await;
        if slot.generation.load(Ordering::Acquire) != seen {
            // A fetch finished while we waited: its answer is ours too.
            if let Some(last) = &st.last {
                return last.clone();
            }
        }
        if let Some((at, v)) = &st.value {
            if at.elapsed() < self.ttl {
                return Ok(v.clone());
            }
        }
        let result = fetch().await;
        if let Ok(v) = &result {
            st.value = Some((Instant::now(), v.clone()));
        }
        st.last = Some(result.clone());
        slot.generation.fetch_add(1, Ordering::AcqRel);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let cache: Arc<Cache<String, u32, String>> = Arc::new(Cache::new(Duration::from_secs(30)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = cache.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch("BTC".to_owned(), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok(7)
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(7));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn waiters_share_an_error_but_later_callers_retry() {
        let cache: Arc<Cache<u8, u32, String>> = Arc::new(Cache::new(Duration::from_secs(30)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let cache = cache.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(1, || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Err::<u32, _>("down".to_owned())
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Err("down".to_owned()));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let r = cache.get_or_fetch(1, || async { Ok(3) }).await;
        assert_eq!(r, Ok(3));
    }

    #[tokio::test]
    async fn values_expire_after_the_ttl() {
        let cache: Cache<u8, u32, String> = Cache::new(Duration::from_millis(300));
        assert_eq!(cache.get_or_fetch(1, || async { Ok(1) }).await, Ok(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(cache.get_or_fetch(1, || async { Ok(2) }).await, Ok(1));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cache.get_or_fetch(1, || async { Ok(3) }).await, Ok(3));
    }

    #[tokio::test]
    async fn idle_stale_keys_are_dropped() {
        let cache: Cache<usize, usize, String> = Cache::new(Duration::ZERO);
        for k in 0..(MAX_KEYS * 2) {
            cache
                .get_or_fetch(k, || async move { Ok(k) })
                .await
                .unwrap();
        }
        let n = cache.slots.lock().unwrap().len();
        assert!(n <= MAX_KEYS, "{n} slots");
    }
}
