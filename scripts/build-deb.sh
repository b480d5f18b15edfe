#!/usr/bin/env bash
# Builds the Debian package target/debian/terad_<version>_<arch>.deb and checks it.
#
#   ./scripts/build-deb.sh              release build, package, check
#   ./scripts/build-deb.sh --no-build   package the existing target/release/terad (under
#                                       $CARGO_TARGET_DIR when set), check
#   ./scripts/build-deb.sh --check [DEB]  only check a package (default: the one for this version)
#
# The package holds /usr/bin/terad, the systemd unit, a commented /etc/terad/terad.toml and
# /etc/default/terad (conffiles: dpkg keeps local edits on upgrade), empty
# /etc/terad/{conf.d,templates}, the man page terad(1) and bash, zsh and fish completions (made
# by the binary itself: `terad --generate man|complete-bash|complete-zsh|complete-fish`), and
# the HAProxy example under /usr/share/doc/terad/examples.
# The check lists the package (dpkg-deb -I, -c), fails unless every expected path is there,
# runs the packaged binary's --version, renders the packaged man page with `man -l` and asks the
# packaged bash completion to complete an option. Needs dpkg-deb and man; no root.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=build
case "${1:-}" in
  --check) mode=check ;;
  --no-build) mode=no-build ;;
  "") ;;
  *) echo "usage: $0 [--no-build | --check [DEB]]" >&2; exit 2 ;;
esac

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
out=target/debian
deb=$out/terad_${version}_${arch}.deb
if [ "$mode" = check ] && [ -n "${2:-}" ]; then deb=$2; fi

# Paths every package must contain (as dpkg-deb -c lists them, without the leading ".").
expected=(
  /usr/bin/terad
  /lib/systemd/system/terad.service
  /etc/terad/terad.toml
  /etc/terad/conf.d/
  /etc/terad/templates/
  /etc/default/terad
  /usr/share/doc/terad/copyright
  /usr/share/doc/terad/README.md
  /usr/share/doc/terad/docs/src/configuration.md
  /usr/share/man/man1/terad.1.gz
  /usr/share/bash-completion/completions/terad
  /usr/share/zsh/vendor-completions/_terad
  /usr/share/fish/vendor_completions.d/terad.fish
  /usr/share/doc/terad/examples/conf.d/haproxy.toml
  /usr/share/doc/terad/examples/templates/haproxy.cfg.tmpl
  /usr/share/doc/terad/examples/haproxy-keys.yaml
  /usr/share/doc/terad/examples/reload-haproxy.sh
)
conffiles=(/etc/terad/terad.toml /etc/default/terad)

build() {
  if [ "$mode" = build ]; then
    . scripts/release-env.sh
    cargo build --release --locked --bin terad
    hot_first_report "${CARGO_TARGET_DIR:-target}/release/deps"
  fi
  local binary=${CARGO_TARGET_DIR:-target}/release/terad
  [ -x "$binary" ] || { echo "build-deb: $binary missing; run without --no-build" >&2; exit 1; }

  local root=$out/root
  rm -rf "$root"
  mkdir -p "$root/DEBIAN" "$out"

  install -D -m 0755 "$binary" "$root/usr/bin/terad"
  install -D -m 0644 packaging/systemd/terad.service "$root/lib/systemd/system/terad.service"
  install -d -m 0755 "$root/etc/terad/conf.d" "$root/etc/terad/templates"

  # The man page and the completions, from the packaged binary's own option definitions.
  local man1=$root/usr/share/man/man1 bash=$root/usr/share/bash-completion/completions
  local zsh=$root/usr/share/zsh/vendor-completions fish=$root/usr/share/fish/vendor_completions.d
  install -d -m 0755 "$man1" "$bash" "$zsh" "$fish"
  "$binary" --generate man | gzip -9n >"$man1/terad.1.gz"
  "$binary" --generate complete-bash >"$bash/terad"
  "$binary" --generate complete-zsh >"$zsh/_terad"
  "$binary" --generate complete-fish >"$fish/terad.fish"
  chmod 0644 "$man1/terad.1.gz" "$bash/terad" "$zsh/_terad" "$fish/terad.fish"

  cat >"$root/etc/terad/terad.toml" <<'EOF'
# terad's configuration file. Every key is optional; the command line and TERAD_* variables
# (see /etc/default/terad) take precedence. Reference: man terad, and
# /usr/share/doc/terad/docs/src/configuration.md. Template resources go in
# /etc/terad/conf.d/*.toml, their templates in /etc/terad/templates/; the HAProxy example is in
# /usr/share/doc/terad/examples/.

# backend = "etcd"                      # etcd, consul, file or env
# nodes = ["http://127.0.0.1:2379"]
# prefix = ""
# watch = true
# interval = 300                        # with watch: a reconcile every 5 minutes
# log-level = "info"
# log-format = "text"                   # or "json"
# client_cakeys = "/etc/terad/ca.pem"
# client_cert = "/etc/terad/client.pem"
# client_key = "/etc/terad/client-key.pem"
# username = "terad"
# password_file = "/etc/terad/etcd-password"
EOF
  chmod 0644 "$root/etc/terad/terad.toml"

  install -d -m 0755 "$root/etc/default"
  cat >"$root/etc/default/terad" <<'EOF'
# Environment for terad.service: any TERAD_* variable (each option's name in capitals), e.g.
# TERAD_BACKEND=etcd
# TERAD_NODE=http://10.0.0.1:2379,http://10.0.0.2:2379
# TERAD_LISTEN=127.0.0.1:9100
# TERAD_LOG_LEVEL=info
EOF
  chmod 0644 "$root/etc/default/terad"

  local doc=$root/usr/share/doc/terad
  install -d -m 0755 "$doc/examples/conf.d" "$doc/examples/templates"
  install -m 0644 conf.d/*.toml "$doc/examples/conf.d/"
  install -m 0644 templates/* "$doc/examples/templates/"
  install -m 0644 examples/haproxy-keys.yaml "$doc/examples/haproxy-keys.yaml"
  install -m 0755 packaging/haproxy/reload-haproxy.sh "$doc/examples/reload-haproxy.sh"
  install -m 0644 README.md "$doc/README.md"
  # The book's pages, where the README's links point (docs/src/*.md).
  install -d -m 0755 "$doc/docs/src"
  install -m 0644 docs/src/*.md "$doc/docs/src/"
  cat >"$doc/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: terad

Files: *
Copyright: terad contributors
License: MIT or Apache-2.0
 terad is dual-licensed under the MIT license and the Apache License, Version 2.0, at your
 option. The full text of the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.
 .
 Permission is hereby granted, free of charge, to any person obtaining a copy of this
 software and associated documentation files (the "Software"), to deal in the Software
 without restriction, including without limitation the rights to use, copy, modify, merge,
 publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
 to whom the Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or
 substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
 INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
 PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
 FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
 OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
 DEALINGS IN THE SOFTWARE.
EOF
  chmod 0644 "$doc/copyright"

  # The newest glibc symbol version the binary needs, when objdump can tell.
  local libc="libc6"
  if command -v objdump >/dev/null; then
    local glibc
    glibc=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -n1 || true)
    if [ -n "$glibc" ]; then libc="libc6 (>= $glibc)"; fi
  fi
  local size
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)

  cat >"$root/DEBIAN/control" <<EOF
Package: terad
Version: $version
Architecture: $arch
Maintainer: terad maintainers <terad@users.noreply.invalid>
Installed-Size: $size
Depends: $libc, libgcc-s1
Section: admin
Priority: optional
Description: keeps configuration files in sync with etcd, Consul, files or the environment
 terad renders Tera templates from keys in etcd v3, Consul KV, local YAML/JSON/TOML files or
 the environment, validates each result with the service's own check command, swaps it into
 place atomically and reloads the service. It is a confd replacement: confd's template
 resources and configuration file load unchanged.
EOF
  printf '%s\n' "${conffiles[@]}" >"$root/DEBIAN/conffiles"

  # systemd picks up a new or changed unit; nothing is enabled or started automatically.
  cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  # An upgrade restarts a running terad on the new binary.
  if [ -n "$2" ] && systemctl is-active --quiet terad.service; then
    systemctl try-restart terad.service || true
  fi
fi
EOF
  cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl disable --now terad.service >/dev/null 2>&1 || true
fi
EOF
  cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
EOF
  chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

  dpkg-deb --build --root-owner-group "$root" "$deb"
}

check() {
  [ -f "$deb" ] || { echo "build-deb: no package $deb" >&2; exit 1; }
  local info contents
  info=$(dpkg-deb -I "$deb")
  contents=$(dpkg-deb -c "$deb")
  echo "$info"
  echo "$contents"
  local failed=0
  for field in "Package: terad" "Version: $version" "Architecture: $arch" "Depends: libc6" \
    "Maintainer: " "Description: "; do
    if ! grep -qF " $field" <<<"$info"; then
      echo "build-deb: control field missing: $field" >&2
      failed=1
    fi
  done
  for path in "${expected[@]}"; do
    # dpkg-deb -c: "<mode> <owner/group> <size> <date> <time> ./<path>"
    if ! awk -v want="./${path#/}" '$6 == want { found = 1 } END { exit !found }' <<<"$contents"; then
      echo "build-deb: missing from the package: $path" >&2
      failed=1
    fi
  done
  if grep -v ' root/root ' <<<"$contents" | grep -q .; then
    echo "build-deb: files not owned by root:" >&2
    grep -v ' root/root ' <<<"$contents" >&2
    failed=1
  fi
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$work" ./conffiles
  for file in "${conffiles[@]}"; do
    if ! grep -qx "$file" "$work/conffiles"; then
      echo "build-deb: not a conffile: $file" >&2
      failed=1
    fi
  done
  dpkg-deb -x "$deb" "$work/root"
  local reported
  if ! reported=$("$work/root/usr/bin/terad" --version); then
    echo "build-deb: the packaged terad does not run" >&2
    failed=1
  elif [ "$reported" != "terad $version" ]; then
    echo "build-deb: the packaged terad reports '$reported', expected 'terad $version'" >&2
    failed=1
  fi
  # `man terad` once installed: the packaged page renders and documents the options.
  local page
  if ! page=$(MANWIDTH=100 man -l "$work/root/usr/share/man/man1/terad.1.gz" 2>&1); then
    echo "build-deb: man -l cannot render the packaged man page: $page" >&2
    failed=1
  elif ! grep -q '^NAME' <<<"$page" || ! grep -q -- '--onetime' <<<"$page"; then
    echo "build-deb: the packaged man page has no NAME section or no --onetime:" >&2
    echo "$page" >&2
    failed=1
  fi
  # The packaged bash completion, sourced as bash-completion does, completes `terad --onet` to
  # a flag the packaged binary has.
  local completed
  completed=$(bash -c '. "$1" && COMP_WORDS=(terad --onet) && COMP_CWORD=1 && _terad terad --onet terad && printf "%s\n" "${COMPREPLY[@]}"' \
    _ "$work/root/usr/share/bash-completion/completions/terad" 2>&1 || true)
  if [ "$completed" != "--onetime" ] || ! "$work/root/usr/bin/terad" --help | grep -q -- '--onetime'; then
    echo "build-deb: the packaged bash completion completes 'terad --onet' to '$completed', not --onetime" >&2
    failed=1
  fi
  if [ "$failed" -ne 0 ]; then
    echo "build-deb: $deb FAILED its check" >&2
    exit 1
  fi
  echo "build-deb: $deb ok ($reported, $(du -h "$deb" | cut -f1))"
}

if [ "$mode" != check ]; then build; fi
check
