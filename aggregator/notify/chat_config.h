#ifndef RSRE_CHAT_CONFIG_H
#define RSRE_CHAT_CONFIG_H

/*
 * Configuration of the chat transports as rows (name, type, default, bounds, description,
 * offset into the transport's config struct), so the daemon can fill a transport's config from
 * its own config sources and print every key in --help without knowing the keys.
 */

#include <stddef.h>
#include <stdint.h>

struct rsre_chat_config_key {
    const char *name;
    int is_u32; /* 0: string buffer of `size` bytes; 1: uint32_t */
    size_t offset;
    size_t size;
    const char *def;
    uint32_t min, max;
    const char *desc;
};

/* Zeroes cfg and applies every default. */
void rsre_chat_config_defaults(const struct rsre_chat_config_key *keys, size_t n, void *cfg);

/* Sets one key from text. Returns 0, RSRE_ENOTFOUND (unknown key) or RSRE_EINVALID (not a
 * number, out of bounds, too long), with err saying why. */
int rsre_chat_config_set(const struct rsre_chat_config_key *keys, size_t n, void *cfg,
                         const char *key, const char *value, char *err, size_t errlen);

#endif
