//! Message text → command parsing and symbol normalisation.
//!
//! Invariants: no panic; a parsed command name is non-empty lower-case ASCII
//! (`a-z0-9_`); its arguments are non-empty, whitespace-free slices of the
//! input; a normalised symbol is 1–15 of `A-Z0-9` and survives the trip
//! through callback data (the keyboards put it there).
#![no_main]

use cryptosat::market::normalize_symbol;
use cryptosat::telegram::callback::Action;
use cryptosat::telegram::commands::{self, Parsed};
use libfuzzer_sys::fuzz_target;

fn check_symbol(input: &str) {
    let Some(sym) = normalize_symbol(input) else {
        return;
    };
    assert!((1..=15).contains(&sym.len()), "{input:?} -> {sym:?}");
    assert!(
        sym.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "{input:?} -> {sym:?}"
    );
    let action = Action::PickSymbol(sym.clone());
    assert_eq!(Action::parse(&action.encode()), Some(action), "{input:?}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line doubles as a bot username, so addressee matching is
    // fuzzed with arbitrary names too.
    let username = text.lines().next().unwrap_or_default();
    for bot in ["CryptoSatBot", username] {
        match commands::parse(&text, bot) {
            Parsed::Command(c) => {
                assert!(text.trim_start().starts_with('/'), "{text:?}");
                assert!(!c.name.is_empty(), "{text:?}");
                assert!(
                    c.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{text:?} -> {:?}",
                    c.name
                );
                for arg in &c.args {
                    assert!(!arg.is_empty() && !arg.contains(char::is_whitespace), "{arg:?}");
                    assert!(text.contains(arg), "{arg:?} not from {text:?}");
                    check_symbol(arg);
                }
                let _ = commands::is_known(&c.name);
                let reply = commands::unknown_text(&c.name);
                assert!(!reply.contains('<'), "{reply:?}");
            }
            Parsed::ForOtherBot => assert!(text.contains('@'), "{text:?}"),
            Parsed::NotCommand => {}
        }
    }
    check_symbol(&text);
    let escaped = commands::escape_html(&text);
    assert!(!escaped.contains(['<', '>', '"']), "{escaped:?}");
});
