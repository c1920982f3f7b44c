# SPDX-License-Identifier: BSD-3-Clause
# Sourced by the bench scripts (bash): where the plugin is, a work
# directory, and the guest data the images are made from.  -*- shell-script -*-

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
plugin=${PLUGIN:-$top/plugin-qcow2map/.libs/nbdkit-qcow2map-plugin.so}

# bench_workdir [PREFIX] : a new directory $work under /tmp, entered, and
# at exit removed (after stopping the server whose pid is in $work/pid,
# if any).
bench_workdir() {
    work=$(mktemp -d "/tmp/${1:-qcow2map-bench}.XXXXXX")
    trap 'kill "$(cat "$work/pid" 2> /dev/null)" 2> /dev/null || true; rm -rf "$work"' EXIT
    cd "$work"
}

# binaries_raw BYTES FILE : FILE holds BYTES of system binaries (which
# compress about 3:1, a realistic load for the decompressor), read from
# /usr again as often as needed.
binaries_raw() {
    local want=$1 file=$2
    : > "$file"
    while [ "$(stat -c %s "$file")" -lt "$want" ]; do
        { tar cf - /usr/lib/x86_64-linux-gnu /usr/bin 2> /dev/null || true; } |
            head -c $((want - $(stat -c %s "$file"))) >> "$file"
    done
}

# half_random_raw BYTES FILE : FILE holds BYTES, the first half random
# (which qemu stores uncompressed), the second half binaries.
half_random_raw() {
    head -c $(($1 / 2)) /dev/urandom > "$2"
    binaries_raw $(($1 - $1 / 2)) "$2.bin"
    cat "$2.bin" >> "$2"
    rm -f "$2.bin"
}
