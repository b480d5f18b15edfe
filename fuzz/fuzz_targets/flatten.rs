//! The file backend's flattening of YAML, JSON and TOML: never panics, never exceeds its entry
//! budget (aliases included), and produces only absolute keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use terad::backend::file::{Format, flatten_text};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = match selector % 3 {
        0 => Format::Yaml,
        1 => Format::Json,
        _ => Format::Toml,
    };
    let mut out = Vec::new();
    let _ = flatten_text(format, text, &mut out);
    assert!(out.len() <= 2_000_000);
    assert!(out.iter().all(|(key, _)| key.starts_with('/')));
});
