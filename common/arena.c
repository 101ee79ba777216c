#include "common/arena.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

struct chunk {
    struct chunk *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

struct rsre_arena {
    struct chunk *head;
};

struct rsre_arena *rsre_arena_create(void) {
    return calloc(1, sizeof(struct rsre_arena));
}

void rsre_arena_destroy(struct rsre_arena *a) {
    if (!a) {
        return;
    }
    for (struct chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(a);
}

void *rsre_arena_alloc(struct rsre_arena *a, size_t size) {
    const size_t align = alignof(max_align_t);
    size = (size + align - 1) & ~(align - 1);
    if (size == 0) {
        size = align;
    }
    struct chunk *c = a->head;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > 16384 ? size : 16384;
        c = malloc(sizeof(*c) + cap);
        if (!c) {
            return NULL;
        }
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

char *rsre_arena_strndup(struct rsre_arena *a, const char *s, size_t len) {
    char *p = rsre_arena_alloc(a, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}
