#!/usr/bin/env python3
"""Loads fixture.json into a Consul agent: every KV pair, then every catalog registration.

Usage: load-fixture.py http://127.0.0.1:PORT fixture.json
The test harness (tests/it/consul_template.rs) loads the same file the same way in Rust.
"""
import json
import sys
import urllib.parse
import urllib.request

base, path = sys.argv[1], sys.argv[2]
fixture = json.load(open(path))


def put(url, body):
    request = urllib.request.Request(url, data=body, method="PUT")
    with urllib.request.urlopen(request) as response:
        response.read()


for key, value in sorted(fixture["kv"].items()):
    put(base + "/v1/kv/" + urllib.parse.quote(key), value.encode())
for registration in fixture["catalog"]:
    put(base + "/v1/catalog/register", json.dumps(registration).encode())
