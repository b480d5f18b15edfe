//! confd glob patterns: compiling and matching never panic, and every match starts with the
//! pattern's literal prefix (the store relies on that to range-scan instead of scanning all keys).
#![no_main]

use libfuzzer_sys::fuzz_target;
use terad::store::Glob;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, names) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(glob) = Glob::new(pattern) else { return };
    let prefix = glob.literal_prefix();
    for name in names.split('\n') {
        if glob.matches(name) {
            assert!(
                name.starts_with(&prefix),
                "{pattern:?} matched {name:?} without its prefix {prefix:?}"
            );
            // `*` and `?` never cross a `/`: without classes and escapes, the segment counts match.
            if !pattern.contains(['[', '\\']) {
                assert_eq!(pattern.matches('/').count(), name.matches('/').count());
            }
        }
    }
});
