#ifndef RSRE_ARENA_H
#define RSRE_ARENA_H

/* A bump allocator for load-once data (taxonomy, rule sets): everything allocated from an
 * arena is freed together by rsre_arena_destroy. Allocation failures return NULL. */

#include <stddef.h>

struct rsre_arena;

struct rsre_arena *rsre_arena_create(void);
void rsre_arena_destroy(struct rsre_arena *a); /* NULL is a no-op */
/* Returns `size` zeroed bytes aligned for any type, or NULL. */
void *rsre_arena_alloc(struct rsre_arena *a, size_t size);
/* Copies `len` bytes of `s` and a terminating NUL; NULL on failure. */
char *rsre_arena_strndup(struct rsre_arena *a, const char *s, size_t len);

#endif
