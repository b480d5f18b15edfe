//! Any text as a template resource file: parsing and validation may reject it, never panic.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A templates directory with one template, so `src = "t.tmpl"` can also validate.
fn templates_dir() -> &'static Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("terad-fuzz-templates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("t.tmpl"), "x").unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("conf.d/fuzz.toml");
    if let Ok(resource) = terad::config::resource::parse_resource(
        "fuzz".into(),
        file,
        text,
        templates_dir(),
        "/prefix",
    ) {
        // What validation accepts is usable: keys are absolute, the mode is a file mode.
        assert!(resource.keys.iter().all(|k| k.starts_with("/prefix")));
        assert!(resource.mode.is_none_or(|m| m <= 0o7777));
        assert_eq!(resource.template.name, "t.tmpl");
    }
});
