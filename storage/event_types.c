/* event_types.c: the name, stream kind and flags of each event type, all
 * generated from OSSE_EVENTS (event_types.h), and their lookups.
 *
 * A lookup by name is a scan of 35 entries that compares lengths first: a
 * replay of a million events spends far less in it than in decoding their
 * data, and the scan needs no second structure to keep in step. */
#include "storage/event_types.h"

#include <string.h>

#include "common/err.h"

static const struct {
    const char *name;
    size_t len;
    osse_stream_kind_t kind;
    unsigned flags;
} types[] = {
#define X(name, kind, flags) {#name, sizeof #name - 1, OSSE_SK_##kind, (flags)},
    OSSE_EVENTS(X)
#undef X
};

static const char *const kinds[] = {
#define X(n, s) s,
    OSSE_STREAM_KINDS(X)
#undef X
};

const char *osse_event_type_name(osse_event_type_t t)
{
    return (unsigned)t < OSSE_EV__COUNT ? types[t].name : "?";
}

int osse_event_type_parse(const char *s, size_t len, osse_event_type_t *out)
{
    for (unsigned i = 0; i < OSSE_EV__COUNT; i++)
        if (types[i].len == len && memcmp(types[i].name, s, len) == 0) {
            *out = (osse_event_type_t)i;
            return 0;
        }
    return OSSE_EINVAL;
}

osse_stream_kind_t osse_event_type_kind(osse_event_type_t t)
{
    OSSE_PRE((unsigned)t < OSSE_EV__COUNT);
    return types[t].kind;
}

unsigned osse_event_type_flags(osse_event_type_t t)
{
    return (unsigned)t < OSSE_EV__COUNT ? types[t].flags : 0;
}

const char *osse_stream_kind_name(osse_stream_kind_t k)
{
    return (unsigned)k < OSSE_SK__COUNT ? kinds[k] : "?";
}

int osse_stream_kind_parse(const char *stream, osse_stream_kind_t *out)
{
    const char *slash = strchr(stream, '/');
    if (!slash || slash[1] == '\0')
        return OSSE_EINVAL;
    size_t n = (size_t)(slash - stream);
    for (unsigned i = 0; i < OSSE_SK__COUNT; i++)
        if (strlen(kinds[i]) == n && memcmp(kinds[i], stream, n) == 0) {
            *out = (osse_stream_kind_t)i;
            return 0;
        }
    return OSSE_EINVAL;
}
