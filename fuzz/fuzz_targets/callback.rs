//! Inline-keyboard callback data (client-controlled, forgeable).
//!
//! Invariants: no panic; whatever parses is exactly what `encode` produces
//! (`encode(parse(s)) == s`) and round-trips (`parse(encode(a)) == a`) within
//! Telegram's 64-byte limit; actions built from fuzzed symbols that pass the
//! symbol rules encode to data that parses back to them.
#![no_main]

use cryptosat::alerts::AlertKind;
use cryptosat::telegram::callback::{Action, MAX_LEN};
use libfuzzer_sys::fuzz_target;

fn round_trip(a: &Action) {
    let data = a.encode();
    assert!(data.len() <= MAX_LEN, "{a:?} encodes to {} bytes", data.len());
    assert_eq!(Action::parse(&data).as_ref(), Some(a), "{data:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        // Telegram only delivers strings; still, lossy text must not panic.
        let _ = Action::parse(&String::from_utf8_lossy(data));
        return;
    };
    if let Some(a) = Action::parse(text) {
        assert_eq!(a.encode(), text, "{a:?}");
        round_trip(&a);
    }
    // Build actions around the input as a symbol: valid symbols must round-trip.
    let sym = text.to_owned();
    let valid = !sym.is_empty()
        && sym.len() <= 15
        && sym.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let mut kinds: Vec<Option<AlertKind>> = AlertKind::ALL.into_iter().map(Some).collect();
    kinds.push(None);
    let mut actions = vec![
        Action::PickSymbol(sym.clone()),
        Action::Liquidations(sym.clone()),
        Action::Funding(sym.clone()),
    ];
    for k in kinds {
        actions.push(Action::Subscribe(sym.clone(), k));
        actions.push(Action::Unsubscribe(sym.clone(), k));
    }
    for a in &actions {
        if valid {
            round_trip(a);
        } else {
            assert_eq!(Action::parse(&a.encode()), None, "{a:?} should be refused");
        }
    }
});
