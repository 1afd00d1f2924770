/* partition.h: the partition of a request id, and the one way new ids are
 * minted.
 *
 * A request id is "r-" and 20 lowercase hex digits: 80 bits. Its partition
 * is its first 10 bits, i.e. the value of its first three hex digits shifted
 * right by two (0..OSSE_PARTITIONS-1). The partition is read from the id
 * alone, so it never changes while the id lives, and every id ever minted
 * (random before partitions existed) already has one: old data folders need
 * no migration. New ids are minted with the partition's bits first and
 * random bits after (osse_request_id_mint); the engine picks the partition
 * uniformly over the range this node owns (osse serve --partitions A-B, all
 * of them by default).
 *
 * Why: a later cluster moves requests between nodes a partition at a time
 * (docs/design.md, "A second log backend"); an id that carries its
 * partition never has to change, nor does anything that holds it. */
#ifndef OSSE_ENGINE_PARTITION_H
#define OSSE_ENGINE_PARTITION_H

#include <stdint.h>

#define OSSE_PARTITIONS 1024 /* virtual partitions: 10 bits */
#define OSSE_RID_RANDOM 10   /* the bytes behind an id's 20 hex digits */
#define OSSE_RID_LEN 22      /* "r-" and 20 hex digits */

/* The partition of id, or -1 when id is not "r-" and exactly 20 lowercase
 * hex digits. Any thread. */
int osse_request_partition(const char *id);

/* Writes a new id (OSSE_RID_LEN characters and a NUL) into out: random's
 * first 10 bits replaced by partition's, the other 70 bits as given (the
 * caller's fresh random bytes). partition < OSSE_PARTITIONS. Any thread. */
void osse_request_id_mint(char *out, unsigned partition, const uint8_t random[OSSE_RID_RANDOM]);

/* A partition of first..last (inclusive) from a 32-bit random r: first
 * + r mod n, uniform for a power of two n (the default 1024) and within a
 * relative 2^-22 of uniform for any other. Any thread. */
unsigned osse_partition_pick(unsigned first, unsigned last, uint32_t r);

/* Parses "A-B" (decimal, A <= B < OSSE_PARTITIONS) into *first, *last.
 * Returns 0, or -1 for anything else (nothing written). */
int osse_partitions_parse(const char *s, unsigned *first, unsigned *last);

#endif
