/* SPDX-License-Identifier: BSD-3-Clause */
/* LUKS1 inside qcow2: header parsing, key slot unlocking (PBKDF2, key
 * material decryption, anti-forensic merge), sector decryption.  See
 * luks.h.  Every primitive (block ciphers, CBC/CTR/XTS, hashes, HMAC,
 * PBKDF2) is nettle's; this file only arranges them as LUKS and qemu
 * do.
 */
#include <config.h>

#include <endian.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/cbc.h>
#include <nettle/ctr.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/memxor.h>
#include <nettle/nettle-meta.h>
#include <nettle/pbkdf2.h>
#include <nettle/xts.h>

#include "luks.h"
#include "be.h"
#include "q2_error.h"

/* ---- the on-disk header (LUKS1, big endian) ---- */

#define HEADER_SIZE      592
#define NAME_LEN         32
#define DIGEST_LEN       20
#define SALT_LEN         32
#define NUM_SLOTS        8
#define SLOT_ENABLED     0x00AC71F3
#define SLOT_DISABLED    0x0000DEAD
#define STRIPES          4000       /* qemu refuses any other count */
#define MAX_KEY_BYTES    64         /* 256-bit XTS: two 32-byte keys */
#define MAX_BLOCK        16
#define MAX_DIGEST       64         /* sha512 */
#define MAX_HASH_CTX     512        /* larger than any hash's context */

static void put_le32 (uint8_t *p, uint32_t v) { v = htole32 (v); memcpy (p, &v, 4); }
static void put_le64 (uint8_t *p, uint64_t v) { v = htole64 (v); memcpy (p, &v, 8); }
static void put_be32 (uint8_t *p, uint32_t v) { v = htobe32 (v); memcpy (p, &v, 4); }

static const uint8_t luks_magic[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };

struct key_slot {
  uint32_t active, iterations, key_offset, stripes;
  const uint8_t *salt;
};

struct header {
  char cipher_name[NAME_LEN + 1];
  char cipher_mode[NAME_LEN + 1];
  char hash_spec[NAME_LEN + 1];
  uint32_t payload_offset;             /* sectors; only checked, as qemu */
  uint32_t key_bytes;
  const uint8_t *mk_digest, *mk_digest_salt;
  uint32_t mk_digest_iterations;
  struct key_slot slots[NUM_SLOTS];
};

/* ---- algorithms by LUKS name ---- */

struct cipher_name {
  const char *name;
  const struct nettle_cipher *cipher;   /* key size identifies it */
};

static const struct cipher_name ciphers[] = {
  { "aes", &nettle_aes128 }, { "aes", &nettle_aes192 },
  { "aes", &nettle_aes256 },
  { "twofish", &nettle_twofish128 }, { "twofish", &nettle_twofish192 },
  { "twofish", &nettle_twofish256 },
  { "serpent", &nettle_serpent128 }, { "serpent", &nettle_serpent192 },
  { "serpent", &nettle_serpent256 },
  { "cast5", &nettle_cast128 },
};

static const struct nettle_cipher *
find_cipher (const char *name, size_t key_size)
{
  size_t i;

  for (i = 0; i < sizeof ciphers / sizeof ciphers[0]; i++)
    if (strcmp (ciphers[i].name, name) == 0 &&
        ciphers[i].cipher->key_size == key_size)
      return ciphers[i].cipher;
  return NULL;
}

static const struct nettle_hash *
find_hash (const char *name)
{
  static const struct { const char *name; const struct nettle_hash *h; }
  hashes[] = {
    { "md5", &nettle_md5 }, { "sha1", &nettle_sha1 },
    { "sha224", &nettle_sha224 }, { "sha256", &nettle_sha256 },
    { "sha384", &nettle_sha384 }, { "sha512", &nettle_sha512 },
    { "ripemd160", &nettle_ripemd160 },
  };
  size_t i;

  for (i = 0; i < sizeof hashes / sizeof hashes[0]; i++)
    if (strcmp (hashes[i].name, name) == 0 &&
        hashes[i].h->context_size <= MAX_HASH_CTX &&
        hashes[i].h->digest_size <= MAX_DIGEST)
      return hashes[i].h;
  return NULL;
}

/* ---- a cipher set up with one key, as qemu's QCryptoBlock uses it ---- */

enum mode { MODE_ECB, MODE_CBC, MODE_XTS, MODE_CTR };
enum ivgen { IV_PLAIN, IV_PLAIN64, IV_ESSIV };

/* What the header's cipher fields say. */
struct spec {
  const struct nettle_cipher *cipher;    /* XTS: each half's cipher */
  enum mode mode;
  enum ivgen ivgen;
  const struct nettle_hash *essiv_hash;
  const struct nettle_cipher *essiv_cipher;
  const struct nettle_hash *hash;        /* PBKDF2 and AF merge */
  size_t key_bytes;
  char describe[4 * NAME_LEN + 32];
};

struct keyed {
  const struct spec *spec;
  void *data_ctx;        /* decrypt key (CTR: encrypt key) */
  void *tweak_ctx;       /* XTS: encrypt key of the second half */
  void *essiv_ctx;       /* ESSIV: encrypt key = hash (key) */
};

static void
wipe_free (void *ctx, size_t size)
{
  if (ctx) {
    explicit_bzero (ctx, size);
    free (ctx);
  }
}

/* Key schedules are secrets too: wiped before they are freed. */
static void
keyed_free (struct keyed *c)
{
  if (c->spec) {
    wipe_free (c->data_ctx, c->spec->cipher->context_size);
    wipe_free (c->tweak_ctx, c->spec->cipher->context_size);
    if (c->spec->essiv_cipher)
      wipe_free (c->essiv_ctx, c->spec->essiv_cipher->context_size);
  }
  memset (c, 0, sizeof *c);
}

static int
keyed_init (struct keyed *c, const struct spec *s, const uint8_t *key)
{
  const struct nettle_cipher *ci = s->cipher;

  memset (c, 0, sizeof *c);
  c->spec = s;
  c->data_ctx = malloc (ci->context_size);
  if (c->data_ctx == NULL)
    return q2_error ("malloc: %m");
  if (s->mode == MODE_CTR)
    ci->set_encrypt_key (c->data_ctx, key);
  else
    ci->set_decrypt_key (c->data_ctx, key);
  if (s->mode == MODE_XTS) {
    c->tweak_ctx = malloc (ci->context_size);
    if (c->tweak_ctx == NULL)
      return q2_error ("malloc: %m");
    ci->set_encrypt_key (c->tweak_ctx, key + ci->key_size);
  }
  if (s->ivgen == IV_ESSIV) {
    const struct nettle_hash *h = s->essiv_hash;
    _Alignas (16) uint8_t hctx[MAX_HASH_CTX];
    uint8_t digest[MAX_DIGEST];

    c->essiv_ctx = malloc (s->essiv_cipher->context_size);
    if (c->essiv_ctx == NULL)
      return q2_error ("malloc: %m");
    h->init (hctx);
    h->update (hctx, s->key_bytes, key);
    h->digest (hctx, h->digest_size, digest);
    s->essiv_cipher->set_encrypt_key (c->essiv_ctx, digest);
    explicit_bzero (digest, sizeof digest);
    explicit_bzero (hctx, sizeof hctx);
  }
  return 0;
}

/* The IV of SECTOR (qemu's ivgen-plain, -plain64, -essiv). */
static void
sector_iv (const struct keyed *c, uint64_t sector, uint8_t *iv)
{
  size_t n = c->spec->cipher->block_size;

  memset (iv, 0, n);
  switch (c->spec->ivgen) {
  case IV_PLAIN:
    put_le32 (iv, (uint32_t) sector);
    break;
  case IV_PLAIN64:
    put_le64 (iv, sector);
    break;
  case IV_ESSIV:
    put_le64 (iv, sector);
    c->spec->essiv_cipher->encrypt (c->essiv_ctx, n, iv, iv);
    break;
  }
}

/* Decrypt LEN bytes (whole sectors) of BUF in place, the first being
 * sector number SECTOR.
 */
static void
decrypt_sectors (const struct keyed *c, uint64_t sector, uint8_t *buf,
                 size_t len)
{
  const struct nettle_cipher *ci = c->spec->cipher;
  uint8_t iv[MAX_BLOCK], tmp[LUKS_SECTOR_SIZE];

  for (; len >= LUKS_SECTOR_SIZE;
       len -= LUKS_SECTOR_SIZE, buf += LUKS_SECTOR_SIZE, sector++) {
    switch (c->spec->mode) {
    case MODE_ECB:
      ci->decrypt (c->data_ctx, LUKS_SECTOR_SIZE, buf, buf);
      break;
    case MODE_CBC:
      sector_iv (c, sector, iv);
      cbc_decrypt (c->data_ctx, ci->decrypt, ci->block_size, iv,
                   LUKS_SECTOR_SIZE, buf, buf);
      break;
    case MODE_CTR:
      sector_iv (c, sector, iv);
      ctr_crypt (c->data_ctx, ci->encrypt, ci->block_size, iv,
                 LUKS_SECTOR_SIZE, buf, buf);
      break;
    case MODE_XTS:
      sector_iv (c, sector, iv);
      xts_decrypt_message (c->data_ctx, c->tweak_ctx, ci->decrypt,
                           ci->encrypt, iv, LUKS_SECTOR_SIZE, tmp, buf);
      memcpy (buf, tmp, LUKS_SECTOR_SIZE);
      break;
    }
  }
}

/* ---- parsing ---- */

static int
copy_name (char *dst, const uint8_t *src, const char *what, const char *name)
{
  if (memchr (src, '\0', NAME_LEN) == NULL)
    return q2_error ("%s: encryption header: %s is not NUL-terminated",
                     name, what);
  memcpy (dst, src, NAME_LEN);
  dst[NAME_LEN] = '\0';
  return 0;
}

static int
parse_header (struct header *h, const uint8_t *b, const char *name)
{
  size_t i;

  if (memcmp (b, luks_magic, sizeof luks_magic) != 0)
    return q2_error ("%s: encryption header: no LUKS magic", name);
  if (get_be16 (b + 6) != 1)
    return q2_error ("%s: encryption header: LUKS version %u is not "
                     "supported (1 is)", name, get_be16 (b + 6));
  if (copy_name (h->cipher_name, b + 8, "cipher name", name) == -1 ||
      copy_name (h->cipher_mode, b + 40, "cipher mode", name) == -1 ||
      copy_name (h->hash_spec, b + 72, "hash", name) == -1)
    return -1;
  h->payload_offset = get_be32 (b + 104);
  h->key_bytes = get_be32 (b + 108);
  h->mk_digest = b + 112;
  h->mk_digest_salt = b + 132;
  h->mk_digest_iterations = get_be32 (b + 164);
  for (i = 0; i < NUM_SLOTS; i++) {
    const uint8_t *s = b + 208 + 48 * i;
    h->slots[i] = (struct key_slot) {
      .active = get_be32 (s), .iterations = get_be32 (s + 4),
      .salt = s + 8, .key_offset = get_be32 (s + 40),
      .stripes = get_be32 (s + 44),
    };
  }
  return 0;
}

/* "<mode>-<ivgen>[:<hash>]", e.g. xts-plain64, cbc-essiv:sha256. */
static int
parse_mode (struct spec *s, const struct header *h, const char *name)
{
  char mode[NAME_LEN + 1], *ivgen, *ivhash;
  size_t key_size = h->key_bytes;

  strcpy (mode, h->cipher_mode);
  ivgen = strchr (mode, '-');
  if (ivgen == NULL)
    return q2_error ("%s: encryption header: cipher mode '%s' is not "
                     "<mode>-<ivgen>", name, h->cipher_mode);
  *ivgen++ = '\0';
  ivhash = strchr (ivgen, ':');
  if (ivhash)
    *ivhash++ = '\0';

  if (strcmp (mode, "ecb") == 0)      s->mode = MODE_ECB;
  else if (strcmp (mode, "cbc") == 0) s->mode = MODE_CBC;
  else if (strcmp (mode, "ctr") == 0) s->mode = MODE_CTR;
  else if (strcmp (mode, "xts") == 0) s->mode = MODE_XTS;
  else
    return q2_error ("%s: encryption header: cipher mode '%s' is not "
                     "supported", name, mode);
  if (strcmp (ivgen, "plain") == 0)        s->ivgen = IV_PLAIN;
  else if (strcmp (ivgen, "plain64") == 0) s->ivgen = IV_PLAIN64;
  else if (strcmp (ivgen, "essiv") == 0)   s->ivgen = IV_ESSIV;
  else
    return q2_error ("%s: encryption header: IV generator '%s' is not "
                     "supported", name, ivgen);

  if (s->mode == MODE_XTS) {
    if (key_size % 2)
      return q2_error ("%s: encryption header: odd XTS key size %zu",
                       name, key_size);
    key_size /= 2;
  }
  s->cipher = find_cipher (h->cipher_name, key_size);
  if (s->cipher == NULL)
    return q2_error ("%s: encryption header: cipher %s with a %zu-bit key "
                     "is not supported", name, h->cipher_name,
                     key_size * 8);
  if (s->mode == MODE_XTS && s->cipher->block_size != 16)
    return q2_error ("%s: encryption header: XTS needs a 128-bit block "
                     "cipher, not %s", name, h->cipher_name);

  /* qemu ignores an IV hash with plain and plain64 (as dm-crypt does);
   * ESSIV encrypts with the cipher of the same family whose key size
   * is the hash's digest size.
   */
  if (s->ivgen == IV_ESSIV) {
    s->essiv_hash = ivhash ? find_hash (ivhash) : NULL;
    if (s->essiv_hash == NULL)
      return q2_error ("%s: encryption header: ESSIV hash '%s' is not "
                       "supported", name, ivhash ? ivhash : "");
    s->essiv_cipher = find_cipher (h->cipher_name,
                                   s->essiv_hash->digest_size);
    if (s->essiv_cipher == NULL ||
        s->essiv_cipher->block_size != s->cipher->block_size)
      return q2_error ("%s: encryption header: ESSIV with %s and %s is not "
                       "supported", name, h->cipher_name, ivhash);
  }
  return 0;
}

static int
parse_spec (struct spec *s, const struct header *h, const char *name)
{
  memset (s, 0, sizeof *s);
  if (h->key_bytes == 0 || h->key_bytes > MAX_KEY_BYTES)
    return q2_error ("%s: encryption header: key size %" PRIu32 " bytes is "
                     "not supported", name, h->key_bytes);
  s->key_bytes = h->key_bytes;
  if (parse_mode (s, h, name) == -1)
    return -1;
  s->hash = find_hash (h->hash_spec);
  if (s->hash == NULL)
    return q2_error ("%s: encryption header: hash '%s' is not supported",
                     name, h->hash_spec);
  if (h->mk_digest_iterations == 0)
    return q2_error ("%s: encryption header: master key digest iterations "
                     "is 0", name);
  snprintf (s->describe, sizeof s->describe, "%s-%u-%s, hash %s",
            h->cipher_name, s->cipher->key_size * 8, h->cipher_mode,
            h->hash_spec);
  return 0;
}

/* ---- unlocking ---- */

/* HMAC with any nettle hash, in the shape nettle's pbkdf2 wants. */
struct hmac_any {
  const struct nettle_hash *hash;
  uint8_t *outer, *inner, *state;
};

static void
hmac_any_update (void *ctx, size_t len, const uint8_t *data)
{
  struct hmac_any *m = ctx;
  hmac_update (m->state, m->hash, len, data);
}

static void
hmac_any_digest (void *ctx, size_t len, uint8_t *out)
{
  struct hmac_any *m = ctx;
  hmac_digest (m->outer, m->inner, m->state, m->hash, len, out);
}

static int
pbkdf2_any (const struct nettle_hash *h, const uint8_t *pw, size_t pw_len,
            const uint8_t *salt, unsigned iterations,
            uint8_t *out, size_t out_len)
{
  uint8_t *mem = malloc (3 * h->context_size);
  struct hmac_any m = { h, mem, mem + h->context_size,
                        mem + 2 * h->context_size };

  if (mem == NULL)
    return q2_error ("malloc: %m");
  hmac_set_key (m.outer, m.inner, m.state, h, pw_len, pw);
  pbkdf2 (&m, hmac_any_update, hmac_any_digest, h->digest_size, iterations,
          SALT_LEN, salt, out_len, out);
  explicit_bzero (mem, 3 * h->context_size);
  free (mem);
  return 0;
}

/* LUKS's anti-forensic diffusion: each digest-sized block of BUF
 * becomes hash (be32 (block number) || block), the last one truncated.
 */
static void
af_diffuse (const struct nettle_hash *h, uint8_t *buf, size_t len)
{
  _Alignas (16) uint8_t ctx[MAX_HASH_CTX];
  uint8_t digest[MAX_DIGEST], be[4];
  size_t i, n;

  for (i = 0; i * h->digest_size < len; i++) {
    n = len - i * h->digest_size;
    if (n > h->digest_size)
      n = h->digest_size;
    put_be32 (be, i);
    h->init (ctx);
    h->update (ctx, sizeof be, be);
    h->update (ctx, n, buf + i * h->digest_size);
    h->digest (ctx, h->digest_size, digest);
    memcpy (buf + i * h->digest_size, digest, n);
  }
}

/* Merge the STRIPES stripes of SPLIT into the KEY_BYTES-long KEY. */
static void
af_merge (const struct nettle_hash *h, const uint8_t *split,
          size_t key_bytes, size_t stripes, uint8_t *key)
{
  size_t i;

  memset (key, 0, key_bytes);
  for (i = 0; i + 1 < stripes; i++) {
    memxor (key, split + i * key_bytes, key_bytes);
    af_diffuse (h, key, key_bytes);
  }
  memxor (key, split + i * key_bytes, key_bytes);
}

/* Try PASSPHRASE on slot S.  Returns 1 (MASTER set), 0 (not this
 * slot), -1 (error).
 */
static int
try_slot (const struct spec *sp, const struct header *h,
          const struct key_slot *s, const uint8_t *material,
          const char *passphrase, uint8_t *master)
{
  size_t kb = sp->key_bytes, split_len = kb * STRIPES;
  size_t sectors = (split_len + LUKS_SECTOR_SIZE - 1) / LUKS_SECTOR_SIZE;
  uint8_t slot_key[MAX_KEY_BYTES], digest[DIGEST_LEN];
  uint8_t *split = malloc (sectors * LUKS_SECTOR_SIZE);
  struct keyed c;
  int r = -1;

  if (split == NULL)
    return q2_error ("malloc: %m");
  memcpy (split, material, sectors * LUKS_SECTOR_SIZE);
  if (pbkdf2_any (sp->hash, (const uint8_t *) passphrase,
                  strlen (passphrase), s->salt, s->iterations,
                  slot_key, kb) == -1)
    goto out;
  if (keyed_init (&c, sp, slot_key) == -1) {
    keyed_free (&c);
    goto out;
  }
  /* The key material is encrypted like the payload, from sector 0. */
  decrypt_sectors (&c, 0, split, sectors * LUKS_SECTOR_SIZE);
  keyed_free (&c);
  af_merge (sp->hash, split, kb, STRIPES, master);
  if (pbkdf2_any (sp->hash, master, kb, h->mk_digest_salt,
                  h->mk_digest_iterations, digest, DIGEST_LEN) == -1)
    goto out;
  r = memeql_sec (digest, h->mk_digest, DIGEST_LEN) ? 1 : 0;
 out:
  explicit_bzero (slot_key, sizeof slot_key);
  explicit_bzero (split, sectors * LUKS_SECTOR_SIZE);
  free (split);
  return r;
}

/* The key slots, checked as qemu checks them at open
 * (qcrypto_block_luks_check_header; all eight, enabled or not): 4000
 * stripes, a known state, iterations, key material after the header
 * and ending before the payload offset, no two slots overlapping.
 * Sector counts are 64-bit here, except where qemu's own sum is an
 * unsigned int (see below).
 */
#define HEADER_SECTORS (4096 / LUKS_SECTOR_SIZE)  /* first key material */

static uint64_t
material_sectors (size_t key_bytes)
{
  uint64_t n = (key_bytes * STRIPES + LUKS_SECTOR_SIZE - 1) / LUKS_SECTOR_SIZE;
  return (n + HEADER_SECTORS - 1) / HEADER_SECTORS * HEADER_SECTORS;
}

static int
check_slots (const struct header *h, size_t key_bytes, const char *name)
{
  uint64_t len = material_sectors (key_bytes);
  size_t i, j;

  if (h->payload_offset < HEADER_SECTORS)
    return q2_error ("%s: encryption header: the payload offset overlaps "
                     "the header", name);
  for (i = 0; i < NUM_SLOTS; i++) {
    const struct key_slot *s = &h->slots[i];
    uint64_t start = s->key_offset;

    if (s->stripes != STRIPES)
      return q2_error ("%s: encryption header: key slot %zu: %" PRIu32
                       " stripes (LUKS uses %d)", name, i, s->stripes,
                       STRIPES);
    if (s->active != SLOT_ENABLED && s->active != SLOT_DISABLED)
      return q2_error ("%s: encryption header: key slot %zu: bad state %#"
                       PRIx32, name, i, s->active);
    if (s->active == SLOT_ENABLED && s->iterations == 0)
      return q2_error ("%s: encryption header: key slot %zu: 0 iterations",
                       name, i);
    /* qemu adds start and length as unsigned ints: key material near
     * sector 2^32 wraps round and passes.  Accepting what qemu accepts
     * is safe: a disabled slot is never read, and an enabled one is
     * checked against the LUKS area before it is read (slot_in_area).
     */
    if (start < HEADER_SECTORS ||
        (uint32_t) (start + len) > h->payload_offset)
      return q2_error ("%s: encryption header: key slot %zu: key material "
                       "at sector %" PRIu64 " overlaps the header or the "
                       "payload", name, i, start);
    for (j = i + 1; j < NUM_SLOTS; j++)
      if (start < h->slots[j].key_offset + len &&
          h->slots[j].key_offset < start + len)
        return q2_error ("%s: encryption header: key slots %zu and %zu "
                         "overlap", name, i, j);
  }
  return 0;
}

/* Key slot I's material must lie inside the LUKS area of LENGTH bytes.
 * Checked when the slot is tried, not at open: qemu tries the enabled
 * slots in order and stops at the first that the passphrase opens, so
 * a later slot that points outside the area never fails its open.
 */
static int
slot_in_area (const struct header *h, size_t i, size_t key_bytes,
              uint64_t length, const char *name)
{
  uint64_t start = h->slots[i].key_offset, len = material_sectors (key_bytes);

  if ((start + len) * LUKS_SECTOR_SIZE > length)
    return q2_error ("%s: encryption header: key slot %zu: key material "
                     "at %#" PRIx64 "+%#" PRIx64 " is outside the LUKS "
                     "header area (%#" PRIx64 " bytes)", name, i,
                     start * LUKS_SECTOR_SIZE, len * LUKS_SECTOR_SIZE,
                     length);
  return 0;
}

struct luks {
  struct spec spec;
  struct keyed cipher;
};

static int
unlock (struct luks *k, const struct header *h, const uint8_t *area,
        uint64_t length, const char *passphrase, const char *name)
{
  uint8_t master[MAX_KEY_BYTES];
  size_t i;
  int r = 0;

  if (check_slots (h, k->spec.key_bytes, name) == -1)
    return -1;
  for (i = 0; i < NUM_SLOTS && r == 0; i++) {
    const struct key_slot *s = &h->slots[i];
    if (s->active != SLOT_ENABLED)
      continue;
    if (slot_in_area (h, i, k->spec.key_bytes, length, name) == -1)
      r = -1;
    else
      r = try_slot (&k->spec, h, s,
                    area + (uint64_t) s->key_offset * LUKS_SECTOR_SIZE,
                    passphrase, master);
  }
  if (r == 1)
    r = keyed_init (&k->cipher, &k->spec, master);
  else if (r == 0)
    r = q2_error ("%s: wrong passphrase: it opens no key slot of the LUKS "
                  "header", name);
  explicit_bzero (master, sizeof master);
  return r;
}

/* Bound on the LUKS area we read: 8 slots of 64-byte keys x 4000
 * stripes plus the header is just over 2 MiB.
 */
#define MAX_AREA (8 * 1024 * 1024)

struct luks *
luks_open (const struct hostfile *file, uint64_t offset, uint64_t length,
           const char *passphrase)
{
  struct luks *k = calloc (1, sizeof *k);
  uint8_t *area = NULL;
  struct header h;

  if (k == NULL) {
    q2_error ("calloc: %m");
    return NULL;
  }
  /* As in qemu, the area may extend past the end of the file (zeros);
   * only what is read matters, and that is bounded.
   */
  if (length > MAX_AREA)
    length = MAX_AREA;
  if (length < HEADER_SIZE || offset > UINT64_MAX - length) {
    q2_error ("%s: encryption header extension: LUKS area at %#" PRIx64
              "+%#" PRIx64 " cannot hold a LUKS header", file->path,
              offset, length);
    goto fail;
  }
  area = malloc (length);
  if (area == NULL) {
    q2_error ("malloc: %m");
    goto fail;
  }
  if (hostfile_pread (file, area, length, offset) == -1 ||
      parse_header (&h, area, file->path) == -1 ||
      parse_spec (&k->spec, &h, file->path) == -1 ||
      unlock (k, &h, area, length, passphrase, file->path) == -1)
    goto fail;
  explicit_bzero (area, length);
  free (area);
  return k;
 fail:
  if (area)
    explicit_bzero (area, length);
  free (area);
  luks_close (k);
  return NULL;
}

void
luks_close (struct luks *k)
{
  if (k == NULL)
    return;
  keyed_free (&k->cipher);
  free (k);
}

const char *
luks_describe (const struct luks *k)
{
  return k->spec.describe;
}

/* ---- reading ---- */

int
luks_pread (const struct luks *k, const struct hostfile *file,
            void *buf, size_t count, uint64_t offset)
{
  uint64_t start = offset & ~(uint64_t) (LUKS_SECTOR_SIZE - 1);
  uint64_t end = (offset + count + LUKS_SECTOR_SIZE - 1) &
                 ~(uint64_t) (LUKS_SECTOR_SIZE - 1);
  uint8_t *b = buf;

  if (count == 0)
    return 0;
  /* Aligned: decrypt in the caller's buffer.  Otherwise bounce. */
  if (start != offset || end != offset + count) {
    b = malloc (end - start);
    if (b == NULL)
      return q2_error ("malloc: %m");
  }
  if (hostfile_pread (file, b, end - start, start) == -1) {
    if (b != buf)
      free (b);
    return -1;
  }
  decrypt_sectors (&k->cipher, start / LUKS_SECTOR_SIZE, b, end - start);
  if (b != buf) {
    memcpy (buf, b + (offset - start), count);
    free (b);
  }
  return 0;
}
