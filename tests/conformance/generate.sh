#!/usr/bin/env bash
# Regenerates every case's `expected` (or `error`) by running a confd binary once per case.
#
#   tests/conformance/generate.sh CONFD_BINARY [CASE_NAME...]
#
# For each cases/<name>/ it builds a throwaway confdir:
#   <tmp>/conf.d/case.toml     [template] src, dest (in <tmp>/out), the case's resource.toml
#                              lines, and keys = ["/"] unless resource.toml sets keys
#   <tmp>/templates/template.tmpl
#   <tmp>/keys.yaml
# and runs, in an environment holding only PATH, GODEBUG=netdns=go and the case's env lines:
#   CONFD_BINARY -onetime -backend file -file <tmp>/keys.yaml -confdir <tmp> \
#       -config-file <tmp>/no-confd.toml -log-level error
# If confd wrote the dest file, its bytes become `expected`; otherwise confd's log lines, with
# the "timestamp host tag[pid]: " prefix cut and <tmp> replaced by CONFDIR, become `error` (of a
# Go panic only the "panic: ..." line is kept).
# Re-running it rewrites the same files (lookupIP* cases depend on the machine's /etc/hosts).
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 CONFD_BINARY [CASE_NAME...]" >&2
    exit 2
fi
confd=$(realpath "$1")
shift
[[ -x $confd ]] || { echo "not an executable: $confd" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
if [[ $# -gt 0 ]]; then
    names=("$@")
else
    names=()
    for dir in "$here"/cases/*/; do
        names+=("$(basename "$dir")")
    done
fi

work_root=$(mktemp -d)
trap 'rm -rf "$work_root"' EXIT

written=0
failed=0
for name in "${names[@]}"; do
    case_dir=$here/cases/$name
    [[ -f $case_dir/template.tmpl ]] || { echo "$name: no template.tmpl" >&2; exit 1; }
    [[ -f $case_dir/keys.yaml ]] || { echo "$name: no keys.yaml" >&2; exit 1; }

    work=$work_root/$name
    mkdir -p "$work/conf.d" "$work/templates" "$work/out"
    cp "$case_dir/template.tmpl" "$work/templates/template.tmpl"
    cp "$case_dir/keys.yaml" "$work/keys.yaml"
    {
        echo '[template]'
        echo 'src = "template.tmpl"'
        echo "dest = \"$work/out/dest\""
        if [[ -f $case_dir/resource.toml ]]; then
            cat "$case_dir/resource.toml"
        fi
        if ! [[ -f $case_dir/resource.toml ]] || ! grep -Eq '^[[:space:]]*keys[[:space:]]*=' "$case_dir/resource.toml"; then
            echo 'keys = ["/"]'
        fi
    } > "$work/conf.d/case.toml"

    env_args=(PATH=/usr/local/bin:/usr/bin:/bin GODEBUG=netdns=go)
    if [[ -f $case_dir/env ]]; then
        while IFS= read -r line || [[ -n $line ]]; do
            [[ -z $line || $line == \#* ]] && continue
            env_args+=("$line")
        done < "$case_dir/env"
    fi

    status=0
    (cd "$work" && env -i "${env_args[@]}" "$confd" -onetime -backend file -file "$work/keys.yaml" \
        -confdir "$work" -config-file "$work/no-confd.toml" -log-level error) \
        > "$work/log" 2>&1 || status=$?

    rm -f "$case_dir/expected" "$case_dir/error"
    if [[ -f $work/out/dest ]]; then
        cp "$work/out/dest" "$case_dir/expected"
        if [[ $status -ne 0 || -s $work/log ]]; then
            echo "$name: dest written but confd exited $status or logged:" >&2
            cat "$work/log" >&2
            exit 1
        fi
    else
        if [[ $status -eq 0 ]]; then
            echo "$name: confd exited 0 without writing dest" >&2
            cat "$work/log" >&2
            exit 1
        fi
        # A Go panic keeps only its "panic: ..." line: the stack trace holds addresses.
        sed -E -e 's/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]+ [^ ]+ [^ ]+\[[0-9]+\]: //' \
            -e "s|$work|CONFDIR|g" -e '/^panic: /q' "$work/log" > "$case_dir/error"
        failed=$((failed + 1))
    fi
    written=$((written + 1))
done
echo "$written cases generated ($failed recorded as errors)"
