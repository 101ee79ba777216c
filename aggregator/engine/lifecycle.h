#ifndef RSRE_LIFECYCLE_H
#define RSRE_LIFECYCLE_H

/*
 * Incident lifecycle (spec "Incident Lifecycle"): seven states and the events that move an
 * incident between them. The allowed transitions are one static 7x7 table in lifecycle.c; every
 * cell lists the events that cause that transition. The table, its rationale and a diagram are
 * in docs/lifecycle-and-confidence.md.
 *
 * Pure functions: no I/O, no allocation, no global mutable state. Every string returned is
 * static and valid for the life of the program.
 */

/* Enumerators are stable: they may be stored. Add new states at the end only. */
enum rsre_state {
    RSRE_STATE_OBSERVED = 0,
    RSRE_STATE_TRIAGED,
    RSRE_STATE_CONTAINED,
    RSRE_STATE_RECOVERING,
    RSRE_STATE_RESOLVED,
    RSRE_STATE_SUPPRESSED,
    RSRE_STATE_ESCALATED,
};
#define RSRE_STATE_COUNT 7

/* What happened to the incident. Enumerators are stable: they may be stored. */
enum rsre_lc_event {
    RSRE_LC_TRIAGE = 0,               /* classified, severity and confidence assessed */
    RSRE_LC_CONTAIN_ACTION_SUCCEEDED, /* a contain action ran and verified */
    RSRE_LC_RECOVERY_ACTION_STARTED,  /* an (approved) recover or disruptive action began */
    RSRE_LC_EXIT_CRITERIA_MET,        /* the class's rollback / exit criteria hold */
    RSRE_LC_SUPPRESS,                 /* cooldown, duplicate alert, or suppression window */
    RSRE_LC_UNSUPPRESS,               /* suppression ended and the evidence is still there */
    RSRE_LC_ESCALATE,         /* approval expired, action or verification failed, or severity
                                 rose beyond what automation may handle */
    RSRE_LC_REOPEN,           /* evidence returned within the reopen window after resolution */
    RSRE_LC_OPERATOR_RESOLVE, /* a human closed the incident */
};
#define RSRE_LC_EVENT_COUNT 9

/* Bit for `ev` in the masks returned by rsre_lifecycle_events(). */
#define RSRE_LC_EVENT_BIT(ev) (1u << (unsigned)(ev))

/* Returns the spec's lowercase name ("observed", ...), or "unknown" for a value out of range. */
const char *rsre_state_name(enum rsre_state s);

/*
 * Parses a state name (exact, lowercase, NUL-terminated) into *out. Returns 0, -EINVAL when an
 * argument is NULL, or RSRE_EINVALID when the name is not a state; on failure *out is untouched.
 */
int rsre_state_parse(const char *name, enum rsre_state *out);

/* Returns the event's name ("triage", "contain_action_succeeded", ...) or "unknown". */
const char *rsre_lc_event_name(enum rsre_lc_event ev);

/* Like rsre_state_parse, for event names. */
int rsre_lc_event_parse(const char *name, enum rsre_lc_event *out);

/*
 * Applies `ev` to an incident in state `from`. On success stores the new state in *to and
 * returns 0. Returns RSRE_ETRANSITION when the table does not allow `ev` in `from` (self-loops
 * are never allowed), or -EINVAL when `to` is NULL or `from`/`ev` is out of range; on any
 * failure *to is left untouched. The result is deterministic: in each state an event leads to
 * at most one state.
 */
int rsre_lifecycle_transition(enum rsre_state from, enum rsre_lc_event ev, enum rsre_state *to);

/* Returns 1 when some event moves an incident from `from` to `to`, else 0 (also out of range). */
int rsre_lifecycle_can(enum rsre_state from, enum rsre_state to);

/*
 * Returns the set of events (RSRE_LC_EVENT_BIT) that move an incident from `from` to `to`;
 * 0 when the transition is not allowed or a state is out of range.
 */
unsigned rsre_lifecycle_events(enum rsre_state from, enum rsre_state to);

/* Returns 1 for every state except RESOLVED (the incident still needs attention), else 0. */
int rsre_lifecycle_is_open(enum rsre_state s);

#endif
