# SPDX-License-Identifier: BSD-3-Clause
# Helpers for the container view tests (test-container-*.sh).  -*- shell-script -*-
#
# Each test-container-*.sh does:
#   container_testsdir=$(cd "$(dirname "$0")" && pwd)
#   source "$container_testsdir/functions.sh"
#   source "$container_testsdir/container-functions.sh"
# (functions.sh changes directory to the test's own directory.)
#
# The views under test, for every qcow2 layer N of the chain of file=IMG:
#   file/N       the bytes of layer N's qcow2 file; clusters in use (refcount
#                > 0, or referenced by metadata) are data (ZERO where the
#                host file has a hole), the others HOLE+ZERO reading zeros;
#   file/N.json  header facts, allocation statistics, the refcount check
#                and the metadata map of that file.
#
# The references are qemu's, and the file itself:
#   - qemu-img check --output=json: leaks, corruptions, allocated-clusters,
#     compressed-clusters, total-clusters, image-end-offset (its JSON leaves
#     out leaks/corruptions when 0); on stderr it lists every cluster whose
#     refcount differs from the number of references it found:
#       "Leaked cluster K refcount=R reference=S"   (R > S)
#       "ERROR cluster K refcount=R reference=S"    (R < S)
#     so the set of clusters in use is exactly
#       {clusters touched by a metadata structure} u {K listed with S = 0},
#     and the clusters with refcount 0 among them are the "ERROR ...
#     refcount=0" ones.  Clusters qemu lists with S = 0 must not be covered
#     by our metadata map, clusters listed with S > 0 must be;
#   - qemu-img info --output=json: header facts;
#   - qemu-img map --output=json (qcow2): the host clusters of the active
#     L2 tables, which the metadata map must cover;
#   - qemu-img map -f raw --output=json of the file: which bytes of the host
#     file are data and which are holes (SEEK_DATA/SEEK_HOLE, as we use
#     them); with stat's st_blocks as a sanity check of that premise;
#   - the header fields read with peek_be (L1 table, refcount table,
#     snapshot table, refcount blocks from the refcount table, backing file
#     name, bitmap directory);
#   - round trip: nbdcopy of file/N into a new file must give a qcow2 file
#     that qemu-img check reports exactly as the original (same JSON, same
#     exit status), qemu-img compare calls identical to the original, that
#     is no bigger on disk than the original, and that equals the original
#     byte for byte in every cluster in use and is zero elsewhere.
#
# Used from functions.sh: log fail hard_error show_file next_id ($ID),
# $TESTDIR, plugin_run, map_normalize, map_summary, peek_be.
for _f in log fail hard_error show_file next_id plugin_run map_normalize \
          map_summary peek_be; do
    declare -F "$_f" > /dev/null ||
        { echo "container-functions.sh: functions.sh does not define $_f" >&2; exit 99; }
done
[ -n "${TESTDIR:-}" ] ||
    { echo "container-functions.sh: source functions.sh first" >&2; exit 99; }
for _t in cmp du stat awk sort realpath; do
    command -v "$_t" > /dev/null 2>&1 || hard_error "required tool '$_t' not found"
done

# Outputs of the last container_check, for further assertions by the test:
#   CONTAINER_JSON   file/N.json as served
#   CONTAINER_MAP    normalized nbdinfo --map of file/N ("offset length type")
#   CONTAINER_QLIST  qemu's per-cluster listing ("Leaked|ERROR K R S")
#   CONTAINER_COMPACT  the nbdcopy of file/N (a qcow2 file next to the layer)
CONTAINER_JSON="" CONTAINER_MAP="" CONTAINER_QLIST="" CONTAINER_COMPACT=""

# Known-discrepancy style failures (a check field that differs from qemu-img
# check, overlapping metadata entries) are reported at once as MISMATCH
# lines but do not stop the test, so that every other assertion on every
# image still runs; container_done, the last command of every
# test-container-*.sh, then fails the test if there were any.
CONTAINER_MISMATCHES=()
container_mismatch() {
    echo "$TESTNAME: MISMATCH: $*" >&2
    CONTAINER_MISMATCHES+=("$*")
}
container_done() {
    local m
    if [ "${#CONTAINER_MISMATCHES[@]}" -gt 0 ]; then
        for m in "${CONTAINER_MISMATCHES[@]}"; do echo "$TESTNAME: MISMATCH: $m" >&2; done
        fail "${#CONTAINER_MISMATCHES[@]} mismatch(es), listed above (all other assertions passed)"
    fi
    log "OK: all container checks passed"
}

# jq_num FILE FILTER : a number from a JSON file (fails if not a number).
jq_num() {
    local v
    v=$(jq -r "$2" "$1") || fail "jq '$2' failed on $1"
    [[ "$v" =~ ^[0-9]+$ ]] || fail "$1: '$2' is '$v', not a number"
    echo "$v"
}

# du_k FILE : disk usage in KiB (du -k), the unit the round trip compares.
du_k() { du -k "$1" | cut -f1; }

# layer_qemu_check FILE OUTPREFIX : qemu-img check --output=json of FILE
# (in its directory).  Writes OUTPREFIX.json (the JSON), OUTPREFIX.err
# (stderr), OUTPREFIX.list ("Leaked|ERROR K R S" lines) and prints the
# exit status.
layer_qemu_check() {
    local f=$1 out=$2 rc=0
    (cd "$(dirname "$f")" && qemu-img check -f qcow2 --output=json "$(basename "$f")") \
        > "$out.json" 2> "$out.err" || rc=$?
    sed -nE 's/^(Leaked|ERROR) cluster ([0-9]+) refcount=([0-9]+) reference=([0-9]+)$/\1 \2 \3 \4/p' \
        "$out.err" | sort -u -k2,2n > "$out.list"
    jq -e . "$out.json" > /dev/null 2>&1 || {
        show_file "$out.err"; fail "qemu-img check of $f (exit $rc) did not print JSON"; }
    echo "$rc"
}

# map_types_over MAPFILE OFFSET LENGTH : the distinct types (sorted,
# space-separated) of the normalized map over [OFFSET, OFFSET+LENGTH).
map_types_over() {
    awk -v s="$2" -v e="$(( $2 + $3 ))" '
        $1 < e && $1 + $2 > s { t[$3] = 1 }
        END { for (k in t) printf "%s\n", k }' "$1" | sort -n | tr '\n' ' ' | sed 's/ $//'
}

# container_expect_types OFFSET LENGTH TYPES WHAT : over the range, the map
# of the last container_check has exactly the types TYPES ("3", "0 2"...).
container_expect_types() {
    local off=$1 len=$2 want=$3 what=$4 got
    got=$(map_types_over "$CONTAINER_MAP" "$off" "$len")
    if [ "$got" != "$want" ]; then
        show_file "$CONTAINER_MAP"
        fail "$what: file view map over [$off, +$len) has types '$got', expected '$want' (0=data 2=zero 3=hole+zero)"
    fi
    log "  $what: map types over [$off, +$len) are '$got' as expected"
}

# file_has_nonzero FILE OFFSET LENGTH : the range holds a non-zero byte.
file_has_nonzero() {
    ! cmp -s -n "$3" -i "$2:0" "$1" /dev/zero
}

# ------------------------------------------------------- container_check
# container_check IMG N LAYERFILE QEMU_CHECK_RC [SMALLER]
# Serves IMG with the plugin and checks file/N and file/N.json against
# LAYERFILE (layer N of IMG's chain) and qemu, as described at the top.
# QEMU_CHECK_RC is the exit status qemu-img check must give for LAYERFILE
# (0 clean, 2 corruptions, 3 leaks only): asserted for the original and for
# the round-trip copy alike.  With SMALLER=smaller, the compacted copy must
# be strictly smaller (du -k) than both LAYERFILE and a plain sparse copy of
# LAYERFILE made the same way (nbdcopy from nbdkit's file plugin), i.e. the
# container view must have dropped data that a plain copy keeps.
container_check() {
    local img=$1 n=$2 lfile=$3 want_rc=$4 smaller=${5:-}
    local tag; next_id; tag="$TESTDIR/cc$ID"
    local ldir lbase labs
    ldir=$(cd "$(dirname "$lfile")" && pwd -P); lbase=$(basename "$lfile")
    labs="$ldir/$lbase"
    local compact="$ldir/compact$ID-$lbase" full="$tag.full"
    local what="$lbase (file/$n of $(basename "$img"))"

    # Pull every page of the file into the page cache first: ext4 and xfs
    # report the pages of an unwritten (fallocated) extent as data once they
    # are cached, so the host data/hole state is only stable (for us and for
    # qemu alike) when the whole file has been read.
    cat "$labs" > /dev/null

    # --- qemu's views of the file, before the plugin reads it.
    local qrc; qrc=$(layer_qemu_check "$labs" "$tag.qcheck")
    (cd "$ldir" && qemu-img info -U -f qcow2 --output=json "$lbase") > "$tag.qinfo.json" ||
        fail "qemu-img info failed on $lfile"
    (cd "$ldir" && qemu-img map -f qcow2 --output=json "$lbase") > "$tag.qmap.json" ||
        fail "qemu-img map failed on $lfile"
    qemu-img map -f raw --output=json "$labs" > "$tag.qraw.json" ||
        fail "qemu-img map -f raw failed on $lfile"
    [ "$qrc" = "$want_rc" ] || {
        show_file "$tag.qcheck.err" 20
        hard_error "$lfile: qemu-img check exit status $qrc, the test expects $want_rc (test premise)"; }

    # --- the plugin: list, JSON, map, copies (one server).
    export CC_TAG=$tag CC_N=$n CC_COMPACT=$compact CC_FULL=$full
    rm -f "$compact" "$full"
    plugin_run "$img" -- bash -c '
        set -e
        u="nbd+unix:///file/$CC_N?socket=$unixsocket"
        nbdinfo --list --json "$uri" > "$CC_TAG.list.json"
        nbdcopy "nbd+unix:///file/$CC_N.json?socket=$unixsocket" "$CC_TAG.json"
        nbdinfo --size "nbd+unix:///file/$CC_N.json?socket=$unixsocket" > "$CC_TAG.jsonsize"
        nbdinfo --size "$u" > "$CC_TAG.size"
        nbdinfo --json --map "$u" > "$CC_TAG.map.json"
        nbdcopy "$u" "$CC_COMPACT"
        nbdcopy --no-extents "$u" "$CC_FULL"' ||
        fail "$what: serving file/$n through the plugin failed"
    CONTAINER_JSON=$tag.json CONTAINER_MAP=$tag.map CONTAINER_QLIST=$tag.qcheck.list
    CONTAINER_COMPACT=$compact
    local J=$tag.json
    jq -e . "$J" > /dev/null 2>&1 || { show_file "$J"; fail "$what: file/$n.json is not valid JSON"; }
    map_normalize < "$tag.map.json" > "$tag.map"

    # --- listing: both views, described, with the right sizes.
    local flen; flen=$(stat -c %s "$labs")
    local jlen; jlen=$(stat -c %s "$J")
    jq -e --arg n "file/$n" --arg p "$labs" --argjson flen "$flen" --argjson jlen "$jlen" '
        [.exports[] | select(."export-name" == $n)] as $f
        | [.exports[] | select(."export-name" == ($n + ".json"))] as $j
        | ($f | length) == 1 and ($j | length) == 1
          and ($f[0].description | contains($p)) and ($j[0].description | contains($p))
          and $f[0]."export-size" == $flen and $j[0]."export-size" == $jlen' \
        "$tag.list.json" > /dev/null || {
        jq -c '.exports[] | [."export-name", .description, ."export-size"]' "$tag.list.json" >&2
        fail "$what: nbdinfo --list must show file/$n (size $flen) and file/$n.json (size $jlen), described with $labs"; }
    [ "$(cat "$tag.size")" = "$flen" ] || fail "$what: file/$n export size $(cat "$tag.size"), file length $flen"
    [ "$(cat "$tag.jsonsize")" = "$jlen" ] || fail "$what: file/$n.json export size differs from the bytes read"

    # --- header facts against the file and qemu-img info.
    [ "$(jq -r .file "$J")" = "$labs" ] || fail "$what: .file is $(jq -r .file "$J"), expected $labs"
    [ "$(jq_num "$J" '."file-length"')" = "$flen" ] || fail "$what: file-length differs from the file size $flen"
    local hq; hq=$(jq -c '{
            version: (if ."format-specific".data.compat == "0.10" then 2 else 3 end),
            "cluster-size": ."cluster-size", "virtual-size": ."virtual-size",
            "refcount-bits": ."format-specific".data."refcount-bits",
            "compression-type": ."format-specific".data."compression-type",
            "extended-l2": (."format-specific".data."extended-l2" // false),
            snapshots: (.snapshots // [] | length),
            bitmaps: (."format-specific".data.bitmaps // [] | length),
            lazy: (."format-specific".data."lazy-refcounts" // false),
            corrupt: (."format-specific".data.corrupt // false),
            "backing-file": (."backing-filename" // null),
            "backing-format": (."backing-filename-format" // null),
            "data-file": (."format-specific".data."data-file" // null) }' "$tag.qinfo.json")
    local hj; hj=$(jq -c '.header | {
            version, "cluster-size", "virtual-size", "refcount-bits", "compression-type",
            "extended-l2", snapshots, bitmaps,
            lazy: (."compatible-features" | index("lazy-refcounts") != null),
            corrupt: (."incompatible-features" | index("corrupt") != null),
            "backing-file", "backing-format", "data-file" }' "$J")
    if [ "$hq" != "$hj" ]; then
        echo "    qemu-img info: $hq" >&2
        echo "    file/$n.json:  $hj" >&2
        fail "$what: header facts differ from qemu-img info"
    fi
    local dirty=false
    [ $(( $(peek_be "$labs" 72 8) & 1 )) -eq 0 ] || dirty=true
    [ "$(jq '.header."incompatible-features" | index("dirty") != null' "$J")" = "$dirty" ] ||
        fail "$what: incompatible-features 'dirty' does not match the dirty bit ($dirty)"

    # --- check: as qemu-img check.
    local qj=$tag.qcheck.json
    local k qv ov nmis=${#CONTAINER_MISMATCHES[@]}
    [ "$(jq_num "$qj" '."check-errors"')" = 0 ] || fail "$what: qemu-img check had check errors (test premise)"
    for k in leaks corruptions allocated-clusters total-clusters image-end-offset compressed-clusters; do
        qv=$(jq_num "$qj" ".\"$k\" // 0"); ov=$(jq_num "$J" ".check.\"$k\"")
        if [ "$qv" != "$ov" ]; then
            [ "$k" != corruptions ] || echo "    qemu's corruptions: $(grep -c '^ERROR cluster' "$tag.qcheck.err" || true) 'ERROR cluster' (refcount) lines, $(grep -c '^ERROR OFLAG_COPIED' "$tag.qcheck.err" || true) 'ERROR OFLAG_COPIED' lines, $(grep -c '^ERROR' "$tag.qcheck.err" || true) ERROR lines in all" >&2
            echo "    qemu-img check: $(jq -c 'del(.filename)' "$qj")" >&2
            echo "    file/$n.json:   $(jq -c .check "$J")" >&2
            container_mismatch "$what: check.$k is $ov, qemu-img check says $qv"
        fi
    done

    # --- metadata map: well-formed, sorted, no overlaps.
    local cs; cs=$(jq_num "$J" '.header."cluster-size"')
    local overrun; overrun=$(jq_num "$J" '.allocation."used-overrun"')
    jq -r '.metadata[] | "\(.offset) \(.length) \(.type) \(.snapshot // "-") \(.extension // "-")"' "$J" > "$tag.meta"
    # Sorted by offset, and no entry starts before the previous one ends.
    jq -r '.metadata[] | "\(.offset) \(.length) \(.type)"' "$J" | sort -n -k1,1 -s |
        diff - <(cut -d' ' -f1-3 "$tag.meta") > /dev/null || fail "$what: metadata map is not sorted by offset"
    awk '{ if (NR > 1 && $1 < pend) printf "entry {%s} overlaps {%s}\n", $0, prev
           if ($1 + $2 > pend) { pend = $1 + $2; prev = $0 } }' "$tag.meta" > "$tag.overlaps"
    if [ -s "$tag.overlaps" ]; then
        show_file "$tag.overlaps" 10
        container_mismatch "$what: $(wc -l < "$tag.overlaps") overlapping metadata map entries, first: $(head -n1 "$tag.overlaps") (offset length type snapshot extension)"
    fi
    awk -v lim="$((flen + overrun))" '
        BEGIN { ok["header"]; ok["header-extension"]; ok["backing-file-name"]; ok["l1-table"];
                ok["l2-table"]; ok["data"]; ok["zero-preallocated"]; ok["compressed"];
                ok["refcount-table"]; ok["refcount-block"]; ok["snapshot-table"];
                ok["bitmap-directory"]; ok["bitmap-table"]; ok["bitmap-data"] }
        { if (!($3 in ok)) { print "unknown type: " $0; bad = 1 }
          if ($2 <= 0) { print "empty entry: " $0; bad = 1 }
          if ($1 + $2 > lim) { print "ends past file-length + used-overrun (" lim "): " $0; bad = 1 } }
        END { exit bad }' "$tag.meta" > "$tag.meta.err" || {
        show_file "$tag.meta.err"; fail "$what: metadata map has malformed entries"; }

    # Structures whose place the header gives.
    _cc_expect_entry() {   # OFFSET LENGTH TYPE SNAPSHOT DESC
        grep -qx "$1 $2 $3 $4 .*" "$tag.meta" || {
            show_file "$tag.meta" 80
            fail "$what: metadata map lacks the $5: { type $3, offset $1, length $2 }"; }
    }
    local hlen=72 version; version=$(peek_be "$labs" 4 4)
    [ "$version" -lt 3 ] || hlen=$(peek_be "$labs" 100 4)
    _cc_expect_entry 0 "$hlen" header - "header"
    local l1size l1off; l1size=$(peek_be "$labs" 36 4); l1off=$(peek_be "$labs" 40 8)
    [ "$l1size" -eq 0 ] || _cc_expect_entry "$l1off" $((l1size * 8)) l1-table - "active L1 table"
    local rtoff rtcl; rtoff=$(peek_be "$labs" 48 8); rtcl=$(peek_be "$labs" 56 4)
    _cc_expect_entry "$rtoff" $((rtcl * cs)) refcount-table - "refcount table"
    local bfoff bflen; bfoff=$(peek_be "$labs" 8 8); bflen=$(peek_be "$labs" 16 4)
    [ "$bfoff" -eq 0 ] || _cc_expect_entry "$bfoff" "$bflen" backing-file-name - "backing file name"
    local nsn; nsn=$(peek_be "$labs" 60 4)
    if [ "$nsn" -gt 0 ]; then
        grep -q "^$(peek_be "$labs" 64 8) [0-9]* snapshot-table " "$tag.meta" ||
            fail "$what: no snapshot-table entry at the header's snapshots_offset"
        [ "$(awk '$3 == "l1-table" && $4 != "-" { print $4 }' "$tag.meta" | sort -u | wc -l)" -eq "$nsn" ] ||
            fail "$what: the metadata map should have one L1 table for each of the $nsn snapshots"
    fi
    # Refcount blocks: exactly the non-zero refcount table entries.
    od -An -v --endian=big -tu8 -j "$rtoff" -N $((rtcl * cs)) "$labs" | tr -s ' ' '\n' |
        awk 'NF && $1 != 0 { printf "%.0f\n", $1 - $1 % 512 }' | sort -n > "$tag.refblocks.hdr"
    awk '$3 == "refcount-block" { print $1 }' "$tag.meta" | sort -n > "$tag.refblocks.ours"
    diff "$tag.refblocks.hdr" "$tag.refblocks.ours" > /dev/null || {
        echo "    refcount table entries: $(tr '\n' ' ' < "$tag.refblocks.hdr")" >&2
        echo "    refcount-block entries: $(tr '\n' ' ' < "$tag.refblocks.ours")" >&2
        fail "$what: refcount-block entries differ from the refcount table"; }
    # Bitmap directory: from the bitmaps header extension.
    local nbm; nbm=$(jq_num "$J" '.header.bitmaps')
    if [ "$nbm" -gt 0 ]; then
        local ext; ext=$(awk '$3 == "header-extension" && $5 == "0x23852875" { print $1 }' "$tag.meta")
        [ -n "$ext" ] || fail "$what: $nbm bitmaps but no bitmaps header extension in the metadata map"
        [ "$(peek_be "$labs" $((ext + 8)) 4)" -eq "$nbm" ] || fail "$what: header.bitmaps differs from the bitmaps extension"
        _cc_expect_entry "$(peek_be "$labs" $((ext + 24)) 8)" "$(peek_be "$labs" $((ext + 16)) 8)" \
            bitmap-directory - "bitmap directory"
        [ "$(grep -c ' bitmap-table ' "$tag.meta")" -eq "$nbm" ] ||
            fail "$what: the metadata map should have one bitmap table for each of the $nbm bitmaps"
    fi
    # Host clusters of the active L2 tables (qemu-img map, this layer only)
    # lie inside data / zero-preallocated runs of the metadata map.
    jq -r '.[] | select(.depth == 0 and has("offset")) | "\(.offset) \(.length)"' "$tag.qmap.json" |
        awk 'FNR == NR { if ($3 == "data" || $3 == "zero-preallocated") {
                             if (n && $1 <= e[n]) { if ($1 + $2 > e[n]) e[n] = $1 + $2 }
                             else { n++; s[n] = $1; e[n] = $1 + $2 } }
                         next }
             { c = 0; for (i = 1; i <= n; i++) if (s[i] <= $1 && $1 + $2 <= e[i]) c = 1
               if (!c) { printf "host range %.0f+%.0f (qemu-img map) not covered by a data run\n", $1, $2; bad = 1 } }
             END { exit bad }' "$tag.meta" - > "$tag.qmap.err" || {
        show_file "$tag.qmap.err"; fail "$what: qemu-img map host clusters missing from the metadata map"; }

    # --- per cluster: metadata, qemu's listing, host data, our map, stats.
    jq -r '.[] | select(.data) | "\(.offset) \(.length)"' "$tag.qraw.json" > "$tag.qraw"
    local nref; nref=$(jq_num "$J" '.check."referenced-clusters"')
    local ieo; ieo=$(jq_num "$qj" '."image-end-offset"')
    awk -v cs="$cs" -v flen="$flen" -v nref="$nref" -v ieo="$ieo" \
        -v part=meta -v ftag="$tag" '
        function add(arr, s, e,   k, a, b) {     # bytes of [s,e) per cluster
            for (k = int(s / cs); k * cs < e; k++) {
                a = k * cs; b = a + cs
                if (a < s) a = s
                if (b > e) b = e
                if (b > a) arr[k] += b - a
            }
        }
        FILENAME ~ /\.meta$/ {
            for (k = int($1 / cs); k * cs < $1 + $2; k++) meta[k] = 1
            next }
        FILENAME ~ /\.list$/ {
            listed[$2] = $1 " refcount=" $3 " reference=" $4; if ($4 == 0) unref[$2] = 1; else refd[$2] = 1
            if ($3 == 0) rc0[$2] = 1
            next }
        FILENAME ~ /\.qraw$/ {
            e = $1 + $2; if (e > flen) e = flen
            if (e > $1) add(raw, $1, e)
            next }
        FILENAME ~ /\.map$/ {
            if ($1 != pos) { printf "ERR map: gap or overlap at %.0f (extent starts at %.0f)\n", pos, $1 }
            pos = $1 + $2
            if ($3 != 0 && $3 != 2 && $3 != 3) printf "ERR map: extent %s of type %s (only 0, 2, 3 expected)\n", $1, $3
            if ($3 == 0) add(t0, $1, $1 + $2); else if ($3 == 2) add(t2, $1, $1 + $2); else add(t3, $1, $1 + $2)
            next }
        END {
            if (pos != flen) printf "ERR map: covers %.0f bytes, file length %.0f\n", pos, flen
            nc = int((flen + cs - 1) / cs)
            nmeta = 0; for (k in meta) nmeta++
            if (nmeta != nref) printf "ERR metadata map touches %d clusters, check.referenced-clusters is %d\n", nmeta, nref
            for (k = 0; k < nc; k++) {
                clen = (k + 1) * cs <= flen ? cs : flen - k * cs
                if ((k in unref) && (k in meta)) printf "ERR cluster %d: qemu finds no reference to it (%s), but the metadata map covers it\n", k, listed[k]
                if ((k in refd) && !(k in meta)) printf "ERR cluster %d: qemu finds references to it (%s), but the metadata map does not cover it\n", k, listed[k]
                inuse = (k in meta) || ((k in unref) && !(k in rc0))
                used = inuse && !(k in rc0)      # refcount > 0
                r = raw[k] + 0
                if (inuse) {
                    inuse_bytes += clen; ninuse++
                    if (t3[k] + 0 != 0 || t0[k] + 0 != r || t2[k] + 0 != clen - r)
                        printf "ERR cluster %d (in use, %d host data bytes of %d): map has %d data, %d zero, %d hole+zero bytes\n", k, r, clen, t0[k], t2[k], t3[k]
                    printf "%.0f %.0f inuse\n", k * cs, clen > (ftag ".runs")
                } else {
                    if (t3[k] + 0 != clen)
                        printf "ERR cluster %d (not in use): map has %d data, %d zero, %d hole+zero bytes of %d\n", k, t0[k], t2[k], t3[k], clen
                    printf "%.0f %.0f unused\n", k * cs, clen > (ftag ".runs")
                }
                if (used) { ud += r; uz += clen - r } else { nd += r; nz += clen - r }
                lastused = used
            }
            # used-overrun: the in-use part of the last cluster past EOF;
            # predictable when no in-use cluster lies wholly past EOF.
            ovr = "-"
            if (ieo <= nc * cs) ovr = lastused ? nc * cs - flen : 0
            printf "STATS %.0f %.0f %.0f %.0f %s %d %.0f\n", ud, uz, nd, nz, ovr, ninuse, inuse_bytes
        }' "$tag.meta" "$tag.qcheck.list" "$tag.qraw" "$tag.map" > "$tag.analysis"
    if grep -q '^ERR' "$tag.analysis"; then
        sed -n 's/^ERR /    /p' "$tag.analysis" | head -n 20 >&2
        echo "    (metadata map: $tag.meta; file/$n map: $tag.map; qemu listing: $tag.qcheck.list)" >&2
        fail "$what: $(grep -c '^ERR' "$tag.analysis") inconsistencies between file/$n, file/$n.json and qemu"
    fi
    local ud uz nd nz ovr ninuse inuse_bytes
    read -r _ ud uz nd nz ovr ninuse inuse_bytes < <(grep '^STATS' "$tag.analysis")

    # --- allocation statistics.
    local a; a=$(jq -c .allocation "$J")
    local s_ud s_uz s_udi s_nd s_nz s_ndi
    s_ud=$(jq_num "$J" '.allocation."used-data"');   s_uz=$(jq_num "$J" '.allocation."used-zero"')
    s_udi=$(jq_num "$J" '.allocation."used-discarded"')
    s_nd=$(jq_num "$J" '.allocation."unused-data"'); s_nz=$(jq_num "$J" '.allocation."unused-zero"')
    s_ndi=$(jq_num "$J" '.allocation."unused-discarded"')
    [ $((s_ud + s_uz + s_udi + s_nd + s_nz + s_ndi)) -eq "$flen" ] ||
        fail "$what: allocation $a does not add up to the file length $flen"
    [ "$s_udi" -eq 0 ] && [ "$s_ndi" -eq 0 ] || fail "$what: discarded bytes on a local file: $a"
    local expect="{\"used-data\":$ud,\"used-zero\":$uz,\"unused-data\":$nd,\"unused-zero\":$nz}"
    local got="{\"used-data\":$s_ud,\"used-zero\":$s_uz,\"unused-data\":$s_nd,\"unused-zero\":$s_nz}"
    [ "$expect" = "$got" ] || {
        echo "    expected (qemu's listing, qemu-img map -f raw): $expect" >&2
        echo "    file/$n.json:                                   $got" >&2
        fail "$what: allocation statistics differ from the clusters' refcounts and the host file's data"; }
    if [ "$ovr" != - ]; then
        [ "$(jq_num "$J" '.allocation."used-overrun"')" -eq "$ovr" ] ||
            fail "$what: used-overrun is $overrun, expected $ovr (used part of the last cluster past EOF $flen)"
    fi
    # Premise: qemu's SEEK_DATA view agrees with st_blocks.  The data ranges
    # rounded out to filesystem blocks must be allocated, and st_blocks may
    # exceed them by one more block: ext4 counts the block holding its
    # extent tree once a file has more than 4 extents.  (The plain
    # "data total within 4096 of st_blocks*512" fails for any file whose
    # length is not a multiple of 4096 with such a tree: 4096 + the partial
    # last block.)
    local fstype bs blocks dataround
    fstype=$(stat -f -c %T "$labs"); bs=$(stat -f -c %S "$labs"); blocks=$(stat -c '%b*%B' "$labs")
    blocks=$((blocks))
    dataround=$(awk -v bs="$bs" '{ s = $1 - $1 % bs; e = $1 + $2; if (e % bs) e += bs - e % bs
                                   if (s < pe) s = pe; if (e > s) t += e - s; if (e > pe) pe = e }
                                 END { printf "%.0f", t }' "$tag.qraw")
    case "$fstype" in
        ext2/ext3|xfs|tmpfs)
            [ "$blocks" -ge "$dataround" ] && [ "$blocks" -le $((dataround + bs)) ] || {
                jq -c '.[]' "$tag.qraw.json" | head -n 20 >&2
                hard_error "$lfile: st_blocks*512 = $blocks, data ranges (qemu-img map -f raw) cover $dataround bytes in $bs-byte blocks (premise)"; } ;;
        *) log "  note: st_blocks premise not checked on a $fstype file system" ;;
    esac

    # --- bytes: the copies read with and without extents agree, equal the
    # file where clusters are in use, and are zero elsewhere.
    [ "$(stat -c %s "$compact")" -eq "$flen" ] && [ "$(stat -c %s "$full")" -eq "$flen" ] ||
        fail "$what: copies of file/$n have the wrong size"
    cmp "$full" "$compact" > "$tag.cmp" 2>&1 || {
        show_file "$tag.cmp"; fail "$what: nbdcopy with and without extents read different bytes"; }
    local off len kind zeroed=0
    awk '{ if (n && $3 == k && o + l == $1) l += $2
           else { if (n) print o, l, k; o = $1; l = $2; k = $3; n = 1 } }
         END { if (n) print o, l, k }' "$tag.runs" > "$tag.runs.merged"
    while read -r off len kind; do
        if [ "$kind" = inuse ]; then
            cmp -n "$len" -i "$off:$off" "$full" "$labs" > "$tag.cmp" 2>&1 || {
                show_file "$tag.cmp"
                fail "$what: file/$n differs from the file in clusters in use [$off, +$len) (cmp offsets relative to $off)"; }
        else
            cmp -n "$len" -i "$off:0" "$full" /dev/zero > "$tag.cmp" 2>&1 || {
                show_file "$tag.cmp"
                fail "$what: file/$n is not zero in unused clusters [$off, +$len)"; }
            if file_has_nonzero "$labs" "$off" "$len"; then zeroed=$((zeroed + len)); fi
        fi
    done < "$tag.runs.merged"
    rm -f "$full"

    # --- round trip: the copy is a qcow2 file equal to the original.
    local crc; crc=$(layer_qemu_check "$compact" "$tag.ccheck")
    jq -S 'del(.filename)' "$tag.qcheck.json" > "$tag.qcheck.cmp"
    jq -S 'del(.filename)' "$tag.ccheck.json" > "$tag.ccheck.cmp"
    if [ "$crc" != "$want_rc" ] || ! diff -u "$tag.qcheck.cmp" "$tag.ccheck.cmp" > "$tag.ccheck.diff"; then
        show_file "$tag.ccheck.diff"; show_file "$tag.ccheck.err" 20
        fail "$what: qemu-img check of the compacted copy: exit $crc (original: $want_rc), report differs from the original's"
    fi
    (cd "$ldir" && qemu-img compare -f qcow2 -F qcow2 "$(basename "$compact")" "$lbase") > "$tag.compare" 2>&1 || {
        show_file "$tag.compare"; fail "$what: qemu-img compare: the compacted copy differs from the original"; }
    grep -q '^Images are identical' "$tag.compare" || { show_file "$tag.compare"; fail "$what: qemu-img compare did not say identical"; }
    local du_orig du_comp; du_orig=$(du_k "$labs"); du_comp=$(du_k "$compact")
    [ "$du_comp" -le "$du_orig" ] || fail "$what: compacted copy uses ${du_comp}K, the original ${du_orig}K"
    local sizes="du -k: original ${du_orig}K, compacted ${du_comp}K"
    if [ "$smaller" = smaller ]; then
        local plain="$tag.plain" du_plain
        nbdkit -U - file file="$labs" --run "nbdcopy \"\$uri\" '$plain'" || fail "plain copy of $lfile failed"
        cmp "$plain" "$labs" > /dev/null || fail "plain copy of $lfile differs from it"
        du_plain=$(du_k "$plain")
        sizes+=", plain sparse copy ${du_plain}K"
        [ "$du_comp" -lt "$du_orig" ] && [ "$du_comp" -lt "$du_plain" ] ||
            fail "$what: compacted copy (${du_comp}K) is not smaller than the original (${du_orig}K) and a plain sparse copy (${du_plain}K)"
        [ "$zeroed" -gt 0 ] || fail "$what: expected unused clusters holding data, found none"
        rm -f "$plain"
    fi

    local verdict="OK" same="= qemu-img check"
    if [ "${#CONTAINER_MISMATCHES[@]}" -gt "$nmis" ]; then
        verdict="DONE WITH $(( ${#CONTAINER_MISMATCHES[@]} - nmis )) MISMATCH(ES)"; same="vs qemu-img check"
    fi
    log "$verdict $what: length $flen, cluster $cs; check $(jq -c '.check | {leaks, corruptions, "allocated-clusters", "image-end-offset"}' "$J") $same (exit $qrc); $(wc -l < "$tag.meta") metadata entries over $nref clusters; $ninuse clusters in use ($inuse_bytes bytes), $zeroed bytes in unused runs holding data; allocation $a; map: $(map_summary "$tag.map")"
    log "  round trip $what: qemu-img check of the copy = original's (exit $crc), qemu-img compare identical; $sizes; st_blocks*512 $blocks, data $((s_ud + s_nd))"
}

# container_expect_no_view IMG N : file/N and file/N.json are neither listed
# nor served (raw layer, or no such layer): connecting to either fails
# because the plugin knows no such export (its own message in nbdkit's
# log: clients word the refusal differently, libnbd 1.14 "no export
# named", libnbd 1.22's nbdinfo --size "server has not returned export
# size").
container_expect_no_view() {
    local img=$1 n=$2 name
    next_id
    local tag="$TESTDIR/nv$ID"
    export NV_N=$n NV_TAG=$tag
    plugin_run "$img" -- bash -c '
        nbdinfo --list --json "$uri" > "$NV_TAG.list.json" || exit 1
        for e in "file/$NV_N" "file/$NV_N.json"; do
            if nbdinfo --size "nbd+unix:///$e?socket=$unixsocket" > "$NV_TAG.out" 2>&1; then
                echo "served $e: size $(cat "$NV_TAG.out")"; exit 2
            fi
        done' > "$tag.out" 2>&1 || {
        show_file "$tag.out"; fail "$(basename "$img"): file/$n must not exist (export not found)"; }
    for name in "file/$n" "file/$n.json"; do
        nbdkit_errors "$PLUGIN_LAST_STDERR" | grep -Fq "$(basename "$img"): export '$name' not found" || {
            show_file "$tag.out"; fail "$(basename "$img"): $name refused, but not as an unknown export"; }
        if jq -e --arg n "$name" '.exports[] | select(."export-name" == $n)' "$tag.list.json" > /dev/null; then
            fail "$(basename "$img"): nbdinfo --list shows $name"
        fi
    done
    log "OK $(basename "$img"): no file/$n nor file/$n.json (not listed; the plugin refuses both names as unknown exports)"
}
