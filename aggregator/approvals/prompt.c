/*
 * Approval prompts (spec "Approval Prompt Requirements") and the text checks behind them: every
 * part present, bounded, printable, valid UTF-8.
 */
#include <stdio.h>
#include <string.h>

#include "approvals/approvals_internal.h"
#include "common/error.h"

/* Verb phrases for prompts, by action id; other actions use their catalogue label. */
static const struct {
    const char *id, *words;
} action_words[] = {
    {"cordon_node", "cordon node"},
    {"uncordon_node", "uncordon node"},
    {"drain_node", "drain node"},
    {"reboot_worker", "reboot worker"},
    {"replace_worker", "replace worker"},
    {"delete_finished_pods", "delete Succeeded and Failed pods in"},
    {"suspend_cronjob", "suspend CronJob"},
    {"resume_workload", "resume"},
    {"scale_workload_to_zero", "scale to zero"},
    {"rollout_restart", "rollout-restart"},
    {"restart_backend", "rollout-restart backend"},
    {"restart_shared_dependency", "rollout-restart shared dependency"},
    {"scale_shared_controllers_down", "scale shared controllers down"},
    {"pause_shared_controllers", "pause shared controllers"},
    {"bulk_cleanup_outside_allowlist", "bulk-clean finished workloads in"},
};

const char *rsre_approvals_action_words(const struct rsre_action_def *action) {
    if (!action) {
        return "(unknown action)";
    }
    for (size_t i = 0; i < sizeof(action_words) / sizeof(action_words[0]); i++) {
        if (strcmp(action_words[i].id, action->id) == 0) {
            return action_words[i].words;
        }
    }
    return action->label && action->label[0] ? action->label : action->id;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s) {
    unsigned char c = s[0];
    size_t n;
    unsigned min;
    unsigned cp;
    if (c < 0x80) {
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2, min = 0x80, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, min = 0x800, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

int rsre__apr_text(const char *s, size_t max, char *buf, size_t cap) {
    if (!s) {
        return RSRE_EINVALID;
    }
    size_t len = strlen(s);
    if (len > max || len >= cap) {
        return RSRE_ELIMIT;
    }
    for (size_t i = 0; i < len;) {
        const unsigned char *p = (const unsigned char *)s + i;
        if (*p < 0x20 || *p == 0x7f) {
            return RSRE_EINVALID; /* control characters, newlines included */
        }
        size_t n = utf8_len(p);
        if (n == 0) {
            return RSRE_EINVALID;
        }
        i += n;
    }
    while (*s == ' ') {
        s++, len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '.')) {
        len--;
    }
    if (len == 0) {
        return RSRE_EINVALID;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 0;
}

int rsre__apr_token(const char *s, size_t max) {
    if (!s || !s[0] || strlen(s) > max) {
        return 0;
    }
    for (; *s; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

char *rsre__apr_clean(const char *s, char *buf, size_t cap) {
    if (!s || !s[0]) {
        snprintf(buf, cap, "(none)");
        return buf;
    }
    size_t o = 0, i = 0;
    for (; s[i] && i < 128 && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (s[i] && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

void rsre__apr_ttl(int64_t ms, char *buf, size_t cap) {
    long long s = ms > 0 ? (long long)(ms / 1000) : 0;
    long long h = s / 3600, m = s / 60 % 60, sec = s % 60;
    size_t o = 0;
    buf[0] = '\0';
    if (h && o < cap) {
        o += (size_t)snprintf(buf + o, cap - o, "%lldh", h);
    }
    if (m && o < cap) {
        o += (size_t)snprintf(buf + o, cap - o, "%lldm", m);
    }
    if ((sec || s == 0) && o < cap) {
        snprintf(buf + o, cap - o, "%llds", sec);
    }
}

void rsre__apr_copy(char *buf, size_t cap, const char *s) {
    if (cap == 0) {
        return;
    }
    size_t len = s ? strlen(s) : 0;
    if (len >= cap) {
        len = cap - 1;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80) {
            len--; /* s[len] continues a sequence: cut before its lead byte */
        }
    }
    if (len) {
        memcpy(buf, s, len);
    }
    buf[len] = '\0';
}

size_t rsre_approvals_render_prompt(const struct rsre_action_def *action, const char *target,
                                    const char *why_now, const char *expected_impact,
                                    const char *rollback, int64_t expiry_ms, char *buf,
                                    size_t cap) {
    char ttl[32];
    rsre__apr_ttl(expiry_ms, ttl, sizeof(ttl));
    /* Trim what callers hand in so that each sentence ends with exactly one period. */
    const char *parts[3] = {why_now, expected_impact, rollback};
    char trimmed[3][RSRE_APPROVAL_TEXT_MAX + 1];
    for (size_t i = 0; i < 3; i++) {
        if (rsre__apr_text(parts[i], RSRE_APPROVAL_TEXT_MAX, trimmed[i], sizeof(trimmed[i]))) {
            rsre__apr_copy(trimmed[i], sizeof(trimmed[i]), parts[i] ? parts[i] : "");
        }
    }
    int n = snprintf(buf, cap,
                     "Robot SRE requests approval: %s %s. Reason: %s. Expected impact: %s. "
                     "Rollback/fallback: %s. Approval expires in %s.",
                     rsre_approvals_action_words(action), target ? target : "", trimmed[0],
                     trimmed[1], trimmed[2], ttl);
    return n < 0 ? 0 : (size_t)n;
}
