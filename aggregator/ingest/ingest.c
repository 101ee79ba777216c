/*
 * Agent stream ingest (ingest.h, docs/ingest.md).
 *
 * Objects, all owned by the loop thread:
 *   conn   one accepted stream. Referenced by the gRPC call (until on_done) and by every
 *          queued message of it, so a message outlives its stream until it is committed.
 *   node   one node name seen in a Hello: its live stream, token bucket and the committed
 *          copy of its `agents` record (loaded from the store at first use; the ingest is the
 *          only writer of that database). Referenced by its conns; unreferenced nodes stay in
 *          an LRU list (keeping their token bucket) until the table passes its bound.
 *   item   one received message waiting for the group commit.
 *
 * A group commit applies every queued item in arrival order to a working copy of each node
 * touched, writes those records, commits, then promotes the working copies and sends the Acks.
 */
#include "ingest/ingest.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/grpc_server.h"
#include "common/log.h"
#include "common/pbuf.h"
#include "common/pbuf_decode.h"

#define M(x) RobotSre__Agent__V1__##x
#define UUID_LEN 36
#define MAX_BOOTS RSRE_STORE_AGENT_MAX_BOOTS
#define MAX_RESULTS RSRE_STORE_AGENT_MAX_RESULTS
#define ID_MAX RSRE_PBUF_MAX_ID_LEN
#define AUDIT_ACTOR "ingest"
#define REFUSAL_SLOTS 64
#define REFUSAL_AUDIT_MS 60000u

const uint32_t rsre_ingest_latency_bounds_us[RSRE_INGEST_LATENCY_BUCKETS - 1] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000};

/* ---- records -------------------------------------------------------------------------------- */

struct boot {
    char id[UUID_LEN + 1];
    uint64_t committed;
    int64_t first_seen_ms, last_batch_ms;
    uint64_t batches, signals, lost, gaps, rejected;
};

struct res {
    char id[ID_MAX + 1];
    int64_t at_ms;
};

/* Summary of a node's last Hello: immutable once built, shared by reference count between the
 * committed and the working copy of a record. */
struct hsum {
    unsigned refs;
    int64_t hello_ms, started_ms;
    uint32_t protocol_revision;
    uint64_t spool_batches, spool_dropped;
    char *boot_id, *version, *kernel_boot_id, *kernel_release, *runtime, *identity, *peer;
    char **actions;
    size_t nactions;
    uint32_t *caps;
    size_t ncaps;
};

/* In-memory form of an AgentState record. */
struct arec {
    struct boot boots[MAX_BOOTS]; /* least recently active first */
    size_t nboots;
    struct res *results; /* oldest first, malloc'd (NULL when none) */
    size_t nresults;
    int64_t first_seen_ms, last_seen_ms;
    uint64_t hellos;
    struct hsum *hello; /* NULL: no Hello recorded */
};

struct conn;

struct node {
    struct node *hnext;                 /* hash chain */
    struct node *idle_prev, *idle_next; /* LRU of nodes without conns */
    int idle;
    struct conn *live; /* the stream that speaks for this node now */
    unsigned refs;     /* conns bound to it */
    double tokens;
    uint64_t tok_ms;
    int loaded;        /* rec holds the committed record */
    struct arec rec;   /* committed */
    struct arec *work; /* working copy during a group commit */
    char name[];
};

struct conn {
    struct rsre_ingest *ing;
    struct rsre_grpc_server_call *call; /* NULL once the call is over */
    struct conn *prev, *next;           /* ing->conns: calls not yet done */
    struct conn *pprev, *pnext;         /* ing->paused */
    struct node *node;                  /* bound at Hello */
    char boot[UUID_LEN + 1];            /* Hello.boot_id */
    int hello, configured, failed, paused;
    unsigned refs;
    uint64_t resume_ms;
};

enum { IT_HELLO, IT_BATCH, IT_RESULT, IT_REJECT, IT_REFUSAL };

struct item {
    int kind;
    struct conn *conn; /* NULL for IT_REFUSAL */
    M(AgentMessage) * msg;
    struct msg_arena *arena;    /* holds msg (released with the item) */
    char boot[UUID_LEN + 1];    /* IT_REJECT */
    uint64_t seq;               /* IT_REJECT */
    char *text, *text2, *text3; /* IT_REJECT: error; IT_REFUSAL: node, identity, peer */
    uint64_t recv_ns;
    int failed;
    /* outcome of the last attempt */
    int dup, newboot, consumer_failed, acked;
    uint64_t lost;
};

struct rsre_ingest {
    uv_loop_t *loop;
    struct rsre_grpc_loop *gl;
    rsre_store *store;
    struct rsre_grpc_server *srv;
    struct rsre_ingest_consumer consumer;
    size_t max_message;
    double rate;
    double burst;
    uint32_t group_max, group_ms;
    int mtls;
    uint64_t generation;
    char **allow;
    size_t nallow;
    /* nodes */
    struct node **table;
    size_t table_size, nnodes, node_limit;
    struct node *idle_head, *idle_tail;
    /* conns */
    struct conn *conns, *paused;
    /* group */
    struct item *items;
    size_t nitems;
    struct node **touched;
    size_t ntouched;
    const struct item *applying; /* the item whose hooks run now (rsre_ingest_applying_recv_ns) */
    /* identity refusals audited recently: one audit record per (claimed node, certificate)
     * per REFUSAL_AUDIT_MS, so a peer retrying in a loop cannot flood the audit log */
    struct {
        uint64_t key, at_ms;
    } refusals[REFUSAL_SLOTS];
    uv_timer_t group_timer, throttle_timer;
    int flushing, closing, handles_open;
    void (*closed)(void *);
    void *closed_arg;
    struct rsre_ingest_stats st;
};

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *xstrdup(const char *s) {
    return strdup(s ? s : "");
}

static void hsum_unref(struct hsum *h) {
    if (h == NULL || --h->refs > 0) {
        return;
    }
    free(h->boot_id);
    free(h->version);
    free(h->kernel_boot_id);
    free(h->kernel_release);
    free(h->runtime);
    free(h->identity);
    free(h->peer);
    for (size_t i = 0; i < h->nactions; i++) {
        free(h->actions[i]);
    }
    free(h->actions);
    free(h->caps);
    free(h);
}

/* Builds a summary; the string arrays are copied. NULL on allocation failure. */
static struct hsum *hsum_new(const char *boot_id, const char *version, const char *kboot,
                             const char *krel, const char *runtime, const char *identity,
                             const char *peer, char *const *actions, size_t nactions,
                             const uint32_t *caps, size_t ncaps) {
    struct hsum *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->refs = 1;
    h->boot_id = xstrdup(boot_id);
    h->version = xstrdup(version);
    h->kernel_boot_id = xstrdup(kboot);
    h->kernel_release = xstrdup(krel);
    h->runtime = xstrdup(runtime);
    h->identity = xstrdup(identity);
    h->peer = xstrdup(peer);
    int ok = h->boot_id && h->version && h->kernel_boot_id && h->kernel_release && h->runtime &&
             h->identity && h->peer;
    if (ok && nactions > 0) {
        h->actions = calloc(nactions, sizeof(char *));
        ok = h->actions != NULL;
        for (size_t i = 0; ok && i < nactions; i++) {
            ok = (h->actions[i] = xstrdup(actions[i])) != NULL;
            h->nactions = i + 1;
        }
    }
    if (ok && ncaps > 0) {
        h->caps = malloc(ncaps * sizeof(uint32_t));
        ok = h->caps != NULL;
        if (ok) {
            memcpy(h->caps, caps, ncaps * sizeof(uint32_t));
            h->ncaps = ncaps;
        }
    }
    if (!ok) {
        hsum_unref(h);
        return NULL;
    }
    return h;
}

static void arec_free(struct arec *r) {
    free(r->results);
    hsum_unref(r->hello);
    memset(r, 0, sizeof(*r));
}

static int arec_copy(struct arec *dst, const struct arec *src) {
    *dst = *src;
    dst->results = NULL;
    if (src->nresults > 0) {
        dst->results = malloc(src->nresults * sizeof(struct res));
        if (dst->results == NULL) {
            dst->hello = NULL;
            return -ENOMEM;
        }
        memcpy(dst->results, src->results, src->nresults * sizeof(struct res));
    }
    if (dst->hello) {
        dst->hello->refs++;
    }
    return 0;
}

/* Fills `r` from a stored record (bounds were checked when it was decoded). */
static int arec_from_store(struct arec *r, const rsre_store_agent *a) {
    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < a->n_boots && r->nboots < MAX_BOOTS; i++) {
        const rsre_store_agent_boot *sb = a->boots[i];
        struct boot *b = &r->boots[r->nboots++];
        snprintf(b->id, sizeof(b->id), "%s", sb->boot_id);
        b->committed = sb->committed_seq;
        b->first_seen_ms = sb->first_seen_ms;
        b->last_batch_ms = sb->last_batch_ms;
        b->batches = sb->batches;
        b->signals = sb->signals;
        b->lost = sb->lost_batches;
        b->gaps = sb->gaps;
        b->rejected = sb->rejected_batches;
    }
    if (a->n_results > 0) {
        size_t n = a->n_results < MAX_RESULTS ? a->n_results : MAX_RESULTS;
        r->results = calloc(n, sizeof(struct res));
        if (r->results == NULL) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            snprintf(r->results[i].id, sizeof(r->results[i].id), "%s", a->results[i]->request_id);
            r->results[i].at_ms = a->results[i]->committed_ms;
        }
        r->nresults = n;
    }
    r->first_seen_ms = a->first_seen_ms;
    r->last_seen_ms = a->last_seen_ms;
    r->hellos = a->hellos;
    if (a->hello_ms != 0) {
        r->hello = hsum_new(a->boot_id, a->agent_version, a->kernel_boot_id, a->kernel_release,
                            a->container_runtime, a->identity, a->peer, a->actions, a->n_actions,
                            a->capabilities, a->n_capabilities);
        if (r->hello == NULL) {
            arec_free(r);
            return -ENOMEM;
        }
        r->hello->hello_ms = a->hello_ms;
        r->hello->started_ms = a->agent_started_ms;
        r->hello->protocol_revision = a->protocol_revision;
        r->hello->spool_batches = a->spool_batches;
        r->hello->spool_dropped = a->spool_dropped_batches;
    }
    return 0;
}

/* Writes `r` as the AgentState of `node` in `txn`. */
static int arec_put(rsre_store_txn *txn, const char *node, const struct arec *r) {
    RobotSre__Store__AgentState st = ROBOT_SRE__STORE__AGENT_STATE__INIT;
    RobotSre__Store__AgentState__Boot boots[MAX_BOOTS], *bootp[MAX_BOOTS];
    RobotSre__Store__AgentState__Result res[MAX_RESULTS], *resp[MAX_RESULTS];
    st.node = (char *)node;
    for (size_t i = 0; i < r->nboots; i++) {
        const struct boot *b = &r->boots[i];
        RobotSre__Store__AgentState__Boot init = ROBOT_SRE__STORE__AGENT_STATE__BOOT__INIT;
        boots[i] = init;
        boots[i].boot_id = (char *)b->id;
        boots[i].committed_seq = b->committed;
        boots[i].first_seen_ms = b->first_seen_ms;
        boots[i].last_batch_ms = b->last_batch_ms;
        boots[i].batches = b->batches;
        boots[i].signals = b->signals;
        boots[i].lost_batches = b->lost;
        boots[i].gaps = b->gaps;
        boots[i].rejected_batches = b->rejected;
        bootp[i] = &boots[i];
    }
    st.n_boots = r->nboots;
    st.boots = bootp;
    for (size_t i = 0; i < r->nresults; i++) {
        RobotSre__Store__AgentState__Result init = ROBOT_SRE__STORE__AGENT_STATE__RESULT__INIT;
        res[i] = init;
        res[i].request_id = (char *)r->results[i].id;
        res[i].committed_ms = r->results[i].at_ms;
        resp[i] = &res[i];
    }
    st.n_results = r->nresults;
    st.results = resp;
    st.first_seen_ms = r->first_seen_ms;
    st.last_seen_ms = r->last_seen_ms;
    st.hellos = r->hellos;
    const struct hsum *h = r->hello;
    if (h != NULL) {
        st.hello_ms = h->hello_ms;
        st.protocol_revision = h->protocol_revision;
        st.boot_id = h->boot_id;
        st.agent_version = h->version;
        st.agent_started_ms = h->started_ms;
        st.kernel_boot_id = h->kernel_boot_id;
        st.kernel_release = h->kernel_release;
        st.container_runtime = h->runtime;
        st.n_actions = h->nactions;
        st.actions = h->actions;
        st.n_capabilities = h->ncaps;
        st.capabilities = h->caps;
        st.spool_batches = h->spool_batches;
        st.spool_dropped_batches = h->spool_dropped;
        st.identity = h->identity;
        st.peer = h->peer;
    }
    return rsre_store_agent_put(txn, &st, 0);
}

static struct boot *boot_find(struct arec *r, const char *id) {
    for (size_t i = 0; i < r->nboots; i++) {
        if (strcmp(r->boots[i].id, id) == 0) {
            return &r->boots[i];
        }
    }
    return NULL;
}

/* Moves boot `b` to the most recently active end; returns its new address. */
static struct boot *boot_touch(struct arec *r, struct boot *b) {
    size_t i = (size_t)(b - r->boots);
    if (i + 1 < r->nboots) {
        struct boot tmp = *b;
        memmove(&r->boots[i], &r->boots[i + 1], (r->nboots - i - 1) * sizeof(struct boot));
        r->boots[r->nboots - 1] = tmp;
    }
    return &r->boots[r->nboots - 1];
}

/* Adds a boot (committed 0), dropping the least recently active one when full. */
static struct boot *boot_add(struct arec *r, const char *node, const char *id, int64_t now) {
    if (r->nboots == MAX_BOOTS) {
        RSRE_LOG(RSRE_LOG_INFO, "ingest",
                 "dropping the least recently active boot of a node: node=%s boot_id=%s "
                 "committed_seq=%" PRIu64,
                 node, r->boots[0].id, r->boots[0].committed);
        memmove(&r->boots[0], &r->boots[1], (MAX_BOOTS - 1) * sizeof(struct boot));
        r->nboots--;
    }
    struct boot *b = &r->boots[r->nboots++];
    memset(b, 0, sizeof(*b));
    snprintf(b->id, sizeof(b->id), "%s", id);
    b->first_seen_ms = now;
    return b;
}

static int result_seen(const struct arec *r, const char *id) {
    for (size_t i = 0; i < r->nresults; i++) {
        if (strcmp(r->results[i].id, id) == 0) {
            return 1;
        }
    }
    return 0;
}

static int result_add(struct arec *r, const char *id, int64_t now) {
    if (r->nresults == MAX_RESULTS) {
        memmove(&r->results[0], &r->results[1], (MAX_RESULTS - 1) * sizeof(struct res));
        r->nresults--;
    } else {
        struct res *nr = realloc(r->results, (r->nresults + 1) * sizeof(struct res));
        if (nr == NULL) {
            return -ENOMEM;
        }
        r->results = nr;
    }
    struct res *x = &r->results[r->nresults++];
    snprintf(x->id, sizeof(x->id), "%s", id);
    x->at_ms = now;
    return 0;
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

static struct node *node_find(const struct rsre_ingest *ing, const char *name) {
    if (ing->table_size == 0) {
        return NULL;
    }
    struct node *n = ing->table[hash_name(name) & (ing->table_size - 1)];
    while (n && strcmp(n->name, name) != 0) {
        n = n->hnext;
    }
    return n;
}

static int table_grow(struct rsre_ingest *ing) {
    size_t size = ing->table_size ? ing->table_size * 2 : 256;
    struct node **t = calloc(size, sizeof(*t));
    if (t == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < ing->table_size; i++) {
        struct node *n = ing->table[i];
        while (n) {
            struct node *next = n->hnext;
            size_t k = hash_name(n->name) & (size - 1);
            n->hnext = t[k];
            t[k] = n;
            n = next;
        }
    }
    free(ing->table);
    ing->table = t;
    ing->table_size = size;
    return 0;
}

static void idle_remove(struct rsre_ingest *ing, struct node *n) {
    if (!n->idle) {
        return;
    }
    if (n->idle_prev) {
        n->idle_prev->idle_next = n->idle_next;
    } else {
        ing->idle_head = n->idle_next;
    }
    if (n->idle_next) {
        n->idle_next->idle_prev = n->idle_prev;
    } else {
        ing->idle_tail = n->idle_prev;
    }
    n->idle_prev = n->idle_next = NULL;
    n->idle = 0;
}

static void node_destroy(struct rsre_ingest *ing, struct node *n) {
    struct node **pp = &ing->table[hash_name(n->name) & (ing->table_size - 1)];
    while (*pp != n) {
        pp = &(*pp)->hnext;
    }
    *pp = n->hnext;
    idle_remove(ing, n);
    arec_free(&n->rec);
    free(n);
    ing->nnodes--;
}

/* Forgets unreferenced nodes, least recently used first, while the table is over its bound. */
static void nodes_trim(struct rsre_ingest *ing) {
    while (ing->nnodes > ing->node_limit && ing->idle_head && !ing->flushing) {
        node_destroy(ing, ing->idle_head);
    }
}

static struct node *node_get(struct rsre_ingest *ing, const char *name) {
    struct node *n = node_find(ing, name);
    if (n) {
        return n;
    }
    if (ing->nnodes + 1 > ing->table_size && table_grow(ing) != 0) {
        return NULL;
    }
    size_t len = strlen(name);
    n = calloc(1, sizeof(*n) + len + 1);
    if (n == NULL) {
        return NULL;
    }
    memcpy(n->name, name, len + 1);
    n->tokens = ing->burst;
    n->tok_ms = uv_now(ing->loop);
    size_t k = hash_name(name) & (ing->table_size - 1);
    n->hnext = ing->table[k];
    ing->table[k] = n;
    ing->nnodes++;
    return n;
}

static void node_ref(struct rsre_ingest *ing, struct node *n) {
    idle_remove(ing, n);
    n->refs++;
}

static void node_unref(struct rsre_ingest *ing, struct node *n) {
    if (--n->refs > 0) {
        return;
    }
    n->idle = 1;
    n->idle_prev = ing->idle_tail;
    n->idle_next = NULL;
    if (ing->idle_tail) {
        ing->idle_tail->idle_next = n;
    } else {
        ing->idle_head = n;
    }
    ing->idle_tail = n;
    nodes_trim(ing);
}

/* ---- conns ---------------------------------------------------------------------------------- */

static void paused_remove(struct rsre_ingest *ing, struct conn *c) {
    if (!c->paused) {
        return;
    }
    if (c->pprev) {
        c->pprev->pnext = c->pnext;
    } else {
        ing->paused = c->pnext;
    }
    if (c->pnext) {
        c->pnext->pprev = c->pprev;
    }
    c->pprev = c->pnext = NULL;
    c->paused = 0;
}

static void conn_unref(struct conn *c) {
    if (--c->refs > 0) {
        return;
    }
    struct rsre_ingest *ing = c->ing;
    struct node *n = c->node;
    free(c);
    if (n) {
        node_unref(ing, n);
    }
}

/* Ends a stream now with `code` (a message that could not be handled). */
static void conn_fail(struct conn *c, grpc_status_code code, const char *why) {
    if (c->failed) {
        return;
    }
    c->failed = 1;
    if (c->call) {
        RSRE_LOG(RSRE_LOG_INFO, "ingest", "ending stream node=%s peer=%s status=%s reason=\"%s\"",
                 c->node ? c->node->name : "-", rsre_grpc_server_call_peer(c->call),
                 rsre_grpc_status_name(code), why);
        rsre_grpc_server_cancel(c->call, code, why);
    }
}

/* ---- sending -------------------------------------------------------------------------------- */

static void send_msg(struct conn *c, const M(AggregatorMessage) * m) {
    if (c->call == NULL || c->failed) {
        return;
    }
    int rc = rsre_grpc_server_send_msg(c->call, &m->base);
    if (rc != 0) {
        RSRE_LOG(RSRE_LOG_WARN, "ingest", "cannot queue a message node=%s err=\"%s\"",
                 c->node ? c->node->name : "-", rsre_strerror(rc));
        conn_fail(c, GRPC_STATUS_UNAVAILABLE, "send queue full");
    }
}

static void send_ack(struct conn *c, const char *boot, uint64_t committed, char **ids,
                     size_t nids) {
    M(Ack) ack = ROBOT_SRE__AGENT__V1__ACK__INIT;
    ack.boot_id = (char *)boot;
    ack.committed_seq = committed;
    ack.result_request_ids = ids;
    ack.n_result_request_ids = nids;
    M(AggregatorMessage) m = ROBOT_SRE__AGENT__V1__AGGREGATOR_MESSAGE__INIT;
    m.body_case = ROBOT_SRE__AGENT__V1__AGGREGATOR_MESSAGE__BODY_ACK;
    m.ack = &ack;
    send_msg(c, &m);
    c->ing->st.acks_sent++;
}

static void send_config(struct conn *c) {
    struct rsre_ingest *ing = c->ing;
    M(ConfigUpdate) cu = ROBOT_SRE__AGENT__V1__CONFIG_UPDATE__INIT;
    cu.generation = ing->generation;
    cu.protocol_revision = RSRE_PBUF_PROTOCOL_REVISION;
    cu.action_allowlist = ing->allow;
    cu.n_action_allowlist = ing->nallow;
    M(AggregatorMessage) m = ROBOT_SRE__AGENT__V1__AGGREGATOR_MESSAGE__INIT;
    m.body_case = ROBOT_SRE__AGENT__V1__AGGREGATOR_MESSAGE__BODY_CONFIG_UPDATE;
    m.config_update = &cu;
    send_msg(c, &m);
}

/* Committed seq of `boot` for conn's node (0 if unknown). */
static uint64_t committed_of(struct conn *c, const char *boot) {
    if (c->node == NULL) {
        return 0;
    }
    struct boot *b = boot_find(&c->node->rec, boot);
    return b ? b->committed : 0;
}

/* ---- decoding into an arena ----------------------------------------------------------------- */

/*
 * Every received message is decoded into its own arena: protobuf-c allocates each sub-message,
 * string and array separately, and a malloc/free pair per field was a fifth of the ingest's
 * CPU at 100k signals/s (docs/performance.md). The arena keeps common/pbuf.h's decode budget
 * exactly (32 x length + 64 KiB, each allocation charged its size + 16 bytes), so a peer gets
 * the same RESOURCE_EXHAUSTED as before; the memory is released all at once with the message.
 */
struct arena_chunk {
    struct arena_chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

struct msg_arena {
    ProtobufCAllocator base;
    size_t budget, charged;
    int exhausted, failed;
    struct arena_chunk *head;
};

#define ARENA_ALIGN 16u

static struct arena_chunk *arena_chunk_new(struct msg_arena *a, size_t cap) {
    struct arena_chunk *ch = malloc(sizeof(*ch) + cap);
    if (ch == NULL) {
        a->failed = 1;
        return NULL;
    }
    ch->next = a->head;
    ch->cap = cap;
    ch->used = 0;
    a->head = ch;
    return ch;
}

static void *arena_alloc(void *data, size_t size) {
    struct msg_arena *a = data;
    size_t charge = size + RSRE_PBUF_ALLOC_OVERHEAD;
    if (charge < size || charge > a->budget - a->charged) {
        a->exhausted = 1;
        return NULL;
    }
    a->charged += charge;
    size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need == 0) {
        need = ARENA_ALIGN;
    }
    struct arena_chunk *ch = a->head;
    if (ch == NULL || ch->cap - ch->used < need) {
        size_t cap = ch ? ch->cap * 2 : 4096;
        size_t rest = a->budget - a->charged + need; /* never beyond what the budget allows */
        if (cap > rest) {
            cap = rest;
        }
        if (cap < need) {
            cap = need;
        }
        if ((ch = arena_chunk_new(a, cap)) == NULL) {
            return NULL;
        }
    }
    void *p = ch->data + ch->used;
    ch->used += need;
    return p;
}

static void arena_free_one(void *data, void *p) {
    (void)data; /* released with the arena */
    (void)p;
}

static void arena_release(struct msg_arena *a) {
    if (a == NULL) {
        return;
    }
    struct arena_chunk *ch = a->head;
    while (ch) {
        struct arena_chunk *next = ch->next;
        free(ch);
        ch = next;
    }
    free(a);
}

/* rsre_pbuf_unpack_agent_message() into a new arena: 0 with *m and *arena (release the arena,
 * never free the message), RSRE_ELIMIT, RSRE_EPARSE or -ENOMEM. */
static int decode_agent_message(const uint8_t *buf, size_t len, size_t max_len,
                                M(AgentMessage) * *m, struct msg_arena **arena) {
    static const uint8_t empty[1];
    *m = NULL;
    *arena = NULL;
    if (len > (max_len ? max_len : RSRE_PBUF_MAX_MESSAGE_BYTES)) {
        return RSRE_ELIMIT;
    }
    struct msg_arena *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return -ENOMEM;
    }
    a->base.alloc = arena_alloc;
    a->base.free = arena_free_one;
    a->base.allocator_data = a;
    a->budget = rsre_pbuf_decode_budget(len);
    /* Decoded structs take a few times the encoded size; one chunk usually holds them all. */
    size_t first = len * 4 + 1024;
    if (first > a->budget) {
        first = a->budget;
    }
    if (arena_chunk_new(a, (first + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1)) == NULL) {
        free(a);
        return -ENOMEM;
    }
    ProtobufCMessage *msg = rsre_pbuf_decode_fast(&robot_sre__agent__v1__agent_message__descriptor,
                                                  &a->base, len, buf ? buf : empty);
    if (msg == NULL) {
        int rc = a->exhausted ? RSRE_ELIMIT : a->failed ? -ENOMEM : RSRE_EPARSE;
        arena_release(a);
        return rc;
    }
    *m = (M(AgentMessage) *)msg;
    *arena = a;
    return 0;
}

/* ---- group commit --------------------------------------------------------------------------- */

static void item_release(struct item *it) {
    arena_release(it->arena);
    free(it->text);
    free(it->text2);
    free(it->text3);
    if (it->conn) {
        conn_unref(it->conn);
    }
    memset(it, 0, sizeof(*it));
}

static int audit(rsre_store_txn *txn, const char *verb, const char *node, int64_t now,
                 const char *reason, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int audit(rsre_store_txn *txn, const char *verb, const char *node, int64_t now,
                 const char *reason, const char *fmt, ...) {
    char object[RSRE_STORE_NODE_MAX + 8], detail[1024];
    snprintf(object, sizeof(object), "node/%s", node);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    return rsre_store_audit_append(txn, AUDIT_ACTOR, verb, object, reason, detail, now, NULL);
}

/* The working copy of `n` in this group (loading the committed record first if needed). */
static int work_of(struct rsre_ingest *ing, rsre_store_txn *txn, struct node *n,
                   struct arec **out) {
    if (n->work == NULL) {
        if (!n->loaded) {
            rsre_store_agent *a = NULL;
            int rc = rsre_store_agent_get(txn, n->name, &a);
            if (rc == 0) {
                rc = arec_from_store(&n->rec, a);
                rsre_store_agent_free(a);
            } else if (rc == RSRE_ENOTFOUND) {
                memset(&n->rec, 0, sizeof(n->rec));
                rc = 0;
            }
            if (rc != 0) {
                RSRE_LOG(RSRE_LOG_ERROR, "ingest", "cannot read agent record node=%s err=\"%s\"",
                         n->name, rsre_strerror(rc));
                return rc;
            }
            n->loaded = 1;
        }
        struct arec *w = malloc(sizeof(*w));
        if (w == NULL || arec_copy(w, &n->rec) != 0) {
            free(w);
            return -ENOMEM;
        }
        n->work = w;
        ing->touched[ing->ntouched++] = n;
    }
    *out = n->work;
    return 0;
}

/* Finds or adds `boot` in `w`; a new one is audited. */
static int boot_get(rsre_store_txn *txn, struct node *n, struct arec *w, const char *boot,
                    int64_t now, const char *why, struct item *it, struct boot **out) {
    struct boot *b = boot_find(w, boot);
    if (b == NULL) {
        int rc = audit(txn, "agent.boot_new", n->name, now, why, "boot_id=%s known_boots=%zu", boot,
                       w->nboots);
        if (rc != 0) {
            return rc;
        }
        b = boot_add(w, n->name, boot, now);
        it->newboot = 1;
    }
    *out = b;
    return 0;
}

/* Records a gap before `seq` in boot `b` (seq > committed + 1). */
static int gap(rsre_store_txn *txn, struct node *n, struct boot *b, uint64_t seq, int64_t now,
               struct item *it) {
    uint64_t from = b->committed + 1, to = seq - 1;
    it->lost = to - from + 1;
    b->lost += it->lost;
    b->gaps++;
    RSRE_LOG(RSRE_LOG_WARN, "ingest",
             "sequence gap: the agent dropped batches node=%s boot_id=%s from=%" PRIu64
             " to=%" PRIu64 " lost=%" PRIu64,
             n->name, b->id, from, to, it->lost);
    return audit(txn, "agent.gap", n->name, now,
                 "the agent dropped batches it could not keep (spool full); their signals are lost",
                 "boot_id=%s from_seq=%" PRIu64 " to_seq=%" PRIu64 " lost_batches=%" PRIu64, b->id,
                 from, to, it->lost);
}

static int apply_hello(struct rsre_ingest *ing, rsre_store_txn *txn, struct item *it, int64_t now) {
    struct conn *c = it->conn;
    struct node *n = c->node;
    const M(Hello) *h = it->msg->hello;
    struct arec *w;
    struct boot *b;
    int rc = work_of(ing, txn, n, &w);
    if (rc == 0) {
        rc = boot_get(txn, n, w, h->boot_id, now,
                      "Hello with a boot id the aggregator has not seen", it, &b);
    }
    if (rc != 0) {
        return rc;
    }
    boot_touch(w, b);
    struct hsum *s = hsum_new(h->boot_id, h->agent_version, h->kernel_boot_id, h->kernel_release,
                              h->container_runtime, it->text2, it->text3, h->actions, h->n_actions,
                              (const uint32_t *)h->capabilities, h->n_capabilities);
    if (s == NULL) {
        return -ENOMEM;
    }
    s->hello_ms = now;
    s->started_ms = h->started_unix_ms;
    s->protocol_revision = h->protocol_revision;
    s->spool_batches = h->spool ? h->spool->batches : 0;
    s->spool_dropped = h->spool ? h->spool->dropped_batches : 0;
    hsum_unref(w->hello);
    w->hello = s;
    w->hellos++;
    if (w->first_seen_ms == 0) {
        w->first_seen_ms = now;
    }
    w->last_seen_ms = now;
    if (ing->consumer.hello) {
        rc = ing->consumer.hello(ing->consumer.arg, txn, n->name, h, now);
        it->consumer_failed = rc != 0;
    }
    return rc;
}

static int apply_batch(struct rsre_ingest *ing, rsre_store_txn *txn, struct item *it, int64_t now) {
    struct node *n = it->conn->node;
    const M(SignalBatch) *sb = it->msg->signal_batch;
    struct arec *w;
    struct boot *b;
    int rc = work_of(ing, txn, n, &w);
    if (rc == 0) {
        rc = boot_get(txn, n, w, sb->boot_id, now, "first batch of a boot id not seen before", it,
                      &b);
    }
    if (rc != 0) {
        return rc;
    }
    if (sb->seq <= b->committed) {
        it->dup = 1;
        return 0;
    }
    if (sb->seq > b->committed + 1 && (rc = gap(txn, n, b, sb->seq, now, it)) != 0) {
        return rc;
    }
    if (ing->consumer.batch &&
        (rc = ing->consumer.batch(ing->consumer.arg, txn, n->name, sb, now)) != 0) {
        it->consumer_failed = 1;
        return rc;
    }
    b->committed = sb->seq;
    b->batches++;
    b->signals += sb->n_signals;
    b->last_batch_ms = now;
    boot_touch(w, b);
    w->last_seen_ms = now;
    return 0;
}

static int apply_reject(struct rsre_ingest *ing, rsre_store_txn *txn, struct item *it,
                        int64_t now) {
    struct node *n = it->conn->node;
    struct arec *w;
    struct boot *b;
    int rc = work_of(ing, txn, n, &w);
    if (rc == 0) {
        rc = boot_get(txn, n, w, it->boot, now, "first batch of a boot id not seen before", it, &b);
    }
    if (rc != 0) {
        return rc;
    }
    if (it->seq <= b->committed) {
        it->dup = 1;
        return 0;
    }
    if (it->seq > b->committed + 1 && (rc = gap(txn, n, b, it->seq, now, it)) != 0) {
        return rc;
    }
    rc = audit(txn, "agent.batch_rejected", n->name, now,
               "the batch failed validation; it was recorded and skipped, not applied",
               "boot_id=%s seq=%" PRIu64 " error=\"%s\"", it->boot, it->seq, it->text);
    if (rc != 0) {
        return rc;
    }
    b->committed = it->seq;
    b->rejected++;
    boot_touch(w, b);
    w->last_seen_ms = now;
    return 0;
}

static int apply_result(struct rsre_ingest *ing, rsre_store_txn *txn, struct item *it,
                        int64_t now) {
    struct node *n = it->conn->node;
    const M(ActionResult) *r = it->msg->action_result;
    struct arec *w;
    int rc = work_of(ing, txn, n, &w);
    if (rc != 0) {
        return rc;
    }
    if (result_seen(w, r->request_id)) {
        it->dup = 1;
        return 0;
    }
    if (ing->consumer.result &&
        (rc = ing->consumer.result(ing->consumer.arg, txn, n->name, r, now)) != 0) {
        it->consumer_failed = 1;
        return rc;
    }
    w->last_seen_ms = now;
    return result_add(w, r->request_id, now);
}

static int apply_refusal(rsre_store_txn *txn, struct item *it, int64_t now) {
    return audit(txn, "agent.identity_refused", it->text, now,
                 "the client certificate does not name the node the Hello claims",
                 "claimed_node=%s certificate_cn=%s peer=%s", it->text,
                 it->text2 && it->text2[0] ? it->text2 : "-", it->text3 ? it->text3 : "-");
}

static int apply(struct rsre_ingest *ing, rsre_store_txn *txn, struct item *it, int64_t now) {
    it->dup = it->newboot = it->consumer_failed = 0;
    it->lost = 0;
    int rc;
    switch (it->kind) {
    case IT_HELLO:
        rc = apply_hello(ing, txn, it, now);
        break;
    case IT_BATCH:
        rc = apply_batch(ing, txn, it, now);
        break;
    case IT_RESULT:
        rc = apply_result(ing, txn, it, now);
        break;
    case IT_REJECT:
        rc = apply_reject(ing, txn, it, now);
        break;
    default:
        rc = apply_refusal(txn, it, now);
        break;
    }
    return rc;
}

/* Drops the working copies (the transaction was not committed). */
static void work_discard(struct rsre_ingest *ing) {
    for (size_t i = 0; i < ing->ntouched; i++) {
        struct node *n = ing->touched[i];
        arec_free(n->work);
        free(n->work);
        n->work = NULL;
    }
    ing->ntouched = 0;
}

/* The transaction committed: the working copies become the committed records. */
static void work_promote(struct rsre_ingest *ing) {
    for (size_t i = 0; i < ing->ntouched; i++) {
        struct node *n = ing->touched[i];
        arec_free(&n->rec);
        n->rec = *n->work;
        free(n->work);
        n->work = NULL;
    }
    ing->ntouched = 0;
}

static void item_fail(struct rsre_ingest *ing, struct item *it, int rc) {
    it->failed = 1;
    if (it->conn) {
        char why[160];
        snprintf(why, sizeof(why), "could not commit: %s", rsre_strerror(rc));
        conn_fail(it->conn, GRPC_STATUS_UNAVAILABLE, why);
    }
    (void)ing;
}

/* Counts what the committed items did. */
static void count_committed(struct rsre_ingest *ing) {
    struct rsre_ingest_stats *s = &ing->st;
    for (size_t i = 0; i < ing->nitems; i++) {
        const struct item *it = &ing->items[i];
        if (it->failed) {
            continue;
        }
        s->messages_committed++;
        if (it->lost) {
            s->gaps++;
            s->lost_batches += it->lost;
        }
        switch (it->kind) {
        case IT_HELLO:
            s->hellos++;
            break;
        case IT_BATCH:
            if (it->dup) {
                s->duplicates++;
            } else {
                s->batches++;
                s->signals += it->msg->signal_batch->n_signals;
            }
            break;
        case IT_REJECT:
            if (it->dup) {
                s->duplicates++;
            } else {
                s->rejected_batches++;
            }
            break;
        case IT_RESULT:
            if (it->dup) {
                s->result_duplicates++;
            } else {
                s->results++;
            }
            break;
        default:
            break;
        }
    }
}

static void note_ack_latency(struct rsre_ingest *ing, uint64_t recv_ns, uint64_t now_ns) {
    uint64_t us = now_ns > recv_ns ? (now_ns - recv_ns) / 1000 : 0;
    ing->st.ack_us_sum += us;
    ing->st.acked_messages++;
    if (us > ing->st.ack_us_max) {
        ing->st.ack_us_max = us;
    }
}

/* After the commit: Hello answers in order, then one Ack per (stream, boot) and the results. */
static void send_acks(struct rsre_ingest *ing) {
    struct pair {
        struct conn *c;
        const char *boot;
    };
    struct pair *pairs = malloc(ing->nitems * sizeof(*pairs));
    size_t np = 0;
    uint64_t now_ns = uv_hrtime();
    for (size_t i = 0; i < ing->nitems; i++) {
        struct item *it = &ing->items[i];
        struct conn *c = it->conn;
        if (it->failed || c == NULL || c->call == NULL || c->failed) {
            continue;
        }
        note_ack_latency(ing, it->recv_ns, now_ns);
        if (it->kind == IT_HELLO) {
            send_ack(c, c->boot, committed_of(c, c->boot), NULL, 0);
            send_config(c);
            c->configured = 1;
            continue;
        }
        if (it->kind == IT_RESULT) {
            continue;
        }
        const char *boot = it->kind == IT_BATCH ? it->msg->signal_batch->boot_id : it->boot;
        size_t j = 0;
        while (j < np && !(pairs[j].c == c && strcmp(pairs[j].boot, boot) == 0)) {
            j++;
        }
        if (j == np && pairs) {
            pairs[np++] = (struct pair){c, boot};
        } else if (!pairs) {
            send_ack(c, boot, committed_of(c, boot), NULL, 0);
        }
    }
    for (size_t j = 0; j < np; j++) {
        send_ack(pairs[j].c, pairs[j].boot, committed_of(pairs[j].c, pairs[j].boot), NULL, 0);
    }
    /* Results: per stream, up to RSRE_PBUF_MAX_ACKED_RESULTS ids per Ack. */
    for (size_t i = 0; i < ing->nitems; i++) {
        struct item *it = &ing->items[i];
        struct conn *c = it->conn;
        if (it->kind != IT_RESULT || it->failed || c == NULL || c->call == NULL || c->failed ||
            it->acked) {
            continue;
        }
        char *ids[RSRE_PBUF_MAX_ACKED_RESULTS];
        size_t nids = 0;
        for (size_t k = i; k < ing->nitems; k++) {
            struct item *o = &ing->items[k];
            if (o->kind == IT_RESULT && !o->failed && o->conn == c && !o->acked) {
                ids[nids++] = o->msg->action_result->request_id;
                o->acked = 1;
                if (nids == RSRE_PBUF_MAX_ACKED_RESULTS) {
                    break;
                }
            }
        }
        send_ack(c, c->boot, committed_of(c, c->boot), ids, nids);
    }
    free(pairs);
}

static void record_commit_latency(struct rsre_ingest *ing, uint64_t us) {
    ing->st.commit_us_sum += us;
    if (us > ing->st.commit_us_max) {
        ing->st.commit_us_max = us;
    }
    size_t b = 0;
    while (b < RSRE_INGEST_LATENCY_BUCKETS - 1 && us > rsre_ingest_latency_bounds_us[b]) {
        b++;
    }
    ing->st.commit_us_bucket[b]++;
}

/*
 * Applies every queued item in one write transaction, commits, then acknowledges. An item
 * whose application fails is dropped (its stream ended) and the rest applied again in a new
 * transaction; a failure to begin, write or commit drops them all.
 */
static void group_flush(struct rsre_ingest *ing) {
    if (ing->nitems == 0 || ing->flushing) {
        return;
    }
    ing->flushing = 1;
    uv_timer_stop(&ing->group_timer);
    const struct rsre_ingest_consumer *cons = &ing->consumer;
    int done = 0;
    while (!done) {
        uint64_t t0 = uv_hrtime();
        int64_t now = wall_ms();
        rsre_store_txn *txn = NULL;
        int rc = rsre_store_txn_begin(ing->store, 0, &txn);
        if (rc != 0) {
            RSRE_LOG(RSRE_LOG_ERROR, "ingest", "cannot begin a write transaction err=\"%s\"",
                     rsre_strerror(rc));
            ing->st.commit_failures++;
            for (size_t i = 0; i < ing->nitems; i++) {
                if (!ing->items[i].failed) {
                    item_fail(ing, &ing->items[i], rc);
                }
            }
            break;
        }
        struct item *bad = NULL;
        for (size_t i = 0; i < ing->nitems && rc == 0; i++) {
            struct item *it = &ing->items[i];
            if (it->failed) {
                continue;
            }
            ing->applying = it;
            rc = apply(ing, txn, it, now);
            ing->applying = NULL;
            if (rc != 0) {
                bad = it;
            }
        }
        for (size_t i = 0; i < ing->ntouched && rc == 0; i++) {
            rc = arec_put(txn, ing->touched[i]->name, ing->touched[i]->work);
        }
        if (rc != 0) {
            rsre_store_txn_abort(txn);
            work_discard(ing);
            if (cons->aborted) {
                cons->aborted(cons->arg);
            }
            if (bad != NULL) {
                RSRE_LOG(RSRE_LOG_WARN, "ingest",
                         "message not applied; retrying the rest of the group node=%s kind=%d "
                         "err=\"%s\"",
                         bad->conn && bad->conn->node ? bad->conn->node->name : "-", bad->kind,
                         rsre_strerror(rc));
                ing->st.consumer_errors += (uint64_t)bad->consumer_failed;
                item_fail(ing, bad, rc);
                continue;
            }
            RSRE_LOG(RSRE_LOG_ERROR, "ingest", "cannot write agent records err=\"%s\"",
                     rsre_strerror(rc));
            ing->st.commit_failures++;
            for (size_t i = 0; i < ing->nitems; i++) {
                if (!ing->items[i].failed) {
                    item_fail(ing, &ing->items[i], rc);
                }
            }
            break;
        }
        rc = rsre_store_txn_commit(txn);
        uint64_t us = (uv_hrtime() - t0) / 1000;
        if (rc != 0) {
            RSRE_LOG(RSRE_LOG_ERROR, "ingest", "commit failed err=\"%s\" messages=%zu",
                     rsre_strerror(rc), ing->nitems);
            work_discard(ing);
            if (cons->aborted) {
                cons->aborted(cons->arg);
            }
            ing->st.commit_failures++;
            for (size_t i = 0; i < ing->nitems; i++) {
                if (!ing->items[i].failed) {
                    item_fail(ing, &ing->items[i], rc);
                }
            }
            break;
        }
        work_promote(ing);
        ing->st.commits++;
        record_commit_latency(ing, us);
        count_committed(ing);
        if (cons->committed) {
            cons->committed(cons->arg);
        }
        send_acks(ing);
        done = 1;
    }
    for (size_t i = 0; i < ing->nitems; i++) {
        item_release(&ing->items[i]);
    }
    ing->nitems = 0;
    ing->flushing = 0;
    nodes_trim(ing);
}

static void on_group_timer(uv_timer_t *t) {
    group_flush(t->data);
}

/* Queues an item (taking a reference on its conn); flushes when the group is full. */
static struct item *enqueue(struct rsre_ingest *ing, int kind, struct conn *c,
                            M(AgentMessage) * msg, struct msg_arena *arena) {
    struct item *it = &ing->items[ing->nitems++];
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    it->conn = c;
    it->msg = msg;
    it->arena = arena;
    it->recv_ns = uv_hrtime();
    if (c) {
        c->refs++;
    }
    return it;
}

static void enqueued(struct rsre_ingest *ing) {
    if (ing->nitems >= ing->group_max) {
        group_flush(ing);
    } else if (!uv_is_active((uv_handle_t *)&ing->group_timer)) {
        uv_timer_start(&ing->group_timer, on_group_timer, ing->group_ms, 0);
    }
}

/* ---- rate limit ----------------------------------------------------------------------------- */

static void on_throttle_timer(uv_timer_t *t);

static void throttle_arm(struct rsre_ingest *ing) {
    uint64_t next = UINT64_MAX;
    for (struct conn *c = ing->paused; c; c = c->pnext) {
        if (c->resume_ms < next) {
            next = c->resume_ms;
        }
    }
    if (next == UINT64_MAX || ing->closing) {
        uv_timer_stop(&ing->throttle_timer);
        return;
    }
    uint64_t now = uv_now(ing->loop);
    uv_timer_start(&ing->throttle_timer, on_throttle_timer, next > now ? next - now : 0, 0);
}

static void on_throttle_timer(uv_timer_t *t) {
    struct rsre_ingest *ing = t->data;
    uint64_t now = uv_now(ing->loop);
    struct conn *c = ing->paused;
    while (c) {
        struct conn *next = c->pnext;
        if (c->resume_ms <= now) {
            paused_remove(ing, c);
            if (c->call) {
                rsre_grpc_server_pause(c->call, 0);
            }
        }
        c = next;
    }
    throttle_arm(ing);
}

/* Takes a token from the node's bucket; a stream that overdraws it stops being read until the
 * bucket is back at zero. */
static void charge(struct rsre_ingest *ing, struct conn *c) {
    struct node *n = c->node;
    uint64_t now = uv_now(ing->loop);
    n->tokens += (double)(now - n->tok_ms) * ing->rate / 1000.0;
    if (n->tokens > ing->burst) {
        n->tokens = ing->burst;
    }
    n->tok_ms = now;
    n->tokens -= 1.0;
    if (n->tokens < -ing->burst) {
        n->tokens = -ing->burst;
    }
    if (n->tokens >= 0 || c->call == NULL || c->paused) {
        return;
    }
    ing->st.throttled++;
    c->resume_ms = now + (uint64_t)(-n->tokens * 1000.0 / ing->rate) + 1;
    c->paused = 1;
    c->pprev = NULL;
    c->pnext = ing->paused;
    if (ing->paused) {
        ing->paused->pprev = c;
    }
    ing->paused = c;
    rsre_grpc_server_pause(c->call, 1);
    RSRE_LOG(RSRE_LOG_DEBUG, "ingest", "slowing down node=%s for_ms=%" PRIu64, n->name,
             c->resume_ms - now);
    throttle_arm(ing);
}

/* ---- receiving ------------------------------------------------------------------------------ */

static int is_uuid(const char *s) {
    if (s == NULL || strlen(s) != UUID_LEN) {
        return 0;
    }
    for (int i = 0; i < UUID_LEN; i++) {
        char ch = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-') {
                return 0;
            }
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* 1 when this (claimed node, certificate name) refusal was not audited within
 * REFUSAL_AUDIT_MS (and remembers it now). */
static int refusal_new(struct rsre_ingest *ing, const char *node, const char *cn) {
    uint64_t key = hash_name(node ? node : "") * 31 + hash_name(cn ? cn : "");
    uint64_t now = uv_now(ing->loop);
    size_t oldest = 0;
    for (size_t i = 0; i < REFUSAL_SLOTS; i++) {
        if (ing->refusals[i].key == key && ing->refusals[i].at_ms != 0 &&
            now - ing->refusals[i].at_ms < REFUSAL_AUDIT_MS) {
            return 0;
        }
        if (ing->refusals[i].at_ms < ing->refusals[oldest].at_ms) {
            oldest = i;
        }
    }
    ing->refusals[oldest].key = key;
    ing->refusals[oldest].at_ms = now ? now : 1;
    return 1;
}

static void on_hello(struct rsre_ingest *ing, struct conn *c, M(AgentMessage) * m,
                     struct msg_arena *ar) {
    const M(Hello) *h = m->hello;
    const char *peer = rsre_grpc_server_call_peer(c->call);
    const char *cn = rsre_grpc_server_call_identity(c->call);
    if (ing->mtls && !rsre_grpc_server_call_peer_is(c->call, h->node_name)) {
        char *h_node = xstrdup(h->node_name);
        ing->st.refused_identity++;
        RSRE_LOG(RSRE_LOG_WARN, "ingest",
                 "refusing a stream: the client certificate does not name the node claimed "
                 "claimed_node=%s certificate_cn=%s peer=%s",
                 h->node_name, cn ? cn : "-", peer);
        char why[RSRE_STORE_NODE_MAX + 64];
        snprintf(why, sizeof(why), "client certificate does not name node %s", h->node_name);
        conn_fail(c, GRPC_STATUS_PERMISSION_DENIED, why);
        arena_release(ar);
        if (h_node == NULL || !refusal_new(ing, h_node, cn)) {
            free(h_node); /* audited a moment ago (or out of memory: logged above) */
            return;
        }
        struct item *it = enqueue(ing, IT_REFUSAL, NULL, NULL, NULL);
        it->text = h_node;
        it->text2 = xstrdup(cn);
        it->text3 = xstrdup(peer);
        enqueued(ing);
        return;
    }
    struct node *n = node_get(ing, h->node_name);
    if (n == NULL) {
        arena_release(ar);
        conn_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    c->hello = 1;
    snprintf(c->boot, sizeof(c->boot), "%s", h->boot_id);
    if (n->live && n->live != c) {
        ing->st.replaced++;
        RSRE_LOG(RSRE_LOG_INFO, "ingest", "a new stream replaces the old one node=%s peer=%s",
                 n->name, peer);
        conn_fail(n->live, GRPC_STATUS_ABORTED, "replaced by a newer stream for this node");
    }
    n->live = c;
    c->node = n;
    node_ref(ing, n);
    RSRE_LOG(RSRE_LOG_DEBUG, "ingest", "hello node=%s boot_id=%s peer=%s identity=%s", n->name,
             h->boot_id, peer, cn ? cn : "-");
    struct item *it = enqueue(ing, IT_HELLO, c, m, ar);
    it->text2 = xstrdup(cn);
    it->text3 = xstrdup(peer);
    charge(ing, c);
    enqueued(ing);
}

/* A SignalBatch that decoded but failed validation: recorded (and its seq passed) when its
 * boot id and seq are usable, otherwise the stream ends. */
static void on_invalid_batch(struct rsre_ingest *ing, struct conn *c, M(AgentMessage) * m,
                             struct msg_arena *ar, const char *err) {
    const M(SignalBatch) *sb = m->signal_batch;
    RSRE_LOG(RSRE_LOG_WARN, "ingest", "invalid batch node=%s err=\"%s\"", c->node->name, err);
    if (!is_uuid(sb->boot_id) || sb->seq == 0) {
        ing->st.malformed++;
        arena_release(ar);
        conn_fail(c, GRPC_STATUS_INVALID_ARGUMENT, err);
        return;
    }
    struct item *it = enqueue(ing, IT_REJECT, c, NULL, NULL);
    snprintf(it->boot, sizeof(it->boot), "%s", sb->boot_id);
    it->seq = sb->seq;
    it->text = xstrdup(err);
    arena_release(ar);
    charge(ing, c);
    enqueued(ing);
}

static void on_message(void *arg, struct rsre_grpc_server_call *call, const uint8_t *buf,
                       size_t len) {
    struct rsre_ingest *ing = arg;
    struct conn *c = rsre_grpc_server_call_data(call);
    if (c == NULL || c->failed || ing->closing) {
        return;
    }
    M(AgentMessage) *m = NULL;
    struct msg_arena *ar = NULL;
    int rc = decode_agent_message(buf, len, ing->max_message, &m, &ar);
    if (rc != 0) {
        if (rc == RSRE_ELIMIT) {
            ing->st.oversized++;
            conn_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "message too large to decode");
        } else {
            ing->st.malformed++;
            conn_fail(c, GRPC_STATUS_INVALID_ARGUMENT, "malformed protobuf");
        }
        return;
    }
    char err[RSRE_PBUF_ERR_LEN];
    rc = rsre_pbuf_validate_agent_message(m, err, sizeof(err));
    int kind = m->body_case;
    if (!c->hello || kind == ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__BODY_HELLO) {
        if (kind != ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__BODY_HELLO || c->hello) {
            ing->st.refused_protocol++;
            arena_release(ar);
            conn_fail(c, GRPC_STATUS_FAILED_PRECONDITION,
                      c->hello ? "second Hello on a stream" : "the first message must be Hello");
        } else if (rc != 0) {
            ing->st.malformed++;
            arena_release(ar);
            conn_fail(c, GRPC_STATUS_INVALID_ARGUMENT, err);
        } else {
            on_hello(ing, c, m, ar);
        }
        return;
    }
    if (kind == ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__BODY_SIGNAL_BATCH && rc != 0) {
        on_invalid_batch(ing, c, m, ar, err);
        return;
    }
    if (rc != 0) {
        if (kind == ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__BODY_ACTION_RESULT) {
            RSRE_LOG(RSRE_LOG_WARN, "ingest", "invalid action result dropped node=%s err=\"%s\"",
                     c->node->name, err);
            arena_release(ar);
            charge(ing, c);
        } else {
            ing->st.malformed++;
            arena_release(ar);
            conn_fail(c, GRPC_STATUS_INVALID_ARGUMENT, err);
        }
        return;
    }
    if (kind == ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__BODY_SIGNAL_BATCH) {
        const M(SignalBatch) *sb = m->signal_batch;
        struct node *n = c->node;
        struct boot *b = n->loaded && c->configured ? boot_find(&n->rec, sb->boot_id) : NULL;
        if (b && sb->seq <= b->committed) {
            /* Already committed: acknowledge again at once; nothing to apply. */
            ing->st.duplicates++;
            send_ack(c, b->id, b->committed, NULL, 0);
            arena_release(ar);
        } else {
            enqueue(ing, IT_BATCH, c, m, ar);
        }
    } else if (kind == ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__BODY_ACTION_RESULT) {
        enqueue(ing, IT_RESULT, c, m, ar);
    } else {
        arena_release(ar); /* a kind from a newer agent: skipped */
    }
    charge(ing, c);
    enqueued(ing);
}

static int on_call(void *arg, struct rsre_grpc_server_call *call) {
    struct rsre_ingest *ing = arg;
    if (ing->closing) {
        return GRPC_STATUS_UNAVAILABLE;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    c->ing = ing;
    c->call = call;
    c->refs = 1; /* the call's */
    c->next = ing->conns;
    if (ing->conns) {
        ing->conns->prev = c;
    }
    ing->conns = c;
    rsre_grpc_server_call_set_data(call, c);
    return 0;
}

static void on_half_close(void *arg, struct rsre_grpc_server_call *call) {
    struct rsre_ingest *ing = arg;
    group_flush(ing); /* its last messages are acknowledged before the status */
    rsre_grpc_server_finish(call, GRPC_STATUS_OK, NULL);
}

static void on_done(void *arg, struct rsre_grpc_server_call *call, int cancelled) {
    struct rsre_ingest *ing = arg;
    struct conn *c = rsre_grpc_server_call_data(call);
    (void)cancelled;
    if (c == NULL) {
        return;
    }
    c->call = NULL;
    paused_remove(ing, c);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        ing->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    if (c->node && c->node->live == c) {
        c->node->live = NULL;
    }
    conn_unref(c);
}

/* ---- public --------------------------------------------------------------------------------- */

static void free_allow(char **allow, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(allow[i]);
    }
    free(allow);
}

/* Validates and copies an allowlist. */
static int copy_allow(uint64_t generation, const char *const *list, size_t n, char ***out) {
    *out = NULL;
    if (n > RSRE_PBUF_MAX_ACTIONS) {
        return RSRE_ELIMIT;
    }
    if (n > 0 && list == NULL) {
        return -EINVAL;
    }
    M(ConfigUpdate) cu = ROBOT_SRE__AGENT__V1__CONFIG_UPDATE__INIT;
    cu.generation = generation;
    cu.protocol_revision = RSRE_PBUF_PROTOCOL_REVISION;
    cu.action_allowlist = (char **)list;
    cu.n_action_allowlist = n;
    for (size_t i = 0; i < n; i++) {
        if (list[i] == NULL) {
            return RSRE_EINVALID;
        }
    }
    char err[RSRE_PBUF_ERR_LEN];
    if (rsre_pbuf_validate(&cu.base, err, sizeof(err)) != 0) {
        RSRE_LOG(RSRE_LOG_ERROR, "ingest", "invalid action allowlist: %s", err);
        return RSRE_EINVALID;
    }
    char **a = calloc(n ? n : 1, sizeof(char *));
    if (a == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if ((a[i] = strdup(list[i])) == NULL) {
            free_allow(a, i);
            return -ENOMEM;
        }
    }
    *out = a;
    return 0;
}

int rsre_ingest_create(uv_loop_t *loop, struct rsre_grpc_loop *gl, rsre_store *store,
                       const struct rsre_ingest_config *cfg,
                       const struct rsre_ingest_consumer *consumer, struct rsre_ingest **out) {
    if (out == NULL) {
        return -EINVAL;
    }
    *out = NULL;
    if (loop == NULL || gl == NULL || store == NULL || cfg == NULL || cfg->listen_addr == NULL ||
        cfg->group_max > RSRE_INGEST_MAX_GROUP || cfg->rate_per_sec < 0 ||
        !isfinite(cfg->rate_per_sec)) {
        return -EINVAL;
    }
    struct rsre_ingest *ing = calloc(1, sizeof(*ing));
    if (ing == NULL) {
        return -ENOMEM;
    }
    ing->loop = loop;
    ing->gl = gl;
    ing->store = store;
    if (consumer) {
        ing->consumer = *consumer;
    }
    ing->max_message =
        cfg->max_message_bytes ? cfg->max_message_bytes : RSRE_PBUF_MAX_MESSAGE_BYTES;
    ing->rate = cfg->rate_per_sec > 0 ? cfg->rate_per_sec : RSRE_INGEST_DEFAULT_RATE;
    ing->burst = cfg->rate_burst ? cfg->rate_burst : RSRE_INGEST_DEFAULT_BURST;
    ing->group_max = cfg->group_max ? cfg->group_max : RSRE_INGEST_DEFAULT_GROUP_MAX;
    ing->group_ms = cfg->group_ms ? cfg->group_ms : RSRE_INGEST_DEFAULT_GROUP_MS;
    ing->generation = cfg->config_generation ? cfg->config_generation : 1;
    ing->mtls = cfg->tls_ca && cfg->tls_ca[0];
    uint32_t max_conns =
        cfg->max_connections ? cfg->max_connections : RSRE_INGEST_DEFAULT_MAX_CONNS;
    ing->node_limit = (size_t)max_conns + 1024;
    int rc =
        copy_allow(ing->generation, cfg->action_allowlist, cfg->n_action_allowlist, &ing->allow);
    if (rc != 0) {
        free(ing);
        return rc == RSRE_EINVALID || rc == RSRE_ELIMIT ? -EINVAL : rc;
    }
    ing->nallow = cfg->n_action_allowlist;
    ing->items = calloc(ing->group_max, sizeof(struct item));
    ing->touched = calloc(ing->group_max, sizeof(struct node *));
    if (ing->items == NULL || ing->touched == NULL || table_grow(ing) != 0) {
        free(ing->items);
        free(ing->touched);
        free(ing->table);
        free_allow(ing->allow, ing->nallow);
        free(ing);
        return -ENOMEM;
    }
    struct rsre_grpc_server_config scfg = {
        .addr = cfg->listen_addr,
        .tls_ca = cfg->tls_ca,
        .tls_cert = cfg->tls_cert,
        .tls_key = cfg->tls_key,
        .max_message_bytes = ing->max_message,
        .keepalive_ms = cfg->keepalive_ms,
        .min_client_ping_ms = cfg->min_client_ping_ms,
        .max_calls = max_conns,
    };
    struct rsre_grpc_server_callbacks cb = {
        .on_call = on_call,
        .on_message = on_message,
        .on_half_close = on_half_close,
        .on_done = on_done,
        .arg = ing,
    };
    rc = rsre_grpc_server_create(gl, &scfg, &cb, &ing->srv);
    if (rc != 0) {
        free(ing->items);
        free(ing->touched);
        free(ing->table);
        free_allow(ing->allow, ing->nallow);
        free(ing);
        return rc;
    }
    uv_timer_init(loop, &ing->group_timer);
    uv_timer_init(loop, &ing->throttle_timer);
    ing->group_timer.data = ing->throttle_timer.data = ing;
    ing->handles_open = 2;
    RSRE_LOG(RSRE_LOG_INFO, "ingest",
             "serving agents addr=%s port=%d identity=%s rate=%.1f/s burst=%.0f group=%u/%ums",
             cfg->listen_addr, rsre_grpc_server_port(ing->srv),
             ing->mtls ? "client-certificate" : "claimed", ing->rate, ing->burst, ing->group_max,
             ing->group_ms);
    *out = ing;
    return 0;
}

int rsre_ingest_port(const struct rsre_ingest *ing) {
    return ing && ing->srv ? rsre_grpc_server_port(ing->srv) : 0;
}

int rsre_ingest_connected(const struct rsre_ingest *ing, const char *node) {
    if (ing == NULL || node == NULL) {
        return 0;
    }
    const struct node *n = node_find(ing, node);
    return n && n->live && n->live->call && !n->live->failed;
}

int rsre_ingest_send_action(struct rsre_ingest *ing, const char *node,
                            const RobotSre__Agent__V1__ActionRequest *req) {
    if (ing == NULL || node == NULL || req == NULL) {
        return -EINVAL;
    }
    struct node *n = node_find(ing, node);
    struct conn *c = n ? n->live : NULL;
    if (c == NULL || c->call == NULL || c->failed || !c->configured || ing->closing) {
        return RSRE_ENOTFOUND;
    }
    M(AggregatorMessage) m = ROBOT_SRE__AGENT__V1__AGGREGATOR_MESSAGE__INIT;
    m.body_case = ROBOT_SRE__AGENT__V1__AGGREGATOR_MESSAGE__BODY_ACTION_REQUEST;
    m.action_request = (M(ActionRequest) *)req;
    char err[RSRE_PBUF_ERR_LEN];
    if (rsre_pbuf_validate_aggregator_message(&m, err, sizeof(err)) != 0) {
        RSRE_LOG(RSRE_LOG_ERROR, "ingest", "invalid action request node=%s err=\"%s\"", node, err);
        return RSRE_EINVALID;
    }
    int rc = rsre_grpc_server_send_msg(c->call, &m.base);
    if (rc == 0) {
        ing->st.actions_sent++;
    } else if (rc == -EPIPE) {
        rc = RSRE_ENOTFOUND;
    }
    return rc;
}

int rsre_ingest_set_config(struct rsre_ingest *ing, uint64_t generation,
                           const char *const *action_allowlist, size_t n) {
    if (ing == NULL || generation <= ing->generation) {
        return -EINVAL;
    }
    char **allow;
    int rc = copy_allow(generation, action_allowlist, n, &allow);
    if (rc != 0) {
        return rc;
    }
    free_allow(ing->allow, ing->nallow);
    ing->allow = allow;
    ing->nallow = n;
    ing->generation = generation;
    for (struct conn *c = ing->conns; c; c = c->next) {
        if (c->configured && !c->failed) {
            send_config(c);
        }
    }
    return 0;
}

void rsre_ingest_flush(struct rsre_ingest *ing) {
    if (ing) {
        group_flush(ing);
    }
}

void rsre_ingest_stats(const struct rsre_ingest *ing, struct rsre_ingest_stats *out) {
    if (ing == NULL || out == NULL) {
        return;
    }
    *out = ing->st;
    out->streams = rsre_grpc_server_calls(ing->srv);
    out->connected = 0;
    for (const struct conn *c = ing->conns; c; c = c->next) {
        if (c->node && c->node->live == c && !c->failed) {
            out->connected++;
        }
    }
}

size_t rsre_ingest_metrics(const struct rsre_ingest *ing, char *buf, size_t cap) {
    struct rsre_ingest_stats s;
    memset(&s, 0, sizeof(s));
    rsre_ingest_stats(ing, &s);
    size_t n = 0;
#define OUT(...)                                                                                   \
    do {                                                                                           \
        int w_ =                                                                                   \
            snprintf(buf && n < cap ? buf + n : NULL, buf && n < cap ? cap - n : 0, __VA_ARGS__);  \
        n += w_ > 0 ? (size_t)w_ : 0;                                                              \
    } while (0)
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } rows[] = {
#define ROW(f, t, h) {"rsre_ingest_" #f, t, h, offsetof(struct rsre_ingest_stats, f)}
        ROW(connected, "gauge", "Nodes with a live agent stream."),
        ROW(streams, "gauge", "Accepted agent streams open now."),
        ROW(hellos, "counter", "Hellos committed."),
        ROW(batches, "counter", "Signal batches applied."),
        ROW(signals, "counter", "Signals in applied batches."),
        ROW(duplicates, "counter", "Batches received again and not applied (resends)."),
        ROW(gaps, "counter", "Sequence gaps: batches an agent had to drop."),
        ROW(lost_batches, "counter", "Batches lost in those gaps."),
        ROW(rejected_batches, "counter", "Batches that failed validation (recorded, skipped)."),
        ROW(results, "counter", "Action results committed."),
        ROW(result_duplicates, "counter", "Action results received again."),
        ROW(refused_identity, "counter", "Streams refused: certificate does not name the node."),
        ROW(refused_protocol, "counter", "Streams ended: Hello missing or repeated."),
        ROW(malformed, "counter", "Streams ended: undecodable or invalid message."),
        ROW(oversized, "counter", "Streams ended: message over the size limit."),
        ROW(replaced, "counter", "Streams replaced by a newer stream of the same node."),
        ROW(throttled, "counter", "Times a node was slowed down by its rate limit."),
        ROW(commits, "counter", "Write transactions committed."),
        ROW(commit_failures, "counter", "Write transactions that could not commit."),
        ROW(consumer_errors, "counter", "Messages the consumer refused (transaction retried)."),
        ROW(messages_committed, "counter", "Messages committed."),
        ROW(actions_sent, "counter", "Action requests sent to agents."),
        ROW(acks_sent, "counter", "Acks sent."),
#undef ROW
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t v = *(const uint64_t *)((const char *)&s + rows[i].off);
        const char *suffix = strcmp(rows[i].type, "counter") == 0 ? "_total" : "";
        OUT("# HELP %s%s %s\n# TYPE %s%s %s\n%s%s %" PRIu64 "\n", rows[i].name, suffix,
            rows[i].help, rows[i].name, suffix, rows[i].type, rows[i].name, suffix, v);
    }
    OUT("# HELP rsre_ingest_commit_seconds Write transaction time, begin to durable commit.\n"
        "# TYPE rsre_ingest_commit_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t b = 0; b < RSRE_INGEST_LATENCY_BUCKETS; b++) {
        cum += s.commit_us_bucket[b];
        if (b < RSRE_INGEST_LATENCY_BUCKETS - 1) {
            OUT("rsre_ingest_commit_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                rsre_ingest_latency_bounds_us[b] / 1e6, cum);
        } else {
            OUT("rsre_ingest_commit_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
        }
    }
    OUT("rsre_ingest_commit_seconds_sum %.6f\nrsre_ingest_commit_seconds_count %" PRIu64 "\n",
        s.commit_us_sum / 1e6, cum);
    OUT("# HELP rsre_ingest_ack_seconds_max Longest receipt-to-ack time.\n"
        "# TYPE rsre_ingest_ack_seconds_max gauge\nrsre_ingest_ack_seconds_max %.6f\n",
        s.ack_us_max / 1e6);
#undef OUT
    if (buf && cap > 0 && n >= cap) {
        buf[cap - 1] = '\0';
    }
    return n;
}

static void on_handle_closed(uv_handle_t *h) {
    struct rsre_ingest *ing = h->data;
    if (--ing->handles_open > 0) {
        return;
    }
    for (size_t i = 0; i < ing->table_size; i++) {
        struct node *n = ing->table[i];
        while (n) {
            struct node *next = n->hnext;
            arec_free(&n->rec);
            free(n);
            n = next;
        }
    }
    free(ing->table);
    free(ing->items);
    free(ing->touched);
    free_allow(ing->allow, ing->nallow);
    void (*closed)(void *) = ing->closed;
    void *arg = ing->closed_arg;
    free(ing);
    if (closed) {
        closed(arg);
    }
}

static void on_server_closed(void *arg) {
    struct rsre_ingest *ing = arg;
    ing->srv = NULL;
    uv_close((uv_handle_t *)&ing->group_timer, on_handle_closed);
    uv_close((uv_handle_t *)&ing->throttle_timer, on_handle_closed);
}

void rsre_ingest_destroy(struct rsre_ingest *ing, void (*closed)(void *), void *arg) {
    if (ing == NULL) {
        if (closed) {
            closed(arg);
        }
        return;
    }
    if (ing->closing) {
        return;
    }
    group_flush(ing);
    ing->closing = 1;
    ing->closed = closed;
    ing->closed_arg = arg;
    uv_timer_stop(&ing->group_timer);
    uv_timer_stop(&ing->throttle_timer);
    RSRE_LOG(RSRE_LOG_INFO, "ingest",
             "stopping: batches=%" PRIu64 " duplicates=%" PRIu64 " gaps=%" PRIu64
             " commits=%" PRIu64,
             ing->st.batches, ing->st.duplicates, ing->st.gaps, ing->st.commits);
    rsre_grpc_server_shutdown(ing->srv, on_server_closed, ing);
}

uint64_t rsre_ingest_applying_recv_ns(const struct rsre_ingest *ing) {
    return ing && ing->applying ? ing->applying->recv_ns : 0;
}
