#!/usr/bin/env bash
# Installs everything terad's build and test suite need on a Debian bookworm machine:
#   - protobuf-compiler + libprotobuf-dev: `protoc` and the well-known .proto files
#     (google/protobuf/descriptor.proto, …) for `scripts/gen-etcd-api.sh --check`, which CI runs
#     after the tests; building terad needs neither (the etcd gRPC stubs are committed)
#   - etcd-server, etcd-client: a real etcd 3.4 for the integration tests
#   - haproxy: HAProxy 2.6 for the sidecar end-to-end test
#   - systemd: `systemd-analyze verify` checks the packaged unit
#   - g++: libFuzzer (cargo fuzz, scripts/fuzz.sh) is C++
#   - file: scripts/build-static.sh checks that `file` calls the static binary statically linked
#   - man-db: scripts/build-deb.sh renders the packaged man page with `man -l`
#   - consul: not packaged for bookworm, so the bullseye package (1.8) is downloaded from the
#     mirror this machine already uses and unpacked without touching the system's apt lists.
#   - mdbook, with --docs only: builds the documentation (`mdbook build docs`, in
#     scripts/release-checks.sh). Not packaged for Debian bookworm, so built with `cargo install`
#     (pinned, without its web server, file watcher and search index: about 4 minutes on 2
#     cores, once) and installed next to consul.
# Safe to run repeatedly; it skips what is already present.
set -euo pipefail

docs=false
if [ "${1:-}" = "--docs" ]; then docs=true; fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Where the consul binary is placed; tests look here (and on PATH).
DEPS_BIN="${TERAD_DEPS_BIN:-/usr/local/bin}"

need_apt=()
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || need_apt+=(libprotobuf-dev)
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v etcdctl >/dev/null || need_apt+=(etcd-client)
command -v haproxy >/dev/null || need_apt+=(haproxy)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v c++ >/dev/null || need_apt+=(g++)
command -v file >/dev/null || need_apt+=(file)
command -v man >/dev/null || need_apt+=(man-db)

if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "install-deps: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  # etcd-server's post-install starts a system service where systemd runs; the tests start their own.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if ! command -v consul >/dev/null && [ ! -x "$DEPS_BIN/consul" ]; then
  sources=/etc/apt/sources.list.d/debian.sources
  # The first URIs line of the system's own Debian stanza: the mirror this machine is allowed to use.
  mirror=$(awk '/^URIs:/ { print $2; exit }' "$sources")
  if [ -z "$mirror" ]; then
    echo "install-deps: no 'URIs:' line in $sources; cannot locate the Debian mirror" >&2
    exit 1
  fi
  work=$(mktemp -d)
  chmod 755 "$work"  # apt downloads as the unprivileged _apt user
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bullseye main" >"$work/bullseye.list"
  # A private list, state and cache directory: the system's sources and package lists stay untouched.
  apt_opts=(
    -o "Dir::Etc::sourcelist=$work/bullseye.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache"
    -o "APT::Get::List-Cleanup=0"
  )
  echo "install-deps: fetching consul from the bullseye suite"
  $SUDO apt-get "${apt_opts[@]}" update -qq
  (cd "$work" && apt-get "${apt_opts[@]}" download consul)
  dpkg -x "$work"/consul_*.deb "$work/root"
  $SUDO install -m 0755 "$work/root/usr/bin/consul" "$DEPS_BIN/consul"
fi

MDBOOK_VERSION=0.5.4
mdbook=$(command -v mdbook || echo "$DEPS_BIN/mdbook")
if $docs && ! { [ -x "$mdbook" ] && [ "$("$mdbook" --version)" = "mdbook v$MDBOOK_VERSION" ]; }; then
  echo "install-deps: building mdbook $MDBOOK_VERSION (a few minutes)"
  mdbook_root=$(mktemp -d)
  # Its own temporary target directory, not a shared one: nothing of it is needed afterwards.
  env -u CARGO_TARGET_DIR cargo install mdbook --locked --quiet --version "$MDBOOK_VERSION" \
    --no-default-features --root "$mdbook_root"
  $SUDO install -m 0755 "$mdbook_root/bin/mdbook" "$DEPS_BIN/mdbook"
  rm -rf "$mdbook_root"
  mdbook="$DEPS_BIN/mdbook"
fi

echo "install-deps: $(protoc --version); $(etcd --version | head -n1); $(haproxy -v | head -n1); $("$(command -v consul || echo "$DEPS_BIN/consul")" version | head -n1)"
if $docs; then echo "install-deps: $("$mdbook" --version)"; fi
