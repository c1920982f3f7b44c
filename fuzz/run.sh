#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Build the libFuzzer harness with clang (whatever compiler configure
# chose for the rest), make the seed corpus with qemu-img/qemu-io, and
# fuzz for SECONDS (default 60) with JOBS processes (default 2).
# Exits non-zero if the fuzzer found a crash, a leak, a timeout or an
# out-of-memory; the input that did it is left in fuzz/artifacts/.
#
# Usage: fuzz/run.sh [SECONDS [JOBS]]      (or: make fuzz FUZZ_SECONDS=N)
# Needs a configured tree (config.h).  Environment: FUZZ_CC (clang),
# FUZZ_LIBS (libraries lib/ needs), FUZZ_BUILDDIR (where the build and
# the corpus go; default: this directory of the build tree).
set -euo pipefail
seconds=${1:-60}
jobs=${2:-2}
srcdir=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(dirname "$srcdir")
builddir=${FUZZ_BUILDDIR:-$PWD}
top_builddir=$(cd "$builddir/.." && pwd)
cc=${FUZZ_CC:-clang}
libs=${FUZZ_LIBS:--lz -lzstd -ldeflate}

[ -f "$top_builddir/config.h" ] || {
  echo "$0: $top_builddir/config.h missing: run ./configure first" >&2; exit 2; }

# Every lib/ source, sanitized and with fuzzer coverage.
# shellcheck disable=SC2086
"$cc" -g -O1 -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -pthread \
  -I"$top_builddir" -I"$top_srcdir/lib" -I"$srcdir" \
  "$srcdir/fuzz_qcow2.c" "$srcdir/json_valid.c" "$top_srcdir"/lib/*.c \
  -o "$builddir/fuzz-qcow2" $libs

"$srcdir/make-corpus.sh" "$builddir/seeds" >/dev/null
mkdir -p "$builddir/corpus"
rm -rf "$builddir/artifacts"      # the inputs that failed in this run only
mkdir "$builddir/artifacts"

# -malloc_limit_mb: no input of at most 1 MiB may make the library
# allocate 64 MiB at once (every allocation must be bounded by the
# file, and the largest legitimate ones are a 32 MiB L1 table, which
# needs a 32 MiB file, and 2 MiB clusters).
opts=(-timeout=10 -malloc_limit_mb=64 -rss_limit_mb=2048 -max_len=1048576
      -artifact_prefix=artifacts/)
cd "$builddir"

# Every seed once, in one process: fork mode would skip a failing seed.
./fuzz-qcow2 "${opts[@]}" -runs=0 seeds

# Then fuzz.  Fork mode restarts a worker that dies; whatever it says,
# any input left in artifacts/ is a failure.
./fuzz-qcow2 "${opts[@]}" -fork="$jobs" -max_total_time="$seconds" \
  -print_final_stats=1 corpus seeds
if [ -n "$(ls artifacts)" ]; then
  echo "$0: inputs that failed, in $builddir/artifacts:" >&2
  ls -l artifacts >&2
  exit 1
fi
