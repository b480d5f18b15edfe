//! `sockaddr` against consul-template's own output: every case of
//! `tests/consul-template-sockaddr/cases` rendered with the interface table recorded with it
//! (`host.json`) must give consul-template's bytes, or its error. See that folder's README.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::addr::IpNet;
use super::host::{Flags, Host, IfAddr, Interface, default_interface_of_ip_route};
use super::{SockaddrError, evaluate};
use crate::catalog::{ServiceInput, ServiceSnapshot};
use crate::store::KeyStore;
use crate::template::go::context::GoContext;
use crate::template::go::{ExecErrorKind, FuncError, Template, Value};
use crate::template::{KeyScope, RenderInput};

/// Cases where terad knowingly differs from consul-template, and the words terad's error has
/// instead. Every one still runs.
const DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "math_refused",
        "go-sockaddr's function \"math\" is not supported by terad",
        "terad does not provide go-sockaddr's `math`: refused at load rather than computed",
    ),
    (
        "error_name_regex",
        "Unable to compile name regexp \"(\": regex parse error",
        "Rust's regex crate words its errors its own way",
    ),
];

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/consul-template-sockaddr")
}

/// The table recorded with the cases, as go-sockaddr read it.
fn recorded_host() -> Host {
    let text = std::fs::read_to_string(suite().join("host.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut addresses = Vec::new();
    for i in json["interfaces"].as_array().unwrap() {
        let flags: Vec<&str> = i["flags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f.as_str())
            .collect();
        let hardware = i["hardware_address"].as_str().unwrap_or_default();
        let interface = Arc::new(Interface {
            index: i["index"].as_u64().unwrap() as u32,
            mtu: i["mtu"].as_u64().unwrap() as u32,
            name: i["name"].as_str().unwrap().to_owned(),
            // Go leaves an all-zero hardware address empty.
            hardware_address: if hardware.bytes().all(|b| b == b'0' || b == b':') {
                String::new()
            } else {
                hardware.to_owned()
            },
            flags: Flags {
                up: flags.contains(&"UP"),
                broadcast: flags.contains(&"BROADCAST"),
                loopback: flags.contains(&"LOOPBACK"),
                point_to_point: flags.contains(&"POINTOPOINT"),
                multicast: flags.contains(&"MULTICAST"),
            },
        });
        for address in i["addresses"].as_array().unwrap() {
            addresses.push(IfAddr {
                address: IpNet::parse(address.as_str().unwrap()).unwrap(),
                interface: Arc::clone(&interface),
            });
        }
    }
    Host {
        addresses,
        default_interface: default_interface_of_ip_route(json["ip_route"].as_str().unwrap()),
    }
}

fn input() -> RenderInput {
    RenderInput {
        store: Arc::new(KeyStore::new()),
        scope: Arc::new(KeyScope {
            resource: "test".into(),
            prefix: "/".into(),
            keys: Vec::new(),
            values: Default::default(),
        }),
        services: ServiceInput::new(Arc::new(ServiceSnapshot::default())),
    }
}

/// What terad makes of a consul-template template on `host`: its output, or the message of
/// the `sockaddr` failure (at load or at render).
fn render(source: &str, host: &Arc<Host>) -> Result<String, String> {
    let funcs = crate::template::go::ct::functions();
    let template = Template::parse("", source, &funcs).map_err(|e| e.to_string())?;
    if let Some(error) = crate::template::go::ct::unsupported_calls("", &template).first() {
        return Err(error.message.trim_start_matches("sockaddr: ").to_owned());
    }
    let mut context = GoContext::new(input());
    context.sockaddr_host = Some(Arc::clone(host));
    let mut out = Vec::new();
    match template.execute(&context, &funcs, &Value::Nil, &mut out) {
        Ok(()) => Ok(String::from_utf8(out).unwrap()),
        Err(error) => match &*error.kind {
            ExecErrorKind::Call {
                function,
                error: FuncError::Failed(cause),
            } if function == "sockaddr" => Err(cause.to_string()),
            _ => Err(error.to_string()),
        },
    }
}

#[test]
fn sockaddr_renders_as_consul_template_on_the_recorded_host() {
    let host = Arc::new(recorded_host());
    let mut cases: Vec<PathBuf> = std::fs::read_dir(suite().join("cases"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_str().unwrap();
        let source = std::fs::read_to_string(case.join("template.tmpl")).unwrap();
        let got = render(&source, &host);
        let difference = DIFFERENCES.iter().find(|(n, _, _)| *n == name);
        let ok = match (difference, std::fs::read_to_string(case.join("expected"))) {
            (Some((_, words, _)), _) => got.as_ref().is_err_and(|e| e.contains(words)),
            (None, Ok(expected)) => got.as_deref() == Ok(expected.as_str()),
            (None, Err(_)) => {
                let error = std::fs::read_to_string(case.join("error")).unwrap();
                // consul-template's log line, after its own prefix and the outer call.
                let message = error
                    .split_once("error calling sockaddr: ")
                    .map(|(_, m)| m.trim_end())
                    .unwrap();
                got.as_ref().err().map(String::as_str) == Some(message)
            }
        };
        if !ok {
            failures.push(format!("{name}: got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_host_without_a_default_route_has_no_default_interfaces() {
    let mut host = recorded_host();
    host.default_interface = None;
    let error = evaluate(&host, &["GetDefaultInterfaces"]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unable to execute sockaddr input \"{{ GetDefaultInterfaces }}\": template: sockaddr.Parse:1:3: executing \"sockaddr.Parse\" at <GetDefaultInterfaces>: error calling GetDefaultInterfaces: No default interface found"
    );
    // Sorting by the default interface leaves the order as it is.
    assert_eq!(
        evaluate(
            &host,
            &["GetAllInterfaces | sort \"default\" | join \"name\" \" \""]
        )
        .unwrap(),
        "lo lo eth0 eth0 eth0"
    );
}

#[test]
fn the_default_route_is_the_first_through_a_gateway() {
    let proc_net_route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        ppp0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n\
        eth1\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        eth0\t00000000\t0102000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
        eth1\t00000000\t0102000A\t0003\t0\t0\t200\t00000000\t0\t0\t0\n";
    // ppp0's default route has no gateway: `ip route` prints it `default dev ppp0`, which
    // go-sockaddr passes over.
    assert_eq!(
        super::host::default_interface(proc_net_route).as_deref(),
        Some("eth0")
    );
    assert_eq!(super::host::default_interface("Iface\n"), None);
    assert_eq!(
        default_interface_of_ip_route(
            "default dev ppp0 scope link\ndefault via 10.0.2.1 dev eth0 proto dhcp metric 100\n"
        )
        .as_deref(),
        Some("eth0")
    );
}

#[test]
fn a_literal_template_that_cannot_work_is_refused_at_load() {
    let funcs = crate::template::go::ct::functions();
    let source = "a\n  {{ sockaddr \"GetPrivateIP\" }} {{ sockaddr \"GetNothing\" }}\n{{ sockaddr \"GetAllInterfaces | math \\\"address\\\" \\\"+1\\\"\" }}";
    let template = Template::parse("t.tmpl", source, &funcs).unwrap();
    let errors = crate::template::go::ct::unsupported_calls("conf/t.tmpl", &template);
    let found: Vec<(usize, usize, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                2,
                36,
                "sockaddr: unable to parse template \"{{ GetNothing }}\": template: sockaddr.Parse:1: function \"GetNothing\" not defined"
            ),
            (
                3,
                4,
                "sockaddr: go-sockaddr's function \"math\" is not supported by terad"
            ),
        ]
    );
    // At render too, for a template built at render.
    let refused = evaluate(&recorded_host(), &["GetAllInterfaces | math \"a\" \"+1\""]);
    assert!(matches!(refused, Err(SockaddrError::Refused(name)) if name == "math"));
}

#[test]
fn flags_print_as_go_prints_them() {
    assert_eq!(Flags::from_linux(0x1043).text(), "up|broadcast|multicast");
    assert_eq!(Flags::from_linux(0x9).text(), "up|loopback");
    assert_eq!(Flags::from_linux(0x11).text(), "up|pointtopoint");
    assert_eq!(Flags::default().text(), "0");
}

#[test]
fn addresses_write_and_compare_as_go_sockaddr_does() {
    let v4 = IpNet::parse("10.1.2.3/31").unwrap();
    assert_eq!(v4.attr("first_usable").unwrap(), "10.1.2.2");
    assert_eq!(v4.attr("last_usable").unwrap(), "10.1.2.3");
    assert_eq!(
        IpNet::parse("0.0.0.0/0").unwrap().attr("size").unwrap(),
        "4294967296"
    );
    assert_eq!(
        IpNet::parse("::/0").unwrap().attr("size").unwrap(),
        "340282366920938463463374607431768211456"
    );
    let mapped = IpNet::parse("::ffff:10.0.0.1/128").unwrap();
    assert_eq!(mapped.address(), "10.0.0.1");
    assert!(mapped.is_global_unicast());
    // An RFC block holds an address only when it holds the address's whole network.
    let wide = IpNet::parse("10.0.0.1/7").unwrap();
    assert!(!super::addr::in_rfc(1918, wide));
    assert!(super::addr::in_rfc(
        1918,
        IpNet::parse("10.0.0.1/8").unwrap()
    ));
    assert_eq!(IpNet::parse("1.2.3.4/33"), None);
    assert_eq!(IpNet::parse("1.2.3.4/+3"), None);
}

#[test]
fn the_machine_table_reads() {
    // Whatever this machine has, reading it works and every address has an interface name.
    let host = Host::read().unwrap();
    assert!(
        host.addresses
            .iter()
            .all(|a| !a.interface.name.is_empty() && a.interface.index > 0)
    );
}
