//! One pace for everything the bot sends: at most `messages_per_second`
//! overall, evenly spaced, and per chat at most one message a second (one
//! every three seconds in groups: Telegram allows 20 a minute there).
//!
//! Everything waits for its slot here, one message per reservation. The alert
//! sender keeps exactly one message in flight (a crash can then duplicate at
//! most that one) and reserves one slot at a time, so a reply waits behind at
//! most one alert.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Telegram counts messages per second as they *arrive*; arrival times
/// jitter with scheduling and the network. Spacing the slots so that
/// `messages_per_second` of them span one second plus this margin keeps the
/// count within the limit for any jitter up to the margin (at 30 msg/s this
/// costs 8 % of the rate, at 300 msg/s 5 %).
const JITTER_MARGIN: Duration = Duration::from_millis(50);
const PRIVATE_GAP: Duration = Duration::from_secs(1);
const GROUP_GAP: Duration = Duration::from_secs(3);
/// Above this many remembered chats, those past their gap are forgotten.
const MAX_CHATS: usize = 50_000;

#[derive(Debug)]
struct State {
    interval: Duration,
    /// Nothing goes out before this (after a 429).
    frozen_until: Instant,
    /// Slots handed out that may still be ahead, in time order; any two are
    /// at least `interval` apart.
    slots: BTreeSet<Instant>,
    chat_ready: HashMap<i64, Instant>,
}

/// The shared pace.
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<State>,
}

fn interval_for(per_second: u32) -> Duration {
    // n slots, n - 1 intervals: the first and the last of any n consecutive
    // slots are at least 1 s + margin apart.
    let gaps = u64::from(per_second.max(2) - 1);
    let span = (Duration::from_secs(1) + JITTER_MARGIN).as_nanos() as u64;
    Duration::from_nanos(span.div_ceil(gaps))
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
                frozen_until: Instant::now(),
                slots: BTreeSet::new(),
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
        // The earliest free slot at or after the chat's gap: a chat waiting for
        // its gap (a group answering a flood gets one message per 3 s) must not
        // hold back the chats behind it, so later slots fill the free time
        // before it. Slots stay `interval` apart, which keeps the overall rate.
        let interval = s.interval;
        let earliest = now.max(chat_at).max(s.frozen_until);
        s.slots.retain(|t| *t + interval > now);
        let mut slot = earliest;
        for &taken in s
            .slots
            .range(earliest.checked_sub(interval).unwrap_or(earliest)..)
        {
            if taken >= slot + interval {
                break;
            }
            if taken + interval > slot {
                slot = taken + interval;
            }
        }
        s.slots.insert(slot);
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
        if until > s.frozen_until {
            s.frozen_until = until;
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
        // ... even when each arrives up to the margin late or early.
        let first = slots[0];
        let last = slots[29];
        assert!(last - first >= Duration::from_secs(1) + JITTER_MARGIN);
        // And close to the rate: 300 messages take about 10.9 s (92 %).
        let span = slots[299] - slots[0];
        assert!(span < Duration::from_secs_f64(11.0), "{span:?}");
    }

    #[test]
    fn a_chat_waiting_its_gap_does_not_hold_back_other_chats() {
        let p = Pacer::new(10);
        let t = Instant::now();
        let step = interval_for(10);
        // A flooded group: its messages are 3 s apart…
        let g: Vec<Instant> = (0..4).map(|_| p.reserve(-5, t)).collect();
        assert_eq!(g[3] - g[0], GROUP_GAP * 3);
        // …and another chat goes out in the next free slot, not after them.
        let other = p.reserve(6, t);
        assert_eq!(other, t + step);
        // A slot right before a reserved one is not squeezed in closer than `step`.
        let late = p.reserve(7, g[1] - step / 2);
        assert!(late >= g[1] + step, "{:?}", late - g[1]);
    }

    #[test]
    fn freeze_holds_everything_back() {
        let p = Pacer::new(30);
        p.freeze(Duration::from_secs(5));
        let s = p.reserve(1, Instant::now());
        assert!(s >= Instant::now() + Duration::from_secs(4));
    }
}
