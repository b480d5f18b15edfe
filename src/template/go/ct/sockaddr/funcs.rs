//! go-sockaddr's template functions (its `template` package's map, v1.0.1, unchanged through
//! v1.0.6 on Linux) over a [`Host`] table: the sources (`GetAllInterfaces`, `GetPrivateIP`, …)
//! and the operations on an `IfAddrs` list (`include exclude sort attr join limit offset
//! unique`), with go-sockaddr's selectors, ordering and messages. `math` parses and is refused.

use std::cmp::Ordering;
use std::sync::Arc;

use super::SockaddrError as E;
use super::addr::{FORWARDING_BLACKLIST, IpNet, in_rfc, rfc_blocks};
use super::host::{Flags, Host, IfAddr};
use crate::template::go::{FuncError, Functions, ListType, Object, Param, Signature, Value};

/// The Go type of go-sockaddr's address lists.
pub const IF_ADDRS: &str = "sockaddr.IfAddrs";
const LIST: Param = Param::ObjectList(IF_ADDRS);

type Result<T> = std::result::Result<T, FuncError>;

/// go-sockaddr's functions terad does not provide: they parse, and are refused at load (when
/// the argument of `sockaddr` is literal) or when called.
pub const REFUSED: &[&str] = &["math"];

pub fn functions() -> Functions<Host> {
    let mut f = Functions::new();
    let s = Signature::new;
    let sources = [
        "GetAllInterfaces",
        "GetDefaultInterfaces",
        "GetPrivateInterfaces",
        "GetPublicInterfaces",
    ];
    for name in sources {
        f.register(name, s(&[], None), source_of(name));
    }
    f.register("sort", s(&[Param::String, LIST], None), |h, a| {
        let default = h.default_interface.as_deref();
        Ok(list(sort_by(text(a, 0), addrs(&a[1]), default)?))
    })
    .register(
        "include",
        s(&[Param::String, Param::String, LIST], None),
        |_, a| Ok(list(select(text(a, 0), text(a, 1), addrs(&a[2]), true)?)),
    )
    .register(
        "exclude",
        s(&[Param::String, Param::String, LIST], None),
        |_, a| Ok(list(select(text(a, 0), text(a, 1), addrs(&a[2]), false)?)),
    )
    .register("attr", s(&[Param::String, Param::Any], None), attr)
    .register(
        "join",
        s(&[Param::String, Param::String, LIST], None),
        |_, a| {
            let name = text(a, 0).to_lowercase();
            let values = addrs(&a[2])
                .iter()
                .map(|addr| attribute(addr, &name))
                .collect::<std::result::Result<Vec<_>, E>>()?;
            Ok(Value::from(values.join(text(a, 1))))
        },
    )
    .register("limit", s(&[Param::Int, LIST], None), |_, a| {
        let limit = a[0].as_int().unwrap_or_default();
        let limit = usize::try_from(limit).map_err(|_| E::NotUnsigned(limit))?;
        let mut addrs = addrs(&a[1]);
        addrs.truncate(limit);
        Ok(list(addrs))
    })
    .register("offset", s(&[Param::Int, LIST], None), |_, a| {
        let offset = a[0].as_int().unwrap_or_default();
        let addrs = addrs(&a[1]);
        let skip = offset.unsigned_abs() as usize;
        if skip > addrs.len() {
            return Err(E::Offset {
                offset: offset.unsigned_abs(),
                count: addrs.len(),
            }
            .into());
        }
        let start = if offset < 0 { addrs.len() - skip } else { skip };
        Ok(list(addrs[start..].to_vec()))
    })
    .register("unique", s(&[Param::String, LIST], None), unique)
    .register("GetPrivateIP", s(&[], None), |h, _| {
        Ok(first_address(&private_interfaces(h, true)))
    })
    .register("GetPublicIP", s(&[], None), |h, _| {
        Ok(first_address(&private_interfaces(h, false)))
    })
    .register("GetPrivateIPs", s(&[], None), |h, _| Ok(ips(h, true)))
    .register("GetPublicIPs", s(&[], None), |h, _| Ok(ips(h, false)))
    .register("GetInterfaceIP", s(&[Param::String], None), |h, a| {
        let named = by_regex("name", text(a, 0), &h.addresses, |a| {
            a.interface.name.clone()
        })?
        .0;
        let forwardable = by_flags("forwardable", &named)?.0;
        Ok(first_address(&sort_by("+type,+size", forwardable, None)?))
    })
    .register("GetInterfaceIPs", s(&[Param::String], None), |h, a| {
        let named = by_regex("name", text(a, 0), &h.addresses, |a| {
            a.interface.name.clone()
        })?
        .0;
        Ok(addresses(&sort_by("+type,+size", named, None)?))
    });
    for name in REFUSED {
        f.register(name, s(&[], Some(Param::Any)), |_, _| {
            Err(E::Refused("math".to_owned()).into())
        });
    }
    f
}

/// The function of a source: a fn pointer cannot capture, so each name gets its own.
fn source_of(name: &str) -> fn(&Host, &[Value]) -> Result<Value> {
    match name {
        "GetDefaultInterfaces" => |h, _| Ok(list(default_interfaces(h)?)),
        "GetPrivateInterfaces" => |h, _| Ok(list(private_interfaces(h, true))),
        "GetPublicInterfaces" => |h, _| Ok(list(private_interfaces(h, false))),
        _ => |h, _| Ok(list(h.addresses.clone())),
    }
}

fn text(args: &[Value], i: usize) -> &str {
    args.get(i).and_then(Value::as_str).unwrap_or_default()
}

/// An `IfAddrs` value.
pub fn list(addrs: Vec<IfAddr>) -> Value {
    let items = addrs
        .into_iter()
        .map(|addr| Value::Object(Arc::new(addr)))
        .collect();
    Value::list(ListType::Objects(IF_ADDRS), items)
}

/// The addresses of an `IfAddrs` value (the executor has checked its type).
pub fn addrs(value: &Value) -> Vec<IfAddr> {
    let Value::List(items) = value else {
        return Vec::new();
    };
    items.items.iter().filter_map(as_if_addr).cloned().collect()
}

fn as_if_addr(value: &Value) -> Option<&IfAddr> {
    match value {
        Value::Object(object) => object.as_any()?.downcast_ref::<IfAddr>(),
        _ => None,
    }
}

impl Object for IfAddr {
    fn type_name(&self) -> &str {
        "sockaddr.IfAddr"
    }

    /// go-sockaddr's `IfAddr.String`: the address, then Go's `%v` of the `net.Interface`.
    fn fmt_v(&self, out: &mut String, _plus: bool) {
        let i = &self.interface;
        out.push_str(&format!(
            "{} {{{} {} {} {} {}}}",
            self.address.string(),
            i.index,
            i.mtu,
            i.name,
            i.hardware_address,
            i.flags.text()
        ));
    }

    fn is_stringer(&self) -> bool {
        true
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

fn default_interfaces(host: &Host) -> std::result::Result<Vec<IfAddr>, E> {
    let name = host
        .default_interface
        .as_ref()
        .ok_or(E::NoDefaultInterface)?;
    Ok(host
        .addresses
        .iter()
        .filter(|addr| &addr.interface.name == name)
        .cloned()
        .collect())
}

/// `GetPrivateInterfaces` (`private`) or `GetPublicInterfaces`: forwardable addresses of
/// interfaces that are up, the default interface's first, then IPv4, then larger networks;
/// inside RFC 6890's blocks or outside them.
fn private_interfaces(host: &Host, private: bool) -> Vec<IfAddr> {
    let candidates: Vec<IfAddr> = host
        .addresses
        .iter()
        .filter(|addr| addr.address.is_forwardable() && addr.interface.flags.up)
        .cloned()
        .collect();
    let default = host.default_interface.as_deref();
    let sorted = go_sort(candidates, &[Key::Default(default), Key::Type, Key::Size]);
    sorted
        .into_iter()
        .filter(|addr| in_rfc(6890, addr.address) == private)
        .collect()
}

/// `GetPrivateIPs` / `GetPublicIPs`: every address (up or not), IPv4 then larger networks,
/// inside RFC 6890 and forwardable, or outside it; addresses joined by spaces.
fn ips(host: &Host, private: bool) -> Value {
    let sorted = go_sort(host.addresses.clone(), &[Key::Type, Key::Size]);
    let chosen: Vec<IfAddr> = sorted
        .into_iter()
        .filter(|addr| in_rfc(6890, addr.address) == private)
        .filter(|addr| !private || !in_rfc(FORWARDING_BLACKLIST, addr.address))
        .collect();
    addresses(&chosen)
}

fn first_address(addrs: &[IfAddr]) -> Value {
    Value::from(
        addrs
            .first()
            .map(|a| a.address.address())
            .unwrap_or_default(),
    )
}

fn addresses(addrs: &[IfAddr]) -> Value {
    let all: Vec<String> = addrs.iter().map(|a| a.address.address()).collect();
    Value::from(all.join(" "))
}

/// One sort clause: a comparison, reversed for `-`.
#[derive(Clone, Copy)]
enum Key<'a> {
    Address,
    /// The interface of the default route first (undecided when there is none).
    Default(Option<&'a str>),
    Name,
    Port,
    Private,
    Size,
    Type,
    Desc(&'a Key<'a>),
}

impl Key<'_> {
    fn compare(&self, p: &IfAddr, q: &IfAddr) -> Ordering {
        match self {
            Key::Address => p.address.cmp_address(q.address),
            Key::Default(None) => Ordering::Equal,
            Key::Default(Some(name)) => {
                let (a, b) = (p.interface.name == *name, q.interface.name == *name);
                b.cmp(&a)
            }
            Key::Name => p.interface.name.cmp(&q.interface.name),
            Key::Port => Ordering::Equal,
            Key::Private => p.address.cmp_rfc(6890, q.address),
            Key::Size => p.address.cmp_size(q.address),
            Key::Type => p.address.cmp_type(q.address),
            Key::Desc(key) => key.compare(p, q).reverse(),
        }
    }
}

/// go-sockaddr's multi-key sort through Go's `sort.Sort`, which sorts up to 12 elements by
/// insertion: done the same way, so that the one-sided comparisons (`private` across families)
/// give go-sockaddr's order. Above 12, Go's order of equal elements is its own; this keeps
/// theirs.
fn go_sort(mut addrs: Vec<IfAddr>, keys: &[Key]) -> Vec<IfAddr> {
    let less = |p: &IfAddr, q: &IfAddr| {
        keys.iter()
            .map(|key| key.compare(p, q))
            .find(|o| *o != Ordering::Equal)
            == Some(Ordering::Less)
    };
    for i in 1..addrs.len() {
        let mut j = i;
        while j > 0 && less(&addrs[j], &addrs[j - 1]) {
            addrs.swap(j, j - 1);
            j -= 1;
        }
    }
    addrs
}

/// `sort "clause,clause"`; `default` is the interface of the host's default route.
fn sort_by(
    clauses: &str,
    addrs: Vec<IfAddr>,
    default: Option<&str>,
) -> std::result::Result<Vec<IfAddr>, E> {
    let mut parsed: Vec<(bool, Key)> = Vec::new();
    for clause in clauses.split(',') {
        let lowered = clause.trim().to_lowercase();
        let (desc, name) = match lowered.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, lowered.strip_prefix('+').unwrap_or(&lowered)),
        };
        let key = match name {
            "address" => Key::Address,
            "default" => Key::Default(default),
            "name" => Key::Name,
            "port" => Key::Port,
            "private" => Key::Private,
            "size" => Key::Size,
            "type" => Key::Type,
            _ => return Err(E::SortUnknown(clause.to_owned())),
        };
        parsed.push((desc, key));
    }
    let keys: Vec<Key> = parsed
        .iter()
        .map(|(desc, key)| if *desc { Key::Desc(key) } else { *key })
        .collect();
    Ok(go_sort(addrs, &keys))
}

/// `include`/`exclude` (`keep` says which side of the selection to return).
fn select(
    selector: &str,
    param: &str,
    addrs: Vec<IfAddr>,
    keep: bool,
) -> std::result::Result<Vec<IfAddr>, E> {
    let (matched, rest) = match selector.to_lowercase().as_str() {
        "address" => by_regex("address", param, &addrs, |a| a.address.string())?,
        "flag" | "flags" => by_flags(param, &addrs)?,
        "name" => by_regex("name", param, &addrs, |a| a.interface.name.clone())?,
        "network" => by_network(param, &addrs)?,
        "port" => by_regex("port", param, &addrs, |_| "0".to_owned())?,
        "rfc" | "rfcs" => by_rfcs(param, &addrs)?,
        "size" => by_size(param, &addrs)?,
        "type" => by_type(param, &addrs)?,
        _ => {
            return Err(E::Selector {
                operation: if keep { "include" } else { "exclude" },
                selector: selector.to_owned(),
            });
        }
    };
    Ok(if keep { matched } else { rest })
}

type Split = (Vec<IfAddr>, Vec<IfAddr>);

fn split_by(addrs: &[IfAddr], test: impl Fn(&IfAddr) -> bool) -> Split {
    addrs.iter().cloned().partition(|a| test(a))
}

fn by_regex(
    what: &'static str,
    pattern: &str,
    addrs: &[IfAddr],
    subject: impl Fn(&IfAddr) -> String,
) -> std::result::Result<Split, E> {
    let re = regex::Regex::new(pattern).map_err(|error| E::Regexp {
        what,
        pattern: pattern.to_owned(),
        error: error.to_string(),
    })?;
    Ok(split_by(addrs, |a| re.is_match(&subject(a))))
}

fn by_flags(param: &str, addrs: &[IfAddr]) -> std::result::Result<Split, E> {
    let mut flags = Flags::default();
    let mut check_flags = false;
    let mut attrs: Vec<fn(IpNet) -> bool> = Vec::new();
    for name in param.to_lowercase().split('|') {
        match name {
            "broadcast" => (check_flags, flags.broadcast) = (true, true),
            // go-sockaddr clears `up` from an empty set: every interface passes.
            "down" => (check_flags, flags.up) = (true, false),
            "forwardable" => attrs.push(IpNet::is_forwardable),
            "global unicast" => attrs.push(IpNet::is_global_unicast),
            "interface-local multicast" => attrs.push(IpNet::is_interface_local_multicast),
            "link-local multicast" => attrs.push(IpNet::is_link_local_multicast),
            "link-local unicast" => attrs.push(IpNet::is_link_local_unicast),
            "loopback" => {
                (check_flags, flags.loopback) = (true, true);
                attrs.push(IpNet::is_loopback);
            }
            "multicast" => {
                (check_flags, flags.multicast) = (true, true);
                attrs.push(IpNet::is_multicast);
            }
            "point-to-point" => (check_flags, flags.point_to_point) = (true, true),
            "unspecified" => attrs.push(IpNet::is_unspecified),
            "up" => (check_flags, flags.up) = (true, true),
            _ => return Err(E::UnknownFlag(name.to_owned())),
        }
    }
    Ok(split_by(addrs, |a| {
        (check_flags && a.interface.flags.has_all(flags)) || attrs.iter().any(|t| t(a.address))
    }))
}

fn by_network(param: &str, addrs: &[IfAddr]) -> std::result::Result<Split, E> {
    let (mut matched, mut rest) = (Vec::new(), Vec::new());
    for network in param.split('|') {
        let net = IpNet::parse(network).ok_or_else(|| E::Network {
            network: network.to_owned(),
        })?;
        let (m, r) = split_by(addrs, |a| net.contains(a.address));
        matched.extend(m);
        rest.extend(r);
    }
    Ok((matched, rest))
}

/// Go's `strconv.ParseUint(text, 10, bits)`, with its error text.
fn parse_uint(text: &str, bits: u32) -> std::result::Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            super::quoted(text)
        ));
    }
    match text.parse::<u64>() {
        Ok(n) if bits == 64 || n < 1 << bits => Ok(n),
        _ => Err(format!(
            "strconv.ParseUint: parsing {}: value out of range",
            super::quoted(text)
        )),
    }
}

fn by_rfcs(param: &str, addrs: &[IfAddr]) -> std::result::Result<Split, E> {
    let (mut matched, mut rest) = (Vec::new(), Vec::new());
    for rfc in param.split('|') {
        let lookup = |cause| E::RfcLookup {
            rfc: rfc.to_owned(),
            cause: Box::new(cause),
        };
        let number = parse_uint(rfc, 64).map_err(|error| {
            lookup(E::RfcNumber {
                rfc: rfc.to_owned(),
                error,
            })
        })?;
        let blocks = rfc_blocks(number).ok_or_else(|| lookup(E::RfcUnknown(number)))?;
        let (m, r) = split_by(addrs, |a| blocks.iter().any(|b| b.contains(a.address)));
        matched.extend(m);
        rest.extend(r);
    }
    Ok((matched, rest))
}

fn by_size(param: &str, addrs: &[IfAddr]) -> std::result::Result<Split, E> {
    let size = parse_uint(param, 64).map_err(|error| E::SizeArgument {
        size: param.to_owned(),
        error,
    })?;
    let (mut matched, mut rest) = (Vec::new(), Vec::new());
    for addr in addrs {
        let limit = if addr.address.v6 { 128 } else { 32 };
        if size > limit {
            return Err(E::SizeOutOfBounds {
                family: addr.address.type_name(),
                size,
            });
        }
        if u64::from(addr.address.prefix) == size {
            matched.push(addr.clone());
        } else {
            rest.push(addr.clone());
        }
    }
    Ok((matched, rest))
}

fn by_type(param: &str, addrs: &[IfAddr]) -> std::result::Result<Split, E> {
    let lowered = param.to_lowercase();
    let types: Vec<&str> = lowered.split('|').collect();
    if let Some(bad) = types
        .iter()
        .find(|t| !matches!(**t, "ip" | "ipv4" | "ipv6" | "unix"))
    {
        return Err(E::TypeUnknown {
            ty: (*bad).to_owned(),
            input: param.to_owned(),
        });
    }
    // go-sockaddr files an address once per type it tests, on one side or the other.
    let (mut matched, mut rest) = (Vec::new(), Vec::new());
    for addr in addrs {
        for ty in &types {
            let hit = match *ty {
                "ip" => true,
                "ipv4" => !addr.address.v6,
                "ipv6" => addr.address.v6,
                _ => false,
            };
            if hit {
                matched.push(addr.clone());
            } else {
                rest.push(addr.clone());
            }
        }
    }
    Ok((matched, rest))
}

/// go-sockaddr's attribute `name` (lowercased) of an address: the interface's `name` and
/// `flags`, then the address's own.
pub fn attribute(addr: &IfAddr, name: &str) -> std::result::Result<String, E> {
    match name {
        "name" if !addr.interface.name.is_empty() => Ok(addr.interface.name.clone()),
        "flags" => Ok(addr.interface.flags.text()),
        _ => addr
            .address
            .attr(name)
            .ok_or_else(|| E::AttrUnknown(name.to_owned())),
    }
}

fn attr(_: &Host, args: &[Value]) -> Result<Value> {
    let name = text(args, 0).to_lowercase();
    match &args[1] {
        Value::List(items) if items.ty == ListType::Objects(IF_ADDRS) => {
            match addrs(&args[1]).first() {
                Some(addr) => Ok(Value::from(attribute(addr, &name)?)),
                None => Ok(Value::str("")),
            }
        }
        value => match as_if_addr(value) {
            Some(addr) => Ok(Value::from(attribute(addr, &name)?)),
            None => {
                let mut shown = Vec::new();
                crate::template::go::fmt::sprint(&mut shown, std::slice::from_ref(value));
                Err(E::AttrOfType {
                    name: text(args, 0).to_owned(),
                    type_name: value.type_name().to_owned(),
                    value: String::from_utf8_lossy(&shown).into_owned(),
                }
                .into())
            }
        },
    }
}

fn unique(_: &Host, args: &[Value]) -> Result<Value> {
    let selector = text(args, 0);
    let mut kept = Vec::new();
    let mut last = String::new();
    for addr in addrs(&args[1]) {
        let value = match selector.to_lowercase().as_str() {
            "address" => addr.address.string(),
            "name" => addr.interface.name.clone(),
            _ => return Err(E::UniqueUnknown(selector.to_owned()).into()),
        };
        // Only neighbours are compared, and an empty value never counts as seen.
        if last.is_empty() || last != value {
            last = value;
            kept.push(addr);
        }
    }
    Ok(list(kept))
}
