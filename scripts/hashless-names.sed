# Demangled Rust symbol names without their hashes, one per line in, one per line out: legacy
# names end in `::h<16 hex>`, v0 names carry crate ids as `[<hex>]`. The hashes change with the
# toolchain, the profile and the dependencies' versions; the names without them do not. Used by
# scripts/hot-functions.sh (to write link/hot-functions.txt) and scripts/link-hot-first.sh (to
# find those names among the symbols being linked): both must drop exactly the same.
s/\[[0-9a-f]\{1,16\}\]//g
s/::h[0-9a-f]\{16\}$//
