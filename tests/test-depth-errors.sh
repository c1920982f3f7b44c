#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Errors of the depth filter, never a crash:
#  - bad export names (a depth view beyond the chain, malformed names): the
#    client gets an error, nbdkit logs why, and the same server keeps serving
#    (checked with other exports after every bad name, in the same --run);
#  - bad depth= parameters (garbage, empty, reversed range, beyond the
#    chain): nbdkit refuses to start with a clear message;
#  - the filter over a plugin without file= (memory): startup error;
#  - the filter over a plugin serving something else than the chain (the
#    file plugin serving the qcow2 file itself): depth views refused, the
#    plugin's own export still served.
depth_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$depth_testsdir/functions.sh"
source "$depth_testsdir/depth-functions.sh"

mkimg base.qcow2 1M
qio base.qcow2 'write -P 0x11 0 512k'
mkimg -b base.qcow2 -F qcow2 mid.qcow2
qio mid.qcow2 'write -P 0x22 256k 128k'
mkimg -b mid.qcow2 -F qcow2 top.qcow2
qio top.qcow2 'write -P 0x33 0 64k' 'write -z 320k 64k'

# ---------------------------------------------------------- bad names
bad_names=(
    depth/9 depth/4 depth/1-9 depth/0-4   # beyond the 3-layer chain
    depth/x depth/3-1 depth/ depth/-1 depth/1- depth/1x depth/1-2-3
    'depth/ 1' depth/1.5 depth/99999999999999999999999 depth/4294967297
    depth.json/ depth depth/1/ layer/9 layer/x
)
printf '%s\n' "${bad_names[@]}" > bad-names
export E_DIR=$TESTDIR
rc=0
DEPTH_QUIET=1 depth_run top.qcow2 -- bash -c '
    q=${uri#*\?}
    n=0
    while IFS= read -r name; do
        n=$((n + 1))
        enc=$(jq -rn --arg s "$name" "\$s | @uri" | sed "s/%2F/\//g")
        if nbdinfo --size "nbd+unix:///$enc?$q" > "$E_DIR/bad-$n.out" 2> "$E_DIR/bad-$n.err"; then
            echo "ACCEPTED $name: $(cat "$E_DIR/bad-$n.out")"
        else
            echo "REFUSED $name: $(head -n1 "$E_DIR/bad-$n.err")"
        fi
        # The server still serves: a depth view, the JSON map, the guest disk.
        s1=$(nbdinfo --size "nbd+unix:///depth/1?$q") || { echo "DEAD after $name"; exit 1; }
        s2=$(nbdinfo --size "nbd+unix:///depth.json?$q") || { echo "DEAD after $name"; exit 1; }
        s3=$(nbdinfo --size "$uri") || { echo "DEAD after $name"; exit 1; }
        echo "ALIVE $name: depth/1 $s1 bytes, depth.json $s2 bytes, \"\" $s3 bytes"
    done < "$E_DIR/bad-names"
    nbdcopy --no-extents "nbd+unix:///depth/2?$q" "$E_DIR/after-depth2.raw"
    nbdcopy "nbd+unix:///depth.json?$q" "$E_DIR/after-depth.json"
' > bad-names.log || rc=$?
cat bad-names.log
assert_no_crash "$rc" "$DEPTH_LAST_STDERR" "bad export names"
if grep -q '^DEAD' bad-names.log || [ "$rc" -ne 0 ]; then
    show_file "$DEPTH_LAST_STDERR"
    fail "the server stopped serving after a bad export name (exit $rc)"
fi
if grep -q '^ACCEPTED' bad-names.log; then
    grep '^ACCEPTED' bad-names.log >&2
    fail "bad export names were accepted"
fi
[ "$(grep -c '^REFUSED' bad-names.log)" -eq "${#bad_names[@]}" ] || fail "not every bad name was tried"
[ "$(grep -c '^ALIVE' bad-names.log)" -eq "${#bad_names[@]}" ] || fail "not every liveness check ran"
# nbdkit says why, for the depth views.
for name in depth/9 depth/x depth/3-1 depth/; do
    grep -Fq "export '$name' not found" "$DEPTH_LAST_STDERR" ||
        { show_file "$DEPTH_LAST_STDERR"; fail "nbdkit did not log why '$name' was refused"; }
done
# The views read after all the errors are right.
R="$TESTDIR/ref"
qemu_depth_refs top.qcow2 "$R"
mask_by_depth "$R.full.raw" "$R.qdepth.map" 2 2 exp-depth2.raw
compare_bytes exp-depth2.raw after-depth2.raw "depth/2 read after the bad names"
depth_normalize < after-depth.json > after-depth.map
compare_files "$R.qdepth.map" after-depth.map "depth.json read after the bad names"
log "OK ${#bad_names[@]} bad export names refused, server alive after each; depth/2 and depth.json still right afterwards"
log "   e.g. nbdkit: $(grep -m1 "depth/9" "$DEPTH_LAST_STDERR")"

# ----------------------------------------------------- startup errors
# expect_refusal WHAT REGEX NBDKIT-ARGS... : nbdkit must exit non-zero
# without running --run, without crashing, with stderr matching REGEX.
expect_refusal() {
    local what=$1 regex=$2; shift 2
    next_id
    local errf="$TESTDIR/refuse-$ID.stderr" marker="$TESTDIR/refuse-$ID.ran" rc=0
    nbdkit_v "$errf" -U - -f "$@" --run "touch '$marker'" || rc=$?
    [ "$rc" -ne 124 ] || fail "$what: timeout"
    assert_no_crash "$rc" "$errf" "$what"
    if [ "$rc" -eq 0 ] || [ -e "$marker" ]; then
        show_file "$errf"; fail "$what: nbdkit started (exit $rc), expected a startup error"
    fi
    grep -Eq -- "$regex" "$errf" || { show_file "$errf"; fail "$what: the error message does not match /$regex/"; }
    log "OK $what: refused at startup (exit $rc): $(grep -Em1 -- "$regex" "$errf")"
}

expect_refusal "depth=garbage" 'depth=garbage.*(expected|N-M)' \
    --filter="$FILTER" "$PLUGIN" file=top.qcow2 depth=garbage
expect_refusal "depth= (empty)" 'depth=.*(expected|N-M)' \
    --filter="$FILTER" "$PLUGIN" file=top.qcow2 depth=
expect_refusal "depth=3-1" 'depth=3-1.*(expected|N-M)' \
    --filter="$FILTER" "$PLUGIN" file=top.qcow2 depth=3-1
expect_refusal "depth=-1" 'depth=-1.*(expected|N-M)' \
    --filter="$FILTER" "$PLUGIN" file=top.qcow2 depth=-1
expect_refusal "depth=2x" 'depth=2x.*(expected|N-M)' \
    --filter="$FILTER" "$PLUGIN" file=top.qcow2 depth=2x
expect_refusal "depth=9 (3-layer chain)" 'depth=9.*(3 layer|layer)' \
    --filter="$FILTER" "$PLUGIN" file=top.qcow2 depth=9
expect_refusal "depth=4 (3-layer chain)" 'depth=4.*(3 layer|layer)' \
    --filter="$FILTER" "$PLUGIN" file=top.qcow2 depth=4
expect_refusal "depth=1-4 (3-layer chain)" 'depth=1-4.*(3 layer|layer)' \
    --filter="$FILTER" "$PLUGIN" file=top.qcow2 depth=1-4
expect_refusal "depth filter over the memory plugin (no file=)" 'depth filter.*file=' \
    --filter="$FILTER" memory 1M
expect_refusal "depth filter over the memory plugin with depth=1" 'depth filter.*file=' \
    --filter="$FILTER" memory 1M depth=1
expect_refusal "depth filter over the qcow2map plugin without file=" 'file=' \
    --filter="$FILTER" "$PLUGIN"
# Sanity: the boundary values start.
depth_run top.qcow2 depth=3 -- true || fail "depth=3 on a 3-layer chain must start"
depth_run top.qcow2 depth=0-3 -- true || fail "depth=0-3 on a 3-layer chain must start"
log "OK depth=3 and depth=0-3 start on a 3-layer chain"

# ------------------------------------- over a plugin serving other bytes
# The file plugin serves the qcow2 file itself (file=top.qcow2): the depth
# views cannot be served and must be refused, without a crash; the
# plugin's own export "" passes through.
rc=0
nbdkit_v file-plugin.err -U - -f --filter="$FILTER" file file=top.qcow2 --run '
    q=${uri#*\?}
    if nbdinfo --size "nbd+unix:///depth/1?$q" 2> /dev/null; then echo "ACCEPTED depth/1"; fi
    nbdcopy --no-extents "$uri" "'"$TESTDIR"'/file-plugin.raw"
' > file-plugin.log || rc=$?
assert_no_crash "$rc" file-plugin.err "depth filter over the file plugin"
[ "$rc" -eq 0 ] || { show_file file-plugin.err; fail "depth filter over the file plugin: serving \"\" failed (exit $rc)"; }
! grep -q ACCEPTED file-plugin.log || { show_file file-plugin.err; fail "depth filter over the file plugin: depth/1 was served"; }
cmp top.qcow2 file-plugin.raw || fail "depth filter over the file plugin: \"\" is not the file"
log "OK depth filter over the file plugin: depth/1 refused ($(grep -m1 'error' file-plugin.err)), \"\" passed through"
