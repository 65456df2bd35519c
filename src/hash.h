/*
 * Hashes runbook needs without a crypto library: SHA-256 for the
 * fingerprint of a runbook file in change notes, CRC-32C for journal
 * records.
 *
 * struct sha256 is caller storage and owns nothing, so there is no
 * release call. sha256_final() consumes the state: call sha256_init()
 * again before hashing anything else. None of these calls allocate;
 * all are safe to call from several threads on separate states.
 */
#ifndef RUNBOOK_HASH_H
#define RUNBOOK_HASH_H

#include <stddef.h>
#include <stdint.h>

/* SHA-256 (FIPS 180-4), incremental. */
struct sha256 {
	uint32_t h[8];
	uint64_t len;
	unsigned char buf[64];
	size_t n;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, unsigned char out[32]);
/* Hex of the SHA-256 of data: 64 lowercase hex digits and a NUL. */
void sha256_hex(const void *data, size_t len, char out[65]);
/*
 * Hex of the SHA-256 of a file's contents; 0, or -1 with errno set.
 * out is written only on success.
 */
int sha256_file_hex(const char *path, char out[65]);

/*
 * CRC-32C (Castagnoli, reflected, poly 0x82F63B78), as used by
 * iSCSI/ext4/etcd: crc32c(0, "123456789", 9) == 0xE3069283.
 * Incremental: pass the previous result as crc.
 */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

#endif
