/* replay.c: a replay in two threads (issue 13). A reader thread reads the
 * stored events (an export through osse_export_verify_file, which checks it
 * as it goes, or the log through osse_log_scan), decodes each one, and hands
 * them over in batches; the caller's thread applies them in order.
 *
 * Invariant: events are applied in log order, each once, and the problem
 * reported is the first one in log order with the message a one-thread
 * replay gives: the reader stops at its first problem and reports it after
 * the events before it, which are applied first; the applier stops at its
 * first problem and stops the reader, whose later problems are then never
 * seen. A batch's events are freed by the reader, where they were made (its
 * malloc arena), when it takes the batch back.
 *
 * Why: decoding an event into JSON cost as much as applying it (bench/
 * README.md, issue 13), and the two need not wait for each other.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "engine/engine.h"

#define BATCH 256
#define NBATCH 8

typedef struct item_s {
    uint64_t seq;
    osse_event_t ev;
} item_t;

typedef struct batch_s {
    size_t n;
    item_t it[BATCH];
} batch_t;

enum { STOPPED = 1 }; /* the reader's callback saw stop */

typedef struct pipe_s {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    batch_t *ring[NBATCH]; /* full batches, oldest at tail */
    uint64_t head, tail;
    batch_t *free_[NBATCH + 1]; /* given back; cleared by the reader */
    size_t nfree;
    batch_t *fill; /* the reader's */
    int done;
    _Atomic int stop; /* set under mu; the reader also polls it per event */
    int rc;           /* the reader's result */
    osse_err_t err;   /* and its message */
    /* The source. */
    FILE *f;
    const osse_verifier_t *key;
    osse_export_info_t *info;
    osse_log_t *log;
} pipe_t;

static void batch_clear(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        osse_event_clear(&b->it[i].ev);
    b->n = 0;
}

/* Reader: hands the current batch over (waiting for room). */
static void push(pipe_t *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->head - p->tail == NBATCH && !p->stop)
        pthread_cond_wait(&p->cv, &p->mu);
    if (!p->stop) {
        p->ring[p->head++ % NBATCH] = p->fill;
        p->fill = NULL;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

static int feed(void *ud, uint64_t seq, const void *bytes, size_t len)
{
    pipe_t *p = ud;
    if (!p->fill) {
        pthread_mutex_lock(&p->mu);
        while (!p->nfree && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return STOPPED;
        }
        p->fill = p->free_[--p->nfree];
        pthread_mutex_unlock(&p->mu);
        batch_clear(p->fill);
    }
    item_t *it = &p->fill->it[p->fill->n];
    int rc = osse_engine_replay_decode(seq, bytes, len, &it->ev, &p->err);
    if (rc)
        return rc;
    it->seq = seq;
    if (++p->fill->n == BATCH)
        push(p);
    return p->stop ? STOPPED : 0;
}

static void *reader_main(void *ud)
{
    pipe_t *p = ud;
    int rc;
    if (p->f)
        rc = osse_export_verify_file(p->f, p->key, feed, p, p->info, &p->err);
    else
        rc = osse_log_scan(p->log, 1, feed, p, &p->err);
    if (p->fill && p->fill->n)
        push(p);
    pthread_mutex_lock(&p->mu);
    if (p->fill) /* empty, or not taken after a stop */
        p->free_[p->nfree++] = p->fill;
    p->fill = NULL;
    p->rc = rc;
    p->done = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int run(osse_engine_t *e, pipe_t *p, osse_err_t *err)
{
    pthread_t th;
    int rc = 0;
    uint64_t next = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 0; i <= NBATCH; i++) {
        p->free_[i] = osse_malloc(sizeof(batch_t));
        p->free_[i]->n = 0;
    }
    p->nfree = NBATCH + 1;
    if (pthread_create(&th, NULL, reader_main, p) != 0) {
        rc = osse_err_set(err, OSSE_ENOMEM, "cannot start the replay's reader thread");
        goto out;
    }
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->head == p->tail && !p->done)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->head == p->tail) { /* done, and every batch applied */
            pthread_mutex_unlock(&p->mu);
            break;
        }
        batch_t *b = p->ring[p->tail % NBATCH];
        pthread_mutex_unlock(&p->mu);
        for (size_t i = 0; i < b->n && !rc; i++) {
            uint64_t seq = b->it[i].seq;
            if (next == 1 && seq != 1)
                rc = osse_err_set(err, OSSE_EINVAL,
                                  "the log given starts at seq %llu: views need every "
                                  "event from seq 1",
                                  (unsigned long long)seq);
            else
                rc = osse_engine_replay_decoded(e, seq, &b->it[i].ev, err);
            next = seq + 1;
        }
        pthread_mutex_lock(&p->mu);
        p->tail++;
        p->free_[p->nfree++] = b;
        if (rc)
            p->stop = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (rc)
            break;
    }
    pthread_join(th, NULL);
    if (rc) {
        if (p->info) { /* as a one-thread reader leaves them at a callback's error */
            p->info->offset = 0;
            p->info->bad_seq = 0;
            p->info->bad_head = 0;
        }
    } else if (p->rc) {
        rc = p->rc;
        if (err)
            *err = p->err;
    }
out:
    /* Batches not applied after a stop may still be in the ring. */
    for (uint64_t t = p->tail; t < p->head; t++)
        p->free_[p->nfree++] = p->ring[t % NBATCH];
    for (size_t i = 0; i < p->nfree; i++) {
        batch_clear(p->free_[i]);
        free(p->free_[i]);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    return rc;
}

int osse_engine_replay_export(osse_engine_t *e, FILE *f, const osse_verifier_t *key,
                              osse_export_info_t *info, osse_err_t *err)
{
    pipe_t p;
    memset(&p, 0, sizeof p);
    p.f = f;
    p.key = key;
    p.info = info;
    return run(e, &p, err);
}

int osse_engine_replay_log(osse_engine_t *e, osse_log_t *log, osse_err_t *err)
{
    pipe_t p;
    memset(&p, 0, sizeof p);
    p.log = log;
    return run(e, &p, err);
}
