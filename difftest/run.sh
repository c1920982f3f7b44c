#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Differential test of qcow2map against the installed qemu (README.md).
#
# Usage: difftest/run.sh [CASES [JOBS [SEED]]]   (or: make difftest
#        DIFFTEST_CASES=N DIFFTEST_JOBS=J DIFFTEST_SEED=S)
# Makes the seed images once (cached in the build tree, keyed by
# make-seeds.sh and qemu's version), then mutates and judges CASES cases
# (default 300) with JOBS processes (default 2) from SEED (default: a
# fresh random one, printed first so that a failure can be re-run).
# Cases that are not equal / both-refuse are kept in
# $builddir/difftest/out/case-SEED-INDEX/ with their images, both sides'
# messages (verdict.json) and repro.sh.  Exits non-zero if any case is
# stricter, more-lenient, differs, crash or hang (qemu-failed: reported,
# not counted).  DIFFTEST_QUICK=1: judge acceptance, size, bytes,
# base:allocation and depth only (no map.json, check counts, snapshots,
# bitmaps).
set -euo pipefail
cases=${1:-300}
jobs=${2:-2}
seed=${3:-}
srcdir=$(cd "$(dirname "$0")" && pwd)
builddir=${DIFFTEST_BUILDDIR:-$PWD}
top_builddir=$(cd "$builddir/.." && pwd)

export DIFFTEST_PLUGIN=${DIFFTEST_PLUGIN:-$top_builddir/plugin-qcow2map/.libs/nbdkit-qcow2map-plugin.so}
export DIFFTEST_FILTER=${DIFFTEST_FILTER:-$top_builddir/filter-depth/.libs/nbdkit-depth-filter.so}
for f in "$DIFFTEST_PLUGIN" "$DIFFTEST_FILTER"; do
  [ -f "$f" ] || { echo "$0: $f missing: run make first" >&2; exit 2; }
done

# The seed set, made once per version of make-seeds.sh and of qemu.
key=$( { cat "$srcdir/make-seeds.sh"; qemu-img --version | head -n1; } | sha256sum | cut -c1-12)
export DIFFTEST_SEEDS=$builddir/seeds-$key
if [ ! -f "$DIFFTEST_SEEDS/seeds.list" ]; then
  rm -rf "$builddir"/seeds-*
  "$srcdir/make-seeds.sh" "$DIFFTEST_SEEDS.tmp" > /dev/null
  mv "$DIFFTEST_SEEDS.tmp" "$DIFFTEST_SEEDS"
fi

[ -n "$seed" ] || seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
echo "difftest: seed $seed, $cases cases, $jobs jobs, qemu $(qemu-img --version | head -n1 | awk '{print $3}');" \
     "re-run with: make difftest DIFFTEST_SEED=$seed DIFFTEST_CASES=$cases"
exec /usr/bin/python3 "$srcdir/difftest.py" run --seed "$seed" --cases "$cases" \
  --jobs "$jobs" --out "$builddir/out"
