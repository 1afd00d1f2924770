/* hist.h: a fixed-bucket latency histogram rendered as Prometheus text.
 *
 * Buckets are upper bounds in seconds, from 0.5 ms to 5 s; observing is a
 * few comparisons and no allocation, so it can sit on every request. */
#ifndef OSSE_COMMON_HIST_H
#define OSSE_COMMON_HIST_H

#include <stdint.h>

#include "common/buf.h"

#define OSSE_HIST_NBUCKETS 13

typedef struct osse_hist_s {
    uint64_t counts[OSSE_HIST_NBUCKETS]; /* not cumulative; the last is +Inf */
    uint64_t count;
    double sum;
} osse_hist_t;

void osse_hist_observe(osse_hist_t *h, double seconds);
/* Appends "# HELP", "# TYPE" and the _bucket/_sum/_count lines of name. */
int osse_hist_render(const osse_hist_t *h, osse_buf_t *out, const char *name, const char *help);

#endif
