//! go-sockaddr's IP addresses: an address with its prefix length, written and compared as
//! go-sockaddr writes and compares its `IPv4Addr` and `IPv6Addr` (an interface address is
//! never given a port, so ports are always 0 here), and its table of RFC address blocks.

use std::cmp::Ordering;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 address and the length of its network prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub v6: bool,
    /// The address; an IPv4 one in the low 32 bits.
    pub bits: u128,
    pub prefix: u8,
}

/// The result of one of go-sockaddr's comparisons: before, undecided, after.
pub type Cmp = Ordering;

impl IpNet {
    pub fn v4(address: Ipv4Addr, prefix: u8) -> IpNet {
        IpNet {
            v6: false,
            bits: u128::from(u32::from(address)),
            prefix: prefix.min(32),
        }
    }

    pub fn v6(address: Ipv6Addr, prefix: u8) -> IpNet {
        IpNet {
            v6: true,
            bits: u128::from(address),
            prefix: prefix.min(128),
        }
    }

    /// Parses `a.b.c.d/n`, `a:b::c/n` or a bare address (a host: all of its bits are the
    /// prefix), as go-sockaddr's `NewIPAddr` reads the network of `include "network"`.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => {
                // Go's ParseCIDR takes decimal digits only.
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (address, Some(prefix.parse::<u8>().ok()?))
            }
            None => (text, None),
        };
        if let Ok(v4) = address.parse::<Ipv4Addr>() {
            let prefix = prefix.unwrap_or(32);
            return (prefix <= 32).then(|| IpNet::v4(v4, prefix));
        }
        let v6 = address.parse::<Ipv6Addr>().ok()?;
        let prefix = prefix.unwrap_or(128);
        (prefix <= 128).then(|| IpNet::v6(v6, prefix))
    }

    /// Bits in the address: 32 or 128.
    fn width(self) -> u32 {
        if self.v6 { 128 } else { 32 }
    }

    fn all_ones(self) -> u128 {
        if self.v6 {
            u128::MAX
        } else {
            u128::from(u32::MAX)
        }
    }

    pub fn mask(self) -> u128 {
        let host_bits = self.width() - u32::from(self.prefix);
        if host_bits >= 128 {
            0
        } else {
            self.all_ones() & !((1u128 << host_bits) - 1)
        }
    }

    pub fn network(self) -> u128 {
        self.bits & self.mask()
    }

    /// The last address of the network (IPv4's broadcast address).
    pub fn last(self) -> u128 {
        self.network() | (self.all_ones() & !self.mask())
    }

    fn with(self, bits: u128, prefix: u8) -> IpNet {
        IpNet {
            bits,
            prefix,
            ..self
        }
    }

    fn host_prefix(self) -> u8 {
        self.width() as u8
    }

    /// The address alone, as Go's `net.IP.String` writes it (an IPv4-mapped IPv6 address as
    /// IPv4, as Go does).
    pub fn address(self) -> String {
        ip_text(self.v6, self.bits)
    }

    /// go-sockaddr's `String`: the address, then `/prefix` unless it is a host.
    pub fn string(self) -> String {
        if self.prefix == self.host_prefix() {
            self.address()
        } else {
            format!("{}/{}", self.address(), self.prefix)
        }
    }

    pub fn type_name(self) -> &'static str {
        if self.v6 { "IPv6" } else { "IPv4" }
    }

    /// Whether the whole network of `other` lies in this one (go-sockaddr's `Contains`: same
    /// family, first and last address inside).
    pub fn contains(self, other: IpNet) -> bool {
        self.v6 == other.v6 && self.network() <= other.network() && self.last() >= other.last()
    }

    /// The value of one of go-sockaddr's address attributes (`address`, `netmask`, …), or
    /// `None` for a name it does not have for this family.
    pub fn attr(self, name: &str) -> Option<String> {
        let host = self.host_prefix();
        Some(match name {
            "host" | "address" => self.address(),
            "port" => "0".to_owned(),
            "netmask" => ip_text(self.v6, self.mask()),
            "network" => ip_text(self.v6, self.network()),
            "mask_bits" => self.prefix.to_string(),
            "binary" if self.v6 => format!("{:0128b}", self.bits),
            "binary" => format!("{:032b}", self.bits),
            "hex" if self.v6 => format!("{:032x}", self.bits),
            "hex" => format!("{:08x}", self.bits),
            "first_usable" => {
                let first = if !self.v6 && self.prefix < 31 {
                    self.network() + 1
                } else {
                    self.network()
                };
                self.with(first, host).string()
            }
            "last_usable" => {
                let last = if !self.v6 && self.prefix < 31 {
                    self.last() - 1
                } else {
                    self.last()
                };
                self.with(last, host).string()
            }
            "octets" => {
                let bytes = self.bits.to_be_bytes();
                let octets = if self.v6 { &bytes[..] } else { &bytes[12..] };
                let octets: Vec<String> = octets.iter().map(u8::to_string).collect();
                octets.join(" ")
            }
            "size" => {
                let host_bits = self.width() - u32::from(self.prefix);
                if host_bits == 128 {
                    // 2^128 overflows u128.
                    "340282366920938463463374607431768211456".to_owned()
                } else {
                    (1u128 << host_bits).to_string()
                }
            }
            "broadcast" if !self.v6 => self.with(self.last(), host).string(),
            "uint32" if !self.v6 => self.bits.to_string(),
            "uint128" if self.v6 => self.bits.to_string(),
            "string" => self.string(),
            "type" => self.type_name().to_owned(),
            _ => return None,
        })
    }

    /// go-sockaddr's `CmpAddress`: by address within a family, undecided across families.
    pub fn cmp_address(self, other: IpNet) -> Cmp {
        if self.v6 != other.v6 {
            return Ordering::Equal;
        }
        self.bits.cmp(&other.bits)
    }

    /// go-sockaddr's `AscNetworkSize`: by netmask within a family (a larger network first).
    pub fn cmp_size(self, other: IpNet) -> Cmp {
        if self.v6 != other.v6 {
            return Ordering::Equal;
        }
        self.prefix.cmp(&other.prefix)
    }

    /// go-sockaddr's `AscType`: IPv4 before IPv6.
    pub fn cmp_type(self, other: IpNet) -> Cmp {
        self.v6.cmp(&other.v6)
    }

    /// go-sockaddr's `CmpRFC`: addresses in the RFC's blocks first. Across families it is
    /// one-sided as go-sockaddr's is: only a receiver inside the RFC decides.
    pub fn cmp_rfc(self, rfc: u64, other: IpNet) -> Cmp {
        let mine = in_rfc(rfc, self);
        if self.v6 != other.v6 {
            return if mine {
                Ordering::Less
            } else {
                Ordering::Equal
            };
        }
        match (mine, in_rfc(rfc, other)) {
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            _ => Ordering::Equal,
        }
    }

    /// The address as Go's `net.IP` methods see it: an IPv4-mapped IPv6 address is IPv4.
    fn as_go_ip(self) -> (bool, u128) {
        match self.v6.then(|| Ipv6Addr::from(self.bits).to_ipv4_mapped()) {
            Some(Some(v4)) => (false, u128::from(u32::from(v4))),
            Some(None) => (true, self.bits),
            None => (false, self.bits),
        }
    }

    pub fn is_loopback(self) -> bool {
        match self.as_go_ip() {
            (false, v4) => v4 >> 24 == 127,
            (true, v6) => v6 == 1,
        }
    }

    pub fn is_multicast(self) -> bool {
        match self.as_go_ip() {
            (false, v4) => v4 >> 28 == 0xe,
            (true, v6) => v6 >> 120 == 0xff,
        }
    }

    pub fn is_unspecified(self) -> bool {
        self.as_go_ip().1 == 0
    }

    pub fn is_link_local_unicast(self) -> bool {
        match self.as_go_ip() {
            (false, v4) => v4 >> 16 == 0xa9fe,
            (true, v6) => v6 >> 118 == 0x3fa,
        }
    }

    pub fn is_link_local_multicast(self) -> bool {
        match self.as_go_ip() {
            (false, v4) => v4 >> 8 == 0xe0_00_00,
            (true, v6) => v6 >> 120 == 0xff && (v6 >> 112) & 0x0f == 0x02,
        }
    }

    pub fn is_interface_local_multicast(self) -> bool {
        match self.as_go_ip() {
            (false, _) => false,
            (true, v6) => v6 >> 120 == 0xff && (v6 >> 112) & 0x0f == 0x01,
        }
    }

    /// Go's `IsGlobalUnicast`.
    pub fn is_global_unicast(self) -> bool {
        let broadcast = matches!(self.as_go_ip(), (false, 0xffff_ffff));
        !broadcast
            && !self.is_unspecified()
            && !self.is_loopback()
            && !self.is_multicast()
            && !self.is_link_local_unicast()
    }

    /// Not in go-sockaddr's blocks that routers do not forward.
    pub fn is_forwardable(self) -> bool {
        !in_rfc(FORWARDING_BLACKLIST, self)
    }
}

/// Go's `net.IP.String` of an address of the family.
fn ip_text(v6: bool, bits: u128) -> String {
    if !v6 {
        return Ipv4Addr::from(bits as u32).to_string();
    }
    let address = Ipv6Addr::from(bits);
    match address.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => address.to_string(),
    }
}

/// go-sockaddr's pseudo-RFC number for the blocks routers do not forward.
pub const FORWARDING_BLACKLIST: u64 = 4_294_967_295;

/// go-sockaddr v1.0.1's table of RFCs and their address blocks (`KnownRFCs`); the last entry is
/// its list of blocks that are not forwarded, under its pseudo-RFC number.
const RFCS: &[(u64, &[&str])] = &[
    (919, &["255.255.255.255/32"]),
    (1122, &["0.0.0.0/8", "127.0.0.0/8"]),
    (1112, &["224.0.0.0/4"]),
    (1918, &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]),
    (2544, &["198.18.0.0/15"]),
    (2765, &["::ffff:0:0/96"]),
    (2928, &["2001::/16"]),
    (3056, &["2002::/16"]),
    (3068, &["192.88.99.0/24", "2002:c058:6301::/120"]),
    (3171, &["224.0.0.0/4"]),
    (
        3330,
        &[
            "0.0.0.0/8",
            "10.0.0.0/8",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.0.2.0/24",
            "192.88.99.0/24",
            "192.168.0.0/16",
            "198.18.0.0/15",
            "224.0.0.0/4",
            "240.0.0.0/4",
        ],
    ),
    (3849, &["2001:db8::/32"]),
    (3927, &["169.254.0.0/16"]),
    (4038, &["::ffff:0:0/96"]),
    (4193, &["fc00::/7"]),
    (
        4291,
        &[
            "::/128",
            "::1/128",
            "::/96",
            "::ffff:0:0/96",
            "fe80::/10",
            "fec0::/10",
            "ff00::/8",
        ],
    ),
    (4380, &["2001::/32"]),
    (4773, &["2001::/23"]),
    (4843, &["2001:10::/28"]),
    (5180, &["2001:200::/48"]),
    (
        5735,
        &[
            "192.0.2.0/24",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "198.18.0.0/15",
        ],
    ),
    (5737, &["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]),
    (6052, &["64:ff9b::/96"]),
    (6333, &["192.0.0.0/29"]),
    (6598, &["100.64.0.0/10"]),
    (6666, &["100::/64"]),
    (
        6890,
        &[
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.0.0.0/24",
            "192.0.0.0/29",
            "192.0.2.0/24",
            "192.88.99.0/24",
            "192.168.0.0/16",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "240.0.0.0/4",
            "255.255.255.255/32",
            "::1/128",
            "::/128",
            "64:ff9b::/96",
            "::ffff:0:0/96",
            "100::/64",
            "2001::/16",
            "2002::/16",
            "fc00::/7",
            "fe80::/10",
        ],
    ),
    (7335, &["192.0.0.0/29"]),
    (
        FORWARDING_BLACKLIST,
        &[
            "0.0.0.0/8",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "192.0.0.0/24",
            "192.0.2.0/24",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "240.0.0.0/4",
            "255.255.255.255/32",
            "::1/128",
            "::/128",
            "::ffff:0:0/96",
            "2001:db8::/32",
            "2001:10::/28",
            "fe80::/10",
        ],
    ),
];

/// The blocks of RFC `rfc`, if go-sockaddr knows it.
pub fn rfc_blocks(rfc: u64) -> Option<Vec<IpNet>> {
    RFCS.iter()
        .find(|(number, _)| *number == rfc)
        .map(|(_, blocks)| {
            blocks
                .iter()
                .filter_map(|block| IpNet::parse(block))
                .collect()
        })
}

/// Whether `address`'s network lies in one of RFC `rfc`'s blocks.
pub fn in_rfc(rfc: u64, address: IpNet) -> bool {
    rfc_blocks(rfc).is_some_and(|blocks| blocks.iter().any(|block| block.contains(address)))
}
