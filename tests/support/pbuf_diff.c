/*
 * Differential check of rsre_pbuf_decode_fast() (common/pbuf_decode.h) against protobuf-c
 * 1.4.1's protobuf_c_message_unpack(): both decode the same bytes, each through its own
 * counting allocator; they must agree on success or failure, and on success the two messages
 * must be equal field by field (values, has_ flags, oneof cases, NULL-ness of strings, bytes
 * and sub-messages, default-pointer identity of strings, unknown fields byte for byte) and
 * pack to identical bytes. Both are then freed with protobuf_c_message_free_unpacked(), and
 * every allocation must have been given back. Shared by tests/unit/test_pbuf_decode.c and
 * tests/fuzz/fuzz_pbuf_decode.c, which #include this file.
 */
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pbuf_decode.h"

/* ---- counting allocator --------------------------------------------------------------------- */

/* malloc/free that counts what is live, and can refuse allocations past a count or a byte
 * total (to exercise the failure paths). */
struct pd_alloc {
    ProtobufCAllocator base;
    size_t live;       /* allocations not yet freed */
    size_t count;      /* allocations handed out */
    size_t bytes;      /* bytes handed out */
    size_t fail_after; /* refuse the allocation after this many; SIZE_MAX: never */
    size_t max_bytes;  /* refuse past this many bytes in total; SIZE_MAX: never */
    int refused;
};

static void *pd_alloc_fn(void *data, size_t size) {
    struct pd_alloc *a = data;
    if (a->count >= a->fail_after || size > a->max_bytes - a->bytes) {
        a->refused = 1;
        return NULL;
    }
    void *p = malloc(size ? size : 1);
    if (p != NULL) {
        a->live++;
        a->count++;
        a->bytes += size;
    }
    return p;
}

static void pd_free_fn(void *data, void *p) {
    struct pd_alloc *a = data;
    if (p != NULL) {
        a->live--;
        free(p);
    }
}

static void pd_alloc_init(struct pd_alloc *a) {
    memset(a, 0, sizeof(*a));
    a->base.alloc = pd_alloc_fn;
    a->base.free = pd_free_fn;
    a->base.allocator_data = a;
    a->fail_after = SIZE_MAX;
    a->max_bytes = SIZE_MAX;
}

/* ---- deep comparison ------------------------------------------------------------------------ */

/* Where the first difference was found, for the failure message. */
static char pd_where[512];

static bool pd_fail(const char *path, const char *what) {
    snprintf(pd_where, sizeof(pd_where), "%.400s: %.100s", path, what);
    return false;
}

static size_t pd_elt_size(ProtobufCType t) {
    switch (t) {
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

static bool pd_equal_msg(const ProtobufCMessage *a, const ProtobufCMessage *b, const char *path);

/* One value of field f at pa / pb. */
static bool pd_equal_value(const ProtobufCFieldDescriptor *f, const void *pa, const void *pb,
                           const char *path) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *sa = *(char *const *)pa, *sb = *(char *const *)pb;
        if ((sa == NULL) != (sb == NULL)) {
            return pd_fail(path, "string NULL on one side only");
        }
        if (sa == NULL) {
            return true;
        }
        if (strcmp(sa, sb) != 0) {
            return pd_fail(path, "strings differ");
        }
        if ((sa == f->default_value) != (sb == f->default_value)) {
            return pd_fail(path, "string is the default pointer on one side only");
        }
        return true;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *ba = pa, *bb = pb;
        if (ba->len != bb->len || (ba->data == NULL) != (bb->data == NULL)) {
            return pd_fail(path, "bytes length or NULL-ness differ");
        }
        if (ba->len > 0 && memcmp(ba->data, bb->data, ba->len) != 0) {
            return pd_fail(path, "bytes differ");
        }
        return true;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *ma = *(ProtobufCMessage *const *)pa;
        const ProtobufCMessage *mb = *(ProtobufCMessage *const *)pb;
        if ((ma == NULL) != (mb == NULL)) {
            return pd_fail(path, "sub-message NULL on one side only");
        }
        return ma == NULL || pd_equal_msg(ma, mb, path);
    }
    default:
        if (memcmp(pa, pb, pd_elt_size(f->type)) != 0) {
            return pd_fail(path, "values differ");
        }
        return true;
    }
}

static bool pd_equal_msg(const ProtobufCMessage *a, const ProtobufCMessage *b, const char *path) {
    const ProtobufCMessageDescriptor *d = a->descriptor;
    char sub[512];
    if (b->descriptor != d) {
        return pd_fail(path, "descriptors differ");
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *ca = (const char *)a, *cb = (const char *)b;
        snprintf(sub, sizeof(sub), "%.400s.%.100s", path, f->name);
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t xa, xb;
            memcpy(&xa, ca + f->quantifier_offset, 4);
            memcpy(&xb, cb + f->quantifier_offset, 4);
            if (xa != xb) {
                return pd_fail(sub, "oneof cases differ");
            }
            if (xa == f->id && !pd_equal_value(f, ca + f->offset, cb + f->offset, sub)) {
                return false;
            }
            continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t na = *(const size_t *)(ca + f->quantifier_offset);
            size_t nb = *(const size_t *)(cb + f->quantifier_offset);
            if (na != nb) {
                return pd_fail(sub, "repeated counts differ");
            }
            const char *arr_a = *(char *const *)(ca + f->offset);
            const char *arr_b = *(char *const *)(cb + f->offset);
            size_t el = pd_elt_size(f->type);
            for (size_t k = 0; k < na; k++) {
                if (!pd_equal_value(f, arr_a + k * el, arr_b + k * el, sub)) {
                    return false;
                }
            }
            continue;
        }
        if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0) {
            protobuf_c_boolean ha = *(const protobuf_c_boolean *)(ca + f->quantifier_offset);
            protobuf_c_boolean hb = *(const protobuf_c_boolean *)(cb + f->quantifier_offset);
            if (ha != hb) {
                return pd_fail(sub, "has_ flags differ");
            }
        }
        if (!pd_equal_value(f, ca + f->offset, cb + f->offset, sub)) {
            return false;
        }
    }
    if (a->n_unknown_fields != b->n_unknown_fields) {
        return pd_fail(path, "unknown field counts differ");
    }
    for (unsigned i = 0; i < a->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *ua = &a->unknown_fields[i], *ub = &b->unknown_fields[i];
        if (ua->tag != ub->tag || ua->wire_type != ub->wire_type || ua->len != ub->len ||
            memcmp(ua->data, ub->data, ua->len) != 0) {
            return pd_fail(path, "unknown fields differ");
        }
    }
    return true;
}

/* ---- the check ------------------------------------------------------------------------------ */

enum pd_outcome {
    PD_BOTH_OK,
    PD_BOTH_REFUSED,
    PD_MISMATCH, /* pd_where says how */
};

/* Statistics of the last pd_check() that succeeded (allocation comparison). */
static size_t pd_last_fast_bytes, pd_last_pc_bytes;

/* Decodes data with both decoders and compares everything; see the file comment. */
static enum pd_outcome pd_check(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                size_t len) {
    static const uint8_t empty[1];
    struct pd_alloc pa, fa;
    pd_alloc_init(&pa);
    pd_alloc_init(&fa);
    if (data == NULL) {
        data = empty;
    }
    pd_where[0] = '\0';
    ProtobufCMessage *mp = protobuf_c_message_unpack(desc, &pa.base, len, data);
    ProtobufCMessage *mf = rsre_pbuf_decode_fast(desc, &fa.base, len, data);
    enum pd_outcome rc = PD_BOTH_REFUSED;
    if ((mp == NULL) != (mf == NULL)) {
        snprintf(pd_where, sizeof(pd_where), "%s: protobuf-c %s, fast decoder %s", desc->short_name,
                 mp ? "accepts" : "refuses", mf ? "accepts" : "refuses");
        rc = PD_MISMATCH;
    } else if (mp != NULL) {
        rc = PD_BOTH_OK;
        pd_last_fast_bytes = fa.bytes;
        pd_last_pc_bytes = pa.bytes;
        if (!pd_equal_msg(mp, mf, desc->short_name)) {
            rc = PD_MISMATCH;
        } else {
            size_t np = protobuf_c_message_get_packed_size(mp);
            size_t nf = protobuf_c_message_get_packed_size(mf);
            uint8_t *bp = malloc(np + 1), *bf = malloc(nf + 1);
            if (bp == NULL || bf == NULL) {
                abort();
            }
            if (np != nf || protobuf_c_message_pack(mp, bp) != np ||
                protobuf_c_message_pack(mf, bf) != nf || memcmp(bp, bf, np) != 0) {
                snprintf(pd_where, sizeof(pd_where), "%s: packed bytes differ", desc->short_name);
                rc = PD_MISMATCH;
            }
            free(bp);
            free(bf);
        }
    }
    protobuf_c_message_free_unpacked(mp, &pa.base);
    protobuf_c_message_free_unpacked(mf, &fa.base);
    if (rc != PD_MISMATCH && fa.live != 0) {
        snprintf(pd_where, sizeof(pd_where), "%s: fast decoder left %zu allocations live",
                 desc->short_name, fa.live);
        rc = PD_MISMATCH;
    }
    return rc;
}
