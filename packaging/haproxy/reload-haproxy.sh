#!/bin/sh
# Reloads a master-worker HAProxy (`haproxy -W ... -p PIDFILE`) with SIGUSR2 and returns only
# once the master is ready for the next reload. For terad's reload_cmd:
#
#   reload_cmd = "/usr/local/bin/reload-haproxy.sh /run/haproxy.pid"
#
# Why not just `kill -USR2 $(cat PIDFILE)`: HAProxy 2.6's master re-executes itself to reload
# and ignores SIGUSR2 until the new image has installed its handler, a few milliseconds later.
# A second reload sent in that window is lost, and HAProxy keeps a configuration older than the
# file. terad never runs two reloads at once, so waiting here closes the window.
#
# usage: reload-haproxy.sh [--if-running] PIDFILE [TIMEOUT_SECONDS]    (default timeout 30)
#
# --if-running: a missing PIDFILE means HAProxy has not started yet (it writes the file at
# start, after reading its configuration): nothing to reload, exit 0. For resources that are
# also rendered before HAProxy starts (`terad --onetime` in an entrypoint or init container,
# which runs reload_cmd once at the end).
# Exit status 0 once the master forked a new worker and handles SIGUSR2 again; 1 when there is
# no such process, it exits, or the reload does not finish in time (a configuration HAProxy
# refuses to load starts no worker: check it first with `haproxy -c`, terad's check_cmd).
# Needs /proc/PID/task/*/children (Linux with CONFIG_PROC_CHILDREN, as Debian's kernels) and
# the right to signal the master (same user, or CAP_KILL).
set -eu

if_running=false
if [ "${1:-}" = "--if-running" ]; then
  if_running=true
  shift
fi
pidfile=${1:?usage: reload-haproxy.sh [--if-running] PIDFILE [TIMEOUT_SECONDS]}
timeout=${2:-30}
if [ ! -e "$pidfile" ] && [ "$if_running" = true ]; then
  echo "reload-haproxy: $pidfile does not exist; haproxy is not running, nothing to reload" >&2
  exit 0
fi
pid=$(cat "$pidfile")

# Child processes of the master: its workers.
workers() {
  cat /proc/"$pid"/task/*/children 2>/dev/null
}

# The master catches SIGUSR2 (bit 12 of SigCgt) once its reload handler is installed.
accepts_reload() {
  mask=$(awk '/^SigCgt:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || return 1
  [ -n "$mask" ] && [ $((0x$mask & 0x800)) -ne 0 ]
}

# A reload is complete when the master has forked a new worker and, re-executed once more,
# handles SIGUSR2 again. (A configuration that fails to load forks no worker: that times out.)
has_new_worker() {
  for worker in $(workers); do
    case " $before " in
      *" $worker "*) ;;
      *) return 0 ;;
    esac
  done
  return 1
}

if [ ! -d "/proc/$pid" ]; then
  echo "reload-haproxy: no process $pid (from $pidfile)" >&2
  exit 1
fi
# A stale pidfile (HAProxy restarted elsewhere, PID reused) must not signal another program.
comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
if [ "$comm" != haproxy ]; then
  echo "reload-haproxy: process $pid (from $pidfile) is '$comm', not haproxy" >&2
  exit 1
fi
before=$(echo $(workers))
kill -USR2 "$pid"

ticks=0
while :; do
  if [ ! -d "/proc/$pid" ]; then
    echo "reload-haproxy: haproxy master $pid exited during the reload" >&2
    exit 1
  fi
  if has_new_worker && accepts_reload; then
    exit 0
  fi
  ticks=$((ticks + 1))
  if [ "$ticks" -ge $((timeout * 100)) ]; then
    echo "reload-haproxy: haproxy master $pid did not finish reloading within ${timeout}s" >&2
    exit 1
  fi
  sleep 0.01
done
