/* SPDX-License-Identifier: BSD-3-Clause */
/* The magic numbers of the image formats qemu probes (block/vmdk.c,
 * vdi.c, vhdx.c, vpc.c, qed.c, parallels.c, bochs.c, crypto LUKS).
 */
#include <config.h>

#include <string.h>

#include "foreign_format.h"

static const struct magic {
  const char *name;
  size_t offset;
  size_t len;
  const char *bytes;
} magics[] = {
  { "VMDK",      0, 4,  "KDMV" },                   /* VMDK4 sparse extent */
  { "VMDK",      0, 4,  "COWD" },                   /* VMDK3 (ESX) extent */
  { "VMDK",      0, 21, "# Disk DescriptorFile" },  /* text descriptor */
  { "VDI",       64, 4, "\x7f\x10\xda\xbe" },       /* signature, LE */
  { "VHDX",      0, 8,  "vhdxfile" },
  { "VHD (vpc)", 0, 8,  "conectix" },
  { "QED",       0, 4,  "QED\0" },
  { "LUKS",      0, 6,  "LUKS\xba\xbe" },
  { "Parallels", 0, 16, "WithoutFreeSpace" },
  { "Parallels", 0, 16, "WithouFreSpacExt" },
  { "Bochs",     0, 22, "Bochs Virtual HD Image" },
};

const char *
foreign_format_probe (const uint8_t *buf, size_t len)
{
  size_t i;

  for (i = 0; i < sizeof magics / sizeof magics[0]; i++) {
    const struct magic *m = &magics[i];
    if (m->offset + m->len <= len &&
        memcmp (buf + m->offset, m->bytes, m->len) == 0)
      return m->name;
  }
  return NULL;
}
