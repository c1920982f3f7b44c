#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Literal expected outputs: the README's and man pages' examples, pinned as
# text, so that a change in our answers -- or in qemu's, which the other
# tests take as the reference at run time -- cannot go unnoticed:
#  - the demo chain (scripts/demo-chain.sh): nbdinfo --map of "", layer/1,
#    depth/1 and depth/1-2, and depth.json (its document before the padding,
#    and the padding: spaces to a multiple of 4096 bytes, then a newline);
#  - the compaction example (vm.qcow2): the container map, the allocation
#    and check of file/1.json, and the compacted copy checked by qemu-img.
depth_testsdir=$(cd "$(dirname "$0")" && pwd)
source "$depth_testsdir/functions.sh"
source "$depth_testsdir/depth-functions.sh"

"$top_srcdir/scripts/demo-chain.sh"

expect_text() {   # expect_text FILE WHAT  (expected text on stdin)
    cat > "$1.expected"
    diff -u --label "expected ($2)" --label "actual ($2)" "$1.expected" "$1" >&2 ||
        fail "$2 differs from the documented output"
    log "OK $2: $(wc -l < "$1") lines as documented"
}

export L_DIR=$TESTDIR
depth_run top.qcow2 -- sh -c '
    q=socket=$unixsocket
    nbdinfo --map "$uri" > "$L_DIR/guest.map"
    nbdinfo --map "nbd+unix:///layer/1?$q" > "$L_DIR/layer1.map"
    nbdinfo --map "nbd+unix:///depth/1?$q" > "$L_DIR/depth1.map"
    nbdinfo --map "nbd+unix:///depth/1-2?$q" > "$L_DIR/depth1-2.map"
    nbdcopy "nbd+unix:///depth.json?$q" "$L_DIR/depth.json"' ||
    fail "serving the demo chain failed"

expect_text guest.map 'nbdinfo --map of "" (README demo)' <<'END'
         0     8388608    0  data
   8388608    26214400    3  hole,zero
  34603008     3145728    0  data
  37748736    29360128    3  hole,zero
END
expect_text layer1.map 'nbdinfo --map of layer/1 (plugin man page)' <<'END'
         0     1048576    3  hole,zero
   1048576     1048576    0  data
   2097152    31457280    3  hole,zero
  33554432     1048576    2  zero
  34603008    32505856    3  hole,zero
END
expect_text depth1.map 'nbdinfo --map of depth/1 (README demo, depth filter man page)' <<'END'
         0     1048576    3  hole,zero
   1048576     1048576    0  data
   2097152    31457280    3  hole,zero
  33554432     1048576    2  zero
  34603008    32505856    3  hole,zero
END
expect_text depth1-2.map 'nbdinfo --map of depth/1-2 (depth filter man page)' <<'END'
         0     8388608    0  data
   8388608    25165824    3  hole,zero
  33554432     1048576    2  zero
  34603008     3145728    0  data
  37748736    29360128    3  hole,zero
END

size=$(stat -c %s depth.json)
[ "$size" -eq 4096 ] || fail "depth.json: $size bytes, expected 4096 (the document padded)"
sed '$ s/ *$//' depth.json > depth.doc
doclen=$(( $(stat -c %s depth.doc) - 1 ))     # the document without its newline
[ "$(tail -c +$((doclen + 1)) depth.json | tr -d ' ' | od -An -c | tr -d ' ')" = '\n' ] ||
    fail "depth.json: what follows the document is not spaces and one newline"
expect_text depth.doc 'depth.json (README demo, depth filter man page)' <<'END'
[
{ "offset": 0, "length": 1048576, "type": 2, "description": "backing depth 2"},
{ "offset": 1048576, "length": 1048576, "type": 1, "description": "local"},
{ "offset": 2097152, "length": 6291456, "type": 2, "description": "backing depth 2"},
{ "offset": 8388608, "length": 25165824, "type": 0, "description": "absent"},
{ "offset": 33554432, "length": 1048576, "type": 1, "description": "local"},
{ "offset": 34603008, "length": 3145728, "type": 2, "description": "backing depth 2"},
{ "offset": 37748736, "length": 29360128, "type": 0, "description": "absent"}
]
END

# ---- the compaction example
qemu-img create -q -f qcow2 vm.qcow2 64M
qemu-io -c 'write -P 0x5a 0 8M' vm.qcow2 > /dev/null
qemu-io -c 'discard 0 4M' \
    --image-opts driver=qcow2,file.filename=vm.qcow2,pass-discard-request=off > /dev/null
plugin_run vm.qcow2 -- sh -c '
    q=socket=$unixsocket
    nbdinfo --map "nbd+unix:///file/1?$q" > "$L_DIR/container.map"
    nbdcopy "nbd+unix:///file/1.json?$q" - | jq -c .allocation,.check > "$L_DIR/container.json"
    nbdcopy "nbd+unix:///file/1?$q" "$L_DIR/compact.qcow2"' ||
    fail "serving vm.qcow2 failed"
expect_text container.map 'nbdinfo --map of file/1 of vm.qcow2 (plugin man page)' <<'END'
         0      200704    0  data
    200704       61440    2  zero
    262144       65536    0  data
    327680     4194304    3  hole,zero
   4521984     4194304    0  data
END
expect_text container.json 'allocation and check of file/1.json of vm.qcow2 (plugin man page)' <<'END'
{"used-data":4460544,"used-zero":61440,"used-discarded":0,"used-overrun":0,"unused-data":4194304,"unused-zero":0,"unused-discarded":0}
{"leaks":0,"corruptions":0,"allocated-clusters":64,"compressed-clusters":0,"total-clusters":1024,"referenced-clusters":69,"image-end-offset":8716288}
END
qemu-img check compact.qcow2 > check.out
expect_text check.out 'qemu-img check of the compacted copy (README, plugin man page)' <<'END'
No errors were found on the image.
64/1024 = 6.25% allocated, 0.00% fragmented, 0.00% compressed clusters
Image end offset: 8716288
END
qemu-img compare vm.qcow2 compact.qcow2 > compare.out
expect_text compare.out 'qemu-img compare vm.qcow2 compact.qcow2' <<'END'
Images are identical.
END
