//! The planner's cases: what becomes a runtime change, and what a reload.

use super::*;

/// A file like the repository's HAProxy template renders, with `servers` in backend "nodes".
fn file(servers: &str) -> String {
    format!(
        "global
    maxconn 1000
    stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend web
    bind 127.0.0.1:8080
    default_backend nodes

backend nodes
    balance roundrobin
{servers}
backend static
    server fixed 10.0.1.1:80
"
    )
}

fn planned(current: &str, rendered: &str) -> Plan {
    plan(current, rendered).unwrap_or_else(|error| panic!("{error}"))
}

fn structural(current: &str, rendered: &str) -> String {
    match plan(current, rendered) {
        Ok(plan) => panic!("expected a structural change, got {plan:?}"),
        Err(error) => error.to_string(),
    }
}

fn changes(current: &str, rendered: &str) -> Vec<ServerChange> {
    let plan = planned(current, rendered);
    assert_eq!(plan.backends().len(), 1, "{plan:?}");
    assert_eq!(plan.backends()[0].backend, "nodes");
    plan.backends()[0].changes.clone()
}

fn commands(current: &str, rendered: &str) -> Vec<String> {
    planned(current, rendered).commands()
}

#[test]
fn the_same_file_is_an_empty_plan() {
    let a = file("    server a 10.0.0.1:80 check\n");
    let plan = planned(&a, &a);
    assert!(plan.is_empty());
    assert!(plan.commands().is_empty());
}

#[test]
fn comments_blank_lines_and_spacing_change_nothing() {
    let a = file("    server a 10.0.0.1:80 check\n");
    let b = a
        .replace(
            "    timeout client 30s\n",
            "\n  # client side\n\ttimeout   client 30s   # seconds\n\n",
        )
        .replace(
            "server a 10.0.0.1:80 check",
            "server  a  10.0.0.1:80   check # web",
        );
    assert!(planned(&a, &b).is_empty());
}

#[test]
fn reordered_server_lines_change_nothing() {
    let a = file("    server a 10.0.0.1:80 check\n    server b 10.0.0.2:80 check\n");
    let b = file("    server b 10.0.0.2:80 check\n    server a 10.0.0.1:80 check\n");
    assert!(planned(&a, &b).is_empty());
}

#[test]
fn an_added_server_is_added_then_checked_then_enabled() {
    let a = file("    server a 10.0.0.1:80 check\n");
    let b = file("    server a 10.0.0.1:80 check\n    server b 10.0.0.2:8080 check inter 2s\n");
    assert_eq!(
        commands(&a, &b),
        [
            "add server nodes/b 10.0.0.2:8080 check inter 2s",
            "enable health nodes/b",
            "enable server nodes/b",
        ]
    );
    let plan = planned(&a, &b);
    assert_eq!(
        plan.backends()[0].expected,
        [
            ExpectedServer {
                name: "a".into(),
                ip: Some("10.0.0.1".parse().unwrap()),
                port: Some(80),
                weight: 1,
                disabled: false,
            },
            ExpectedServer {
                name: "b".into(),
                ip: Some("10.0.0.2".parse().unwrap()),
                port: Some(8080),
                weight: 1,
                disabled: false,
            },
        ]
    );
}

#[test]
fn the_first_server_of_an_empty_backend_is_added() {
    let a = file("");
    let b = file("    server a 10.0.0.1:80\n");
    assert_eq!(
        commands(&a, &b),
        ["add server nodes/a 10.0.0.1:80", "enable server nodes/a"]
    );
}

#[test]
fn a_removed_server_is_drained_then_deleted() {
    let a = file("    server a 10.0.0.1:80 check\n    server b 10.0.0.2:80 check\n");
    let b = file("    server a 10.0.0.1:80 check\n");
    assert_eq!(
        changes(&a, &b),
        [ServerChange::Remove { server: "b".into() }]
    );
    assert_eq!(
        commands(&a, &b),
        [
            "set server nodes/b state maint",
            "shutdown sessions server nodes/b",
            "del server nodes/b",
        ]
    );
    let steps = planned(&a, &b).steps();
    assert_eq!(
        steps[1],
        Step::Drain {
            backend: "nodes".into(),
            server: "b".into()
        },
        "the drain comes between maintenance and the shutdown"
    );
}

#[test]
fn the_last_server_may_go() {
    let a = file("    server a 10.0.0.1:80\n");
    let b = file("");
    assert_eq!(
        changes(&a, &b),
        [ServerChange::Remove { server: "a".into() }]
    );
    assert!(planned(&a, &b).backends()[0].expected.is_empty());
}

#[test]
fn a_replaced_server_is_added_before_the_old_one_goes() {
    let a = file("    server old 10.0.0.1:80\n");
    let b = file("    server new 10.0.0.2:80\n");
    assert_eq!(
        commands(&a, &b),
        [
            "add server nodes/new 10.0.0.2:80",
            "enable server nodes/new",
            "set server nodes/old state maint",
            "shutdown sessions server nodes/old",
            "del server nodes/old",
        ]
    );
}

#[test]
fn additions_in_every_backend_come_before_any_removal() {
    let a = "backend one\n    server a 10.0.0.1:80\nbackend two\n    server b 10.0.0.2:80\n";
    let b = "backend one\n    server c 10.0.0.3:80\nbackend two\n    server d 10.0.0.4:80\n    server b 10.0.0.2:80 weight 2\n";
    assert_eq!(
        commands(a, b),
        [
            "add server one/c 10.0.0.3:80",
            "enable server one/c",
            "add server two/d 10.0.0.4:80",
            "enable server two/d",
            "set weight two/b 2",
            "set server one/a state maint",
            "shutdown sessions server one/a",
            "del server one/a",
        ]
    );
}

#[test]
fn a_new_address_or_port_re_points_the_server() {
    let a = file("    server a 10.0.0.1:80 check\n");
    assert_eq!(
        commands(&a, &file("    server a 10.0.0.9:8080 check\n")),
        ["set server nodes/a addr 10.0.0.9 port 8080"]
    );
    assert_eq!(
        commands(&a, &file("    server a 10.0.0.1:81 check\n")),
        ["set server nodes/a addr 10.0.0.1 port 81"]
    );
    // Written differently, the same address: nothing to do.
    assert!(planned(&a, &file("    server a ipv4@10.0.0.1:80 check\n")).is_empty());
}

#[test]
fn ipv6_addresses_are_bracketed_for_add_and_bare_for_set() {
    let a = file("    server a [::1]:80\n");
    let b =
        file("    server a [2001:db8::2]:81\n    server b [::1]:82\n    server c ipv6@::1:83\n");
    assert_eq!(
        commands(&a, &b),
        [
            "add server nodes/b [::1]:82",
            "enable server nodes/b",
            "add server nodes/c [::1]:83",
            "enable server nodes/c",
            "set server nodes/a addr 2001:db8::2 port 81",
        ]
    );
    let expected = planned(&a, &b).backends()[0].expected.clone();
    assert_eq!(expected[0].ip, Some("2001:db8::2".parse().unwrap()));
    assert_eq!(expected[0].port, Some(81));
}

#[test]
fn servers_without_a_port_keep_the_clients_port() {
    let a = file("    server a 10.0.0.1\n");
    assert_eq!(
        commands(&a, &file("    server a 10.0.0.2\n    server b 10.0.0.3\n")),
        [
            "add server nodes/b 10.0.0.3",
            "enable server nodes/b",
            "set server nodes/a addr 10.0.0.2",
        ]
    );
    let plan = planned(&a, &file("    server a 10.0.0.2\n"));
    assert_eq!(
        plan.backends()[0].expected[0].port,
        Some(0),
        "haproxy lists port 0"
    );
    // From no port to a port: `set server … addr` cannot say "no port".
    let error = structural(&a, &file("    server a 10.0.0.1:80\n"));
    assert_eq!(
        error,
        "backend \"nodes\": server \"a\": address \"10.0.0.1\" changed to \"10.0.0.1:80\", a change of the kind of port the runtime api does not make"
    );
}

#[test]
fn server_names_with_dots_dashes_and_underscores_pass() {
    let a = file("    server web-1.zone_a 10.0.0.1:80\n");
    let b = file("    server web-1.zone_a 10.0.0.1:80\n    server web-2.zone_b 10.0.0.2:80\n");
    assert_eq!(
        commands(&a, &b)[0],
        "add server nodes/web-2.zone_b 10.0.0.2:80"
    );
}

#[test]
fn weight_changes_set_the_weight() {
    let a = file("    server a 10.0.0.1:80 check weight 10\n");
    let b = file("    server a 10.0.0.1:80 weight 20 check\n");
    assert_eq!(
        changes(&a, &b),
        [ServerChange::Weight {
            server: "a".into(),
            weight: 20
        }]
    );
    // No weight is weight 1.
    assert_eq!(
        commands(&a, &file("    server a 10.0.0.1:80 check\n")),
        ["set weight nodes/a 1"]
    );
    assert!(
        planned(
            &file("    server a 10.0.0.1:80\n"),
            &file("    server a 10.0.0.1:80 weight 1\n")
        )
        .is_empty()
    );
}

#[test]
fn weight_changes_of_servers_with_an_agent_are_structural() {
    let a = file("    server a 10.0.0.1:80 agent-check agent-port 9000 weight 10\n");
    let b = file("    server a 10.0.0.1:80 agent-check agent-port 9000 weight 20\n");
    assert_eq!(
        structural(&a, &b),
        "backend \"nodes\": server \"a\": its weight changes, and its agent check sets weights relative to the weight haproxy started with"
    );
}

#[test]
fn disabled_toggles_maintenance() {
    let a = file("    server a 10.0.0.1:80 check\n");
    let b = file("    server a 10.0.0.1:80 check disabled\n");
    assert_eq!(commands(&a, &b), ["disable server nodes/a"]);
    assert_eq!(commands(&b, &a), ["enable server nodes/a"]);
    assert!(
        planned(&b, &a).backends()[0].expected[0]
            .disabled
            .eq(&false)
    );
    assert_eq!(
        commands(&b, &file("    server a 10.0.0.1:80 check enabled\n")),
        ["enable server nodes/a"]
    );
}

#[test]
fn a_disabled_server_is_added_in_maintenance() {
    let a = file("");
    let b = file("    server a 10.0.0.1:80 check disabled\n");
    assert_eq!(
        commands(&a, &b),
        [
            "add server nodes/a 10.0.0.1:80 check disabled",
            "enable health nodes/a"
        ]
    );
    assert!(planned(&a, &b).backends()[0].expected[0].disabled);
}

#[test]
fn address_weight_and_state_change_together() {
    let a = file("    server a 10.0.0.1:80 weight 2\n");
    let b = file("    server a 10.0.0.2:80 weight 3 disabled\n");
    assert_eq!(
        commands(&a, &b),
        [
            "set server nodes/a addr 10.0.0.2 port 80",
            "set weight nodes/a 3",
            "disable server nodes/a",
        ]
    );
}

#[test]
fn default_server_options_are_folded_into_added_servers() {
    let a = "defaults\n    default-server inter 3s\nbackend nodes\n    default-server check weight 5\n    server a 10.0.0.1:80\n";
    let b = "defaults\n    default-server inter 3s\nbackend nodes\n    default-server check weight 5\n    server a 10.0.0.1:80\n    server b 10.0.0.2:80 no-check weight 2\n    server c 10.0.0.3:80\n";
    assert_eq!(
        commands(a, b),
        [
            "add server nodes/b 10.0.0.2:80 inter 3s weight 2",
            "enable server nodes/b",
            "add server nodes/c 10.0.0.3:80 inter 3s check weight 5",
            "enable health nodes/c",
            "enable server nodes/c",
        ]
    );
    let expected = planned(a, b).backends()[0].expected.clone();
    assert_eq!(
        expected.iter().map(|s| s.weight).collect::<Vec<_>>(),
        [5, 2, 5]
    );
}

#[test]
fn named_defaults_and_from_are_followed() {
    let a = "defaults base\n    default-server inter 3s\ndefaults other from base\n    default-server fall 2\ndefaults\n    default-server rise 9\nbackend nodes from other\n";
    let b = format!("{a}    server a 10.0.0.1:80\n");
    assert_eq!(
        commands(a, &b)[0],
        "add server nodes/a 10.0.0.1:80 inter 3s fall 2"
    );
    // Without `from`, the last defaults section before the backend.
    let c = "defaults\n    default-server inter 4s\nbackend nodes\n";
    assert_eq!(
        commands(c, &format!("{c}    server a 10.0.0.1:80\n"))[0],
        "add server nodes/a 10.0.0.1:80 inter 4s"
    );
}

#[test]
fn a_default_server_line_applies_to_the_servers_after_it() {
    let a = "backend nodes\n    server a 10.0.0.1:80\n    default-server weight 5\n    server b 10.0.0.2:80\n";
    let b = "backend nodes\n    server a 10.0.0.1:80\n    default-server weight 5\n    server b 10.0.0.2:80\n    server c 10.0.0.3:80\n";
    assert_eq!(commands(a, b)[0], "add server nodes/c 10.0.0.3:80 weight 5");
    assert_eq!(
        planned(a, b).backends()[0]
            .expected
            .iter()
            .map(|s| s.weight)
            .collect::<Vec<_>>(),
        [1, 5, 5]
    );
    // Moving "a" below the default-server line gives it weight 5: a runtime weight change.
    let moved = "backend nodes\n    default-server weight 5\n    server a 10.0.0.1:80\n    server b 10.0.0.2:80\n";
    let before = "backend nodes\n    server a 10.0.0.1:80\n    default-server weight 5\n    server b 10.0.0.2:80\n";
    assert_eq!(commands(before, moved), ["set weight nodes/a 5"]);
    // …but moving across a default-server line that changes anything else is a reload.
    let before = "backend nodes\n    server a 10.0.0.1:80\n    default-server check\n    server b 10.0.0.2:80\n";
    let moved = "backend nodes\n    default-server check\n    server a 10.0.0.1:80\n    server b 10.0.0.2:80\n";
    assert_eq!(
        structural(before, moved),
        "backend \"nodes\": server \"a\": its default-server options change (it moved across a \"default-server\" line)"
    );
}

#[test]
fn resolution_options_from_defaults_do_not_stop_an_addition() {
    let a = "defaults\n    default-server init-addr last,libc,none check\nbackend nodes\n";
    let b = format!("{a}    server a 10.0.0.1:80\n");
    assert_eq!(commands(a, &b)[0], "add server nodes/a 10.0.0.1:80 check");
}

#[test]
fn listen_sections_are_backends_too() {
    let a = "listen stats\n    bind 127.0.0.1:8404\n    server a 10.0.0.1:80\n";
    let b = "listen stats\n    bind 127.0.0.1:8404\n    server a 10.0.0.1:80\n    server b 10.0.0.2:80\n";
    assert_eq!(
        commands(a, b),
        ["add server stats/b 10.0.0.2:80", "enable server stats/b"]
    );
    let c = "listen stats\n    bind 127.0.0.1:8405\n    server a 10.0.0.1:80\n";
    assert_eq!(
        structural(a, c),
        "listen \"stats\": \"bind 127.0.0.1:8404\" changed to \"bind 127.0.0.1:8405\""
    );
}

#[test]
fn server_lines_of_other_sections_are_structural() {
    let a = "peers mesh\n    server one 10.0.0.1:1024\n";
    let b = "peers mesh\n    server one 10.0.0.2:1024\n";
    assert_eq!(
        structural(a, b),
        "peers \"mesh\": \"server one 10.0.0.1:1024\" changed to \"server one 10.0.0.2:1024\""
    );
    let a = "ring logs\n    server one 10.0.0.1:514\n";
    assert!(structural(a, "ring logs\n").contains("removed"));
}

#[test]
fn a_changed_line_outside_servers_names_it() {
    let a = file("    server a 10.0.0.1:80\n");
    let b = a.replace("timeout server 30s", "timeout server 40s");
    let error = plan(&a, &b).unwrap_err();
    assert_eq!(
        error.to_string(),
        "defaults: \"timeout server 30s\" changed to \"timeout server 40s\""
    );
    assert_eq!(error.section(), "defaults");
    assert_eq!(error.line(), Some(9));

    let b = a.replace(
        "    balance roundrobin\n",
        "    balance roundrobin\n    timeout server 40s\n",
    );
    assert_eq!(
        structural(&a, &b),
        "backend \"nodes\": \"timeout server 40s\" added"
    );
    let b = a.replace("    balance roundrobin\n", "");
    assert_eq!(
        structural(&a, &b),
        "backend \"nodes\": \"balance roundrobin\" removed"
    );
    let b = a.replace("    maxconn 1000\n", "    maxconn 2000\n");
    assert_eq!(
        structural(&a, &b),
        "global: \"maxconn 1000\" changed to \"maxconn 2000\""
    );
}

#[test]
fn a_server_change_beyond_address_weight_and_state_is_structural() {
    let a = file("    server a 10.0.0.1:80 check inter 2s\n");
    for (line, after) in [
        (
            "    server a 10.0.0.1:80 check inter 3s\n",
            "server a 10.0.0.1:80 check inter 3s",
        ),
        (
            "    server a 10.0.0.1:80 check inter 2s backup\n",
            "server a 10.0.0.1:80 check inter 2s backup",
        ),
        (
            "    server a 10.0.0.1:80 check inter 2s ssl verify none\n",
            "server a 10.0.0.1:80 check inter 2s ssl verify none",
        ),
        (
            "    server a 10.0.0.2:80 inter 2s\n",
            "server a 10.0.0.2:80 inter 2s",
        ),
    ] {
        assert_eq!(
            structural(&a, &file(line)),
            format!(
                "backend \"nodes\": \"server a 10.0.0.1:80 check inter 2s\" changed to {after:?}"
            )
        );
    }
    // The same options in another order are the same server.
    assert!(planned(&a, &file("    server a 10.0.0.1:80 inter 2s check\n")).is_empty());
}

#[test]
fn default_server_and_server_template_changes_are_structural() {
    let a = file("    default-server check\n    server a 10.0.0.1:80\n");
    let b = file("    default-server check inter 5s\n    server a 10.0.0.1:80\n");
    assert_eq!(
        structural(&a, &b),
        "backend \"nodes\": \"default-server check\" changed to \"default-server check inter 5s\""
    );
    let a = file("    server-template web 3 web.service:80 check\n");
    let b = file("    server-template web 4 web.service:80 check\n");
    assert!(
        structural(&a, &b).contains("\"server-template web 3 web.service:80 check\" changed to")
    );
    // Servers changing beside a template: the template's servers are not in the plan.
    let b = file("    server-template web 3 web.service:80 check\n    server a 10.0.0.1:80\n");
    assert_eq!(
        structural(&a, &b),
        "backend \"nodes\": servers change beside \"server-template web 3 web.service:80 check\", whose servers the runtime plan does not track"
    );
}

#[test]
fn a_new_or_removed_section_is_structural() {
    let a = file("    server a 10.0.0.1:80\n");
    let b = format!("{a}backend api\n    server x 10.0.0.5:80\n");
    let error = plan(&a, &b).unwrap_err();
    assert_eq!(error.to_string(), "backend \"api\" added");
    assert_eq!(error.section(), "");
    assert_eq!(error.line(), Some(21));
    assert_eq!(structural(&b, &a), "backend \"api\" removed");
    let swapped = "backend b\nbackend a\n";
    assert_eq!(
        structural("backend a\nbackend b\n", swapped),
        "backend \"b\" moved to another place in the file"
    );
}

#[test]
fn servers_haproxy_cannot_add_as_written_are_structural() {
    let a = file("");
    assert_eq!(
        structural(&a, &file("    server a 10.0.0.1:80 cookie a\n")),
        "backend \"nodes\": server \"a\" added: haproxy 2.6 takes no \"cookie\" on a server added at runtime"
    );
    assert_eq!(
        structural(&a, &file("    server a web.internal:80\n")),
        "backend \"nodes\": server \"a\" added: address \"web.internal:80\" is no IP address, and haproxy resolves no names for servers added at runtime"
    );
    assert_eq!(
        structural(&a, &file("    server a 10.0.0.1:80 check shard 1\n")),
        "backend \"nodes\": server \"a\": option \"shard\" is not one terad knows haproxy 2.6 to have"
    );
    assert_eq!(
        structural(
            &a,
            &file("    server a 10.0.0.1:80 agent-send \"hello there\"\n")
        ),
        "backend \"nodes\": \"hello there\" cannot be written on haproxy's command line"
    );
    assert_eq!(
        structural(&a, &file("    server a 10.0.0.1:80 weight 300\n")),
        "backend \"nodes\": server \"a\": weight \"300\" is not a number from 0 to 256"
    );
}

#[test]
fn re_pointing_to_a_name_is_structural() {
    let a = file("    server a 10.0.0.1:80\n");
    assert_eq!(
        structural(&a, &file("    server a web.internal:80\n")),
        "backend \"nodes\": server \"a\": address \"10.0.0.1:80\" changed to \"web.internal:80\", and only IP addresses are set at runtime (haproxy resolves names at start-up)"
    );
}

#[test]
fn a_removed_server_needs_nothing_the_api_cannot_do() {
    // Names, cookies, options unknown to the planner: `del server` takes any server.
    let a = file("    server a 10.0.0.1:80\n    server b web.internal:80 cookie b\n");
    let b = file("    server a 10.0.0.1:80\n");
    assert_eq!(
        changes(&a, &b),
        [ServerChange::Remove { server: "b".into() }]
    );
}

#[test]
fn unchanged_servers_with_names_are_expected_but_not_compared_by_address() {
    let a = file("    server a web.internal:80\n");
    let b = file("    server a web.internal:80\n    server b 10.0.0.2:80\n");
    let expected = planned(&a, &b).backends()[0].expected.clone();
    assert_eq!(expected[0].ip, None);
    assert_eq!(expected[0].port, Some(80));
}

#[test]
fn duplicate_and_incomplete_server_lines_are_structural() {
    let a = file("    server a 10.0.0.1:80\n");
    assert_eq!(
        structural(
            &a,
            &file("    server a 10.0.0.1:80\n    server a 10.0.0.2:80\n")
        ),
        "backend \"nodes\": server \"a\" is declared twice"
    );
    assert_eq!(
        structural(&a, &file("    server a\n")),
        "backend \"nodes\": \"server a\" has no name or no address"
    );
}

#[test]
fn conditional_blocks_make_server_changes_structural() {
    let a = ".if defined(EXTRA)\n.endif\nbackend nodes\n    server a 10.0.0.1:80\n";
    let b = ".if defined(EXTRA)\n.endif\nbackend nodes\n    server a 10.0.0.2:80\n";
    assert_eq!(
        structural(a, b),
        "\".if defined(EXTRA)\": haproxy evaluates conditional blocks, terad's planner does not"
    );
    // Nothing to change at runtime: nothing to decide.
    assert!(planned(a, a).is_empty());
}

#[test]
fn unreadable_lines_are_structural() {
    let a = file("");
    assert_eq!(
        structural(&a, &file("    server a 10.0.0.1:80 sni \"open\n")),
        "line 17 of the new file (\"server a 10.0.0.1:80 sni \\\"open\") cannot be read: a double quote is not closed"
    );
}

#[test]
fn untouched_backends_are_not_verified() {
    let a = file("    server a 10.0.0.1:80\n");
    let b = file("    server a 10.0.0.1:80\n    server b 10.0.0.2:80\n");
    let plan = planned(&a, &b);
    assert_eq!(plan.backends().len(), 1);
    assert_eq!(plan.backends()[0].backend, "nodes");
}
