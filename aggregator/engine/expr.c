/*
 * The threshold / severity expression language: a lexer and a recursive-descent parser that
 * emit postfix code for a small stack machine, and the machine itself. See expr.h for the
 * contract and docs/expressions.md for the grammar and semantics.
 *
 * Compilation works in one `struct compiler` (fixed size, bounded by the limits in expr.h)
 * and copies the result into one exact-size allocation, so rsre_expr_destroy is one free().
 * Evaluation never allocates: its value stack is a local array whose required depth was
 * computed (and bounded) at compile time.
 */
#include "engine/expr.h"

#include "common/error.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest `for` duration accepted: ten years. Keeps every duration exactly representable. */
#define MAX_DURATION_S (3650LL * 86400LL)
/* Longest number literal (digits, point, exponent) accepted, in bytes. */
#define MAX_NUMBER_TEXT 64

/* ---------------------------------------------------------------------------------------- */
/* Instructions                                                                              */

enum opcode {
    OP_RET,   /* return the top of the stack (end of program or of an aggregate body) */
    OP_CONST, /* push k */
    OP_LOAD,  /* push src[arg], or NaN when arg >= the source length */
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV, /* NaN when the divisor is 0 */
    OP_NEG,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_EQ,
    OP_NE,
    OP_AND, /* Kleene: false wins, then NaN (unknown), then true */
    OP_OR,  /* Kleene: true wins, then NaN (unknown), then false */
    OP_NOT, /* NaN stays NaN */
    OP_FOR, /* pop condition, push held-for-duration (state cell arg, duration dur) */
    OP_AGG, /* run the next `arg` instructions (ending in OP_RET) once per row, push the fold */
    /* Fused forms of the most common shape, `signal CMP constant`: load src[arg], compare
     * with k. They are produced by the compiler only; semantics equal LOAD, CONST, CMP. */
    OP_LCMP_LT,
    OP_LCMP_LE,
    OP_LCMP_GT,
    OP_LCMP_GE,
    OP_LCMP_EQ,
    OP_LCMP_NE,
};

enum agg_kind { AGG_COUNT, AGG_ANY, AGG_ALL, AGG_SUM, AGG_MIN, AGG_MAX };

struct insn {
    uint8_t op;
    uint8_t agg;  /* enum agg_kind, for OP_AGG */
    uint32_t arg; /* slot (LOAD, LCMP), state cell (FOR), body length (AGG) */
    union {
        double k;    /* CONST, LCMP */
        int64_t dur; /* FOR: seconds */
    } u;
};

struct slot_entry {
    uint32_t slot;
    uint32_t name_off; /* offset of the NUL-terminated name in the names blob */
};

struct rsre_expr {
    size_t ncode;
    size_t nstate;
    size_t nslots;
    size_t slot_span;
    size_t max_stack;
    const struct slot_entry *slots; /* points into this allocation */
    const char *names;              /* points into this allocation */
    struct insn code[];
};

/* ---------------------------------------------------------------------------------------- */
/* Value semantics, shared by the machine and the constant folder so both agree exactly.     */

static inline int truthy(double v) {
    return v < 0 || v > 0; /* false for 0 and for NaN */
}

static inline double kleene_and(double a, double b) {
    if (a == 0 || b == 0) {
        return 0.0;
    }
    if (isnan(a) || isnan(b)) {
        return NAN;
    }
    return 1.0;
}

static inline double kleene_or(double a, double b) {
    if (truthy(a) || truthy(b)) {
        return 1.0;
    }
    if (isnan(a) || isnan(b)) {
        return NAN;
    }
    return 0.0;
}

static inline double kleene_not(double a) {
    if (isnan(a)) {
        return NAN;
    }
    return a == 0 ? 1.0 : 0.0;
}

static inline double divide(double a, double b) {
    return b == 0 ? NAN : a / b;
}

/* Applies a binary or comparison opcode. Comparisons with NaN are false, `!=` included. */
static double apply_binary(int op, double a, double b) {
    switch (op) {
    case OP_ADD:
        return a + b;
    case OP_SUB:
        return a - b;
    case OP_MUL:
        return a * b;
    case OP_DIV:
        return divide(a, b);
    case OP_LT:
        return a < b;
    case OP_LE:
        return a <= b;
    case OP_GT:
        return a > b;
    case OP_GE:
        return a >= b;
    case OP_EQ:
        return a == b;
    case OP_NE:
        return a < b || a > b;
    case OP_AND:
        return kleene_and(a, b);
    case OP_OR:
        return kleene_or(a, b);
    default:
        return NAN;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Lexer                                                                                     */

enum tok {
    T_EOF,
    T_ERR, /* the lexer already reported an error */
    T_NUM,
    T_NAME,
    T_LP,
    T_RP,
    T_COMMA,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_EQ,
    T_NE,
    T_AND,
    T_OR,
    T_NOT,
    T_TRUE,
    T_FALSE,
    T_FOR,
    T_AGG,
};

enum unit_class { UNIT_NONE, UNIT_RATIO, UNIT_TIME, UNIT_BYTES, UNIT_SI };

struct token {
    int kind;      /* enum tok */
    int agg;       /* enum agg_kind, for T_AGG */
    int unit;      /* enum unit_class, for T_NUM */
    double num;    /* T_NUM: value with the unit applied */
    const char *p; /* token text */
    size_t len;
    int line;
    int col;
};

static const struct keyword {
    const char *text;
    int kind;
    int agg;
} keywords[] = {
    {"and", T_AND, 0},           {"or", T_OR, 0},         {"not", T_NOT, 0},
    {"true", T_TRUE, 0},         {"false", T_FALSE, 0},   {"for", T_FOR, 0},
    {"count", T_AGG, AGG_COUNT}, {"any", T_AGG, AGG_ANY}, {"all", T_AGG, AGG_ALL},
    {"sum", T_AGG, AGG_SUM},     {"min", T_AGG, AGG_MIN}, {"max", T_AGG, AGG_MAX},
};

/* A unit multiplies or divides the literal: `%` and `ms` divide (85 / 100, 250 / 1000), as
 * expr.h documents, so a literal equals the division a reader would write out. */
static const struct unit {
    const char *text;
    double factor;
    int divide;
    int cls;
} units[] = {
    {"%", 100.0, 1, UNIT_RATIO},
    {"ms", 1000.0, 1, UNIT_TIME},
    {"s", 1.0, 0, UNIT_TIME},
    {"m", 60.0, 0, UNIT_TIME},
    {"h", 3600.0, 0, UNIT_TIME},
    {"d", 86400.0, 0, UNIT_TIME},
    {"Ki", 1024.0, 0, UNIT_BYTES},
    {"Mi", 1048576.0, 0, UNIT_BYTES},
    {"Gi", 1073741824.0, 0, UNIT_BYTES},
    {"Ti", 1099511627776.0, 0, UNIT_BYTES},
    {"K", 1e3, 0, UNIT_SI},
    {"M", 1e6, 0, UNIT_SI},
    {"G", 1e9, 0, UNIT_SI},
    {"T", 1e12, 0, UNIT_SI},
};

static const char *const agg_names[] = {
    [AGG_COUNT] = "count", [AGG_ANY] = "any", [AGG_ALL] = "all",
    [AGG_SUM] = "sum",     [AGG_MIN] = "min", [AGG_MAX] = "max",
};

/* ---------------------------------------------------------------------------------------- */
/* Compiler state                                                                            */

struct compiler {
    const char *src;
    size_t len;
    size_t pos;
    int line;
    size_t line_start;

    struct token cur;  /* lookahead */
    struct token prev; /* last consumed token, for "after 'x'" messages */
    int have_prev;

    rsre_expr_resolve_cb resolve;
    void *ctx;

    int depth;  /* current nesting of parentheses, prefix operators and aggregates */
    int in_agg; /* inside an aggregate argument */
    int failed;
    int rc;
    struct rsre_expr_error *err;

    struct insn code[RSRE_EXPR_MAX_OPS];
    size_t ncode;
    size_t nstate;

    struct slot_entry slots[RSRE_EXPR_MAX_OPS];
    size_t nslots;
    size_t slot_span;
    char names[RSRE_EXPR_MAX_SOURCE + RSRE_EXPR_MAX_OPS];
    size_t names_len;
};

/* Records the first error only; later calls are ignored so the root cause is reported. */
static void fail_at(struct compiler *c, int rc, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void fail_at(struct compiler *c, int rc, int line, int col, const char *fmt, ...) {
    if (c->failed) {
        return;
    }
    c->failed = 1;
    c->rc = rc;
    if (c->err != NULL) {
        va_list ap;
        c->err->line = line;
        c->err->col = col;
        va_start(ap, fmt);
        vsnprintf(c->err->msg, sizeof(c->err->msg), fmt, ap);
        va_end(ap);
    }
}

/* Describes a token for messages: "signal 'x'", "number '12'", "')'", "end of input". */
static void describe(const struct token *t, char *buf, size_t cap) {
    int n = t->len > 40 ? 40 : (int)t->len;
    const char *more = t->len > 40 ? "..." : "";
    switch (t->kind) {
    case T_EOF:
        snprintf(buf, cap, "end of input");
        break;
    case T_NUM:
        snprintf(buf, cap, "number '%.*s%s'", n, t->p, more);
        break;
    case T_NAME:
        snprintf(buf, cap, "signal '%.*s%s'", n, t->p, more);
        break;
    default:
        snprintf(buf, cap, "'%.*s%s'", n, t->p, more);
        break;
    }
}

static int is_alpha(int ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int is_digit(int ch) {
    return ch >= '0' && ch <= '9';
}

static int is_name_char(int ch) {
    return is_alpha(ch) || is_digit(ch) || ch == '_' || ch == '.';
}

/* Parses the decimal literal text[0..n) with strtod, independent of the C locale. */
static int parse_decimal(const char *text, size_t n, double *out) {
    char buf[MAX_NUMBER_TEXT + 8];
    const char *dp = localeconv()->decimal_point;
    size_t dpl = (dp != NULL && dp[0] != '\0') ? strlen(dp) : 1;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '.' && !(dpl == 1 && dp[0] == '.')) {
            if (j + dpl >= sizeof(buf)) {
                return -1;
            }
            memcpy(buf + j, dp, dpl);
            j += dpl;
        } else {
            if (j + 1 >= sizeof(buf)) {
                return -1;
            }
            buf[j++] = text[i];
        }
    }
    buf[j] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    if (end != buf + j) {
        return -1;
    }
    if (!isfinite(v)) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Lexes a number starting at c->pos (a digit) into *t, applying its unit. */
static void lex_number(struct compiler *c, struct token *t) {
    const char *s = c->src;
    size_t i = c->pos;
    size_t n = c->len;
    while (i < n && is_digit(s[i])) {
        i++;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i])) {
            fail_at(c, RSRE_EPARSE, t->line, t->col + (int)(i - c->pos),
                    "expected digits after '.' in number '%.*s'", (int)(i - c->pos), s + c->pos);
            t->kind = T_ERR;
            return;
        }
        while (i < n && is_digit(s[i])) {
            i++;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-')) {
            j++;
        }
        if (j < n && is_digit(s[j])) {
            while (j < n && is_digit(s[j])) {
                j++;
            }
            i = j;
        } else if (!(i + 1 < n && is_alpha(s[i + 1]))) {
            /* `1e`, `1e+`, `1e-x`: an exponent without digits. `1ex` is a unit, below. */
            fail_at(c, RSRE_EPARSE, t->line, t->col + (int)(i - c->pos),
                    "expected digits in the exponent of number '%.*s'", (int)(j - c->pos),
                    s + c->pos);
            t->kind = T_ERR;
            return;
        }
    }
    size_t mant_end = i;
    if (mant_end - c->pos > MAX_NUMBER_TEXT) {
        fail_at(c, RSRE_ELIMIT, t->line, t->col, "number longer than %d characters",
                MAX_NUMBER_TEXT);
        t->kind = T_ERR;
        return;
    }
    double v = 0;
    if (parse_decimal(s + c->pos, mant_end - c->pos, &v) != 0) {
        fail_at(c, RSRE_EPARSE, t->line, t->col, "number '%.*s' is out of range",
                (int)(mant_end - c->pos), s + c->pos);
        t->kind = T_ERR;
        return;
    }
    /* A unit is the run of letters (or a single '%') directly after the number. */
    size_t ustart = i;
    if (i < n && s[i] == '%') {
        i++;
    } else {
        while (i < n && is_alpha(s[i])) {
            i++;
        }
    }
    t->unit = UNIT_NONE;
    if (i > ustart) {
        const struct unit *u = NULL;
        for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
            if (strlen(units[k].text) == i - ustart &&
                memcmp(units[k].text, s + ustart, i - ustart) == 0) {
                u = &units[k];
                break;
            }
        }
        int ucol = t->col + (int)(ustart - c->pos);
        if (u == NULL) {
            int ul = (int)(i - ustart) > 20 ? 20 : (int)(i - ustart);
            fail_at(c, RSRE_EPARSE, t->line, ucol, "unknown unit '%.*s%s'", ul, s + ustart,
                    (int)(i - ustart) > 20 ? "..." : "");
            t->kind = T_ERR;
            return;
        }
        v = u->divide ? v / u->factor : v * u->factor;
        if (!isfinite(v)) {
            fail_at(c, RSRE_EPARSE, t->line, t->col, "number '%.*s' is out of range",
                    (int)(i - c->pos), s + c->pos);
            t->kind = T_ERR;
            return;
        }
        t->unit = u->cls;
    }
    if (i < n && (is_digit(s[i]) || s[i] == '_' || s[i] == '.')) {
        fail_at(c, RSRE_EPARSE, t->line, t->col + (int)(i - c->pos),
                "unexpected '%c' after number '%.*s'", s[i], (int)(i - c->pos), s + c->pos);
        t->kind = T_ERR;
        return;
    }
    t->kind = T_NUM;
    t->num = v;
    t->len = i - c->pos;
    c->pos = i;
}

/* Lexes a name or keyword starting at c->pos (a letter or '_'). */
static void lex_name(struct compiler *c, struct token *t) {
    const char *s = c->src;
    size_t i = c->pos;
    while (i < c->len && is_name_char(s[i])) {
        i++;
    }
    size_t n = i - c->pos;
    t->len = n;
    for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++) {
        if (strlen(keywords[k].text) == n && memcmp(keywords[k].text, s + c->pos, n) == 0) {
            t->kind = keywords[k].kind;
            t->agg = keywords[k].agg;
            c->pos = i;
            return;
        }
    }
    if (n > RSRE_EXPR_MAX_NAME) {
        fail_at(c, RSRE_ELIMIT, t->line, t->col, "signal name longer than %d bytes",
                RSRE_EXPR_MAX_NAME);
        t->kind = T_ERR;
        return;
    }
    /* Dots separate non-empty parts: no leading, trailing or doubled dot. */
    for (size_t k = 0; k < n; k++) {
        if (s[c->pos + k] == '.' && (k + 1 == n || s[c->pos + k + 1] == '.')) {
            fail_at(c, RSRE_EPARSE, t->line, t->col + (int)k,
                    "malformed signal name '%.*s': a '.' must be followed by a name part", (int)n,
                    s + c->pos);
            t->kind = T_ERR;
            return;
        }
    }
    t->kind = T_NAME;
    c->pos = i;
}

/* Reads the next token into c->cur (the previous lookahead moves to c->prev). */
static void next(struct compiler *c) {
    c->prev = c->cur;
    c->have_prev = 1;
    struct token *t = &c->cur;
    const char *s = c->src;
    size_t n = c->len;
    memset(t, 0, sizeof(*t));

    for (;;) {
        while (c->pos < n &&
               (s[c->pos] == ' ' || s[c->pos] == '\t' || s[c->pos] == '\r' || s[c->pos] == '\n')) {
            if (s[c->pos] == '\n') {
                c->line++;
                c->line_start = c->pos + 1;
            }
            c->pos++;
        }
        if (c->pos < n && s[c->pos] == '#') {
            while (c->pos < n && s[c->pos] != '\n') {
                c->pos++;
            }
            continue;
        }
        break;
    }
    t->p = s + c->pos;
    t->line = c->line;
    t->col = (int)(c->pos - c->line_start) + 1;
    if (c->failed) {
        t->kind = T_ERR;
        return;
    }
    if (c->pos >= n) {
        t->kind = T_EOF;
        t->len = 0;
        return;
    }
    unsigned char ch = (unsigned char)s[c->pos];
    unsigned char ch2 = c->pos + 1 < n ? (unsigned char)s[c->pos + 1] : 0;
    if (is_digit(ch)) {
        lex_number(c, t);
        return;
    }
    if (is_alpha(ch) || ch == '_') {
        lex_name(c, t);
        return;
    }
    int kind = -1;
    size_t len = 1;
    switch (ch) {
    case '(':
        kind = T_LP;
        break;
    case ')':
        kind = T_RP;
        break;
    case ',':
        kind = T_COMMA;
        break;
    case '+':
        kind = T_PLUS;
        break;
    case '-':
        kind = T_MINUS;
        break;
    case '*':
        kind = T_STAR;
        break;
    case '/':
        kind = T_SLASH;
        break;
    case '<':
        kind = ch2 == '=' ? T_LE : T_LT;
        len = ch2 == '=' ? 2 : 1;
        break;
    case '>':
        kind = ch2 == '=' ? T_GE : T_GT;
        len = ch2 == '=' ? 2 : 1;
        break;
    case '=':
        if (ch2 == '=') {
            kind = T_EQ;
            len = 2;
        } else {
            fail_at(c, RSRE_EPARSE, t->line, t->col, "'=' is not an operator; use '==' to compare");
        }
        break;
    case '!':
        kind = ch2 == '=' ? T_NE : T_NOT;
        len = ch2 == '=' ? 2 : 1;
        break;
    case '&':
        if (ch2 == '&') {
            kind = T_AND;
            len = 2;
        } else {
            fail_at(c, RSRE_EPARSE, t->line, t->col, "unexpected '&'; use 'and' or '&&'");
        }
        break;
    case '|':
        if (ch2 == '|') {
            kind = T_OR;
            len = 2;
        } else {
            fail_at(c, RSRE_EPARSE, t->line, t->col, "unexpected '|'; use 'or' or '||'");
        }
        break;
    case '%':
        fail_at(c, RSRE_EPARSE, t->line, t->col,
                "unexpected '%%': a unit must follow its number directly, as in 85%%");
        break;
    case '.':
        fail_at(c, RSRE_EPARSE, t->line, t->col,
                "unexpected '.': numbers start with a digit (0.5) and names with a letter");
        break;
    case '\0':
        fail_at(c, RSRE_EPARSE, t->line, t->col, "embedded NUL byte");
        break;
    default:
        if (ch >= 0x21 && ch < 0x7f) {
            fail_at(c, RSRE_EPARSE, t->line, t->col, "unexpected character '%c'", ch);
        } else {
            fail_at(c, RSRE_EPARSE, t->line, t->col, "unexpected byte 0x%02X", ch);
        }
        break;
    }
    if (kind < 0) {
        t->kind = T_ERR;
        return;
    }
    t->kind = kind;
    t->len = len;
    c->pos += len;
}

/* ---------------------------------------------------------------------------------------- */
/* Code emission                                                                             */

/* Appends an instruction for the source token `at` (the position reported if the program gets
 * too long). Returns its index, or -1 on overflow. */
static long emit(struct compiler *c, int op, const struct token *at) {
    if (c->ncode >= RSRE_EXPR_MAX_OPS) {
        fail_at(c, RSRE_ELIMIT, at->line, at->col,
                "expression too complex (more than %d instructions)", RSRE_EXPR_MAX_OPS);
        return -1;
    }
    struct insn *in = &c->code[c->ncode];
    memset(in, 0, sizeof(*in));
    in->op = (uint8_t)op;
    return (long)c->ncode++;
}

static void emit_const(struct compiler *c, double k, const struct token *at) {
    long i = emit(c, OP_CONST, at);
    if (i >= 0) {
        c->code[i].u.k = k;
    }
}

/* Emits a binary operator whose operands are the code [ls, rs) and [rs, ncode). Folds two
 * constants into one, and fuses `LOAD slot; CONST k; CMP` into one instruction. */
static void emit_binary(struct compiler *c, int op, size_t ls, size_t rs, const struct token *at) {
    if (c->failed) {
        return;
    }
    int lconst = rs - ls == 1 && c->code[ls].op == OP_CONST;
    int rconst = c->ncode - rs == 1 && c->code[rs].op == OP_CONST;
    if (lconst && rconst) {
        double v = apply_binary(op, c->code[ls].u.k, c->code[rs].u.k);
        c->ncode = ls + 1;
        c->code[ls].u.k = v;
        return;
    }
    if (rconst && rs - ls == 1 && c->code[ls].op == OP_LOAD && op >= OP_LT && op <= OP_NE) {
        c->code[ls].op = (uint8_t)(OP_LCMP_LT + (op - OP_LT));
        c->code[ls].u.k = c->code[rs].u.k;
        c->ncode = ls + 1;
        return;
    }
    emit(c, op, at);
}

/* Emits a unary operator over the code [s, ncode), folding a constant operand. */
static void emit_unary(struct compiler *c, int op, size_t s, const struct token *at) {
    if (c->failed) {
        return;
    }
    if (c->ncode - s == 1 && c->code[s].op == OP_CONST) {
        double k = c->code[s].u.k;
        c->code[s].u.k = op == OP_NEG ? -k : kleene_not(k);
        return;
    }
    emit(c, op, at);
}

/* Returns the slot of the name token t, recording a new one in the slot table, or -1 after
 * reporting an error. Without a resolver, names are numbered in order of first appearance. */
static long intern_slot(struct compiler *c, const struct token *t) {
    long slot;
    if (c->resolve != NULL) {
        slot = c->resolve(c->ctx, t->p, t->len);
        if (slot < 0) {
            fail_at(c, RSRE_EPARSE, t->line, t->col, "unknown signal '%.*s'", (int)t->len, t->p);
            return -1;
        }
        for (size_t i = 0; i < c->nslots; i++) {
            if (c->slots[i].slot == (uint32_t)slot) {
                return slot;
            }
        }
    } else {
        for (size_t i = 0; i < c->nslots; i++) {
            const char *nm = c->names + c->slots[i].name_off;
            if (strlen(nm) == t->len && memcmp(nm, t->p, t->len) == 0) {
                return (long)c->slots[i].slot;
            }
        }
        slot = (long)c->nslots;
    }
    /* Each entry costs an instruction, so the table can't overflow; check all the same. */
    if (c->nslots >= RSRE_EXPR_MAX_OPS || c->names_len + t->len + 1 > sizeof(c->names)) {
        fail_at(c, RSRE_ELIMIT, t->line, t->col,
                "expression too complex (more than %d instructions)", RSRE_EXPR_MAX_OPS);
        return -1;
    }
    c->slots[c->nslots].slot = (uint32_t)slot;
    c->slots[c->nslots].name_off = (uint32_t)c->names_len;
    memcpy(c->names + c->names_len, t->p, t->len);
    c->names[c->names_len + t->len] = '\0';
    c->names_len += t->len + 1;
    c->nslots++;
    if ((size_t)slot + 1 > c->slot_span) {
        c->slot_span = (size_t)slot + 1;
    }
    return slot;
}

/* Emits OP_LOAD for the name token t. */
static void emit_load(struct compiler *c, const struct token *t) {
    long slot = intern_slot(c, t);
    if (slot < 0) {
        return;
    }
    long i = emit(c, OP_LOAD, t);
    if (i >= 0) {
        c->code[i].arg = (uint32_t)slot;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Parser. Each parse_* function emits the postfix code of one subexpression; on error it    */
/* records it (fail_at) and returns -1. Grammar (docs/expressions.md):                       */
/*   expr  = and { ("or"|"||") and }          held  = not [ "for" duration ]                 */
/*   and   = held { ("and"|"&&") held }       not   = ("not"|"!") not | cmp                  */
/*   cmp   = sum [ cmpop sum ]                sum   = term { ("+"|"-") term }                */
/*   term  = unary { ("*"|"/") unary }        unary = "-" unary | primary                    */
/*   primary = number | "true" | "false" | name | "(" expr ")" | agg "(" expr ")"            */

static int parse_or(struct compiler *c);

static int enter(struct compiler *c, const struct token *at) {
    if (++c->depth > RSRE_EXPR_MAX_DEPTH) {
        fail_at(c, RSRE_ELIMIT, at->line, at->col, "expression nested too deeply (limit %d)",
                RSRE_EXPR_MAX_DEPTH);
        return -1;
    }
    return 0;
}

/* Reports that an operand was expected at the current token. */
static void fail_operand(struct compiler *c) {
    char found[96];
    if (c->cur.kind == T_ERR) {
        return;
    }
    if (!c->have_prev) {
        if (c->cur.kind == T_EOF) {
            fail_at(c, RSRE_EPARSE, c->cur.line, c->cur.col, "empty expression");
            return;
        }
        describe(&c->cur, found, sizeof(found));
        fail_at(c, RSRE_EPARSE, c->cur.line, c->cur.col, "expected a number or signal, found %s",
                found);
        return;
    }
    int pl = c->prev.len > 20 ? 20 : (int)c->prev.len;
    if (c->cur.kind == T_EOF) {
        fail_at(c, RSRE_EPARSE, c->cur.line, c->cur.col, "expected a number or signal after '%.*s'",
                pl, c->prev.p);
    } else {
        describe(&c->cur, found, sizeof(found));
        fail_at(c, RSRE_EPARSE, c->cur.line, c->cur.col,
                "expected a number or signal after '%.*s', found %s", pl, c->prev.p, found);
    }
}

static int parse_primary(struct compiler *c) {
    struct token t = c->cur;
    switch (t.kind) {
    case T_NUM:
        next(c);
        emit_const(c, t.num, &t);
        return c->failed ? -1 : 0;
    case T_TRUE:
    case T_FALSE:
        next(c);
        emit_const(c, t.kind == T_TRUE ? 1.0 : 0.0, &t);
        return c->failed ? -1 : 0;
    case T_NAME:
        next(c);
        emit_load(c, &t);
        return c->failed ? -1 : 0;
    case T_LP: {
        if (enter(c, &t) != 0) {
            return -1;
        }
        next(c);
        if (parse_or(c) != 0) {
            return -1;
        }
        if (c->cur.kind != T_RP) {
            char found[96];
            if (c->cur.kind == T_EOF) {
                fail_at(c, RSRE_EPARSE, t.line, t.col, "unterminated parenthesis");
            } else {
                describe(&c->cur, found, sizeof(found));
                fail_at(c, RSRE_EPARSE, c->cur.line, c->cur.col,
                        "expected ')' or an operator, found %s (parenthesis opened at line %d, "
                        "col %d)",
                        found, t.line, t.col);
            }
            return -1;
        }
        next(c);
        c->depth--;
        return 0;
    }
    case T_AGG: {
        const char *name = agg_names[t.agg];
        if (c->in_agg) {
            fail_at(c, RSRE_EPARSE, t.line, t.col,
                    "aggregate cannot be nested ('%s' inside an "
                    "aggregate)",
                    name);
            return -1;
        }
        if (enter(c, &t) != 0) {
            return -1;
        }
        next(c);
        if (c->cur.kind != T_LP) {
            if (c->cur.kind != T_ERR) {
                fail_at(c, RSRE_EPARSE, c->cur.line, c->cur.col, "expected '(' after '%s'", name);
            }
            return -1;
        }
        struct token lp = c->cur;
        next(c);
        if (c->cur.kind == T_RP) {
            fail_at(c, RSRE_EPARSE, c->cur.line, c->cur.col, "'%s' needs an argument", name);
            return -1;
        }
        long h = emit(c, OP_AGG, &t);
        if (h < 0) {
            return -1;
        }
        c->in_agg = 1;
        if (parse_or(c) != 0) {
            return -1;
        }
        c->in_agg = 0;
        if (c->cur.kind != T_RP) {
            char found[96];
            if (c->cur.kind == T_EOF) {
                fail_at(c, RSRE_EPARSE, lp.line, lp.col, "unterminated parenthesis");
            } else if (c->cur.kind == T_COMMA) {
                fail_at(c, RSRE_EPARSE, c->cur.line, c->cur.col, "'%s' takes one argument", name);
            } else {
                describe(&c->cur, found, sizeof(found));
                fail_at(c, RSRE_EPARSE, c->cur.line, c->cur.col,
                        "expected ')' to close '%s(' or an operator, found %s", name, found);
            }
            return -1;
        }
        if (emit(c, OP_RET, &t) < 0) {
            return -1;
        }
        c->code[h].agg = (uint8_t)t.agg;
        c->code[h].arg = (uint32_t)(c->ncode - (size_t)h - 1);
        next(c);
        c->depth--;
        return 0;
    }
    default:
        fail_operand(c);
        return -1;
    }
}

static int parse_unary(struct compiler *c) {
    if (c->cur.kind == T_MINUS) {
        struct token t = c->cur;
        if (enter(c, &t) != 0) {
            return -1;
        }
        next(c);
        size_t s = c->ncode;
        if (parse_unary(c) != 0) {
            return -1;
        }
        emit_unary(c, OP_NEG, s, &t);
        c->depth--;
        return c->failed ? -1 : 0;
    }
    return parse_primary(c);
}

static int parse_term(struct compiler *c) {
    size_t ls = c->ncode;
    if (parse_unary(c) != 0) {
        return -1;
    }
    while (c->cur.kind == T_STAR || c->cur.kind == T_SLASH) {
        struct token optok = c->cur;
        int op = c->cur.kind == T_STAR ? OP_MUL : OP_DIV;
        next(c);
        size_t rs = c->ncode;
        if (parse_unary(c) != 0) {
            return -1;
        }
        emit_binary(c, op, ls, rs, &optok);
        if (c->failed) {
            return -1;
        }
    }
    return 0;
}

static int parse_sum(struct compiler *c) {
    size_t ls = c->ncode;
    if (parse_term(c) != 0) {
        return -1;
    }
    while (c->cur.kind == T_PLUS || c->cur.kind == T_MINUS) {
        struct token optok = c->cur;
        int op = c->cur.kind == T_PLUS ? OP_ADD : OP_SUB;
        next(c);
        size_t rs = c->ncode;
        if (parse_term(c) != 0) {
            return -1;
        }
        emit_binary(c, op, ls, rs, &optok);
        if (c->failed) {
            return -1;
        }
    }
    return 0;
}

static int cmp_opcode(int kind) {
    switch (kind) {
    case T_LT:
        return OP_LT;
    case T_LE:
        return OP_LE;
    case T_GT:
        return OP_GT;
    case T_GE:
        return OP_GE;
    case T_EQ:
        return OP_EQ;
    case T_NE:
        return OP_NE;
    default:
        return -1;
    }
}

static int parse_cmp(struct compiler *c) {
    size_t ls = c->ncode;
    if (parse_sum(c) != 0) {
        return -1;
    }
    int op = cmp_opcode(c->cur.kind);
    if (op < 0) {
        return 0;
    }
    struct token optok = c->cur;
    next(c);
    size_t rs = c->ncode;
    if (parse_sum(c) != 0) {
        return -1;
    }
    emit_binary(c, op, ls, rs, &optok);
    if (c->failed) {
        return -1;
    }
    if (cmp_opcode(c->cur.kind) >= 0) {
        fail_at(c, RSRE_EPARSE, c->cur.line, c->cur.col,
                "comparisons cannot be chained; use 'and' (a < b and b < c)");
        return -1;
    }
    return 0;
}

static int parse_not(struct compiler *c) {
    if (c->cur.kind == T_NOT) {
        struct token t = c->cur;
        if (enter(c, &t) != 0) {
            return -1;
        }
        next(c);
        size_t s = c->ncode;
        if (parse_not(c) != 0) {
            return -1;
        }
        emit_unary(c, OP_NOT, s, &t);
        c->depth--;
        return c->failed ? -1 : 0;
    }
    return parse_cmp(c);
}

static int parse_held(struct compiler *c) {
    if (parse_not(c) != 0) {
        return -1;
    }
    if (c->cur.kind != T_FOR) {
        return 0;
    }
    struct token f = c->cur;
    if (c->in_agg) {
        fail_at(c, RSRE_EPARSE, f.line, f.col, "'for' cannot be used inside an aggregate");
        return -1;
    }
    next(c);
    struct token d = c->cur;
    char found[96];
    if (d.kind == T_ERR) {
        return -1;
    }
    if (d.kind != T_NUM) {
        if (d.kind == T_EOF) {
            fail_at(c, RSRE_EPARSE, d.line, d.col, "'for' needs a duration, as in 'for 10m'");
        } else {
            describe(&d, found, sizeof(found));
            fail_at(c, RSRE_EPARSE, d.line, d.col,
                    "'for' needs a duration, as in 'for 10m', found %s", found);
        }
        return -1;
    }
    if (d.unit != UNIT_NONE && d.unit != UNIT_TIME) {
        fail_at(c, RSRE_EPARSE, d.line, d.col,
                "'for' needs a duration in ms, s, m, h or d, found '%.*s'", (int)d.len, d.p);
        return -1;
    }
    if (d.num > (double)MAX_DURATION_S) {
        fail_at(c, RSRE_ELIMIT, d.line, d.col, "duration '%.*s' is longer than 3650d", (int)d.len,
                d.p);
        return -1;
    }
    next(c);
    long i = emit(c, OP_FOR, &f);
    if (i < 0) {
        return -1;
    }
    c->code[i].arg = (uint32_t)c->nstate++;
    c->code[i].u.dur = (int64_t)ceil(d.num); /* sub-second durations round up */
    if (c->cur.kind == T_FOR) {
        fail_at(c, RSRE_EPARSE, c->cur.line, c->cur.col,
                "'for' cannot be chained; use parentheses: (a for 5m) for 10m");
        return -1;
    }
    return 0;
}

static int parse_and(struct compiler *c) {
    size_t ls = c->ncode;
    if (parse_held(c) != 0) {
        return -1;
    }
    while (c->cur.kind == T_AND) {
        struct token optok = c->cur;
        next(c);
        size_t rs = c->ncode;
        if (parse_held(c) != 0) {
            return -1;
        }
        emit_binary(c, OP_AND, ls, rs, &optok);
        if (c->failed) {
            return -1;
        }
    }
    return 0;
}

static int parse_or(struct compiler *c) {
    size_t ls = c->ncode;
    if (parse_and(c) != 0) {
        return -1;
    }
    while (c->cur.kind == T_OR) {
        struct token optok = c->cur;
        next(c);
        size_t rs = c->ncode;
        if (parse_and(c) != 0) {
            return -1;
        }
        emit_binary(c, OP_OR, ls, rs, &optok);
        if (c->failed) {
            return -1;
        }
    }
    return 0;
}

/* Returns the deepest value stack the finished program `code[0..n)` reaches. An aggregate body
 * runs on top of the stack as it was at the aggregate, and its final OP_RET leaves the
 * aggregate's result in place of the body's value. */
static size_t stack_need(const struct insn *code, size_t n) {
    size_t sp = 0, max = 0, agg_ret = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        switch (code[i].op) {
        case OP_CONST:
        case OP_LOAD:
        case OP_LCMP_LT:
        case OP_LCMP_LE:
        case OP_LCMP_GT:
        case OP_LCMP_GE:
        case OP_LCMP_EQ:
        case OP_LCMP_NE:
            sp++;
            break;
        case OP_NEG:
        case OP_NOT:
        case OP_FOR:
            break;
        case OP_AGG:
            agg_ret = i + code[i].arg;
            break;
        case OP_RET:
            if (i != agg_ret) {
                sp--;
            }
            break;
        default: /* binary operators */
            sp--;
            break;
        }
        if (sp > max) {
            max = sp;
        }
    }
    return max;
}

/* Line and column (1-based) of byte offset `off` in src. */
static void position_of(const char *src, size_t off, int *line, int *col) {
    int l = 1;
    size_t ls = 0;
    for (size_t i = 0; i < off; i++) {
        if (src[i] == '\n') {
            l++;
            ls = i + 1;
        }
    }
    *line = l;
    *col = (int)(off - ls) + 1;
}

int rsre_expr_compile(const char *src, size_t len, rsre_expr_resolve_cb resolve, void *ctx,
                      struct rsre_expr **out, struct rsre_expr_error *err) {
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || (src == NULL && len > 0)) {
        return -EINVAL;
    }
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
    if (src == NULL) {
        src = "";
    }

    struct compiler *c = calloc(1, sizeof(*c)); /* ~13 KiB: too much for small stacks */
    if (c == NULL) {
        return -ENOMEM;
    }
    c->src = src;
    c->len = len;
    c->line = 1;
    c->resolve = resolve;
    c->ctx = ctx;
    c->err = err;

    if (len > RSRE_EXPR_MAX_SOURCE) {
        int line, col;
        position_of(src, RSRE_EXPR_MAX_SOURCE, &line, &col);
        fail_at(c, RSRE_ELIMIT, line, col, "expression too long (%zu bytes, limit %d)", len,
                RSRE_EXPR_MAX_SOURCE);
    } else {
        next(c);
        c->have_prev = 0;
        if (parse_or(c) == 0 && c->cur.kind != T_EOF && !c->failed) {
            char found[96];
            describe(&c->cur, found, sizeof(found));
            if (c->cur.kind == T_RP) {
                fail_at(c, RSRE_EPARSE, c->cur.line, c->cur.col, "unmatched ')'");
            } else {
                fail_at(c, RSRE_EPARSE, c->cur.line, c->cur.col,
                        "expected an operator or end of input, found %s", found);
            }
        }
        if (!c->failed) {
            emit(c, OP_RET, &c->cur);
        }
    }
    if (c->failed) {
        int rc = c->rc;
        free(c);
        return rc;
    }

    size_t code_bytes = c->ncode * sizeof(struct insn);
    size_t slot_bytes = c->nslots * sizeof(struct slot_entry);
    struct rsre_expr *e = malloc(sizeof(*e) + code_bytes + slot_bytes + c->names_len + 1);
    if (e == NULL) {
        free(c);
        return -ENOMEM;
    }
    e->ncode = c->ncode;
    e->nstate = c->nstate;
    e->nslots = c->nslots;
    e->slot_span = c->slot_span;
    e->max_stack = stack_need(c->code, c->ncode);
    memcpy(e->code, c->code, code_bytes);
    struct slot_entry *slots = (struct slot_entry *)((char *)e->code + code_bytes);
    memcpy(slots, c->slots, slot_bytes);
    char *names = (char *)slots + slot_bytes;
    memcpy(names, c->names, c->names_len);
    names[c->names_len] = '\0';
    e->slots = slots;
    e->names = names;
    free(c);
    *out = e;
    return 0;
}

void rsre_expr_destroy(struct rsre_expr *e) {
    free(e);
}

size_t rsre_expr_state_size(const struct rsre_expr *e) {
    return e != NULL ? e->nstate : 0;
}

size_t rsre_expr_slot_count(const struct rsre_expr *e) {
    return e != NULL ? e->nslots : 0;
}

size_t rsre_expr_slot_span(const struct rsre_expr *e) {
    return e != NULL ? e->slot_span : 0;
}

size_t rsre_expr_op_count(const struct rsre_expr *e) {
    return e != NULL ? e->ncode : 0;
}

size_t rsre_expr_stack_depth(const struct rsre_expr *e) {
    return e != NULL ? e->max_stack : 0;
}

int rsre_expr_slot(const struct rsre_expr *e, size_t i, const char **name) {
    if (e == NULL || i >= e->nslots) {
        return -EINVAL;
    }
    if (name != NULL) {
        *name = e->names + e->slots[i].name_off;
    }
    return (int)e->slots[i].slot;
}

/* ---------------------------------------------------------------------------------------- */
/* The machine                                                                               */

static inline double load(const double *src, size_t n, uint32_t slot) {
    return slot < n ? src[slot] : NAN;
}

/* Holds the state of one `for` clause: `cell` is the time the condition became continuously
 * true, 0 while it is not. A clock that moves backwards restarts the hold. */
static inline double hold(int64_t *cell, int cond, int64_t now, int64_t dur) {
    if (!cond || now <= 0) {
        *cell = 0;
        return 0.0;
    }
    if (*cell == 0 || *cell > now) {
        *cell = now;
    }
    return now - *cell >= dur ? 1.0 : 0.0;
}

static double run(const struct insn *pc, double *stack, const double *src, size_t nsrc,
                  const struct rsre_expr_env *env, int64_t *state);

/* Folds an aggregate's body (starting at `body`) over the rows of env. */
static double aggregate(int kind, const struct insn *body, double *stack,
                        const struct rsre_expr_env *env) {
    size_t nrows = env->rows != NULL ? env->nrows : 0;
    if (nrows > RSRE_EXPR_MAX_ROWS) {
        nrows = RSRE_EXPR_MAX_ROWS;
    }
    size_t count = 0, defined = 0;
    int unknown = 0;
    double acc = 0;
    for (size_t r = 0; r < nrows; r++) {
        const double *row = env->rows[r];
        double v = run(body, stack, row, row != NULL ? env->nscalars : 0, env, NULL);
        switch (kind) {
        case AGG_COUNT:
            count += truthy(v);
            break;
        case AGG_ANY:
            if (truthy(v)) {
                return 1.0;
            }
            unknown |= isnan(v);
            break;
        case AGG_ALL:
            if (v == 0) {
                return 0.0;
            }
            unknown |= isnan(v);
            break;
        case AGG_SUM:
            if (!isnan(v)) {
                acc += v;
                defined++;
            }
            break;
        case AGG_MIN:
            if (!isnan(v) && (defined++ == 0 || v < acc)) {
                acc = v;
            }
            break;
        case AGG_MAX:
            if (!isnan(v) && (defined++ == 0 || v > acc)) {
                acc = v;
            }
            break;
        }
    }
    switch (kind) {
    case AGG_COUNT:
        return (double)count;
    case AGG_ANY:
        return unknown ? NAN : 0.0;
    case AGG_ALL:
        return (unknown || nrows == 0) ? NAN : 1.0;
    default:
        return defined > 0 ? acc : NAN;
    }
}

/* Runs code from pc to its OP_RET with the value stack starting at `stack`; returns the top.
 * Names read src[0..nsrc). Compiled code is well formed, so no bounds checks are needed. */
static double run(const struct insn *pc, double *stack, const double *src, size_t nsrc,
                  const struct rsre_expr_env *env, int64_t *state) {
    double *sp = stack; /* next free cell */
    for (;; pc++) {
        switch ((enum opcode)pc->op) {
        case OP_RET:
            return sp[-1];
        case OP_CONST:
            *sp++ = pc->u.k;
            break;
        case OP_LOAD:
            *sp++ = load(src, nsrc, pc->arg);
            break;
        case OP_ADD:
            sp--;
            sp[-1] = sp[-1] + sp[0];
            break;
        case OP_SUB:
            sp--;
            sp[-1] = sp[-1] - sp[0];
            break;
        case OP_MUL:
            sp--;
            sp[-1] = sp[-1] * sp[0];
            break;
        case OP_DIV:
            sp--;
            sp[-1] = divide(sp[-1], sp[0]);
            break;
        case OP_NEG:
            sp[-1] = -sp[-1];
            break;
        case OP_LT:
            sp--;
            sp[-1] = sp[-1] < sp[0];
            break;
        case OP_LE:
            sp--;
            sp[-1] = sp[-1] <= sp[0];
            break;
        case OP_GT:
            sp--;
            sp[-1] = sp[-1] > sp[0];
            break;
        case OP_GE:
            sp--;
            sp[-1] = sp[-1] >= sp[0];
            break;
        case OP_EQ:
            sp--;
            sp[-1] = sp[-1] == sp[0];
            break;
        case OP_NE:
            sp--;
            sp[-1] = sp[-1] < sp[0] || sp[-1] > sp[0];
            break;
        case OP_AND:
            sp--;
            sp[-1] = kleene_and(sp[-1], sp[0]);
            break;
        case OP_OR:
            sp--;
            sp[-1] = kleene_or(sp[-1], sp[0]);
            break;
        case OP_NOT:
            sp[-1] = kleene_not(sp[-1]);
            break;
        case OP_FOR:
            if (state != NULL) {
                sp[-1] = hold(&state[pc->arg], truthy(sp[-1]), env->now_s, pc->u.dur);
            } else {
                sp[-1] = 0.0;
            }
            break;
        case OP_AGG:
            *sp = aggregate(pc->agg, pc + 1, sp, env);
            sp++;
            pc += pc->arg;
            break;
        case OP_LCMP_LT:
            *sp++ = load(src, nsrc, pc->arg) < pc->u.k;
            break;
        case OP_LCMP_LE:
            *sp++ = load(src, nsrc, pc->arg) <= pc->u.k;
            break;
        case OP_LCMP_GT:
            *sp++ = load(src, nsrc, pc->arg) > pc->u.k;
            break;
        case OP_LCMP_GE:
            *sp++ = load(src, nsrc, pc->arg) >= pc->u.k;
            break;
        case OP_LCMP_EQ:
            *sp++ = load(src, nsrc, pc->arg) == pc->u.k;
            break;
        case OP_LCMP_NE: {
            double v = load(src, nsrc, pc->arg);
            *sp++ = v < pc->u.k || v > pc->u.k;
            break;
        }
        }
    }
}

double rsre_expr_eval(const struct rsre_expr *e, const struct rsre_expr_env *env, int64_t *state) {
    static const struct rsre_expr_env empty = {0};
    double stack[RSRE_EXPR_MAX_OPS + 1];
    if (e == NULL) {
        return NAN;
    }
    if (env == NULL) {
        env = &empty;
    }
    return run(e->code, stack, env->scalars, env->scalars != NULL ? env->nscalars : 0, env, state);
}

int rsre_expr_true(const struct rsre_expr *e, const struct rsre_expr_env *env, int64_t *state) {
    return truthy(rsre_expr_eval(e, env, state));
}
