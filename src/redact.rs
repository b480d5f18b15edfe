//! Secrets kept out of what terad prints: the credentials in a URL's userinfo
//! (`http://user:pw@host` prints as `http://user:***@host`), and a keyed hash instead of a plain
//! checksum of content that may be a secret, and values in error messages described by length
//! instead of quoted.

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// What replaces a password (or a userinfo without one, which is then a token).
const MASK: &str = "***";

/// `url` with its userinfo's password (or the whole userinfo when it has no `:`) masked.
/// Anything that is not `scheme://…@host` comes back unchanged.
pub fn url(url: &str) -> Cow<'_, str> {
    urls_in(url)
}

/// `text` with the userinfo of every `scheme://user:pw@host` in it masked, for messages that
/// quote a URL among other words (errors of HTTP clients, command lines, `Location` headers).
pub fn urls_in(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut done = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("://") {
        let authority_start = search + found + 3;
        let authority_len = text[authority_start..]
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`' | ',' | ';' | ')'
                ) || c.is_whitespace()
            })
            .unwrap_or(text.len() - authority_start);
        let authority = &text[authority_start..authority_start + authority_len];
        search = authority_start + authority_len;
        let Some(at) = authority.rfind('@') else {
            continue;
        };
        let userinfo = &authority[..at];
        let masked = match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:{MASK}"),
            None => MASK.to_owned(),
        };
        let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
        out.push_str(&text[done..authority_start]);
        out.push_str(&masked);
        done = authority_start + at;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[done..]);
            Cow::Owned(out)
        }
    }
}

/// A keyed hash of `content` for logs, 16 hex digits: equal digits in one process's log mean
/// equal content, but the key is random per process, so a logged digest of a small secret (a
/// password file rendered by a template) cannot be brute-forced offline the way a plain md5 can.
/// SipHash-1-3 with a random 128-bit key, the standard library's keyed hash.
pub fn content_hash(content: &[u8]) -> String {
    static KEY: OnceLock<std::hash::RandomState> = OnceLock::new();
    let hash = KEY
        .get_or_init(std::hash::RandomState::new)
        .hash_one(content);
    format!("{hash:016x}")
}

/// How a value appears in an error: its length, not its content (it may be a password).
pub fn describe(value: &str) -> String {
    format!("a value of {} bytes", value.len())
}

/// A short text quoted for an error message; longer ones are described by length. For
/// arguments a template author wrote or computed, which are not secrets (numbers, booleans).
pub fn preview(value: &str) -> String {
    const MAX: usize = 64;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        describe(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_masked_and_the_rest_kept() {
        assert_eq!(
            url("http://user:pw@127.0.0.1:8500"),
            "http://user:***@127.0.0.1:8500"
        );
        assert_eq!(
            url("https://tok3n@consul:8501/v1"),
            "https://***@consul:8501/v1"
        );
        assert_eq!(url("http://127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert!(matches!(url("http://127.0.0.1:2379"), Cow::Borrowed(_)));
        // An @ after the authority is not userinfo.
        assert_eq!(
            url("http://host/path?mail=a@b"),
            "http://host/path?mail=a@b"
        );
        // A password may hold an @ itself; the last @ ends the userinfo.
        assert_eq!(url("http://u:p@ss@host"), "http://u:***@host");
    }

    #[test]
    fn every_url_in_a_message_is_masked() {
        assert_eq!(
            urls_in(
                "cannot reach etcd at http://a:pw1@e1:2379, https://b:pw2@e2:2379: error for url (http://c:pw3@x/v1)"
            ),
            "cannot reach etcd at http://a:***@e1:2379, https://b:***@e2:2379: error for url (http://c:***@x/v1)"
        );
        assert_eq!(urls_in("no url here: a@b"), "no url here: a@b");
        assert_eq!(
            urls_in("curl -s \"http://x:y@h/\""),
            "curl -s \"http://x:***@h/\""
        );
    }

    #[test]
    fn content_hashes_tell_versions_apart_and_are_not_md5() {
        let a = content_hash(b"hunter2");
        assert_eq!(a.len(), 16);
        assert_eq!(a, content_hash(b"hunter2"));
        assert_ne!(a, content_hash(b"hunter3"));
        // md5("hunter2") = 2ab96390c7dbe3439de74d0c9b0b1767
        assert!(!"2ab96390c7dbe3439de74d0c9b0b1767".contains(&a));
    }
}
