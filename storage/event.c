/* event.c: the stored (msgpack) encoding of an event, and its strict decoder.
 *
 * Invariant: osse_event_encode is a pure function of the event: a 7-entry map
 * with keys in the fixed order seq, stream, version, type, at, actor{kind,id},
 * data; every integer in its shortest msgpack form, every real as float64,
 * `data` in the json_t's own key order. The same event always gives the same
 * bytes, which the audit Merkle tree hashes.
 *
 * Why a hand-written codec: the encoder writes straight into an osse_buf_t
 * (no second copy through msgpack_sbuffer), and the decoder reads bytes that
 * may come from a corrupted store or a hostile export. msgpack-c 4.0.0
 * allocates whatever a header claims (msgpack/msgpack-c#1013), so the reader
 * here checks every declared length against the bytes left before it
 * allocates anything, refuses nesting deeper than OSSE_EVENT_MAX_DEPTH, and
 * refuses trailing bytes, unknown keys, out-of-order keys, duplicate keys,
 * bin/ext types, integers outside jansson's range, event types that SPEC §5
 * does not list and types in a stream of another kind (OSSE_ECORRUPT). */
#include "storage/event.h"
#include "common/alloc.h"
#include "common/utf8.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/time.h"

/* Containers deeper than this (the event's own map counts as 1) are refused
 * by both encoder and decoder, so that no stored event is undecodable. */
#define OSSE_EVENT_MAX_DEPTH 64

/* ---------------------------------------------------------------- encoder */

/* Appends n bytes: straight into the buffer when it has room (the event
 * buffer is reused, so nearly always), else through osse_buf_append. An
 * event is a few hundred appends of a byte or a short key: the calls out
 * were most of the encoder's cost. */
static inline int put_raw(osse_buf_t *out, const void *p, size_t n)
{
    if (out->max || n >= out->cap - out->len)
        return osse_buf_append(out, p, n);
    memcpy(out->ptr + out->len, p, n);
    out->len += n;
    out->ptr[out->len] = '\0';
    return 0;
}

static int put_u8(osse_buf_t *out, uint8_t v)
{
    return put_raw(out, &v, 1);
}

/* Writes a tag byte followed by n bytes of v, big-endian. */
static int put_be(osse_buf_t *out, uint8_t tag, uint64_t v, int n)
{
    uint8_t b[9];
    b[0] = tag;
    for (int i = 0; i < n; i++)
        b[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return put_raw(out, b, (size_t)n + 1);
}

static int put_uint(osse_buf_t *out, uint64_t v)
{
    if (v <= 0x7f)
        return put_u8(out, (uint8_t)v);
    if (v <= 0xff)
        return put_be(out, 0xcc, v, 1);
    if (v <= 0xffff)
        return put_be(out, 0xcd, v, 2);
    if (v <= 0xffffffffu)
        return put_be(out, 0xce, v, 4);
    return put_be(out, 0xcf, v, 8);
}

static int put_int(osse_buf_t *out, int64_t v)
{
    if (v >= 0)
        return put_uint(out, (uint64_t)v);
    if (v >= -32)
        return put_u8(out, (uint8_t)(int8_t)v);
    if (v >= INT8_MIN)
        return put_be(out, 0xd0, (uint64_t)v & 0xff, 1);
    if (v >= INT16_MIN)
        return put_be(out, 0xd1, (uint64_t)v & 0xffff, 2);
    if (v >= INT32_MIN)
        return put_be(out, 0xd2, (uint64_t)v & 0xffffffffu, 4);
    return put_be(out, 0xd3, (uint64_t)v, 8);
}

static int put_str(osse_buf_t *out, const char *s, size_t n)
{
    int rc;
    if (n <= 31)
        rc = put_u8(out, (uint8_t)(0xa0 | n));
    else if (n <= 0xff)
        rc = put_be(out, 0xd9, n, 1);
    else if (n <= 0xffff)
        rc = put_be(out, 0xda, n, 2);
    else if (n <= 0xffffffffu)
        rc = put_be(out, 0xdb, n, 4);
    else
        return OSSE_ETOOBIG;
    if (rc)
        return rc;
    return put_raw(out, s, n);
}

static int put_cstr(osse_buf_t *out, const char *s)
{
    if (!s)
        s = "";
    return put_str(out, s, strlen(s));
}

static int put_container(osse_buf_t *out, bool map, size_t n)
{
    if (n <= 15)
        return put_u8(out, (uint8_t)((map ? 0x80 : 0x90) | n));
    if (n <= 0xffff)
        return put_be(out, map ? 0xde : 0xdc, n, 2);
    if (n <= 0xffffffffu)
        return put_be(out, map ? 0xdf : 0xdd, n, 4);
    return OSSE_ETOOBIG;
}

static int put_json(osse_buf_t *out, const json_t *j, int depth)
{
    int rc = 0;
    switch (json_typeof(j)) {
    case JSON_NULL: return put_u8(out, 0xc0);
    case JSON_TRUE: return put_u8(out, 0xc3);
    case JSON_FALSE: return put_u8(out, 0xc2);
    case JSON_INTEGER: return put_int(out, (int64_t)json_integer_value(j));
    case JSON_REAL: {
        double d = json_real_value(j);
        uint64_t bits = 0;
        memcpy(&bits, &d, sizeof bits);
        return put_be(out, 0xcb, bits, 8);
    }
    case JSON_STRING: return put_str(out, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        if (depth > OSSE_EVENT_MAX_DEPTH)
            return OSSE_ETOOBIG;
        size_t n = json_array_size(j);
        if ((rc = put_container(out, false, n)))
            return rc;
        for (size_t i = 0; i < n; i++)
            if ((rc = put_json(out, json_array_get(j, i), depth + 1)))
                return rc;
        return 0;
    }
    case JSON_OBJECT: {
        if (depth > OSSE_EVENT_MAX_DEPTH)
            return OSSE_ETOOBIG;
        if ((rc = put_container(out, true, json_object_size(j))))
            return rc;
        /* jansson 2.14 iterates objects in insertion order: that order is the
         * stored order. */
        const char *key;
        size_t klen = 0;
        json_t *val;
        json_object_keylen_foreach((json_t *)j, key, klen, val)
        {
            if ((rc = put_str(out, key, klen)))
                return rc;
            if ((rc = put_json(out, val, depth + 1)))
                return rc;
        }
        return 0;
    }
    }
    return OSSE_EINVAL;
}

/* --- Events as fields (docs/design.md "Events as fields"): for each type
 * that has them, its struct's members in their stored order, each with
 * its key and how it is written. One table for the encoder, the decoder,
 * and the JSON. --- */

typedef enum {
    F_STR,      /* const char *, never NULL */
    F_STR_NULL, /* const char *, NULL written as nil */
    F_TIME,     /* int64_t ms: 0 is nil, else osse_time_fmt's string */
    F_UINT,     /* uint32_t, as an integer */
    F_MPMAP,    /* const uint8_t * and size_t after it: a JSON object's msgpack */
} fkind_t;

typedef struct {
    const char *key;
    fkind_t kind;
    size_t off;
} fdesc_t;

#define SHAPE_MAX 6

typedef struct {
    osse_event_type_t type;
    size_t size, n;
    size_t off; /* of the pointer to the fields in osse_event_t */
    fdesc_t f[SHAPE_MAX];
} shape_t;

#define OPN(m) offsetof(osse_ev_opened_t, m)
#define SUB(m) offsetof(osse_ev_submitted_t, m)
static const shape_t shapes[] = {
    {OSSE_EV_StepOpened,
     sizeof(osse_ev_opened_t),
     5,
     offsetof(osse_event_t, opened),
     {{"step", F_STR, OPN(step)},
      {"kind", F_STR, OPN(kind)},
      {"agency", F_STR_NULL, OPN(agency)},
      {"due_at", F_TIME, OPN(due_at)},
      {"warn_at", F_TIME, OPN(warn_at)}}},
    {OSSE_EV_RequestSubmitted,
     sizeof(osse_ev_submitted_t),
     6,
     offsetof(osse_event_t, submitted),
     {{"id", F_STR, SUB(id)},
      {"workflow", F_STR, SUB(workflow)},
      {"workflow_version", F_UINT, SUB(workflow_version)},
      {"tracking_code", F_STR, SUB(tracking_code)},
      {"portal", F_STR, SUB(portal)},
      {"form", F_MPMAP, SUB(form)}}},
};
#undef OPN
#undef SUB

static const shape_t *shape_of(osse_event_type_t type)
{
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        if (shapes[i].type == type)
            return &shapes[i];
    return NULL;
}

/* The fields ev carries (of shape *sh), or NULL; *many is set when it
 * carries more than one kind of fields, which is never valid. */
static const void *fields_of(const osse_event_t *ev, const shape_t **sh, bool *many)
{
    const void *found = NULL;
    *sh = NULL;
    *many = false;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const void *f = *(const void *const *)((const char *)ev + shapes[i].off);
        if (!f)
            continue;
        *many = found != NULL;
        found = f;
        *sh = &shapes[i];
    }
    return found;
}

int osse_event_set_fields(osse_event_t *ev, const void *fields)
{
    const shape_t *sh = shape_of(ev->type);
    if (!sh)
        return OSSE_EINVAL;
    *(const void **)((char *)ev + sh->off) = fields;
    return 0;
}

bool osse_event_has_fields(const osse_event_t *ev)
{
    const shape_t *sh;
    bool many;
    return fields_of(ev, &sh, &many) != NULL;
}

#define AT(base, type, d) (*(type *)((char *)(base) + (d)->off))
#define CAT(base, type, d) (*(const type *)((const char *)(base) + (d)->off))
/* An F_MPMAP's length, the size_t after its pointer. */
#define MPLEN(base, d) (*(size_t *)((char *)(base) + (d)->off + sizeof(void *)))
#define CMPLEN(base, d) (*(const size_t *)((const char *)(base) + (d)->off + sizeof(void *)))
_Static_assert(offsetof(osse_ev_submitted_t, form_len) ==
                   offsetof(osse_ev_submitted_t, form) + sizeof(void *),
               "an F_MPMAP's length follows its pointer");

static int rd_json_check(osse_mp_rd_t *r, int depth);

/* A msgpack map's first byte (fixmap, map 16, map 32). */
static bool map_tag(uint8_t t)
{
    return (t & 0xf0) == 0x80 || t == 0xde || t == 0xdf;
}

/* Whether p[0..n) is exactly one JSON object's msgpack, by the decoder's
 * rules for a value at depth. */
static bool mp_object(const uint8_t *p, size_t n, int depth)
{
    osse_err_t scratch;
    osse_mp_rd_t q = {p, p + n, &scratch};
    return p && n && map_tag(p[0]) && rd_json_check(&q, depth) == 0 && q.p == q.end;
}

static int put_time(osse_buf_t *out, int64_t ms)
{
    char t[OSSE_TIME_LEN];
    return ms ? put_cstr(out, osse_time_fmt(ms, t)) : put_u8(out, 0xc0);
}

/* Whether f holds what its shape requires, so that the decoder takes what
 * the encoder writes: the strings that are never NULL are not, every string
 * is UTF-8, the objects are objects. */
static bool fields_ok(const shape_t *sh, const void *f)
{
    for (size_t i = 0; i < sh->n; i++) {
        const fdesc_t *d = &sh->f[i];
        const char *str = d->kind == F_STR || d->kind == F_STR_NULL ? CAT(f, char *, d) : NULL;
        if (d->kind == F_STR && !str)
            return false;
        if (str && !osse_utf8_valid(str, strlen(str)))
            return false;
        if (d->kind == F_MPMAP && !mp_object(CAT(f, uint8_t *, d), CMPLEN(f, d), 3))
            return false;
    }
    return true;
}

/* What put_json writes for the object of f's fields. */
static int put_fields(osse_buf_t *out, const shape_t *sh, const void *f)
{
    int rc = put_container(out, true, sh->n);
    for (size_t i = 0; !rc && i < sh->n; i++) {
        const fdesc_t *d = &sh->f[i];
        if ((rc = put_cstr(out, d->key)))
            break;
        switch (d->kind) {
        case F_STR:
        case F_STR_NULL: {
            const char *v = CAT(f, char *, d);
            rc = v ? put_cstr(out, v) : put_u8(out, 0xc0);
            break;
        }
        case F_TIME: rc = put_time(out, CAT(f, int64_t, d)); break;
        case F_UINT: rc = put_uint(out, CAT(f, uint32_t, d)); break;
        case F_MPMAP: rc = put_raw(out, CAT(f, uint8_t *, d), CMPLEN(f, d)); break;
        }
    }
    return rc;
}

int osse_event_encode(const osse_event_t *ev, osse_buf_t *out)
{
    size_t start = out->len;
    int rc;
    osse_stream_kind_t kind;
    if (ev->data && !json_is_object(ev->data))
        return OSSE_EINVAL;
    const shape_t *sh;
    bool many;
    const void *fields = fields_of(ev, &sh, &many);
    if (fields && (ev->data || many || sh->type != ev->type || !fields_ok(sh, fields)))
        return OSSE_EINVAL;
    /* What the decoder would refuse is never written. */
    if ((unsigned)ev->type >= OSSE_EV__COUNT || !ev->stream ||
        osse_stream_kind_parse(ev->stream, &kind) || kind != osse_event_type_kind(ev->type))
        return OSSE_EINVAL;
    if ((rc = put_u8(out, 0x87)))
        goto out;
    if ((rc = put_str(out, "seq", 3)) || (rc = put_uint(out, ev->seq)))
        goto out;
    if ((rc = put_str(out, "stream", 6)) || (rc = put_cstr(out, ev->stream)))
        goto out;
    if ((rc = put_str(out, "version", 7)) || (rc = put_uint(out, ev->version)))
        goto out;
    if ((rc = put_str(out, "type", 4)) || (rc = put_cstr(out, osse_event_type_name(ev->type))))
        goto out;
    if ((rc = put_str(out, "at", 2)) || (rc = put_int(out, ev->at)))
        goto out;
    if ((rc = put_str(out, "actor", 5)) || (rc = put_u8(out, 0x82)))
        goto out;
    if ((rc = put_str(out, "kind", 4)) || (rc = put_cstr(out, ev->actor_kind)))
        goto out;
    if ((rc = put_str(out, "id", 2)) || (rc = put_cstr(out, ev->actor_id)))
        goto out;
    if ((rc = put_str(out, "data", 4)))
        goto out;
    if (ev->data)
        rc = put_json(out, ev->data, 2);
    else if (fields)
        rc = put_fields(out, sh, fields);
    else
        rc = put_u8(out, 0x80); /* no data is written as {} */
out:
    if (rc) {
        /* Leave out as it was: a half-written event must never be stored. */
        out->len = start;
        if (out->ptr)
            out->ptr[start] = '\0';
    }
    return rc;
}

/* ---------------------------------------------------------------- decoder */

/* The reader (event.h's osse_mp_rd_t: the cursor, the end, the error). */
typedef osse_mp_rd_t rd_t;

static size_t rd_left(const rd_t *r)
{
    return (size_t)(r->end - r->p);
}

static int corrupt(rd_t *r, const char *what)
{
    return osse_err_set(r->err, OSSE_ECORRUPT, "event: %s", what);
}

/* Reads an n-byte big-endian unsigned integer. */
static int rd_be(rd_t *r, int n, uint64_t *v)
{
    if (rd_left(r) < (size_t)n)
        return corrupt(r, "truncated");
    uint64_t x = 0;
    for (int i = 0; i < n; i++)
        x = (x << 8) | r->p[i];
    r->p += n;
    *v = x;
    return 0;
}

static int rd_tag(rd_t *r, uint8_t *tag)
{
    if (rd_left(r) < 1)
        return corrupt(r, "truncated");
    *tag = *r->p++;
    return 0;
}

/* Integer kinds: the value is either a uint64 (neg false) or an int64 < 0. */
typedef struct num_s {
    bool neg;
    uint64_t u;
    int64_t i;
} num_t;

/* Reads an integer whose tag was already read. Returns 1 if tag is not an
 * integer tag (nothing consumed), 0 on success, <0 on error. */
static int rd_int_body(rd_t *r, uint8_t tag, num_t *n)
{
    uint64_t v = 0;
    int rc;
    n->neg = false;
    if (tag <= 0x7f) {
        n->u = tag;
        return 0;
    }
    if (tag >= 0xe0) {
        n->neg = true;
        n->i = (int8_t)tag;
        return 0;
    }
    switch (tag) {
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        if ((rc = rd_be(r, 1 << (tag - 0xcc), &v)))
            return rc;
        n->u = v;
        return 0;
    case 0xd0:
        if ((rc = rd_be(r, 1, &v)))
            return rc;
        n->i = (int8_t)(uint8_t)v;
        break;
    case 0xd1:
        if ((rc = rd_be(r, 2, &v)))
            return rc;
        n->i = (int16_t)(uint16_t)v;
        break;
    case 0xd2:
        if ((rc = rd_be(r, 4, &v)))
            return rc;
        n->i = (int32_t)(uint32_t)v;
        break;
    case 0xd3:
        if ((rc = rd_be(r, 8, &v)))
            return rc;
        n->i = (int64_t)v;
        break;
    default: return 1;
    }
    /* Signed forms may carry non-negative values; normalize. */
    if (n->i >= 0) {
        n->u = (uint64_t)n->i;
    } else {
        n->neg = true;
    }
    return 0;
}

/* Reads a str header whose tag was already read. Returns 1 if not a str tag. */
static int rd_str_body(rd_t *r, uint8_t tag, const char **s, size_t *len)
{
    uint64_t n = 0;
    int rc = 0;
    if ((tag & 0xe0) == 0xa0)
        n = tag & 0x1f;
    else if (tag == 0xd9 || tag == 0xda)
        rc = rd_be(r, tag == 0xd9 ? 1 : 2, &n);
    else if (tag == 0xdb)
        rc = rd_be(r, 4, &n);
    else
        return 1;
    if (rc)
        return rc;
    if (n > rd_left(r))
        return corrupt(r, "string longer than the bytes left");
    *s = (const char *)r->p;
    *len = (size_t)n;
    r->p += n;
    return 0;
}

static int rd_str(rd_t *r, const char **s, size_t *len)
{
    uint8_t tag = 0;
    int rc = rd_tag(r, &tag);
    if (rc)
        return rc;
    rc = rd_str_body(r, tag, s, len);
    return rc == 1 ? corrupt(r, "expected a string") : rc;
}

/* Reads an array (map=false) or map header; checks the count against the
 * bytes left (each element needs at least one byte). Returns 1 if tag is not
 * such a header. */
static int rd_container_body(rd_t *r, uint8_t tag, bool map, uint64_t *count)
{
    uint64_t n = 0;
    int rc = 0;
    uint8_t fix = map ? 0x80 : 0x90, t16 = map ? 0xde : 0xdc, t32 = map ? 0xdf : 0xdd;
    if ((tag & 0xf0) == fix)
        n = tag & 0x0f;
    else if (tag == t16)
        rc = rd_be(r, 2, &n);
    else if (tag == t32)
        rc = rd_be(r, 4, &n);
    else
        return 1;
    if (rc)
        return rc;
    if (n > rd_left(r) / (map ? 2 : 1))
        return corrupt(r, "container longer than the bytes left");
    *count = n;
    return 0;
}

static int rd_key(rd_t *r, const char *want)
{
    const char *s = NULL;
    size_t n = 0;
    int rc = rd_str(r, &s, &n);
    if (rc)
        return rc;
    if (n != strlen(want) || memcmp(s, want, n) != 0)
        return osse_err_set(r->err, OSSE_ECORRUPT, "event: expected key \"%s\"", want);
    return 0;
}

static int rd_uint(rd_t *r, uint64_t max, uint64_t *v)
{
    uint8_t tag = 0;
    num_t n;
    int rc = rd_tag(r, &tag);
    if (rc)
        return rc;
    rc = rd_int_body(r, tag, &n);
    if (rc == 1)
        return corrupt(r, "expected an integer");
    if (rc)
        return rc;
    if (n.neg || n.u > max)
        return corrupt(r, "integer out of range");
    *v = n.u;
    return 0;
}

static int rd_i64(rd_t *r, int64_t *v)
{
    uint8_t tag = 0;
    num_t n;
    int rc = rd_tag(r, &tag);
    if (rc)
        return rc;
    rc = rd_int_body(r, tag, &n);
    if (rc == 1)
        return corrupt(r, "expected an integer");
    if (rc)
        return rc;
    if (!n.neg && n.u > INT64_MAX)
        return corrupt(r, "integer out of range");
    *v = n.neg ? n.i : (int64_t)n.u;
    return 0;
}

/* Reads a string of the fixed part (borrowed from the input): UTF-8 without
 * a NUL byte, since these fields are C strings. */
static int rd_text(rd_t *r, const char **s, size_t *n)
{
    int rc = rd_str(r, s, n);
    if (rc)
        return rc;
    if (memchr(*s, '\0', *n))
        return corrupt(r, "NUL byte in a string field");
    if (!osse_utf8_valid(*s, *n))
        return corrupt(r, "a string field is not UTF-8");
    return 0;
}

/* Reads a string of the fixed part into a fresh NUL-terminated copy. */
static int rd_cstr(rd_t *r, char **out)
{
    const char *s = NULL;
    size_t n = 0;
    int rc = rd_text(r, &s, &n);
    if (rc)
        return rc;
    char *c = osse_malloc(n + 1);
    memcpy(c, s, n);
    c[n] = '\0';
    *out = c;
    return 0;
}

static int rd_json(rd_t *r, int depth, json_t **out);

/* Check mode (out == NULL in rd_json and rd_json_map): the same walk and the
 * same rules, building nothing. A map of more keys than this, or a stream
 * longer than CHECK_STREAM, is left to the building decoder (RD_UNDECIDED),
 * so that the duplicate-key check stays jansson's own and costs no more than
 * it does there. */
#define CHECK_KEYS 32
#define CHECK_STREAM 256
#define RD_UNDECIDED 2

/* The check-mode twin of rd_json_map's body: keys compared bytewise, as
 * json_object_getn does; a key's UTF-8 checked as json_object_setn_new does
 * (jansson's check is strict RFC 3629 and allows NUL, as osse_utf8_valid). */
static int rd_check_map(rd_t *r, uint64_t n, int depth)
{
    struct {
        const char *p;
        size_t n;
    } keys[CHECK_KEYS];
    if (n > CHECK_KEYS)
        return RD_UNDECIDED;
    for (uint64_t i = 0; i < n; i++) {
        const char *k = NULL;
        size_t klen = 0;
        int rc = rd_str(r, &k, &klen);
        if (rc)
            return rc;
        for (uint64_t j = 0; j < i; j++)
            if (keys[j].n == klen && memcmp(keys[j].p, k, klen) == 0)
                return corrupt(r, "duplicate key");
        keys[i].p = k;
        keys[i].n = klen;
        if ((rc = rd_json(r, depth + 1, NULL)))
            return rc;
        if (!osse_utf8_valid(k, klen))
            return corrupt(r, "key is not UTF-8");
    }
    return 0;
}

static int rd_json_map(rd_t *r, uint64_t n, int depth, json_t **out)
{
    if (!out)
        return rd_check_map(r, n, depth);
    json_t *obj = json_object();
    int rc = 0;
    if (!obj)
        return osse_err_set(r->err, OSSE_ENOMEM, "event: out of memory");
    for (uint64_t i = 0; i < n; i++) {
        const char *k = NULL;
        size_t klen = 0;
        json_t *v = NULL;
        if ((rc = rd_str(r, &k, &klen)))
            goto out;
        if (json_object_getn(obj, k, klen)) {
            rc = corrupt(r, "duplicate key");
            goto out;
        }
        if ((rc = rd_json(r, depth + 1, &v)))
            goto out;
        /* setn_new checks the key is valid UTF-8 and takes v even on error. */
        if (json_object_setn_new(obj, k, klen, v)) {
            rc = corrupt(r, "key is not UTF-8");
            goto out;
        }
    }
out:
    if (rc) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

static int rd_json(rd_t *r, int depth, json_t **out)
{
    uint8_t tag = 0;
    uint64_t n = 0;
    num_t num;
    const char *s = NULL;
    size_t slen = 0;
    json_t *j = NULL;
    int rc = rd_tag(r, &tag);
    if (rc)
        return rc;

    if ((rc = rd_int_body(r, tag, &num)) != 1) {
        if (rc)
            return rc;
        if (!num.neg && num.u > (uint64_t)INT64_MAX)
            return corrupt(r, "integer out of range");
        if (!out)
            return 0;
        j = json_integer(num.neg ? (json_int_t)num.i : (json_int_t)num.u);
        goto made;
    }
    if ((rc = rd_str_body(r, tag, &s, &slen)) != 1) {
        if (rc)
            return rc;
        if (!out) /* json_stringn's own test */
            return osse_utf8_valid(s, slen) ? 0 : corrupt(r, "string is not UTF-8");
        j = json_stringn(s, slen);
        if (!j)
            return corrupt(r, "string is not UTF-8");
        goto made;
    }
    if ((rc = rd_container_body(r, tag, false, &n)) != 1) {
        if (rc)
            return rc;
        if (depth > OSSE_EVENT_MAX_DEPTH)
            return corrupt(r, "nested too deep");
        if (!out) {
            for (uint64_t i = 0; i < n; i++)
                if ((rc = rd_json(r, depth + 1, NULL)))
                    return rc;
            return 0;
        }
        j = json_array();
        if (!j)
            return osse_err_set(r->err, OSSE_ENOMEM, "event: out of memory");
        for (uint64_t i = 0; i < n; i++) {
            json_t *v;
            if ((rc = rd_json(r, depth + 1, &v))) {
                json_decref(j);
                return rc;
            }
            if (json_array_append_new(j, v)) {
                json_decref(j);
                return osse_err_set(r->err, OSSE_ENOMEM, "event: out of memory");
            }
        }
        *out = j;
        return 0;
    }
    if ((rc = rd_container_body(r, tag, true, &n)) != 1) {
        if (rc)
            return rc;
        if (depth > OSSE_EVENT_MAX_DEPTH)
            return corrupt(r, "nested too deep");
        return rd_json_map(r, n, depth, out);
    }
    if (!out) {
        if (tag == 0xc0 || tag == 0xc2 || tag == 0xc3)
            return 0;
        if (tag == 0xcb) {
            uint64_t bits = 0;
            double d;
            if ((rc = rd_be(r, 8, &bits)))
                return rc;
            memcpy(&d, &bits, sizeof d);
            return isfinite(d) ? 0 : corrupt(r, "real is not finite"); /* json_real's test */
        }
        return corrupt(r, "unexpected msgpack type");
    }
    switch (tag) {
    case 0xc0: j = json_null(); break;
    case 0xc2: j = json_false(); break;
    case 0xc3: j = json_true(); break;
    case 0xcb: {
        uint64_t bits = 0;
        double d;
        if ((rc = rd_be(r, 8, &bits)))
            return rc;
        memcpy(&d, &bits, sizeof d);
        j = json_real(d); /* NULL for NaN and infinities, which JSON lacks */
        if (!j)
            return corrupt(r, "real is not finite");
        break;
    }
    default:
        /* float32, bin, ext and the never-used 0xc1: osse never writes them. */
        return corrupt(r, "unexpected msgpack type");
    }
made:
    if (!j)
        return osse_err_set(r->err, OSSE_ENOMEM, "event: out of memory");
    *out = j;
    return 0;
}

/* A map (or array) header of exactly want entries (UINT64_MAX: any, *n
 * gets it). */
static int rd_header(rd_t *r, bool map, uint64_t want, uint64_t *n)
{
    uint8_t tag = 0;
    uint64_t count = 0;
    int rc = rd_tag(r, &tag);
    if (rc)
        return rc;
    rc = rd_container_body(r, tag, map, &count);
    if (rc == 1)
        return corrupt(r, map ? "expected a map" : "expected an array");
    if (rc)
        return rc;
    if (want != UINT64_MAX && count != want)
        return corrupt(r, map ? "map has the wrong number of keys"
                              : "array has the wrong number of elements");
    if (n)
        *n = count;
    return 0;
}

static int rd_map_header(rd_t *r, uint64_t want)
{
    return rd_header(r, true, want, NULL);
}

/* The type, decoded once into the enum: a name SPEC §5 does not list, or a
 * type stored in a stream of another kind, is a damaged event. */
static int rd_type(rd_t *r, const char *stream, osse_event_type_t *out)
{
    const char *s = NULL;
    size_t n = 0;
    osse_stream_kind_t kind;
    int rc = rd_text(r, &s, &n);
    if (rc)
        return rc;
    if (osse_event_type_parse(s, n, out) != 0) /* quoted, cut short */
        return osse_err_set(r->err, OSSE_ECORRUPT, "event: unknown event type \"%.*s\"",
                            n > 64 ? 64 : (int)n, s);
    if (osse_stream_kind_parse(stream, &kind) != 0 || kind != osse_event_type_kind(*out))
        return osse_err_set(r->err, OSSE_ECORRUPT, "event: %s does not belong in stream %.200s",
                            osse_event_type_name(*out), stream);
    return 0;
}

/* A fixed-part string field: copied into *out (decode), or only checked
 * (out NULL). */
static int rd_field(rd_t *r, char **out)
{
    const char *s = NULL;
    size_t n = 0;
    return out ? rd_cstr(r, out) : rd_text(r, &s, &n);
}

static bool rd_nil(rd_t *r);

/* A time field: nil (0), or the string osse_time_fmt writes for a time
 * other than 0, exactly. */
static bool field_time(const char *s, size_t n, int64_t *ms)
{
    char in[OSSE_TIME_LEN], again[OSSE_TIME_LEN];
    if (!s) {
        *ms = 0;
        return true;
    }
    if (n >= sizeof in)
        return false;
    memcpy(in, s, n);
    in[n] = '\0';
    return osse_time_parse(in, ms) == 0 && *ms != 0 && strcmp(osse_time_fmt(*ms, again), in) == 0;
}

/* A data map of n entries (its header read) of an event of a type with
 * fields, as those fields, into ev: only for exactly the shape put_fields
 * writes (its keys in its order, each value of its kind), so that the
 * fields give the JSON the tree would. Returns false, with r where it was,
 * for any other map (it is then built as a tree). */
static bool rd_fields(rd_t *r, uint64_t n, const shape_t *sh, osse_event_t *ev)
{
    osse_err_t scratch;
    rd_t q = {r->p, r->end, &scratch};
    const char *v[SHAPE_MAX] = {0};
    size_t len[SHAPE_MAX] = {0}, strings = 0;
    int64_t num[SHAPE_MAX] = {0};
    bool ok = n == sh->n;
    for (size_t i = 0; ok && i < sh->n; i++) {
        const fdesc_t *d = &sh->f[i];
        const char *k = NULL;
        size_t kn = 0;
        if (rd_str(&q, &k, &kn) || kn != strlen(d->key) || memcmp(k, d->key, kn)) {
            ok = false;
            break;
        }
        switch (d->kind) {
        case F_STR: ok = rd_text(&q, &v[i], &len[i]) == 0; break;
        case F_STR_NULL:
        case F_TIME:
            ok = rd_nil(&q) || rd_text(&q, &v[i], &len[i]) == 0;
            if (ok && d->kind == F_TIME)
                ok = field_time(v[i], len[i], &num[i]);
            break;
        case F_UINT: {
            uint64_t u = 0;
            ok = rd_uint(&q, UINT32_MAX, &u) == 0;
            num[i] = (int64_t)u;
            break;
        }
        case F_MPMAP: {
            const uint8_t *at = q.p;
            ok = rd_left(&q) && map_tag(*at) && rd_json_check(&q, 3) == 0;
            v[i] = (const char *)at;
            len[i] = (size_t)(q.p - at);
            break;
        }
        }
        if (v[i])
            strings += len[i] + 1;
    }
    if (!ok)
        return false;
    /* One block: the fields, then their strings. */
    char *mem = osse_calloc(1, sh->size + strings), *p = mem + sh->size;
    for (size_t i = 0; i < sh->n; i++) {
        const fdesc_t *d = &sh->f[i];
        switch (d->kind) {
        case F_STR:
        case F_STR_NULL:
            if (v[i]) {
                memcpy(p, v[i], len[i]);
                p[len[i]] = '\0';
                AT(mem, const char *, d) = p;
                p += len[i] + 1;
            }
            break;
        case F_TIME: AT(mem, int64_t, d) = num[i]; break;
        case F_UINT: AT(mem, uint32_t, d) = (uint32_t)num[i]; break;
        case F_MPMAP:
            memcpy(p, v[i], len[i]);
            AT(mem, const uint8_t *, d) = (const uint8_t *)p;
            MPLEN(mem, d) = len[i];
            p += len[i] + 1;
            break;
        }
    }
    *(void **)((char *)ev + sh->off) = mem;
    ev->owned = mem;
    r->p = q.p;
    return true;
}

/* The decoder; with build false (check mode) ev's strings and data stay
 * NULL and only its numbers are filled. Returns 0, OSSE_ECORRUPT or
 * OSSE_ENOMEM (detail in err), or RD_UNDECIDED in check mode. */
static int decode(const void *bytes, size_t len, bool build, osse_event_t *out, osse_err_t *err)
{
    rd_t r = {(const uint8_t *)bytes, (const uint8_t *)bytes + len, err};
    osse_event_t ev;
    uint64_t v = 0;
    int rc;
    memset(&ev, 0, sizeof ev);
    memset(out, 0, sizeof *out);
    if (!bytes && len)
        return corrupt(&r, "no bytes");

    if ((rc = rd_map_header(&r, 7)))
        goto out;
    if ((rc = rd_key(&r, "seq")) || (rc = rd_uint(&r, UINT64_MAX, &ev.seq)))
        goto out;
    if ((rc = rd_key(&r, "stream")))
        goto out;
    char sbuf[CHECK_STREAM];
    const char *stream = sbuf;
    if (build) {
        if ((rc = rd_cstr(&r, &ev.stream)))
            goto out;
        stream = ev.stream;
    } else {
        const char *s = NULL;
        size_t n = 0;
        if ((rc = rd_text(&r, &s, &n)))
            goto out;
        if (n >= sizeof sbuf) {
            rc = RD_UNDECIDED;
            goto out;
        }
        memcpy(sbuf, s, n);
        sbuf[n] = '\0';
    }
    if ((rc = rd_key(&r, "version")) || (rc = rd_uint(&r, UINT32_MAX, &v)))
        goto out;
    ev.version = (uint32_t)v;
    if ((rc = rd_key(&r, "type")) || (rc = rd_type(&r, stream, &ev.type)))
        goto out;
    if ((rc = rd_key(&r, "at")) || (rc = rd_i64(&r, &ev.at)))
        goto out;
    if ((rc = rd_key(&r, "actor")) || (rc = rd_map_header(&r, 2)))
        goto out;
    if ((rc = rd_key(&r, "kind")) || (rc = rd_field(&r, build ? &ev.actor_kind : NULL)))
        goto out;
    if ((rc = rd_key(&r, "id")) || (rc = rd_field(&r, build ? &ev.actor_id : NULL)))
        goto out;
    if ((rc = rd_key(&r, "data")))
        goto out;
    {
        uint8_t tag = 0;
        uint64_t n = 0;
        if ((rc = rd_tag(&r, &tag)))
            goto out;
        rc = rd_container_body(&r, tag, true, &n);
        if (rc == 1)
            rc = corrupt(&r, "data is not a map");
        if (rc)
            goto out;
        const shape_t *sh = build ? shape_of(ev.type) : NULL;
        if (sh && rd_fields(&r, n, sh, &ev))
            ;
        else if ((rc = rd_json_map(&r, n, 2, build ? &ev.data : NULL)))
            goto out;
    }
    if (rd_left(&r) != 0)
        rc = corrupt(&r, "trailing bytes");
out:
    if (rc) {
        osse_event_clear(&ev);
        return rc;
    }
    *out = ev;
    return 0;
}

int osse_event_decode(const void *bytes, size_t len, osse_event_t *out, osse_err_t *err)
{
    return decode(bytes, len, true, out, err);
}

int osse_event_check(const void *bytes, size_t len, uint64_t *seq, osse_err_t *err)
{
    osse_event_t ev;
    int rc = decode(bytes, len, false, &ev, err);
    if (rc == 0) {
        *seq = ev.seq;
        return 0;
    }
    /* Refused or undecided: the building decoder gives the verdict and its
     * exact message, so that a refusal reads as it always did. */
    rc = osse_event_decode(bytes, len, &ev, err);
    if (rc == 0) {
        *seq = ev.seq;
        osse_event_clear(&ev);
    }
    return rc;
}

void osse_event_clear(osse_event_t *ev)
{
    if (!ev)
        return;
    free(ev->stream);
    free(ev->actor_kind);
    free(ev->actor_id);
    json_decref(ev->data);
    free(ev->owned);
    memset(ev, 0, sizeof *ev);
}

json_t *osse_event_data(const osse_event_t *ev)
{
    if (ev->data)
        return json_incref(ev->data);
    const shape_t *sh;
    bool many;
    const void *f = fields_of(ev, &sh, &many);
    json_t *d = json_object();
    for (size_t i = 0; f && d && i < sh->n; i++) {
        const fdesc_t *fd = &sh->f[i];
        char t[OSSE_TIME_LEN];
        json_t *v = NULL;
        switch (fd->kind) {
        case F_STR:
        case F_STR_NULL: {
            const char *str = CAT(f, char *, fd);
            v = str ? json_string(str) : json_null();
            break;
        }
        case F_TIME: {
            int64_t ms = CAT(f, int64_t, fd);
            v = ms ? json_string(osse_time_fmt(ms, t)) : json_null();
            break;
        }
        case F_UINT: v = json_integer(CAT(f, uint32_t, fd)); break;
        case F_MPMAP: {
            osse_err_t err;
            rd_t q = {CAT(f, uint8_t *, fd), CAT(f, uint8_t *, fd) + CMPLEN(f, fd), &err};
            if (rd_json(&q, 3, &v))
                v = NULL;
            break;
        }
        }
        if (!v || json_object_set_new(d, fd->key, v)) {
            json_decref(d);
            d = NULL;
        }
    }
    return d;
}

const char *osse_event_step(const osse_event_t *ev)
{
    if (ev->opened)
        return ev->opened->step;
    return json_string_value(json_object_get(ev->data, "step"));
}

json_t *osse_event_to_json(const osse_event_t *ev)
{
    char at[OSSE_TIME_LEN];
    json_t *data = ev->data ? json_deep_copy(ev->data) : osse_event_data(ev);
    if (!data)
        return NULL;
    return json_pack("{s:I, s:s, s:I, s:s, s:s, s:{s:s, s:s}, s:o}", "seq", (json_int_t)ev->seq,
                     "stream", ev->stream ? ev->stream : "", "version", (json_int_t)ev->version,
                     "type", osse_event_type_name(ev->type), "at", osse_time_fmt(ev->at, at),
                     "actor", "kind", ev->actor_kind ? ev->actor_kind : "", "id",
                     ev->actor_id ? ev->actor_id : "", "data", data);
}

/* ------------------------------------------- the pieces, for other records */

int osse_mp_put_uint(osse_buf_t *out, uint64_t v)
{
    return put_uint(out, v);
}

int osse_mp_put_int(osse_buf_t *out, int64_t v)
{
    return put_int(out, v);
}

int osse_mp_put_str(osse_buf_t *out, const char *s)
{
    return s ? put_str(out, s, strlen(s)) : put_u8(out, 0xc0);
}

int osse_mp_put_array(osse_buf_t *out, size_t n)
{
    return put_container(out, false, n);
}

int osse_mp_put_json(osse_buf_t *out, const json_t *j)
{
    return j ? put_json(out, j, 1) : put_u8(out, 0xc0);
}

static bool rd_nil(rd_t *r)
{
    if (rd_left(r) && *r->p == 0xc0) {
        r->p++;
        return true;
    }
    return false;
}

/* One JSON value's msgpack at r, checked by the decoder's rules without
 * building it, or built and dropped where check mode leaves it undecided
 * (a map of many keys: the building decoder decides, as elsewhere); r
 * moves past it. Returns what rd_json returns. */
static int rd_json_check(osse_mp_rd_t *r, int depth)
{
    const uint8_t *at = r->p;
    int rc = rd_json(r, depth, NULL);
    if (rc == RD_UNDECIDED) {
        json_t *j = NULL;
        r->p = at;
        rc = rd_json(r, depth, &j);
        json_decref(j);
    }
    return rc;
}

int osse_mp_get_uint(osse_mp_rd_t *rd, uint64_t max, uint64_t *v)
{
    return rd_uint(rd, max, v);
}

int osse_mp_get_int(osse_mp_rd_t *rd, int64_t *v)
{
    return rd_i64(rd, v);
}

int osse_mp_get_str(osse_mp_rd_t *rd, char **out)
{
    *out = NULL;
    return rd_nil(rd) ? 0 : rd_cstr(rd, out);
}

int osse_mp_get_array(osse_mp_rd_t *rd, size_t want, size_t *n)
{
    uint64_t count = 0;
    int rc = rd_header(rd, false, want == SIZE_MAX ? UINT64_MAX : want, &count);
    if (!rc && n)
        *n = (size_t)count;
    return rc;
}

int osse_mp_get_json(osse_mp_rd_t *rd, json_t **out)
{
    *out = NULL;
    return rd_nil(rd) ? 0 : rd_json(rd, 1, out);
}

int osse_mp_skip_json(osse_mp_rd_t *rd, const uint8_t **start, size_t *len)
{
    const uint8_t *p = rd->p;
    int rc = rd_nil(rd) ? 0 : rd_json_check(rd, 1);
    if (rc)
        return rc;
    *start = p;
    *len = (size_t)(rd->p - p);
    return 0;
}

int osse_mp_put_raw(osse_buf_t *out, const void *bytes, size_t len)
{
    return osse_buf_append(out, bytes, len);
}
