#!/usr/bin/env bash
# What one watching terad costs a Kubernetes sidecar's memory: each given binary runs alone in a
# memory cgroup of its own, with its file evicted from the page cache first (so that the pages
# it maps are charged to its cgroup, as they are to a pod that starts on a node where nothing
# else has read them), against a real etcd holding 1 000 servers (SERVERS=N for another count),
# and follows 10 updates. Prints
# a Markdown row per binary: the cgroup's charge (memory.usage_in_bytes), the working set the
# kubelet reports and evicts by (the charge less the inactive file pages), the split of the
# charge (memory.stat: anonymous, and the mapped binary), and the process's RSS and PSS
# (/proc/PID/smaps_rollup).
#
#   ./scripts/sidecar-memory.sh BINARY...
#   SERVERS=100000 ./scripts/sidecar-memory.sh BINARY...
#
# Needs root (cgroup v1 memory controller at /sys/fs/cgroup/memory, as on this machine; cgroup
# v2's memory.current and memory.stat are read the same way when it is mounted instead), etcd
# and etcdctl (scripts/install-deps.sh). Not part of the test suite: it measures.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }

if [ -d /sys/fs/cgroup/memory ]; then
  cgroot=/sys/fs/cgroup/memory usage=memory.usage_in_bytes
else
  cgroot=/sys/fs/cgroup usage=memory.current
fi

work=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rmdir "$cgroot"/terad-sidecar-* 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
client=$((20000 + RANDOM % 10000))
peer=$((client + 1))
etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$client" \
  --advertise-client-urls "http://127.0.0.1:$client" \
  --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "default=http://127.0.0.1:$peer" >"$work/etcd.log" 2>&1 &
export ETCDCTL_API=3
put() { etcdctl --endpoints "127.0.0.1:$client" put "$1" "$2" >/dev/null; }
for _ in $(seq 50); do put /proxy/port 80 2>/dev/null && break; sleep 0.2; done
servers=${SERVERS:-1000}
# One transaction per 100 keys: one etcdctl process per key would take half a minute per 1 000.
for block in $(seq 0 $((servers / 100 - 1))); do
  {
    echo
    for i in $(seq $((block * 100)) $((block * 100 + 99))); do
      printf 'put /proxy/frontend/web-%06d 10.%d.%d.%d:8080\n' "$i" $((i / 62500)) $((i / 250 % 250)) $((i % 250 + 1))
    done
    echo
    echo
  } | etcdctl --endpoints "127.0.0.1:$client" txn >/dev/null
done

echo "| binary | servers | cgroup charge | working set | anonymous | mapped file | RSS | PSS |"
echo "|---|---|---|---|---|---|---|---|"
n=0
for binary in "$@"; do
  n=$((n + 1))
  conf=$work/conf-$n
  mkdir -p "$conf/conf.d" "$conf/templates" "$conf/out"
  cp templates/haproxy.cfg.tmpl "$conf/templates/"
  printf '[template]\nsrc = "haproxy.cfg.tmpl"\ndest = "%s/out/haproxy.cfg"\nkeys = ["/proxy"]\n' \
    "$conf" >"$conf/conf.d/haproxy.toml"
  # A copy of its own, evicted from the page cache: the first touch of each page is terad's.
  copy=$work/terad-$n
  cp "$binary" "$copy"
  python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$copy"
  cg=$cgroot/terad-sidecar-$n
  mkdir "$cg"
  sh -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' sh "$cg" \
    "$copy" --watch --log-level error --backend etcd --node "http://127.0.0.1:$client" \
    --confdir "$conf" &
  pid=$!
  for _ in $(seq 600); do [ -s "$conf/out/haproxy.cfg" ] && break; sleep 0.1; done
  for i in $(seq 1 10); do
    put "/proxy/frontend/web-00000$((i % 10))" "10.9.9.$i:80"
    sleep 0.3
  done
  sleep 2
  charge=$(cat "$cg/$usage")
  stat() { awk -v key="$1" '$1 == key { print $2 }' "$cg/memory.stat"; }
  anon=$(stat rss)
  [ -n "$anon" ] || anon=$(stat anon)
  mapped=$(stat mapped_file)
  [ -n "$mapped" ] || mapped=$(stat file_mapped)
  inactive=$(stat total_inactive_file)
  [ -n "$inactive" ] || inactive=$(stat inactive_file)
  rss=$(awk '/^Rss:/ { print $2 }' "/proc/$pid/smaps_rollup")
  pss=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup")
  mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
  kib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
  echo "| $binary | $servers | $(mib "$charge") | $(mib $((charge - inactive))) | $(mib "$anon") | $(mib "$mapped") | $(kib "$rss") | $(kib "$pss") |"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  rmdir "$cg"
done
