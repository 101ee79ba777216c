#ifndef RSRE_OPERATORS_H
#define RSRE_OPERATORS_H

/*
 * Operator identities: who may look, act, approve and administer, and which chat users are
 * which operator. Identities are configured in a YAML file (docs/approvals.md "Operators"),
 * never self-declared: a vote from a Telegram user or a WhatsApp number counts only when this
 * registry maps that chat identity to an operator.
 *
 *   operators:
 *     - id: alice                      # 1..64 of [A-Za-z0-9._@-], starting with a letter/digit
 *       name: Alice Example            # optional, for messages
 *       roles: [approver]              # viewer, operator, approver, admin
 *       telegram_user_id: 123456789    # optional: Telegram's numeric user id
 *       whatsapp_number: "+15551234567" # optional: E.164 number
 *       enabled: true                  # optional, default true
 *
 * Roles are a set. `admin` implies every other role; `approver` is what voting on approvals
 * needs (rsre_operator_may_approve). Ids, Telegram user ids and WhatsApp numbers are unique
 * across the file; the id "robot-sre" (the robot's own audit identity) and "robot" are
 * reserved. Unknown keys and roles are errors, so a typo cannot silently drop a restriction.
 *
 * A registry is immutable once loaded; every pointer into it is valid until
 * rsre_operators_destroy. To change identities, load a new registry and swap it in.
 * Pure data: no I/O except rsre_operators_load_file, safe to read from any thread.
 */

#include <stddef.h>

#include "common/yamldoc.h"

#define RSRE_OPERATORS_MAX 256               /* operators in one registry */
#define RSRE_OPERATOR_ID_MAX 64              /* bytes of an operator id */
#define RSRE_OPERATOR_NAME_MAX 128           /* bytes of a display name */
#define RSRE_OPERATORS_FILE_MAX (256u << 10) /* bytes of an operators file */
#define RSRE_OPERATOR_ROBOT "robot-sre"      /* the robot's identity; never an operator */

enum rsre_role {
    RSRE_ROLE_VIEWER = 1u << 0,   /* read incidents, evidence, audit */
    RSRE_ROLE_OPERATOR = 1u << 1, /* acknowledge, request approvals, edit rules */
    RSRE_ROLE_APPROVER = 1u << 2, /* vote on approvals */
    RSRE_ROLE_ADMIN = 1u << 3,    /* everything, including identities and tokens */
};
#define RSRE_ROLE_ALL 0xfu

/* Chat channels that carry an identity an operator can be mapped to. */
enum rsre_chat { RSRE_CHAT_TELEGRAM, RSRE_CHAT_WHATSAPP, RSRE_CHAT_COUNT };

struct rsre_operator {
    const char *id;
    const char *name;     /* display name; the id when the file gives none */
    unsigned roles;       /* enum rsre_role bits as configured */
    const char *telegram; /* Telegram user id (decimal digits), or NULL */
    const char *whatsapp; /* WhatsApp number, digits only without '+', or NULL */
    int enabled;
    int line; /* line of the entry in its file */
};

struct rsre_operators;

/* Creates an empty registry (no one may approve anything). */
int rsre_operators_create(struct rsre_operators **out);

/*
 * Parses a registry from YAML text. On success *out is a new registry owned by the caller.
 * Returns RSRE_EPARSE (YAML syntax), RSRE_EINVALID (schema: a missing or malformed field, an
 * unknown key or role, a reserved id), RSRE_EEXIST (a duplicate id, Telegram user id or WhatsApp
 * number), RSRE_ELIMIT (too many operators, input too large) or -ENOMEM, with *err (may be
 * NULL) naming the line, column and problem; nothing is returned on failure.
 */
int rsre_operators_load(const char *yaml, size_t len, struct rsre_operators **out,
                        struct rsre_yerr *err);
/* Reads `path` (at most RSRE_OPERATORS_FILE_MAX bytes) and parses it as above; I/O errors are
 * negative errno values with *err naming the path. */
int rsre_operators_load_file(const char *path, struct rsre_operators **out, struct rsre_yerr *err);
void rsre_operators_destroy(struct rsre_operators *ops); /* NULL is a no-op */

size_t rsre_operators_count(const struct rsre_operators *ops);
/* The i-th operator in file order, or NULL. Borrowed from the registry. */
const struct rsre_operator *rsre_operators_get(const struct rsre_operators *ops, size_t i);
/* The operator with this exact id (disabled ones included), or NULL. */
const struct rsre_operator *rsre_operators_find(const struct rsre_operators *ops, const char *id);
/*
 * The operator mapped to a chat identity, or NULL: `user` is a Telegram user id (decimal) or a
 * WhatsApp number ("+15551234567" or "15551234567", as the Cloud API's `from` gives it).
 * Malformed identities match no one.
 */
const struct rsre_operator *rsre_operators_find_chat(const struct rsre_operators *ops,
                                                     enum rsre_chat chat, const char *user);

/* Whether `op` holds `role` (admin holds every role); 0 for NULL or a disabled operator. */
int rsre_operator_has_role(const struct rsre_operator *op, enum rsre_role role);
/* Whether `op` may vote on approvals: enabled and approver (or admin). */
int rsre_operator_may_approve(const struct rsre_operator *op);
/* The chat identity `op` has on `chat`, or NULL. */
const char *rsre_operator_chat_id(const struct rsre_operator *op, enum rsre_chat chat);

/* Role names "viewer", "operator", "approver", "admin"; parse returns 0 or RSRE_ENOTFOUND. */
const char *rsre_role_name(enum rsre_role r);
int rsre_role_parse(const char *s, enum rsre_role *out);
/* "telegram", "whatsapp". */
const char *rsre_chat_name(enum rsre_chat c);

#endif
