# SPDX-License-Identifier: BSD-3-Clause
# A test client (tests/test-nbd-cache.sh): NBD_CMD_CACHE of the whole
# export, then 4 KiB reads of all of it, compared with EXPECTED.
#   python3 nbd-cache-client.py URI EXPECTED
import sys

import nbd

uri, expected = sys.argv[1], sys.argv[2]
data = open(expected, "rb").read()
h = nbd.NBD()
h.connect_uri(uri)
if not h.can_cache():
    sys.exit("the server does not advertise NBD_CMD_CACHE")
size = h.get_size()
if size != len(data):
    sys.exit("size %d, expected %d" % (size, len(data)))
h.cache(size, 0)
for off in range(0, size, 4096):
    n = min(4096, size - off)
    if h.pread(n, off) != data[off:off + n]:
        sys.exit("wrong bytes at %d" % off)
h.shutdown()
