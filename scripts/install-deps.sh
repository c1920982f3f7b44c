#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Install what qcow2map needs to build and test on Debian 12 (as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    build-essential autoconf automake libtool pkg-config perl \
    nbdkit nbdkit-plugin-dev libnbd-bin libnbd-dev python3-libnbd \
    qemu-utils zlib1g-dev libzstd-dev libdeflate-dev nettle-dev jq \
    clang libclang-rt-14-dev
