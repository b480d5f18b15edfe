//! The host's interface table as go-sockaddr sees it: every interface address with its
//! interface (as Go's `net.Interfaces` and `Interface.Addrs` list them), and the interface of
//! the default route. Read from the machine ([`Host::read`]), or given whole by a test.

use std::sync::Arc;

use super::addr::IpNet;

/// One network interface, as Go's `net.Interface`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub index: u32,
    pub mtu: u32,
    pub name: String,
    /// `aa:bb:…`, empty when the interface has none (or an all-zero one, as Go reads it).
    pub hardware_address: String,
    pub flags: Flags,
}

/// The interface flags Go's `net.Flags` has (Go 1.19, before `running` was added).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    pub up: bool,
    pub broadcast: bool,
    pub loopback: bool,
    pub point_to_point: bool,
    pub multicast: bool,
}

impl Flags {
    /// From Linux's `IFF_*` bits.
    pub fn from_linux(bits: u32) -> Flags {
        Flags {
            up: bits & 0x1 != 0,
            broadcast: bits & 0x2 != 0,
            loopback: bits & 0x8 != 0,
            point_to_point: bits & 0x10 != 0,
            multicast: bits & 0x1000 != 0,
        }
    }

    /// Go's `Flags.String`: the names in bit order joined by `|`, `0` for none.
    pub fn text(self) -> String {
        let names = [
            (self.up, "up"),
            (self.broadcast, "broadcast"),
            (self.loopback, "loopback"),
            (self.point_to_point, "pointtopoint"),
            (self.multicast, "multicast"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        if set.is_empty() {
            "0".to_owned()
        } else {
            set.join("|")
        }
    }

    /// Whether every flag of `wanted` is set here (Go's `f & wanted == wanted`).
    pub fn has_all(self, wanted: Flags) -> bool {
        (!wanted.up || self.up)
            && (!wanted.broadcast || self.broadcast)
            && (!wanted.loopback || self.loopback)
            && (!wanted.point_to_point || self.point_to_point)
            && (!wanted.multicast || self.multicast)
    }
}

/// go-sockaddr's `IfAddr`: one address of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    pub address: IpNet,
    pub interface: Arc<Interface>,
}

/// What go-sockaddr reads from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// In Go's order: interfaces as the kernel lists them, each one's IPv4 addresses, then
    /// its IPv6 ones, in the kernel's order.
    pub addresses: Vec<IfAddr>,
    /// The interface of the first IPv4 default route through a gateway (go-sockaddr takes the
    /// first `default via GATEWAY dev NAME` line of `ip route`), if there is one.
    pub default_interface: Option<String>,
}

/// Why the host's interfaces could not be read.
#[derive(Debug, thiserror::Error)]
#[error("getifaddrs: {0}")]
pub struct ReadError(#[from] nix::errno::Errno);

impl Host {
    /// The machine's table: addresses from `getifaddrs`, MTUs from `/sys/class/net`, the
    /// default route from `/proc/net/route`. Reads local kernel state only; nothing is sent.
    pub fn read() -> Result<Host, ReadError> {
        use nix::ifaddrs::getifaddrs;
        let mut interfaces: Vec<(Arc<Interface>, Vec<IpNet>, Vec<IpNet>)> = Vec::new();
        for entry in getifaddrs()? {
            let position = match interfaces
                .iter()
                .position(|(i, _, _)| i.name == entry.interface_name)
            {
                Some(position) => position,
                None => {
                    let name = entry.interface_name.clone();
                    let interface = Interface {
                        index: nix::net::if_::if_nametoindex(name.as_str()).unwrap_or(0),
                        mtu: mtu_of(&name),
                        flags: Flags::from_linux(entry.flags.bits() as u32),
                        hardware_address: String::new(),
                        name,
                    };
                    interfaces.push((Arc::new(interface), Vec::new(), Vec::new()));
                    interfaces.len() - 1
                }
            };
            let (interface, v4, v6) = &mut interfaces[position];
            let Some(address) = entry.address else {
                continue;
            };
            if let Some(link) = address.as_link_addr() {
                let bytes = link.addr().unwrap_or_default();
                // Go leaves an all-zero hardware address (a loopback's) empty.
                if bytes.iter().any(|b| *b != 0) {
                    let text: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
                    Arc::make_mut(interface).hardware_address = text.join(":");
                }
            } else if let Some(inet) = address.as_sockaddr_in() {
                let prefix = entry
                    .netmask
                    .and_then(|mask| mask.as_sockaddr_in().map(|m| m.ip().to_bits().count_ones()))
                    .unwrap_or(32);
                v4.push(IpNet::v4(inet.ip(), prefix as u8));
            } else if let Some(inet6) = address.as_sockaddr_in6() {
                let prefix = entry
                    .netmask
                    .and_then(|mask| {
                        mask.as_sockaddr_in6()
                            .map(|m| m.ip().to_bits().count_ones())
                    })
                    .unwrap_or(128);
                v6.push(IpNet::v6(inet6.ip(), prefix as u8));
            }
        }
        let addresses = interfaces
            .into_iter()
            .flat_map(|(interface, v4, v6)| {
                v4.into_iter().chain(v6).map(move |address| IfAddr {
                    address,
                    interface: Arc::clone(&interface),
                })
            })
            .collect();
        let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        Ok(Host {
            addresses,
            default_interface: default_interface(&routes),
        })
    }
}

fn mtu_of(name: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// The interface of the first default route through a gateway in `/proc/net/route`: the route
/// `ip route` prints first as `default via GATEWAY dev NAME`, the one go-sockaddr picks.
pub fn default_interface(proc_net_route: &str) -> Option<String> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    proc_net_route.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (name, destination, flags, mask) = (
            fields.first()?,
            fields.get(1)?,
            fields.get(3)?,
            fields.get(7)?,
        );
        let flags = u32::from_str_radix(flags, 16).ok()?;
        let default = *destination == "00000000" && *mask == "00000000";
        (default && flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY)
            .then(|| (*name).to_owned())
    })
}

/// The interface go-sockaddr takes from `ip route`'s output: the fifth word of the first line
/// reading `default via GATEWAY dev NAME`.
pub fn default_interface_of_ip_route(ip_route: &str) -> Option<String> {
    ip_route.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        (words.len() >= 5 && words[0] == "default" && words[1] == "via" && words[3] == "dev")
            .then(|| words[4].to_owned())
    })
}
