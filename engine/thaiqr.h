/* thaiqr.h: the Thai QR Payment payload of a payment step (SPEC §2).
 *
 * Pure functions, no state: engine/thaiqr.c calls nothing else in engine/,
 * so it sits at the bottom of the engine's graph beside util.c. */
#ifndef OSSE_ENGINE_THAIQR_H
#define OSSE_ENGINE_THAIQR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final
 * xor) of n bytes: 0x29B1 for "123456789". */
uint16_t osse__crc16_ccitt(const void *p, size_t n);

/* A biller id as SPEC §3 takes it: exactly 15 ASCII digits. */
bool osse__biller_id_ok(const char *s);

/* Room for any payload osse_thaiqr makes (a 20-character reference, an
 * amount below 10^12 THB): the fixed tags take under 100 bytes. */
#define OSSE_THAIQR_MAX 160

/* Writes the EMVCo merchant-presented payload for a PromptPay bill payment
 * into out (OSSE_THAIQR_MAX bytes): tags 00=01, 01=12, 30 {00=A000000677010112,
 * 01=biller_id, 02=reference}, 53=764, 54=amount, 58=TH, 63=CRC, in that
 * order. amount is the decimal string "520.00". Returns 0, or -1 when an
 * input does not fit its tag (a value longer than 99 bytes) or out. Any
 * thread. */
int osse__thaiqr(const char *biller_id, const char *reference, const char *amount,
                 char out[OSSE_THAIQR_MAX]);

#endif
