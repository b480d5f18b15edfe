#!/usr/bin/env bash
# Records what consul-template's `sockaddr` renders for each case of cases/ on this machine, and
# the machine's interface table those outputs came from (see README.md). Starts a Consul dev
# agent on loopback (sockaddr reads no Consul data, but cases run as
# tests/consul-template/generate.sh runs them), then for each case:
#
#   consul-template -once -consul-addr 127.0.0.1:PORT -template "in.tmpl:out" -log-level err
#
# writing `expected` (the output file) or `error` (consul-template's stderr, its temporary
# paths replaced by CASEDIR and the date and time of its log lines removed). Then writes
# host.json: `ip -j addr`, `ip -j link` and `ip route` as consul-template saw them, plus each
# interface's MTU, which terad's tests feed to its sockaddr in place of the real host.
#
# Usage: generate.sh CONSUL_TEMPLATE_BINARY [CASE...]
set -euo pipefail

ct=$(realpath "$1")
shift
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill "$(cat "$work/consul.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$work"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port)
consul agent -dev -bind=127.0.0.1 -client=127.0.0.1 -dns-port=-1 -grpc-port=-1 \
    -http-port="$http" -serf-lan-port="$(port)" -serf-wan-port="$(port)" \
    -server-port="$(port)" -log-level=warn >"$work/consul.log" 2>&1 &
echo $! >"$work/consul.pid"
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$http/v1/status/leader" | grep -q : && break
    sleep 0.1
done

python3 "$here/record-host.py" >"$work/host-before.json"

if [ $# -eq 0 ]; then
    set -- $(ls "$here/cases")
fi
for name in "$@"; do
    case_dir="$here/cases/$name"
    run="$work/$name"
    mkdir -p "$run"
    cp "$case_dir/template.tmpl" "$run/in.tmpl"
    rm -f "$case_dir/expected" "$case_dir/error"
    status=0
    (cd "$run" && env -i PATH="$PATH" timeout 30 "$ct" -once \
        -consul-addr "127.0.0.1:$http" -template "$run/in.tmpl:$run/out" -log-level err \
        >"$run/stdout" 2>"$run/stderr") || status=$?
    if [ "$status" -eq 0 ] && [ -f "$run/out" ]; then
        cp "$run/out" "$case_dir/expected"
    else
        sed -e "s#$run#CASEDIR#g" -e 's#^[0-9]\{4\}/[0-9/]* [0-9:.]* ##' "$run/stderr" >"$case_dir/error"
    fi
done

# The table must not have changed while the cases ran, or the outputs mix two hosts.
python3 "$here/record-host.py" >"$work/host-after.json"
if ! cmp -s "$work/host-before.json" "$work/host-after.json"; then
    echo "the interface table changed during the recording: run again" >&2
    exit 1
fi
cp "$work/host-after.json" "$here/host.json"
