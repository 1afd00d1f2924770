/* thaiqr.c: the Thai QR Payment payload (SPEC §2) and its CRC.
 *
 * A payload is a list of TLV fields: a two-digit tag, a two-digit length
 * and the value, ASCII throughout; tag 30 holds its own list (PromptPay
 * bill payment: the application id, the biller id, the reference). The last
 * field is 63, four uppercase hex digits of the CRC-16/CCITT-FALSE of
 * everything before them, "6304" included, as EMVCo's merchant-presented
 * mode specifies. Pure and allocation-free, so that the unit test checks it
 * alone and a replay never depends on it (the payload is in PaymentDue). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "engine/thaiqr.h"

uint16_t osse__crc16_ccitt(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(b[i] << 8);
        for (int k = 0; k < 8; k++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

bool osse__biller_id_ok(const char *s)
{
    if (!s || strlen(s) != 15)
        return false;
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9')
            return false;
    return true;
}

/* Appends tag, length, value at out[*o]; false when it does not fit. */
static bool tlv(char *out, size_t cap, size_t *o, const char *tag, const char *value)
{
    size_t n = strlen(value);
    if (n > 99 || *o + 4 + n + 1 > cap)
        return false;
    *o += (size_t)snprintf(out + *o, cap - *o, "%s%02zu%s", tag, n, value);
    return true;
}

int osse__thaiqr(const char *biller_id, const char *reference, const char *amount,
                 char out[OSSE_THAIQR_MAX])
{
    char merchant[OSSE_THAIQR_MAX];
    size_t m = 0, o = 0;
    if (!tlv(merchant, sizeof merchant, &m, "00", "A000000677010112") ||
        !tlv(merchant, sizeof merchant, &m, "01", biller_id) ||
        !tlv(merchant, sizeof merchant, &m, "02", reference))
        return -1;
    if (!tlv(out, OSSE_THAIQR_MAX, &o, "00", "01") || !tlv(out, OSSE_THAIQR_MAX, &o, "01", "12") ||
        !tlv(out, OSSE_THAIQR_MAX, &o, "30", merchant) ||
        !tlv(out, OSSE_THAIQR_MAX, &o, "53", "764") ||
        !tlv(out, OSSE_THAIQR_MAX, &o, "54", amount) || !tlv(out, OSSE_THAIQR_MAX, &o, "58", "TH"))
        return -1;
    if (o + 8 + 1 > OSSE_THAIQR_MAX)
        return -1;
    memcpy(out + o, "6304", 4);
    o += 4;
    snprintf(out + o, OSSE_THAIQR_MAX - o, "%04X", (unsigned)osse__crc16_ccitt(out, o));
    return 0;
}
