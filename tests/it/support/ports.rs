//! Loopback ports for the services a test or a benchmark starts.

/// A loopback port (TCP and UDP) reserved for this test process until it exits.
///
/// Asking the kernel for port 0 and releasing it is racy: the same number can be handed out again
/// as the local port of any outgoing connection before the service under test binds it (CI saw
/// etcd fail with "address already in use" that way). So ports come from below the kernel's
/// ephemeral range, where outgoing connections never land, and each is claimed with an advisory
/// lock file that the other test processes nextest runs in parallel respect; the kernel drops the
/// lock when the process exits, so nothing needs cleaning up.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    use std::net::{TcpListener, UdpSocket};
    use std::sync::Mutex;

    static CLAIMED: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());

    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.min(32_768));
    assert!(
        high > low + 1_000,
        "the ephemeral port range starts at {ephemeral_low}; tests need ports below it"
    );
    let locks = std::env::temp_dir().join("terad-test-ports");
    std::fs::create_dir_all(&locks).unwrap();
    let span = u64::from(high - low);
    let start = RandomState::new().hash_one(std::process::id()) % span;
    for offset in 0..span {
        let port = low + ((start + offset) % span) as u16;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(locks.join(port.to_string()))
            .unwrap();
        if lock.try_lock().is_err() {
            continue;
        }
        let free = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            CLAIMED.lock().unwrap().push(lock);
            return port;
        }
    }
    panic!("no free loopback port between {low} and {high}");
}
