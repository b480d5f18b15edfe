#!/usr/bin/env bash
# Makes link/hot-functions.txt, the functions scripts/link-hot-first.sh puts first in .text:
# every function of terad that runs while it starts, renders the HAProxy example from a real
# etcd holding 1 000 servers, follows 11 updates and shuts down, as callgrind records it.
# Names are demangled with their hashes dropped, so the list outlives toolchain and dependency
# upgrades; rerun it when the code that runs changes much (a new backend, a new engine).
#
#   ./scripts/hot-functions.sh
#
# Needs valgrind (installed here if missing) and etcd (scripts/install-deps.sh). Builds an
# unstripped release binary in target/hot-functions (CARGO_TARGET_DIR overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null

target_dir=${CARGO_TARGET_DIR:-target/hot-functions}
CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=$target_dir \
  cargo build --release --locked --bin terad
binary=$target_dir/release/terad

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
client=$((20000 + RANDOM % 10000))
peer=$((client + 1))
etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$client" \
  --advertise-client-urls "http://127.0.0.1:$client" \
  --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "default=http://127.0.0.1:$peer" >"$work/etcd.log" 2>&1 &
export ETCDCTL_API=3
put() { etcdctl --endpoints "127.0.0.1:$client" put "$1" "$2" >/dev/null; }
for _ in $(seq 50); do put /proxy/port 80 2>/dev/null && break; sleep 0.2; done
for i in $(seq 0 999); do
  printf -v key '/proxy/frontend/web-%06d' "$i"
  put "$key" "10.0.$((i / 250)).$((i % 250 + 1)):8080"
done

mkdir -p "$work/conf/conf.d" "$work/conf/templates" "$work/out"
cp templates/haproxy.cfg.tmpl "$work/conf/templates/"
printf '[template]\nsrc = "haproxy.cfg.tmpl"\ndest = "%s/out/haproxy.cfg"\nkeys = ["/proxy"]\n' \
  "$work" >"$work/conf/conf.d/haproxy.toml"
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/callgrind.out" \
  "$binary" --watch --log-level error --backend etcd --node "http://127.0.0.1:$client" \
  --confdir "$work/conf" >"$work/valgrind.log" 2>&1 &
terad=$!
for _ in $(seq 300); do [ -s "$work/out/haproxy.cfg" ] && break; sleep 0.2; done
[ -s "$work/out/haproxy.cfg" ] || { echo "hot-functions: no render under callgrind" >&2; exit 1; }
for i in $(seq 1 11); do
  put "/proxy/frontend/web-00000$((i % 10))" "10.9.9.$i:80"
  sleep 1
done
kill -TERM "$terad"
wait "$terad" || true

normalise() { sed -f scripts/hashless-names.sed | LC_ALL=C sort -u; }
# callgrind names each function once in full (`fn=(id) name`, `cfn=(id) name`); only terad's
# own symbols are kept (not libc's).
grep -oP '^c?fn=\(\d+\) \K.*' "$work/callgrind.out" | c++filt | normalise >"$work/ran"
nm --defined-only --format=just-symbols --demangle "$binary" | normalise >"$work/defined"
mkdir -p link
{
  echo "# The functions terad runs, for scripts/link-hot-first.sh; made by scripts/hot-functions.sh."
  LC_ALL=C comm -12 "$work/ran" "$work/defined"
} >link/hot-functions.txt
echo "hot-functions: $(grep -vc '^#' link/hot-functions.txt) functions in link/hot-functions.txt"
