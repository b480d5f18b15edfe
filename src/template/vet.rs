//! Checks a template applies to store data before interpolating it into a config file where a
//! stray space or newline would change its meaning: whoever may write a key must not be able to
//! add a directive (an HAProxy `program` section that runs a command as root, say).

/// A host name (letters, digits, `-`, `.`), an IPv4 address or a bracketed IPv6 address,
/// `:`, and a port from 1 to 65535: what a `server` line takes.
pub fn host_port(value: &str) -> Result<(), &'static str> {
    let (host, port) = value.rsplit_once(':').ok_or("there is no `:port`")?;
    match port.parse::<u16>() {
        Ok(port) if port > 0 && !value.ends_with(':') => {}
        _ => return Err("the port is not a number from 1 to 65535"),
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| "the bracketed host is not an IPv6 address");
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if !host.is_empty() && host.len() <= 253 && host.split('.').all(valid_label) {
        Ok(())
    } else {
        Err("the host is neither a host name nor an IP address")
    }
}

/// A word of letters, digits, `.`, `_` and `-`: a server or backend name, never a space,
/// a newline or a comment sign.
pub fn safe_name(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("it is empty");
    }
    if value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err("only letters, digits, `.`, `_` and `-` are allowed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_takes_only_a_host_and_a_port() {
        for good in [
            "10.0.0.1:8080",
            "web-1.internal:80",
            "[::1]:443",
            "[2001:db8::5]:65535",
            "localhost:1",
        ] {
            assert_eq!(host_port(good), Ok(()), "{good}");
        }
        for bad in [
            "10.0.0.1",
            "10.0.0.1:0",
            "10.0.0.1:70000",
            "10.0.0.1:80 check",
            "10.0.0.1:80\nglobal",
            "10.0.0.1:80 backup",
            "::1:80",
            "[nope]:80",
            ":80",
            "-x:80",
            "a b:80",
            "",
            "127.0.0.1:18082 check\n\nglobal\n    master-worker\n\nprogram pwn\n    command /bin/sh -c \"id > /tmp/x\"\n#",
        ] {
            assert!(host_port(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn safe_name_takes_one_word() {
        assert_eq!(safe_name("web-1.a_b"), Ok(()));
        for bad in ["", "web 1", "web\nglobal", "a#b", "x;y", "é"] {
            assert!(safe_name(bad).is_err(), "{bad:?}");
        }
    }
}
