#!/bin/sh
# terad's container entrypoint: render every template resource once, then become the service.
#
#   entrypoint.sh SERVICE [ARG...]
#
# 1. Runs `terad --onetime`, with the words of $TERAD_ONETIME_ARGS as extra arguments
#    (e.g. TERAD_ONETIME_ARGS="--backend etcd --node http://etcd:2379"). terad reads every
#    other TERAD_* variable itself (TERAD_BACKEND, TERAD_NODE, TERAD_CONFDIR, ...).
# 2. If terad fails, its own error is already on stderr: this adds one line naming terad's exit
#    status (1: a resource failed or the backend was unreachable; 2: configuration error) and
#    exits with that status. The service is not started.
# 3. Otherwise it replaces itself with the service (`exec "$@"`), which keeps the container's
#    PID and receives its signals directly.
#
# Without a service command it exits 2 before running terad. $TERAD_BIN overrides the terad
# binary (default: `terad` from PATH).
set -u

if [ "$#" -eq 0 ]; then
  echo "entrypoint: no service command given (usage: entrypoint.sh SERVICE [ARG...])" >&2
  exit 2
fi

# TERAD_ONETIME_ARGS is split into words on purpose, without pathname expansion.
set -f
# shellcheck disable=SC2086
if "${TERAD_BIN:-terad}" --onetime ${TERAD_ONETIME_ARGS:-}; then
  exec "$@"
else
  status=$?
  echo "entrypoint: terad --onetime exited with status $status; not starting $1" >&2
  exit "$status"
fi
