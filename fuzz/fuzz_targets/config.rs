//! Arbitrary text as the configuration file.
//!
//! Invariants: no panic; an accepted config is accepted again after a
//! round-trip through its own validation (`Config::parse` is deterministic),
//! and every error names the file.
#![no_main]

use std::path::Path;

use cryptosat::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/cryptosat.toml");
    match Config::parse(text, path) {
        Ok(c) => assert_eq!(Config::parse(text, path).ok(), Some(c)),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("/fuzz/cryptosat.toml"), "{msg}");
        }
    }
});
