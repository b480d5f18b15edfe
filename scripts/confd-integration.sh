#!/bin/bash
# Runs confd's own integration scripts (integration/*/test.sh and integration/expect/check.sh
# of a confd checkout), unchanged, with terad installed as `confd`, for the etcdv3, consul, file
# and env backends, as confd's Makefile does. The scripts use fixed ports (etcd 2379, Consul
# 8500) and fixed files (/tmp/confd-*.conf), so everything runs in a private network and mount
# namespace: its own loopback and its own /tmp. Needs root, etcd, etcdctl, consul and curl.
#
#   scripts/confd-integration.sh CONFD_CHECKOUT [TERAD_BINARY]
#
# tests/it/confd_migration.rs states the same facts in the test suite, without the checkout.
set -euo pipefail

checkout=$(realpath "${1:?usage: $0 CONFD_CHECKOUT [TERAD_BINARY]}")
terad=$(realpath "${2:-${CARGO_TARGET_DIR:-target}/release/terad}")
bin=$(mktemp -d /var/tmp/terad-confd-suite.XXXXXX)
trap 'rm -rf "$bin"' EXIT
ln -s "$terad" "$bin/confd"

exec unshare --net --mount --propagation private bash -s "$checkout" "$bin" <<'INNER'
set -u
checkout=$1 bin=$2
mount -t tmpfs tmpfs /tmp
ip link set lo up
export PATH=$bin:$PATH
etcd --data-dir /tmp/etcd-data >/tmp/etcd.log 2>&1 &
consul agent -dev -bind 127.0.0.1 -client 127.0.0.1 >/tmp/consul.log 2>&1 &
for _ in $(seq 1 150); do
  curl -sf http://127.0.0.1:2379/health >/dev/null &&
    curl -sf http://127.0.0.1:8500/v1/status/leader | grep -q 127 && break
  sleep 0.2
done
cd "$checkout"
failed=0
for backend in etcdv3 consul file env; do
  if bash "integration/$backend/test.sh" >"/tmp/$backend.log" 2>&1 &&
    bash integration/expect/check.sh >>"/tmp/$backend.log" 2>&1; then
    echo "$backend: passed"
  else
    echo "$backend: FAILED"; tail -n 30 "/tmp/$backend.log"; failed=1
  fi
  rm -rf /tmp/confd-* backends1 backends2
done
exit $failed
INNER
