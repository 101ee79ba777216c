/*
 * A faster protobuf_c_message_unpack(): same results, same accept/refuse decisions.
 *
 * protobuf-c 1.4.1 decodes a message in three steps: it scans every field into a list of
 * "scanned members" (allocating slabs for that list through the caller's allocator once there
 * are more than 16), allocates the repeated arrays, then parses the list, looking each field up
 * by a binary search over the descriptor's field ranges and initialising every message through
 * its message_init function. This decoder decodes a message without repeated fields in one
 * pass; a message with repeated fields gets a counting pre-scan of its own members first (no
 * member list: the decoding pass re-reads the tags) so that its arrays are allocated at their
 * exact size, as protobuf-c's are. Fields are found in a per-descriptor table indexed by field
 * number, messages are initialised by copying a template, singular scalars in their own wire
 * type are decoded inline, and everything else dispatches on the field type with one switch.
 * Allocation is the same list as protobuf-c's minus its member slabs, in a different order.
 *
 * Everything protobuf-c does that shows in the result is copied rule by rule (the function
 * names below say which protobuf-c function a piece mirrors): which tags are accepted
 * (parse_tag_and_wiretype), how members are delimited, packed repeated fields accepted for any
 * packable type, bool read from whatever wire type it arrives in, strings and bytes replacing
 * earlier values, a oneof member replacing the previous one, a repeated singular sub-message
 * merged with merge_messages()'s exact rules (including its quirks), unknown fields kept with
 * their raw bytes. tests/unit/test_pbuf_decode.c checks all of it against protobuf-c itself.
 */
#include "common/pbuf_decode.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- per-descriptor index ------------------------------------------------------------------- */

/* Fields of a message with ids up to this are found by direct table lookup; others (sparse
 * numbering) by protobuf_c_message_descriptor_get_field(). */
#define DIRECT_MAX_ID 4096u
/* Messages with required fields are decoded here when they have at most this many fields
 * (the seen-bitmap lives on the stack); larger ones go to protobuf-c. */
#define MAX_REQUIRED_TRACKED 1024u

enum fkind { K_SINGLE, K_OPTIONAL, K_ONEOF, K_REPEATED };

/* Singular scalars decoded inline when they come in their own wire type. */
enum fast { F_NONE, F_U32, F_U64, F_Z32, F_Z64, F_BOOL, F_FIXED64 };

static uint8_t fast_of(const ProtobufCFieldDescriptor *fd) {
    if (fd->label == PROTOBUF_C_LABEL_REPEATED || fd->label == PROTOBUF_C_LABEL_OPTIONAL ||
        (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
        return F_NONE;
    }
    switch (fd->type) {
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_UINT32:
        return F_U32;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
        return F_U64;
    case PROTOBUF_C_TYPE_SINT32:
        return F_Z32;
    case PROTOBUF_C_TYPE_SINT64:
        return F_Z64;
    case PROTOBUF_C_TYPE_BOOL:
        return F_BOOL;
    case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return F_FIXED64;
    default:
        return F_NONE;
    }
}

struct finfo {
    uint32_t id;
    uint8_t type;        /* ProtobufCType */
    uint8_t kind;        /* enum fkind */
    uint8_t packed_path; /* a length-delimited member is a packed array (PACKED or packable) */
    uint8_t required;    /* LABEL_REQUIRED without a default: must be present */
    uint8_t fast;        /* enum fast: short path of a singular scalar, in the main loop */
    uint16_t index;      /* in the descriptor's fields */
    uint32_t offset;
    uint32_t qoffset;
    uint32_t elt_size;
    const struct minfo *sub; /* message fields */
    const ProtobufCFieldDescriptor *fd;
};

struct minfo {
    const ProtobufCMessageDescriptor *desc;
    const struct minfo *next; /* published list */
    struct finfo *fields;
    unsigned n_fields;
    uint32_t table_len;  /* entries in slots; 0: no table */
    struct finfo *slots; /* by field id: a copy of the field's entry (fd NULL: no such field) */
    uint16_t *repeated;  /* indexes of repeated fields */
    unsigned n_repeated;
    unsigned n_required;
    void *init;   /* the message after protobuf_c_message_init() */
    int fallback; /* decode with protobuf_c_message_unpack() */
};

static _Atomic(const struct minfo *) published;
static pthread_mutex_t build_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t elt_size(ProtobufCType t) {
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

static int packable(ProtobufCType t) {
    return t != PROTOBUF_C_TYPE_STRING && t != PROTOBUF_C_TYPE_BYTES &&
           t != PROTOBUF_C_TYPE_MESSAGE;
}

static const struct minfo *find_in(const struct minfo *list, const ProtobufCMessageDescriptor *d) {
    for (const struct minfo *m = list; m != NULL; m = m->next) {
        if (m->desc == d) {
            return m;
        }
    }
    return NULL;
}

static void minfo_free(struct minfo *m) {
    if (m != NULL) {
        free(m->fields);
        free(m->slots);
        free(m->repeated);
        free(m->init);
        free(m);
    }
}

/* Builds the index of `d` and (recursively) of every message type it reaches, appending new
 * entries to *pending (not yet published). Caller holds build_lock. NULL on malloc failure. */
static struct minfo *build(const ProtobufCMessageDescriptor *d, struct minfo **pending) {
    const struct minfo *have = find_in(atomic_load_explicit(&published, memory_order_acquire), d);
    if (have == NULL) {
        have = find_in(*pending, d);
    }
    if (have != NULL) {
        return (struct minfo *)have;
    }
    struct minfo *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    m->desc = d;
    m->next = *pending;
    *pending = m;
    if (d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC || d->n_fields > UINT16_MAX - 1) {
        m->fallback = 1;
        return m;
    }
    m->n_fields = d->n_fields;
    m->fields = calloc(d->n_fields ? d->n_fields : 1, sizeof(*m->fields));
    m->repeated = calloc(d->n_fields ? d->n_fields : 1, sizeof(*m->repeated));
    m->init = malloc(d->sizeof_message ? d->sizeof_message : 1);
    if (m->fields == NULL || m->repeated == NULL || m->init == NULL) {
        return NULL;
    }
    protobuf_c_message_init(d, m->init);
    uint32_t max_id = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        struct finfo *f = &m->fields[i];
        f->id = fd->id;
        f->type = (uint8_t)fd->type;
        f->offset = fd->offset;
        f->qoffset = fd->quantifier_offset;
        f->elt_size = (uint32_t)elt_size(fd->type);
        f->packed_path = (fd->flags & PROTOBUF_C_FIELD_FLAG_PACKED) || packable(fd->type);
        f->fd = fd;
        f->fast = fast_of(fd);
        f->index = (uint16_t)i;
        switch (fd->label) {
        case PROTOBUF_C_LABEL_REPEATED:
            f->kind = K_REPEATED;
            m->repeated[m->n_repeated++] = (uint16_t)i;
            break;
        case PROTOBUF_C_LABEL_OPTIONAL:
            f->kind = K_OPTIONAL;
            break;
        case PROTOBUF_C_LABEL_REQUIRED:
            f->kind = K_SINGLE;
            if (fd->default_value == NULL) {
                f->required = 1;
                m->n_required++;
            }
            break;
        default:
            f->kind = (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ? K_ONEOF : K_SINGLE;
            break;
        }
        if (fd->id > max_id) {
            max_id = fd->id;
        }
    }
    if (m->n_required > 0 && d->n_fields > MAX_REQUIRED_TRACKED) {
        m->fallback = 1;
        return m;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE) {
            m->fields[i].sub = build(d->fields[i].descriptor, pending);
            if (m->fields[i].sub == NULL) {
                return NULL;
            }
        }
    }
    if (max_id <= DIRECT_MAX_ID) {
        m->table_len = max_id + 1;
        m->slots = calloc(m->table_len, sizeof(*m->slots));
        if (m->slots == NULL) {
            return NULL;
        }
        for (unsigned i = d->n_fields; i-- > 0;) {
            /* First field of an id wins, as with protobuf-c's range lookup. */
            m->slots[d->fields[i].id] = m->fields[i];
        }
    }
    return m;
}

/* The index of `d`, built on first use. NULL only when malloc fails while building it. */
static const struct minfo *index_of(const ProtobufCMessageDescriptor *d) {
    const struct minfo *m = find_in(atomic_load_explicit(&published, memory_order_acquire), d);
    if (m != NULL) {
        return m;
    }
    pthread_mutex_lock(&build_lock);
    struct minfo *pending = NULL;
    struct minfo *built = build(d, &pending);
    if (built == NULL) {
        while (pending != NULL) {
            struct minfo *next = (struct minfo *)pending->next;
            minfo_free(pending);
            pending = next;
        }
    } else if (pending != NULL) {
        /* The new entries form a NULL-terminated chain: hang the published list after it and
         * publish the whole chain with one store. */
        struct minfo *last = pending;
        while (last->next != NULL) {
            last = (struct minfo *)last->next;
        }
        last->next = atomic_load_explicit(&published, memory_order_relaxed);
        atomic_store_explicit(&published, pending, memory_order_release);
    }
    pthread_mutex_unlock(&build_lock);
    return built;
}

/* ---- wire primitives (protobuf-c's rules) --------------------------------------------------- */

static inline void *do_alloc(ProtobufCAllocator *a, size_t n) {
    return a->alloc(a->allocator_data, n);
}

static inline void do_free(ProtobufCAllocator *a, void *p) {
    if (p != NULL) {
        a->free(a->allocator_data, p);
    }
}

static void *sys_alloc(void *d, size_t n) {
    (void)d;
    return malloc(n);
}

static void sys_free(void *d, void *p) {
    (void)d;
    free(p);
}

static ProtobufCAllocator sys_allocator = {sys_alloc, sys_free, NULL};

/* parse_tag_and_wiretype(): a first byte without field-number bits and without a continuation
 * bit is refused (field 0); at most 5 bytes; bits past 32 are dropped. 0: malformed. */
static inline size_t parse_tag(const uint8_t *p, size_t rem, uint32_t *tag, unsigned *wt) {
    uint8_t b0 = p[0];
    if ((b0 & 0xf8) == 0) {
        return 0;
    }
    *wt = b0 & 7;
    if (!(b0 & 0x80)) {
        *tag = b0 >> 3;
        return 1;
    }
    uint32_t t = (uint32_t)(b0 & 0x7f) >> 3;
    unsigned shift = 4;
    size_t max = rem > 5 ? 5 : rem;
    for (size_t i = 1; i < max; i++) {
        if (p[i] & 0x80) {
            t |= (uint32_t)(p[i] & 0x7f) << shift;
            shift += 7;
        } else {
            t |= (uint32_t)p[i] << shift;
            *tag = t;
            return i + 1;
        }
    }
    return 0;
}

/* The length of the member after its tag (including a length prefix, whose size goes to
 * *pref), or 0 when it is truncated, an unterminated or over-long varint, or an unsupported
 * wire type (3, 4: groups; 6, 7). */
static inline size_t member_len(const uint8_t *p, size_t rem, unsigned wt, size_t *pref) {
    switch (wt) {
    case PROTOBUF_C_WIRE_TYPE_VARINT: {
        size_t max = rem < 10 ? rem : 10;
        for (size_t i = 0; i < max; i++) {
            if (!(p[i] & 0x80)) {
                return i + 1;
            }
        }
        return 0;
    }
    case PROTOBUF_C_WIRE_TYPE_64BIT:
        return rem < 8 ? 0 : 8;
    case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED: {
        size_t max = rem < 5 ? rem : 5;
        size_t val = 0;
        unsigned shift = 0;
        for (size_t i = 0; i < max; i++) {
            val |= ((size_t)p[i] & 0x7f) << shift;
            shift += 7;
            if (!(p[i] & 0x80)) {
                size_t hdr = i + 1;
                if (val > INT_MAX || hdr + val > rem) {
                    return 0;
                }
                *pref = hdr;
                return hdr + val;
            }
        }
        return 0;
    }
    case PROTOBUF_C_WIRE_TYPE_32BIT:
        return rem < 4 ? 0 : 4;
    default:
        return 0;
    }
}

/* scan_varint(): length of a varint of at most 10 bytes, 0 if none. */
static inline size_t scan_varint(const uint8_t *p, size_t rem) {
    size_t max = rem < 10 ? rem : 10;
    for (size_t i = 0; i < max; i++) {
        if (!(p[i] & 0x80)) {
            return i + 1;
        }
    }
    return 0;
}

/* parse_uint64(): little-endian base-128, bits past 64 dropped. */
static inline uint64_t varint64(const uint8_t *p, size_t len) {
    uint64_t v = p[0] & 0x7f;
    if (len == 1) {
        return v;
    }
    unsigned shift = 7;
    for (size_t i = 1; i < len; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << shift;
        shift += 7;
    }
    return v;
}

static inline uint32_t unzigzag32(uint32_t v) {
    return (v >> 1) ^ (uint32_t)(-(int32_t)(v & 1));
}

static inline uint64_t unzigzag64(uint64_t v) {
    return (v >> 1) ^ (uint64_t)(-(int64_t)(v & 1));
}

/* parse_boolean(): true when any of the member's bytes has a non-zero low 7 bits. */
static inline protobuf_c_boolean parse_bool(const uint8_t *p, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (p[i] & 0x7f) {
            return 1;
        }
    }
    return 0;
}

/* count_packed_elements(): elements a packed member of `type` will hold (for the allocation);
 * false for lengths that are not a multiple of a fixed size, or a non-packable type. */
static bool count_packed(ProtobufCType type, const uint8_t *p, size_t len, size_t *count) {
    switch (type) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        if (len % 4 != 0) {
            return false;
        }
        *count = len / 4;
        return true;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        if (len % 8 != 0) {
            return false;
        }
        *count = len / 8;
        return true;
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_UINT64: {
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
            n += !(p[i] & 0x80);
        }
        *count = n;
        return true;
    }
    case PROTOBUF_C_TYPE_BOOL:
        *count = len;
        return true;
    default:
        return false;
    }
}

static inline const struct finfo *lookup(const struct minfo *m, uint32_t id) {
    if (id < m->table_len) {
        const struct finfo *f = &m->slots[id];
        return f->fd != NULL ? f : NULL;
    }
    if (m->table_len != 0) {
        return NULL;
    }
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(m->desc, id);
    return fd ? &m->fields[fd - m->desc->fields] : NULL;
}

#define AT(type, msg, off) ((type *)((char *)(msg) + (off)))

/* The 32 bits at p, read as protobuf-c's merge reads a "case" word (sometimes the first word
 * of a message: see merge()). */
static inline uint32_t load32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ---- merging (merge_messages()) ------------------------------------------------------------- */

/*
 * protobuf-c's merge of an earlier occurrence of a singular sub-message into the later one,
 * rule for rule: repeated fields concatenated (earlier first), a sub-message present in both
 * merged recursively, a string/bytes/optional scalar/oneof taken from the earlier message only
 * when the later one lacks it. Its quirks are kept on purpose: a proto3 scalar (no presence,
 * quantifier_offset 0) compares the two messages' first words, which are equal, so the later
 * value always wins (even 0), and a oneof unset in both messages fails the merge (and so the
 * decode). Unknown fields of the earlier message are dropped with it.
 */
static bool merge(ProtobufCMessage *earlier, ProtobufCMessage *latter, ProtobufCAllocator *a) {
    const ProtobufCMessageDescriptor *d = latter->descriptor;
    const ProtobufCFieldDescriptor *fields = d->fields;
    for (unsigned i = 0; i < d->n_fields; i++) {
        if (fields[i].label == PROTOBUF_C_LABEL_REPEATED) {
            size_t *n_e = AT(size_t, earlier, fields[i].quantifier_offset);
            uint8_t **p_e = AT(uint8_t *, earlier, fields[i].offset);
            size_t *n_l = AT(size_t, latter, fields[i].quantifier_offset);
            uint8_t **p_l = AT(uint8_t *, latter, fields[i].offset);
            if (*n_e > 0) {
                if (*n_l > 0) {
                    size_t el = elt_size(fields[i].type);
                    uint8_t *nf = do_alloc(a, (*n_e + *n_l) * el);
                    if (nf == NULL) {
                        return false;
                    }
                    memcpy(nf, *p_e, *n_e * el);
                    memcpy(nf + *n_e * el, *p_l, *n_l * el);
                    do_free(a, *p_l);
                    do_free(a, *p_e);
                    *p_l = nf;
                    *n_l = *n_e + *n_l;
                } else {
                    *n_l = *n_e;
                    *p_l = *p_e;
                }
                *n_e = 0;
                *p_e = NULL;
            }
        } else if (fields[i].label == PROTOBUF_C_LABEL_OPTIONAL ||
                   fields[i].label == PROTOBUF_C_LABEL_NONE) {
            const ProtobufCFieldDescriptor *field;
            char *e_case = AT(char, earlier, fields[i].quantifier_offset);
            char *l_case = AT(char, latter, fields[i].quantifier_offset);
            bool need = false;
            if (fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                if (load32(l_case) != 0) {
                    continue;
                }
                field = protobuf_c_message_descriptor_get_field(d, load32(e_case));
                if (field == NULL) {
                    return false;
                }
            } else {
                field = &fields[i];
            }
            void *e_elem = AT(char, earlier, field->offset);
            void *l_elem = AT(char, latter, field->offset);
            const void *def = field->default_value;
            switch (field->type) {
            case PROTOBUF_C_TYPE_MESSAGE: {
                ProtobufCMessage *em = *(ProtobufCMessage **)e_elem;
                ProtobufCMessage *lm = *(ProtobufCMessage **)l_elem;
                if (em != NULL) {
                    if (lm != NULL) {
                        if (!merge(em, lm, a)) {
                            return false;
                        }
                    } else {
                        need = true;
                    }
                }
                break;
            }
            case PROTOBUF_C_TYPE_BYTES: {
                uint8_t *e_data = ((ProtobufCBinaryData *)e_elem)->data;
                uint8_t *l_data = ((ProtobufCBinaryData *)l_elem)->data;
                const ProtobufCBinaryData *d_bd = def;
                need = (e_data != NULL && (d_bd == NULL || e_data != d_bd->data)) &&
                       (l_data == NULL || (d_bd != NULL && l_data == d_bd->data));
                break;
            }
            case PROTOBUF_C_TYPE_STRING: {
                char *e_str = *(char **)e_elem;
                char *l_str = *(char **)l_elem;
                need = e_str != (const char *)def && l_str == (const char *)def;
                break;
            }
            default:
                need = load32(e_case) != 0 && load32(l_case) == 0;
                break;
            }
            if (need) {
                size_t el = elt_size(field->type);
                memcpy(l_elem, e_elem, el);
                memset(e_elem, 0, el);
                if (field->quantifier_offset != 0) {
                    memcpy(l_case, e_case, 4);
                    memset(e_case, 0, 4);
                }
            }
        }
    }
    return true;
}

/* ---- decoding ------------------------------------------------------------------------------- */

static ProtobufCMessage *decode_msg(const struct minfo *m, ProtobufCAllocator *a, size_t len,
                                    const uint8_t *data, unsigned depth);

/*
 * parse_required_member(): decodes one member (p: the bytes after the tag, len of them, pref
 * of which are a length prefix) into `member`. maybe_clear: a previous string/bytes/message
 * value there is replaced (freed, or for a message merged into the new one). False on a wire
 * type that does not fit the field, a bad sub-message, or an allocation failure.
 */
static bool parse_one(const struct finfo *f, ProtobufCAllocator *a, unsigned wt, const uint8_t *p,
                      size_t len, size_t pref, void *member, bool maybe_clear, unsigned depth) {
    switch ((ProtobufCType)f->type) {
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_UINT32:
        if (wt != PROTOBUF_C_WIRE_TYPE_VARINT) {
            return false;
        }
        *(uint32_t *)member = (uint32_t)varint64(p, len);
        return true;
    case PROTOBUF_C_TYPE_SINT32:
        if (wt != PROTOBUF_C_WIRE_TYPE_VARINT) {
            return false;
        }
        *(uint32_t *)member = unzigzag32((uint32_t)varint64(p, len));
        return true;
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        if (wt != PROTOBUF_C_WIRE_TYPE_32BIT) {
            return false;
        }
        memcpy(member, p, 4);
        return true;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
        if (wt != PROTOBUF_C_WIRE_TYPE_VARINT) {
            return false;
        }
        *(uint64_t *)member = varint64(p, len);
        return true;
    case PROTOBUF_C_TYPE_SINT64:
        if (wt != PROTOBUF_C_WIRE_TYPE_VARINT) {
            return false;
        }
        *(uint64_t *)member = unzigzag64(varint64(p, len));
        return true;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        if (wt != PROTOBUF_C_WIRE_TYPE_64BIT) {
            return false;
        }
        memcpy(member, p, 8);
        return true;
    case PROTOBUF_C_TYPE_BOOL:
        /* protobuf-c checks no wire type here: all member bytes count, a length prefix too. */
        *(protobuf_c_boolean *)member = parse_bool(p, len);
        return true;
    case PROTOBUF_C_TYPE_STRING: {
        if (wt != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
            return false;
        }
        char **ps = member;
        if (maybe_clear && *ps != NULL && *ps != (const char *)f->fd->default_value) {
            do_free(a, *ps);
        }
        size_t n = len - pref;
        char *s = do_alloc(a, n + 1);
        *ps = s;
        if (s == NULL) {
            return false;
        }
        memcpy(s, p + pref, n);
        s[n] = '\0';
        return true;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (wt != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
            return false;
        }
        ProtobufCBinaryData *bd = member;
        const ProtobufCBinaryData *def = f->fd->default_value;
        if (maybe_clear && bd->data != NULL && (def == NULL || bd->data != def->data)) {
            do_free(a, bd->data);
        }
        size_t n = len - pref;
        if (n > 0) {
            bd->data = do_alloc(a, n);
            if (bd->data == NULL) {
                return false;
            }
            memcpy(bd->data, p + pref, n);
        } else {
            bd->data = NULL;
        }
        bd->len = n;
        return true;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (wt != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
            return false;
        }
        ProtobufCMessage **pm = member;
        ProtobufCMessage *sub = decode_msg(f->sub, a, len - pref, p + pref, depth + 1);
        bool merged = true;
        if (maybe_clear && *pm != NULL && *pm != f->fd->default_value) {
            if (sub != NULL) {
                merged = merge(*pm, sub, a);
            }
            protobuf_c_message_free_unpacked(*pm, a);
        }
        *pm = sub;
        return sub != NULL && merged;
    }
    }
    return false;
}

/* parse_packed_repeated_member(): appends the elements of a packed member to the array. */
static bool parse_packed(const struct finfo *f, ProtobufCMessage *msg, const uint8_t *p,
                         size_t rem) {
    if (rem == 0) {
        return true; /* an empty packed member: nothing to add (and maybe no array) */
    }
    size_t *pn = AT(size_t, msg, f->qoffset);
    char *arr = *AT(char *, msg, f->offset) + (size_t)f->elt_size * *pn;
    size_t count = 0;
    switch ((ProtobufCType)f->type) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        count = rem / f->elt_size;
        memcpy(arr, p, count * f->elt_size);
        break;
    default:
        while (rem > 0) {
            size_t s = scan_varint(p, rem);
            if (s == 0) {
                return false;
            }
            switch ((ProtobufCType)f->type) {
            case PROTOBUF_C_TYPE_ENUM:
            case PROTOBUF_C_TYPE_INT32:
            case PROTOBUF_C_TYPE_UINT32:
                ((uint32_t *)arr)[count] = (uint32_t)varint64(p, s);
                break;
            case PROTOBUF_C_TYPE_SINT32:
                ((uint32_t *)arr)[count] = unzigzag32((uint32_t)varint64(p, s));
                break;
            case PROTOBUF_C_TYPE_SINT64:
                ((uint64_t *)arr)[count] = unzigzag64(varint64(p, s));
                break;
            case PROTOBUF_C_TYPE_INT64:
            case PROTOBUF_C_TYPE_UINT64:
                ((uint64_t *)arr)[count] = varint64(p, s);
                break;
            case PROTOBUF_C_TYPE_BOOL:
                ((protobuf_c_boolean *)arr)[count] = parse_bool(p, s);
                break;
            default:
                return false;
            }
            count++;
            p += s;
            rem -= s;
        }
        break;
    }
    *pn += count;
    return true;
}

/* Frees what a oneof member currently holds (parse_oneof_member()) and clears it. */
static bool oneof_clear(const struct minfo *m, ProtobufCAllocator *a, uint32_t set, void *member) {
    const struct finfo *old = lookup(m, set);
    if (old == NULL) {
        return false;
    }
    switch ((ProtobufCType)old->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char *s = *(char **)member;
        if (s != NULL && s != (const char *)old->fd->default_value) {
            do_free(a, s);
        }
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *bd = member;
        const ProtobufCBinaryData *def = old->fd->default_value;
        if (bd->data != NULL && (def == NULL || bd->data != def->data)) {
            do_free(a, bd->data);
        }
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *sm = *(ProtobufCMessage **)member;
        if (sm != NULL && sm != old->fd->default_value) {
            protobuf_c_message_free_unpacked(sm, a);
        }
        break;
    }
    default:
        break;
    }
    memset(member, 0, old->elt_size);
    return true;
}

/* cont_bits[k]: the continuation bits of the first k bytes of a varint, at their positions in
 * the sum of the bytes shifted into place (bits 7, 14, ..., 7k). */
static const uint64_t cont_bits[10] = {UINT64_C(0x0),
                                       UINT64_C(0x80),
                                       UINT64_C(0x4080),
                                       UINT64_C(0x204080),
                                       UINT64_C(0x10204080),
                                       UINT64_C(0x810204080),
                                       UINT64_C(0x40810204080),
                                       UINT64_C(0x2040810204080),
                                       UINT64_C(0x102040810204080),
                                       UINT64_C(0x8102040810204080)};

/* A varint of at most 10 bytes at p (rem bytes left): its length, 0 if unterminated. One pass
 * that decodes while it looks for the end (same value as scan_varint() + varint64()). */
static inline size_t get_varint(const uint8_t *p, size_t rem, uint64_t *v) {
    if (rem >= 10) {
        /* Unrolled; each step adds the byte with its continuation bit and takes the bit back
         * out when it is set (arithmetic modulo 2^64, so bits past 64 drop as with masks). */
        uint64_t r = p[0], b;
        if (r < 0x80) {
            *v = r;
            return 1;
        }
#define VARINT_STEP(k)                                                                             \
    b = p[k];                                                                                      \
    r += b << (7 * (k));                                                                           \
    if (b < 0x80) {                                                                                \
        *v = r - cont_bits[k];                                                                     \
        return (k) + 1;                                                                            \
    }
        VARINT_STEP(1)
        VARINT_STEP(2)
        VARINT_STEP(3)
        VARINT_STEP(4)
        VARINT_STEP(5)
        VARINT_STEP(6)
        VARINT_STEP(7)
        VARINT_STEP(8)
        VARINT_STEP(9)
#undef VARINT_STEP
        return 0;
    }
    size_t max = rem < 10 ? rem : 10;
    uint64_t r = 0;
    for (size_t i = 0; i < max; i++) {
        uint8_t b = p[i];
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (b < 0x80) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

/* Unknown members from p to the end (framing checked), 0 on a framing error. */
static size_t count_unknown(const struct minfo *m, const uint8_t *p, size_t rem) {
    size_t n = 0;
    while (rem > 0) {
        uint32_t tag = 0;
        unsigned wt = 0;
        size_t used = parse_tag(p, rem, &tag, &wt);
        if (used == 0) {
            return 0;
        }
        size_t pref = 0;
        size_t ml = member_len(p + used, rem - used, wt, &pref);
        if (ml == 0) {
            return 0;
        }
        n += lookup(m, tag) == NULL;
        p += used + ml;
        rem -= used + ml;
    }
    return n;
}

/*
 * Decodes one member of the known field f (p: the bytes after its tag, rem of them) into msg.
 * Returns the bytes consumed, 0 when protobuf-c would refuse it. Scalars of singular fields in
 * their expected wire type take the short paths at the top.
 */
static inline size_t parse_field(const struct minfo *m, const struct finfo *f,
                                 ProtobufCMessage *msg, ProtobufCAllocator *a, unsigned wt,
                                 const uint8_t *p, size_t rem, unsigned depth) {
    void *member = AT(char, msg, f->offset);
    if (f->fast != F_NONE) {
        if (wt == PROTOBUF_C_WIRE_TYPE_VARINT) {
            uint64_t v;
            size_t n = get_varint(p, rem, &v);
            if (n == 0) {
                return 0;
            }
            switch ((enum fast)f->fast) {
            case F_U32:
                *(uint32_t *)member = (uint32_t)v;
                return n;
            case F_U64:
                *(uint64_t *)member = v;
                return n;
            case F_Z32:
                *(uint32_t *)member = unzigzag32((uint32_t)v);
                return n;
            case F_Z64:
                *(uint64_t *)member = unzigzag64(v);
                return n;
            case F_BOOL:
                *(protobuf_c_boolean *)member = parse_bool(p, n);
                return n;
            default:
                return 0; /* a fixed-size field as a varint */
            }
        }
        if (wt == PROTOBUF_C_WIRE_TYPE_64BIT && f->fast == F_FIXED64 && rem >= 8) {
            memcpy(member, p, 8);
            return 8;
        }
    }
    size_t pref = 0;
    size_t ml = member_len(p, rem, wt, &pref);
    if (ml == 0) {
        return 0;
    }
    switch ((enum fkind)f->kind) {
    case K_SINGLE:
        return parse_one(f, a, wt, p, ml, pref, member, true, depth) ? ml : 0;
    case K_OPTIONAL:
        if (!parse_one(f, a, wt, p, ml, pref, member, true, depth)) {
            return 0;
        }
        if (f->qoffset != 0) {
            *AT(protobuf_c_boolean, msg, f->qoffset) = 1;
        }
        return ml;
    case K_ONEOF: {
        uint32_t *pcase = AT(uint32_t, msg, f->qoffset);
        if (*pcase != 0 && !oneof_clear(m, a, *pcase, member)) {
            return 0;
        }
        if (!parse_one(f, a, wt, p, ml, pref, member, true, depth)) {
            return 0;
        }
        *pcase = f->id;
        return ml;
    }
    case K_REPEATED:
        if (wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED && f->packed_path) {
            return parse_packed(f, msg, p + pref, ml - pref) ? ml : 0;
        } else {
            size_t *pn = AT(size_t, msg, f->qoffset);
            char *slot = *(char **)member + (size_t)f->elt_size * *pn;
            if (!parse_one(f, a, wt, p, ml, pref, slot, false, depth)) {
                return 0;
            }
            *pn += 1;
            return ml;
        }
    }
    return 0;
}

/*
 * Decodes one message. A message with repeated fields first gets a counting pre-scan (framing
 * of every member checked, repeated elements and unknown fields counted) and its arrays
 * allocated at their exact size; then one pass decodes the values. A message without repeated
 * fields is decoded in that one pass alone, its unknown-field array allocated (at its exact
 * size, counted from there) when the first unknown field turns up. Returns NULL (with
 * everything freed) where protobuf_c_message_unpack() would.
 */
static ProtobufCMessage *decode_msg(const struct minfo *m, ProtobufCAllocator *a, size_t len,
                                    const uint8_t *data, unsigned depth) {
    if (m->fallback) {
        return protobuf_c_message_unpack(m->desc, a, len, data);
    }
    if (depth > RSRE_PBUF_DECODE_MAX_DEPTH) {
        return NULL;
    }
    const ProtobufCMessageDescriptor *d = m->desc;
    ProtobufCMessage *msg = do_alloc(a, d->sizeof_message);
    if (msg == NULL) {
        return NULL;
    }
    memcpy(msg, m->init, d->sizeof_message);

    const uint8_t *p = data;
    size_t rem = len;
    if (m->n_repeated > 0) {
        /* Pre-scan: framing, counts (kept in the n_ fields until the arrays exist). */
        size_t n_unknown = 0;
        while (rem > 0) {
            uint32_t tag = 0;
            unsigned wt = 0;
            size_t used = parse_tag(p, rem, &tag, &wt);
            if (used == 0) {
                goto fail_scan;
            }
            p += used;
            rem -= used;
            size_t pref = 0;
            size_t ml = member_len(p, rem, wt, &pref);
            if (ml == 0) {
                goto fail_scan;
            }
            const struct finfo *f = lookup(m, tag);
            if (f == NULL) {
                n_unknown++;
            } else if (f->kind == K_REPEATED) {
                size_t *pn = AT(size_t, msg, f->qoffset);
                if (wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED && f->packed_path) {
                    size_t c;
                    if (!count_packed((ProtobufCType)f->type, p + pref, ml - pref, &c)) {
                        goto fail_scan;
                    }
                    *pn += c;
                } else {
                    *pn += 1;
                }
            }
            p += ml;
            rem -= ml;
        }
        for (unsigned r = 0; r < m->n_repeated; r++) {
            const struct finfo *f = &m->fields[m->repeated[r]];
            size_t *pn = AT(size_t, msg, f->qoffset);
            if (*pn != 0) {
                size_t n = *pn;
                *pn = 0;
                void *arr = do_alloc(a, (size_t)f->elt_size * n);
                if (arr == NULL) {
                    for (unsigned s = r + 1; s < m->n_repeated; s++) {
                        *AT(size_t, msg, m->fields[m->repeated[s]].qoffset) = 0;
                    }
                    goto fail;
                }
                *AT(void *, msg, f->offset) = arr;
            }
        }
        if (n_unknown > 0) {
            msg->unknown_fields = do_alloc(a, n_unknown * sizeof(ProtobufCMessageUnknownField));
            if (msg->unknown_fields == NULL) {
                goto fail;
            }
        }
        p = data;
        rem = len;
    }

    uint64_t seen[MAX_REQUIRED_TRACKED / 64];
    if (m->n_required > 0) {
        memset(seen, 0, sizeof(seen));
    }
    /* Locals: stores into the message could alias the index as far as the compiler knows. */
    const uint32_t table_len = m->table_len;
    const struct finfo *const slots = m->slots;
    while (rem > 0) {
        uint32_t tag = 0;
        unsigned wt = 0;
        size_t used;
        uint8_t b0 = p[0];
        if (b0 < 0x80 && b0 >= 0x08) {
            tag = b0 >> 3;
            wt = b0 & 7;
            used = 1;
        } else {
            used = parse_tag(p, rem, &tag, &wt);
            if (used == 0) {
                goto fail;
            }
        }
        const struct finfo *f;
        if (tag < table_len) {
            f = &slots[tag];
            f = f->fd != NULL ? f : NULL;
        } else {
            f = lookup(m, tag);
        }
        size_t ml;
        if (f != NULL) {
            ml = parse_field(m, f, msg, a, wt, p + used, rem - used, depth);
            if (ml == 0) {
                goto fail;
            }
            if (f->required) {
                size_t i = f->index;
                seen[i / 64] |= UINT64_C(1) << (i % 64);
            }
        } else {
            size_t pref = 0;
            ml = member_len(p + used, rem - used, wt, &pref);
            if (ml == 0) {
                goto fail;
            }
            if (msg->unknown_fields == NULL) {
                size_t n = count_unknown(m, p, rem);
                if (n == 0) {
                    goto fail;
                }
                msg->unknown_fields = do_alloc(a, n * sizeof(ProtobufCMessageUnknownField));
                if (msg->unknown_fields == NULL) {
                    goto fail;
                }
            }
            ProtobufCMessageUnknownField *u = &msg->unknown_fields[msg->n_unknown_fields++];
            u->tag = tag;
            u->wire_type = (ProtobufCWireType)wt;
            u->len = ml;
            u->data = do_alloc(a, ml);
            if (u->data == NULL) {
                goto fail;
            }
            memcpy(u->data, p + used, ml);
        }
        p += used + ml;
        rem -= used + ml;
    }
    if (m->n_required > 0) {
        for (unsigned i = 0; i < m->n_fields; i++) {
            if (m->fields[i].required && !(seen[i / 64] & (UINT64_C(1) << (i % 64)))) {
                goto fail;
            }
        }
    }
    return msg;

fail:
    protobuf_c_message_free_unpacked(msg, a);
    return NULL;
fail_scan:
    /* Nothing but the message itself is allocated yet; its counts are not arrays. */
    do_free(a, msg);
    return NULL;
}

ProtobufCMessage *rsre_pbuf_decode_fast(const ProtobufCMessageDescriptor *desc,
                                        ProtobufCAllocator *alloc, size_t len,
                                        const uint8_t *data) {
    const struct minfo *m = index_of(desc);
    if (m == NULL) {
        /* No memory for the index (it is retried on the next call): protobuf-c decodes. */
        return protobuf_c_message_unpack(desc, alloc, len, data);
    }
    return decode_msg(m, alloc ? alloc : &sys_allocator, len, data, 0);
}
