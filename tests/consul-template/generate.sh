#!/usr/bin/env bash
# Records what consul-template renders for each case of cases/ (see README.md): starts a Consul
# dev agent on loopback, loads fixture.json into it, and runs every case's template through
#
#   consul-template -once -consul-addr 127.0.0.1:PORT -template "in.tmpl:out" -log-level err
#
# writing `expected` (the output file) or `error` (consul-template's stderr, its temporary
# paths replaced by CASEDIR and the date and time of its log lines removed). Cases with a `source` file take their expectation from elsewhere
# (consul-template's own tests) and are skipped.
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
node=$(jq -r .agent.node "$here/fixture.json")
node_id=$(jq -r .agent.node_id "$here/fixture.json")
consul agent -dev -node="$node" -node-id="$node_id" -bind=127.0.0.1 -client=127.0.0.1 \
    -dns-port=-1 -grpc-port=-1 -http-port="$http" -serf-lan-port="$(port)" \
    -serf-wan-port="$(port)" -server-port="$(port)" -log-level=warn >"$work/consul.log" 2>&1 &
echo $! >"$work/consul.pid"
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$http/v1/status/leader" | grep -q : && break
    sleep 0.1
done
python3 "$here/load-fixture.py" "http://127.0.0.1:$http" "$here/fixture.json"

mapfile -t fixture_env < <(jq -r '.env | to_entries[] | "\(.key)=\(.value)"' "$here/fixture.json")

if [ $# -eq 0 ]; then
    set -- $(ls "$here/cases")
fi
for name in "$@"; do
    case_dir="$here/cases/$name"
    [ -f "$case_dir/source" ] && continue
    run="$work/$name"
    mkdir -p "$run"
    cp "$case_dir/template.tmpl" "$run/in.tmpl"
    rm -f "$case_dir/expected" "$case_dir/error"
    status=0
    (cd "$run" && env -i PATH="$PATH" "${fixture_env[@]}" timeout 30 "$ct" -once \
        -consul-addr "127.0.0.1:$http" -template "$run/in.tmpl:$run/out" -log-level err \
        >"$run/stdout" 2>"$run/stderr") || status=$?
    if [ "$status" -eq 0 ] && [ -f "$run/out" ]; then
        cp "$run/out" "$case_dir/expected"
    else
        # Log lines lose their date and time; the temporary directory becomes CASEDIR.
        sed -e "s#$run#CASEDIR#g" -e 's#^[0-9]\{4\}/[0-9/]* [0-9:.]* ##' "$run/stderr" >"$case_dir/error"
        [ "$status" -eq 124 ] && echo "timed out (consul-template waits): $name" >&2
    fi
done
