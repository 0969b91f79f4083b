//! One pace for everything the bot sends: at most `messages_per_second`
//! overall, evenly spaced, and per chat at most one message a second (one
//! every three seconds in groups: Telegram allows 20 a minute there).
//!
//! Why not only teloxide's `Throttle`: its worker releases queued requests in
//! batches every 250 ms, so a sender with one message in flight gets four
//! messages a second. The alert sender keeps exactly one in flight (a crash can
//! then duplicate at most that one), so it paces itself here instead. Replies
//! take their slot here too and then go through `Throttle`, so both kinds of
//! traffic share one budget; since the alert sender reserves only one slot at
//! a time, a reply waits behind at most one alert.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Slack on the even spacing, so that network jitter cannot squeeze
/// `messages_per_second + 1` messages into one second at Telegram's side.
const SPACING_MARGIN: f64 = 1.03;
const PRIVATE_GAP: Duration = Duration::from_secs(1);
const GROUP_GAP: Duration = Duration::from_secs(3);
/// Above this many remembered chats, those past their gap are forgotten.
const MAX_CHATS: usize = 50_000;

#[derive(Debug)]
struct State {
    interval: Duration,
    next_slot: Instant,
    chat_ready: HashMap<i64, Instant>,
}

/// The shared pace.
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<State>,
}

fn interval_for(per_second: u32) -> Duration {
    Duration::from_secs_f64(SPACING_MARGIN / f64::from(per_second.max(1)))
}

fn chat_gap(chat: i64) -> Duration {
    // Negative ids are groups, supergroups and channels.
    if chat < 0 {
        GROUP_GAP
    } else {
        PRIVATE_GAP
    }
}

impl Pacer {
    pub fn new(messages_per_second: u32) -> Self {
        Self {
            state: Mutex::new(State {
                interval: interval_for(messages_per_second),
                next_slot: Instant::now(),
                chat_ready: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When `chat` may next receive a message.
    pub fn chat_ready_at(&self, chat: i64) -> Option<Instant> {
        self.lock()
            .chat_ready
            .get(&chat)
            .copied()
            .filter(|t| *t > Instant::now())
    }

    /// Reserves the next slot for `chat` and returns when it begins. The
    /// caller sleeps until then.
    pub fn reserve(&self, chat: i64, now: Instant) -> Instant {
        let mut s = self.lock();
        if s.chat_ready.len() > MAX_CHATS {
            s.chat_ready.retain(|_, t| *t > now);
        }
        let chat_at = s.chat_ready.get(&chat).copied().unwrap_or(now);
        // One clock: a slot delayed by its chat's gap delays the ones after it
        // too. The alert sender skips chats that are not ready (see
        // `chat_ready_at`), so only a reply right after an alert to the same
        // chat waits here.
        let slot = s.next_slot.max(now).max(chat_at);
        s.next_slot = slot + s.interval;
        s.chat_ready.insert(chat, slot + chat_gap(chat));
        slot
    }

    /// Waits for a slot for `chat`.
    pub async fn wait(&self, chat: i64) {
        let slot = self.reserve(chat, Instant::now());
        tokio::time::sleep_until(slot.into()).await;
    }

    /// Telegram said 429: nothing goes out before `after` has passed.
    pub fn freeze(&self, after: Duration) {
        let mut s = self.lock();
        let until = Instant::now() + after;
        if until > s.next_slot {
            s.next_slot = until;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_evenly_spaced_and_chats_wait_their_gap() {
        let p = Pacer::new(10);
        let t = Instant::now();
        let a = p.reserve(1, t);
        let b = p.reserve(2, t);
        let c = p.reserve(3, t);
        assert_eq!(a, t);
        let step = interval_for(10);
        assert_eq!(b - a, step);
        assert_eq!(c - b, step);
        // Chat 1 again: not before its one-second gap.
        let d = p.reserve(1, t);
        assert_eq!(d, a + PRIVATE_GAP);
        assert!(p.chat_ready_at(1).is_some());
        // Groups wait three seconds.
        let g1 = p.reserve(-5, t);
        let g2 = p.reserve(-5, t);
        assert_eq!(g2 - g1, GROUP_GAP);
    }

    #[test]
    fn never_more_than_the_rate_in_any_second() {
        let p = Pacer::new(30);
        let t = Instant::now();
        let slots: Vec<Instant> = (0..300).map(|c| p.reserve(c, t)).collect();
        for (i, s) in slots.iter().enumerate() {
            let within = slots[i..]
                .iter()
                .take_while(|x| **x - *s <= Duration::from_secs(1))
                .count();
            assert!(within <= 30, "{within} messages within one second");
        }
        // And close to the rate: 300 messages take about 10 s.
        let span = slots[299] - slots[0];
        assert!(span < Duration::from_secs_f64(10.5), "{span:?}");
    }

    #[test]
    fn freeze_holds_everything_back() {
        let p = Pacer::new(30);
        p.freeze(Duration::from_secs(5));
        let s = p.reserve(1, Instant::now());
        assert!(s >= Instant::now() + Duration::from_secs(4));
    }
}
