/* hist.c: fixed-bucket latency histograms in Prometheus text form. */
#include "common/hist.h"

static const double bounds[OSSE_HIST_NBUCKETS - 1] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1,    5};

void osse_hist_observe(osse_hist_t *h, double seconds)
{
    int i = 0;
    while (i < OSSE_HIST_NBUCKETS - 1 && seconds > bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += seconds;
}

int osse_hist_render(const osse_hist_t *h, osse_buf_t *out, const char *name, const char *help)
{
    int rc = osse_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < OSSE_HIST_NBUCKETS && !rc; i++) {
        cum += h->counts[i];
        if (i < OSSE_HIST_NBUCKETS - 1)
            rc = osse_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
                                 (unsigned long long)cum);
        else
            rc = osse_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                                 (unsigned long long)cum);
    }
    if (!rc)
        rc = osse_buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name,
                             (unsigned long long)h->count);
    return rc;
}
