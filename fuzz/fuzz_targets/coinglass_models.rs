//! Arbitrary bytes as the body of a `200 OK` from every CoinGlass endpoint,
//! through the client's own parsing path (`market::parse_body_for_fuzzing`).
//!
//! Invariant: a typed result or a `MarketError`, never a panic; the error's
//! text is printable.
#![no_main]

use cryptosat::market::{parse_body_for_fuzzing, Feature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for feature in Feature::ALL {
        if let Err(e) = parse_body_for_fuzzing(feature, data) {
            let _ = e.to_string();
            let _ = e.is_transient();
        }
    }
});
