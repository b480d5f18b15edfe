#!/usr/bin/env python3
"""Prints this machine's interface table as go-sockaddr reads it, as JSON for terad's tests.

go-sockaddr takes interfaces and addresses from Go's net.Interfaces() and Interface.Addrs()
(netlink, in interface index order, each interface's addresses in the kernel's order) and the
default interface from the first `default via GATEWAY dev NAME` line of `ip route`. This keeps
the same facts: per interface its index, name, MTU, hardware address, flags and addresses
(address/prefix), and the output of `ip route` as it was.
"""
import json
import subprocess


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


links = json.loads(run("ip", "-j", "addr"))
interfaces = []
for link in sorted(links, key=lambda l: l["ifindex"]):
    interfaces.append({
        "index": link["ifindex"],
        "name": link["ifname"],
        "mtu": link["mtu"],
        # Go prints a loopback's all-zero address as empty: it reads no IFLA_ADDRESS of zeros.
        "hardware_address": link.get("address", ""),
        "flags": link["flags"],
        "addresses": [f'{a["local"]}/{a["prefixlen"]}' for a in link.get("addr_info", [])],
    })
print(json.dumps({"interfaces": interfaces, "ip_route": run("ip", "route")}, indent=2))
