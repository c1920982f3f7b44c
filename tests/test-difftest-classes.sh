#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The differential tester's judge (difftest/difftest.py) can give every
# class: it judges a few cases against deliberately broken sides (nbdkit
# and qemu-nbd wrappers that refuse, serve another image, crash, stall)
# and must name the expected class for each, with both sides' messages
# kept in the case's verdict.json.
source "$(dirname "$0")/functions.sh"
PY=$(nbd_python)
JUDGE=$top_srcdir/difftest/difftest.py
export DIFFTEST_PLUGIN=$PLUGIN
export DIFFTEST_FILTER=$top_builddir/filter-depth/.libs/nbdkit-depth-filter.so
export DIFFTEST_TIMEOUT=4

# Case directories: a good image (data, a zero cluster), the same with
# one guest byte changed, and one qemu refuses (bad magic).
mkcase() {                      # mkcase DIR : an empty case with top.qcow2
    mkdir -p "$1"
    echo '{"top": "top.qcow2", "files": {"top.qcow2": "qcow2"}, "layers": ["top.qcow2"]}' > "$1/case.json"
}
mkcase good
mkimg -o cluster_size=4k good/top.qcow2 1M
qio good/top.qcow2 "write -P 0x5a 0 8k" "write -z 64k 4k"
cp good/top.qcow2 other.qcow2
qio other.qcow2 "write -P 0x5b 4k 1"
mkcase bad
cp good/top.qcow2 bad/top.qcow2
python3 "$top_srcdir/tests/craft.py" magic-bad bad/top.qcow2

# Wrappers: each stands in for nbdkit or qemu-nbd (DIFFTEST_NBDKIT,
# DIFFTEST_QEMU_NBD) and breaks one thing.
real_nbdkit=$(command -v nbdkit)
wrapper() {                     # wrapper NAME BODY
    printf '#!/usr/bin/env bash\n%s\n' "$2" > "$1"
    chmod +x "$1"
}
# refuses every image, with one error line
wrapper refuse "echo 'nbdkit: error: refused by the test' >&2; exit 1"
# serves other.qcow2 (one guest byte differs), whatever it is asked
wrapper other "args=(); for a; do case \$a in file=*) a=file=$PWD/other.qcow2;; esac; args+=(\"\$a\"); done
exec $real_nbdkit \"\${args[@]}\""
# crashes (SIGSEGV) while it serves: once a client has connected, and
# while its first read is held back (30 s), so that the crash always
# comes before the judge can finish, however loaded the machine
wrapper segv "$real_nbdkit -v --filter=delay \"\$@\" rdelay=30 2> segv.log & pid=\$!
until grep -q 'handshake complete' segv.log; do sleep 0.01; kill -0 \$pid || exit 1; done
kill -SEGV \$pid; wait \$pid"
# answers reads after 30 s
wrapper slow "exec $real_nbdkit --filter=delay \"\$@\" rdelay=30"
# qemu-nbd that stalls, and one that crashes
wrapper qslow "exec sleep 30"
wrapper qsegv "kill -SEGV \$\$"

expect() {                      # expect CLASS CASEDIR [VAR=VALUE...]
    local want=$1 dir=$2 got; shift 2
    got=$(env "$@" "$PY" "$JUDGE" judge "$dir" 2>&1 | head -n1) || true
    [ "${got%%:*}" = "$want" ] || fail "$dir with $*: expected '$want', judge says '$got'"
    jq -e '.class and (.qemu | type == "string") and (.ours | type == "string")' \
        "$dir/verdict.json" > /dev/null || fail "$dir: verdict.json incomplete"
    log "OK $want: $dir ${*:-(real sides)}: $got"
}

expect equal        good
expect both-refuse  bad
expect stricter     good DIFFTEST_NBDKIT="$PWD/refuse"
jq -e '.ours | test("refused by the test")' good/verdict.json > /dev/null ||
    fail "stricter: our message is not kept in verdict.json"
expect more-lenient bad  DIFFTEST_NBDKIT="$PWD/other"
jq -e '.qemu | test("qcow2")' bad/verdict.json > /dev/null ||
    fail "more-lenient: qemu's message is not kept in verdict.json"
expect differs      good DIFFTEST_NBDKIT="$PWD/other"
expect crash        good DIFFTEST_NBDKIT="$PWD/segv"
expect hang         good DIFFTEST_NBDKIT="$PWD/slow"
expect qemu-failed  good DIFFTEST_QEMU_NBD="$PWD/qslow"
expect qemu-failed  good DIFFTEST_QEMU_NBD="$PWD/qsegv"

# A run keeps what is not equal, with a reproducer that gives the same
# class again.
mkdir -p seeds/one
cp good/top.qcow2 seeds/one/
echo one > seeds/seeds.list
DIFFTEST_SEEDS=$PWD/seeds DIFFTEST_NBDKIT="$PWD/other" \
    "$PY" "$JUDGE" run --seed 7 --cases 2 --jobs 1 --out out > run.out 2>&1 && {
    show_file run.out; fail "run with a broken side exited 0"; }
grep -q 'seed 7: 2 cases' run.out || { show_file run.out; fail "run printed no counts"; }
n=$(ls -d out/case-7-* | wc -l)
[ "$n" -ge 1 ] || { show_file run.out; fail "run kept no case"; }
for d in out/case-7-*; do
    [ -x "$d/repro.sh" ] && [ -f "$d/top.qcow2" ] || fail "$d: no repro.sh or image"
    DIFFTEST_NBDKIT="$PWD/other" sh "$d/repro.sh" > repro.out 2>&1 || true
    cls=$(jq -r .class "$d/verdict.json")
    grep -q "^$cls" repro.out || { show_file repro.out; fail "$d/repro.sh does not give '$cls' again"; }
done
log "OK run: $(tail -n1 run.out); $n kept cases, each reproduced"
