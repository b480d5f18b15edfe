#!/usr/bin/env bash
# Records what consul-template renders for each case of cases/ (see README.md): starts a Consul
# dev agent on loopback, loads fixture.json into it (as ../consul-template/load-fixture.py
# does), and for every case copies its files into a temporary directory DIR, replaces ADDR
# (the agent's HTTP address) and DIR in them and in `args` (one argument per line), runs
#
#   consul-template $(args)
#
# in DIR, and writes into the case:
#   expected/       every file consul-template wrote below DIR/out (the paths below out/)
#   expected.stdout its standard output, DIR put back in place of the directory
#   expected.modes  "PATH MODE" for each file below out/, the mode in octal
#   expected.status its exit status
#
# Usage: record.sh CONSUL_TEMPLATE_BINARY [CASE...]
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
python3 "$here/../consul-template/load-fixture.py" "http://127.0.0.1:$http" "$here/fixture.json"

if [ $# -eq 0 ]; then
    set -- $(ls "$here/cases")
fi
for name in "$@"; do
    case_dir="$here/cases/$name"
    dir="$work/$name"
    mkdir -p "$dir/out"
    for file in "$case_dir"/*; do
        base=$(basename "$file")
        case "$base" in args | expected*) continue ;; esac
        sed -e "s#ADDR#127.0.0.1:$http#g" -e "s#DIR#$dir#g" "$file" >"$dir/$base"
    done
    mapfile -t args < <(sed -e "s#ADDR#127.0.0.1:$http#g" -e "s#DIR#$dir#g" "$case_dir/args")
    status=0
    (cd "$dir" && env -i PATH="$PATH" timeout 30 "$ct" "${args[@]}" >"$dir/stdout" 2>"$dir/stderr") || status=$?
    rm -rf "$case_dir/expected" "$case_dir"/expected.*
    mkdir -p "$case_dir/expected"
    (cd "$dir/out" && find . -type f | sort | while read -r path; do
        mkdir -p "$case_dir/expected/$(dirname "$path")"
        cp "$path" "$case_dir/expected/$path"
        echo "${path#./} $(stat -c %a "$path")"
    done) >"$case_dir/expected.modes"
    sed -e "s#$dir#DIR#g" "$dir/stdout" >"$case_dir/expected.stdout"
    echo "$status" >"$case_dir/expected.status"
    [ "$status" -eq 0 ] || { echo "$name: consul-template exited $status:" >&2; cat "$dir/stderr" >&2; }
done
