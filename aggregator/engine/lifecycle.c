#include "engine/lifecycle.h"

#include "common/error.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

static const char *const state_names[RSRE_STATE_COUNT] = {
    [RSRE_STATE_OBSERVED] = "observed",   [RSRE_STATE_TRIAGED] = "triaged",
    [RSRE_STATE_CONTAINED] = "contained", [RSRE_STATE_RECOVERING] = "recovering",
    [RSRE_STATE_RESOLVED] = "resolved",   [RSRE_STATE_SUPPRESSED] = "suppressed",
    [RSRE_STATE_ESCALATED] = "escalated",
};

static const char *const event_names[RSRE_LC_EVENT_COUNT] = {
    [RSRE_LC_TRIAGE] = "triage",
    [RSRE_LC_CONTAIN_ACTION_SUCCEEDED] = "contain_action_succeeded",
    [RSRE_LC_RECOVERY_ACTION_STARTED] = "recovery_action_started",
    [RSRE_LC_EXIT_CRITERIA_MET] = "exit_criteria_met",
    [RSRE_LC_SUPPRESS] = "suppress",
    [RSRE_LC_UNSUPPRESS] = "unsuppress",
    [RSRE_LC_ESCALATE] = "escalate",
    [RSRE_LC_REOPEN] = "reopen",
    [RSRE_LC_OPERATOR_RESOLVE] = "operator_resolve",
};

#define OBS RSRE_STATE_OBSERVED
#define TRI RSRE_STATE_TRIAGED
#define CON RSRE_STATE_CONTAINED
#define REC RSRE_STATE_RECOVERING
#define RES RSRE_STATE_RESOLVED
#define SUP RSRE_STATE_SUPPRESSED
#define ESC RSRE_STATE_ESCALATED

#define E_TRIAGE RSRE_LC_EVENT_BIT(RSRE_LC_TRIAGE)
#define E_CONTAIN RSRE_LC_EVENT_BIT(RSRE_LC_CONTAIN_ACTION_SUCCEEDED)
#define E_RECOVER RSRE_LC_EVENT_BIT(RSRE_LC_RECOVERY_ACTION_STARTED)
#define E_EXIT RSRE_LC_EVENT_BIT(RSRE_LC_EXIT_CRITERIA_MET)
#define E_SUPPRESS RSRE_LC_EVENT_BIT(RSRE_LC_SUPPRESS)
#define E_UNSUPPRESS RSRE_LC_EVENT_BIT(RSRE_LC_UNSUPPRESS)
#define E_ESCALATE RSRE_LC_EVENT_BIT(RSRE_LC_ESCALATE)
#define E_REOPEN RSRE_LC_EVENT_BIT(RSRE_LC_REOPEN)
#define E_OPRESOLVE RSRE_LC_EVENT_BIT(RSRE_LC_OPERATOR_RESOLVE)

/*
 * transitions[from][to] is the set of events that move an incident from `from` to `to`; an
 * empty cell means the transition is not allowed. Within a row each event appears in at most
 * one cell, so a (state, event) pair has at most one successor. Rationale per cell is in
 * docs/lifecycle-and-confidence.md; the rules it encodes:
 *   - Only reopen (from resolved) and unsuppress (from suppressed) lead back to observed.
 *   - Resolved is left only by reopen.
 *   - Observed must be triaged before anything else, except that a human may close it.
 *   - A human may close any open incident (operator_resolve).
 *   - Escalated is never suppressed or left by the robot alone: the events leaving it are the
 *     results of operator-approved actions or the exit criteria.
 */
/* clang-format off */
static const unsigned transitions[RSRE_STATE_COUNT][RSRE_STATE_COUNT] = {
    [OBS] = {[TRI] = E_TRIAGE,
             [RES] = E_OPRESOLVE},
    [TRI] = {[CON] = E_CONTAIN,
             [REC] = E_RECOVER,
             [RES] = E_EXIT | E_OPRESOLVE,
             [SUP] = E_SUPPRESS,
             [ESC] = E_ESCALATE},
    [CON] = {[REC] = E_RECOVER,
             [RES] = E_EXIT | E_OPRESOLVE,
             [SUP] = E_SUPPRESS,
             [ESC] = E_ESCALATE},
    [REC] = {[CON] = E_CONTAIN,
             [RES] = E_EXIT | E_OPRESOLVE,
             [ESC] = E_ESCALATE},
    [RES] = {[OBS] = E_REOPEN},
    [SUP] = {[OBS] = E_UNSUPPRESS,
             [RES] = E_EXIT | E_OPRESOLVE,
             [ESC] = E_ESCALATE},
    [ESC] = {[CON] = E_CONTAIN,
             [REC] = E_RECOVER,
             [RES] = E_EXIT | E_OPRESOLVE},
};
/* clang-format on */

static int state_ok(enum rsre_state s) {
    return (unsigned)s < RSRE_STATE_COUNT;
}

static int event_ok(enum rsre_lc_event ev) {
    return (unsigned)ev < RSRE_LC_EVENT_COUNT;
}

const char *rsre_state_name(enum rsre_state s) {
    return state_ok(s) ? state_names[s] : "unknown";
}

int rsre_state_parse(const char *name, enum rsre_state *out) {
    if (name == NULL || out == NULL) {
        return -EINVAL;
    }
    for (unsigned i = 0; i < RSRE_STATE_COUNT; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (enum rsre_state)i;
            return 0;
        }
    }
    return RSRE_EINVALID;
}

const char *rsre_lc_event_name(enum rsre_lc_event ev) {
    return event_ok(ev) ? event_names[ev] : "unknown";
}

int rsre_lc_event_parse(const char *name, enum rsre_lc_event *out) {
    if (name == NULL || out == NULL) {
        return -EINVAL;
    }
    for (unsigned i = 0; i < RSRE_LC_EVENT_COUNT; i++) {
        if (strcmp(name, event_names[i]) == 0) {
            *out = (enum rsre_lc_event)i;
            return 0;
        }
    }
    return RSRE_EINVALID;
}

int rsre_lifecycle_transition(enum rsre_state from, enum rsre_lc_event ev, enum rsre_state *to) {
    if (to == NULL || !state_ok(from) || !event_ok(ev)) {
        return -EINVAL;
    }
    for (unsigned t = 0; t < RSRE_STATE_COUNT; t++) {
        if (transitions[from][t] & RSRE_LC_EVENT_BIT(ev)) {
            *to = (enum rsre_state)t;
            return 0;
        }
    }
    return RSRE_ETRANSITION;
}

unsigned rsre_lifecycle_events(enum rsre_state from, enum rsre_state to) {
    if (!state_ok(from) || !state_ok(to)) {
        return 0;
    }
    return transitions[from][to];
}

int rsre_lifecycle_can(enum rsre_state from, enum rsre_state to) {
    return rsre_lifecycle_events(from, to) != 0;
}

int rsre_lifecycle_is_open(enum rsre_state s) {
    return state_ok(s) && s != RSRE_STATE_RESOLVED;
}
