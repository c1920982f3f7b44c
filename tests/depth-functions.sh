# SPDX-License-Identifier: BSD-3-Clause
# Helpers for the depth filter tests (test-depth-*.sh).  -*- shell-script -*-
#
# Each test-depth-*.sh does:
#   depth_testsdir=$(cd "$(dirname "$0")" && pwd)
#   source "$depth_testsdir/functions.sh"
#   source "$depth_testsdir/depth-functions.sh"
# (functions.sh changes directory to the test's own directory.)
#
# The filter under test is $FILTER (default: the libtool build output under
# $top_builddir).  It is always stacked on the qcow2map plugin ($PLUGIN).
#
# Reference for everything: qemu.  qemu-nbd -r -A serves the guest disk with
# the qemu:allocation-depth context, from which we take
#   - the depth map (nbdinfo --json --map=qemu:allocation-depth), which
#     depth.json must reproduce;
#   - the base:allocation map of the full guest disk, from which the map of
#     every depth view is derived by the rules in README/man page:
#       outside the view's depth range           -> 3 (hole,zero)
#       inside, depth 0 (allocated nowhere)      -> 3 (hole,zero)
#       inside, depth >= 1, qemu says hole,zero  -> 2 (zero: zeros that a
#           layer provides -- zero clusters, past the end of a short backing
#           file, holes of a raw layer -- belong to the view)
#       inside, depth >= 1, otherwise            -> qemu's type
# and qemu-img convert -O raw gives the guest bytes, which masked by qemu's
# depth map give the expected bytes of every depth view.

# Used from functions.sh: log fail hard_error show_file next_id ($ID),
# $TESTDIR, $QCOW2MAP_TEST_TIMEOUT, qemu_nbd_start/qemu_nbd_stop
# ($QEMU_NBD_URI), map_normalize, map_summary, mkimg, qio, plugin_run.
for _f in log fail hard_error show_file next_id qemu_nbd_start qemu_nbd_stop qemu_objects qemu_ref_convert qemu_ref_nbd_start \
          map_normalize map_summary mkimg qio plugin_run nbdkit_v; do
    declare -F "$_f" > /dev/null ||
        { echo "depth-functions.sh: functions.sh does not define $_f" >&2; exit 99; }
done
[ -n "${TESTDIR:-}" ] && [ -n "${QCOW2MAP_TEST_TIMEOUT:-}" ] ||
    { echo "depth-functions.sh: source functions.sh first" >&2; exit 99; }

: "${FILTER:=$top_builddir/filter-depth/.libs/nbdkit-depth-filter.so}"
export FILTER
[ -f "$FILTER" ] || hard_error "depth filter not found: $FILTER (build it first)"

# ------------------------------------------------------------ serving
# depth_run IMG [PARAM=VALUE...] -- CMD [ARGS...]
# Like plugin_run, with --filter=$FILTER: nbdkit -U - --filter=depth plugin
# file=IMG PARAMS, running CMD under --run with $uri and $unixsocket exported.
# nbdkit's stderr is saved in $DEPTH_LAST_STDERR (echoed to our stderr unless
# DEPTH_QUIET=1).  Returns CMD's status (or nbdkit's if it fails to start).
depth_run() {
    local img=$1; shift
    local params=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do params+=("$1"); shift; done
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || hard_error "depth_run: no command"
    next_id
    local errf="$TESTDIR/depth-$ID.stderr" script="$TESTDIR/depth-$ID.run"
    DEPTH_LAST_STDERR=$errf
    { echo 'set -e'; printf 'exec'; printf ' %q' "$@"; echo; } > "$script"
    local rc=0
    nbdkit_v "$errf" -U - -f --filter="$FILTER" "$PLUGIN" file="$img" "${params[@]}" \
             --run "export uri unixsocket; exec bash '$script'" || rc=$?
    if [ -s "$errf" ] && [ "${DEPTH_QUIET:-0}" != 1 ]; then
        echo "  nbdkit stderr (depth filter serving $img):" >&2
        show_file "$errf" 20
    fi
    [ "$rc" -ne 124 ] || fail "timeout (${QCOW2MAP_TEST_TIMEOUT}s) serving $img with the depth filter"
    return "$rc"
}

# assert_no_crash RC STDERRFILE WHAT : nbdkit must not have died of a signal
# (exit status > 128) nor printed a crash report.
assert_no_crash() {
    local rc=$1 errf=$2 what=$3
    if [ "$rc" -gt 128 ] || grep -Eqi 'segmentation|abort|assertion|core dumped|double free|AddressSanitizer' "$errf"; then
        show_file "$errf"
        fail "$what: nbdkit crashed (exit status $rc)"
    fi
}

# ------------------------------------------------------------ maps
# depth_normalize: nbdinfo --json --map=qemu:allocation-depth (or our
# depth.json) on stdin -> "offset length depth description" lines, adjacent
# extents with equal depth merged.
depth_normalize() {
    jq -r '
        reduce .[] as $e ([];
            if length > 0 and .[-1].type == $e.type
               and (.[-1].offset + .[-1].length) == $e.offset
            then .[-1].length += $e.length
            else . + [{offset: $e.offset, length: $e.length, type: $e.type,
                       description: $e.description}]
            end)
        | .[] | "\(.offset) \(.length) \(.type) \(.description)"'
}

# depth_summary FILE (normalized depth map): "N extents: depth 0: B bytes, ..."
depth_summary() {
    awk '{ n++; b[$3] += $2; if ($3 > m) m = $3 }
         END { printf "%d extents", n
               for (d = 0; d <= m; d++) if (d in b) printf ", depth %d: %.0f bytes", d, b[d] }' "$1"
}

# expected_view_map QALLOC_MAP QDEPTH_MAP LO HI : print the expected
# (merged) base:allocation of depth view LO-HI, "offset length type" lines,
# from qemu's normalized base:allocation and depth maps (rules above).
expected_view_map() {
    awk -v lo="$3" -v hi="$4" '
        function emit(o, l, t) {
            if (n && ct == t && co + cl == o) { cl += l; return }
            if (n) printf "%.0f %.0f %d\n", co, cl, ct
            co = o; cl = l; ct = t; n = 1
        }
        BEGIN { na = 0; nb = 0; n = 0 }
        FNR == NR { ao[na] = $1 + 0; al[na] = $2 + 0; at[na] = $3 + 0; na++; next }
        { bo[nb] = $1 + 0; bl[nb] = $2 + 0; bd[nb] = $3 + 0; nb++ }
        END {
            i = 0; j = 0; pos = 0
            while (i < na && j < nb) {
                if (ao[i] > pos || bo[j] > pos) { print "gap in map at " pos > "/dev/stderr"; exit 2 }
                ei = ao[i] + al[i]; ej = bo[j] + bl[j]; e = ei < ej ? ei : ej
                d = bd[j]; t = at[i]
                if (d < lo || d > hi || d == 0) t = 3
                else if (t == 3) t = 2
                emit(pos, e - pos, t)
                pos = e
                if (ei == e) i++
                if (ej == e) j++
            }
            if (i < na || j < nb) { print "maps of different lengths" > "/dev/stderr"; exit 2 }
            if (n) printf "%.0f %.0f %d\n", co, cl, ct
        }' "$1" "$2"
}

# mask_by_depth FULL_RAW QDEPTH_MAP LO HI OUT : OUT = FULL_RAW with every byte
# whose depth (qemu's map) is outside LO..HI replaced by zero.
mask_by_depth() {
    local full=$1 dmap=$2 lo=$3 hi=$4 out=$5 off len d rest
    rm -f "$out"
    truncate -s "$(stat -c %s "$full")" "$out"
    while read -r off len d rest; do
        if [ "$d" -ge "$lo" ] && [ "$d" -le "$hi" ]; then
            dd if="$full" of="$out" bs=65536 iflag=skip_bytes,count_bytes oflag=seek_bytes \
               skip="$off" seek="$off" count="$len" conv=notrunc status=none ||
                hard_error "dd failed masking $full"
        fi
    done < "$dmap"
}

# map_type_at MAPFILE OFFSET : type of the extent holding OFFSET.
map_type_at() {
    awk -v x="$2" '$1 <= x && x < $1 + $2 { print $3; found = 1; exit }
                   END { if (!found) print "none" }' "$1"
}

# chain_layers IMG : number of images in IMG's backing chain (qemu's view).
# With a json: QEMU_REF (whose json must spell out the whole chain:
# qemu-img info ignores "backing" options), the nodes of its json; with
# a file name, that file's chain.
chain_layers() {
    if [[ "${QEMU_REF:-}" == json:* ]]; then
        printf '%s' "${QEMU_REF#json:}" | jq '[recurse(.backing | select(. != null))] | length'
        return
    fi
    local img=${QEMU_REF:-$1}
    (cd "$(dirname "$img")" && qemu-img info --backing-chain --output=json "$(basename "$img")") |
        jq -s 'if (.[0] | type) == "array" then .[0] | length else length end'
}

# qemu_depth_refs IMG PREFIX : reference data from qemu for IMG:
#   PREFIX.full.raw     guest bytes (qemu-img convert -O raw)
#   PREFIX.qdepth.json  nbdinfo --json --map=qemu:allocation-depth (qemu-nbd -A)
#   PREFIX.qdepth.map   ... normalized (depth_normalize)
#   PREFIX.qalloc.json  nbdinfo --json --map (base:allocation), same server
#   PREFIX.qalloc.map   ... normalized (map_normalize)
qemu_depth_refs() {
    local img=$1 p=$2
    qemu_ref_convert "$img" "$p.full.raw"
    qemu_ref_nbd_start "$img" -A
    nbdinfo --json --map=qemu:allocation-depth "$QEMU_NBD_URI" > "$p.qdepth.json" ||
        fail "nbdinfo --map=qemu:allocation-depth against qemu-nbd failed ($img)"
    nbdinfo --json --map "$QEMU_NBD_URI" > "$p.qalloc.json" ||
        fail "nbdinfo --map against qemu-nbd failed ($img)"
    qemu_nbd_stop
    depth_normalize < "$p.qdepth.json" > "$p.qdepth.map"
    map_normalize < "$p.qalloc.json" > "$p.qalloc.map"
}

# compare_files EXPECTED ACTUAL WHAT : diff -u, fail on mismatch.
compare_files() {
    local exp=$1 act=$2 what=$3
    if ! diff -u --label "expected ($what)" --label "actual ($what)" "$exp" "$act" > "$act.diff"; then
        echo "$TESTNAME: mismatch for $what:" >&2
        show_file "$act.diff" 80
        fail "$what differs from the expected"
    fi
}

# compare_bytes EXPECTED ACTUAL WHAT: see functions.sh.

# --------------------------------------------------------- check_chain
# check_chain IMG [RANGE...]
# For the backing chain of IMG (N layers, counted by qemu-img info; qemu opens
# QEMU_REF/QEMU_OBJECTS if set, and the plugin gets the space-separated
# parameters in CHAIN_PARAMS, see qemu_ref_convert):
#  (1) depth.json == qemu's qemu:allocation-depth map (both merged; when
#      qemu's document is already merged, byte-identical is required too);
#  (2) for every depth view depth/d, d = 0..N, and every extra RANGE ("N-M")
#      plus depth/0-N: bytes (nbdcopy with and without extents) equal the
#      guest bytes masked by qemu's depth map, and base:allocation equals
#      expected_view_map.
# Leaves $CHAIN_TAG.view-<range>.map (normalized maps of the views) and
# $CHAIN_TAG.qdepth.map etc. for extra assertions by the caller.
check_chain() {
    local img=$1; shift
    local tag; next_id; tag="$TESTDIR/chain$ID"
    CHAIN_TAG=$tag
    local n; n=$(chain_layers "$img")
    [ "$n" -ge 1 ] || hard_error "cannot count the layers of $img"
    qemu_depth_refs "$img" "$tag"

    local views=() d r
    for ((d = 0; d <= n; d++)); do views+=("$d"); done
    views+=("0-$n")
    for r in "$@"; do views+=("$r"); done

    export CC_TAG=$tag CC_VIEWS="${views[*]}"
    depth_run "$img" ${CHAIN_PARAMS:-} -- bash -c '
        set -e
        q=${uri#*\?}
        nbdcopy "nbd+unix:///depth.json?$q" "$CC_TAG.ours.json"
        nbdinfo --size "nbd+unix:///depth.json?$q" > "$CC_TAG.ours.json.size"
        for v in $CC_VIEWS; do
            u="nbd+unix:///depth/$v?$q"
            nbdcopy --no-extents "$u" "$CC_TAG.view-$v.raw"
            nbdcopy "$u" "$CC_TAG.view-$v.ext.raw"
            nbdinfo --json --map "$u" > "$CC_TAG.view-$v.json"
        done' || fail "serving $img with the depth filter failed"

    # (1) depth.json
    [ "$(cat "$tag.ours.json.size")" = "$(stat -c %s "$tag.ours.json")" ] ||
        fail "depth.json: export size differs from the bytes read"
    jq -e 'type == "array"' "$tag.ours.json" > /dev/null ||
        { show_file "$tag.ours.json"; fail "depth.json of $img is not a JSON array"; }
    depth_normalize < "$tag.ours.json" > "$tag.ours.map"
    compare_files "$tag.qdepth.map" "$tag.ours.map" \
        "depth map of $img (offset length depth description; qemu-nbd -A vs depth.json)"
    # Padded with spaces before the final newline to a multiple of 4 KiB
    # (for nbdkit's blocksize filter); the document is what precedes them.
    [ $(( $(stat -c %s "$tag.ours.json") % 4096 )) -eq 0 ] ||
        fail "depth.json of $img: size $(stat -c %s "$tag.ours.json") is not a multiple of 4096"
    sed '$ s/ *$//' "$tag.ours.json" > "$tag.ours.unpadded.json"
    local qn on ident
    qn=$(jq length "$tag.qdepth.json"); on=$(jq length "$tag.ours.json")
    [ "$on" -eq "$(wc -l < "$tag.ours.map")" ] ||
        fail "depth.json of $img has adjacent extents of equal depth ($on extents, $(wc -l < "$tag.ours.map") merged)"
    if cmp -s "$tag.qdepth.json" "$tag.ours.unpadded.json"; then
        ident="byte-identical to qemu's (before the padding)"
    elif [ "$qn" -eq "$(wc -l < "$tag.qdepth.map")" ]; then
        diff -u --label "nbdinfo --json --map=qemu:allocation-depth (qemu-nbd)" \
                --label "depth.json" "$tag.qdepth.json" "$tag.ours.unpadded.json" >&2 || true
        fail "depth.json of $img is not byte-identical to nbdinfo's output for qemu-nbd (whose extents are already merged)"
    else
        ident="equal after merging (qemu: $qn extents unmerged, ours $on; not byte-identical)"
    fi
    log "OK $img ($n layers): depth.json $ident: $(depth_summary "$tag.ours.map")"

    # (2) views
    local v lo hi exp
    for v in "${views[@]}"; do
        lo=${v%-*}; hi=${v#*-}
        exp="$tag.expected-$v.raw"
        mask_by_depth "$tag.full.raw" "$tag.qdepth.map" "$lo" "$hi" "$exp"
        compare_bytes "$exp" "$tag.view-$v.raw" "depth/$v of $img (nbdcopy --no-extents)"
        compare_bytes "$exp" "$tag.view-$v.ext.raw" "depth/$v of $img (nbdcopy)"
        expected_view_map "$tag.qalloc.map" "$tag.qdepth.map" "$lo" "$hi" > "$tag.expected-$v.map" ||
            hard_error "cannot compute the expected map of depth/$v"
        map_normalize < "$tag.view-$v.json" > "$tag.view-$v.map"
        compare_files "$tag.expected-$v.map" "$tag.view-$v.map" \
            "base:allocation of depth/$v of $img (offset length type)"
        log "   depth/$v: bytes == guest bytes masked to depth $v ($(awk -v lo="$lo" -v hi="$hi" '$3 >= lo && $3 <= hi { s += $2 } END { printf "%.0f", s }' "$tag.qdepth.map") bytes in range, sha256 $(sha256sum < "$exp" | cut -c1-12)); map == expected: $(map_summary "$tag.view-$v.map")"
        rm -f "$exp" "$tag.view-$v.raw" "$tag.view-$v.ext.raw"
    done
    # depth/0-N is the whole guest disk.
    [ "$(awk '{ s += $2 } END { printf "%.0f", s }' "$tag.qdepth.map")" = "$(stat -c %s "$tag.full.raw")" ] ||
        fail "qemu's depth map of $img does not cover the disk"
}
