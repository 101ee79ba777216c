#ifndef RSRE_WIRE_NOTIFY_H
#define RSRE_WIRE_NOTIFY_H

/*
 * The daemon's notifications (aggregator/notify, docs/chatops.md): loads the notifications file
 * (notify_file), creates the Telegram / WhatsApp transports its channels name (their
 * `settings`), runs the core on the loop (a timer: due messages, approval announcements and
 * edits every 2 s), hands incident events to it, turns chat votes into engine decisions, feeds
 * channel health to the incident engine as observations (chat.channels_down,
 * chat.channels_total at scope "channels"; the engine adds incidents.active:
 * chatops_delivery_failure) and
 * counts ops_chat_delivery_failures_total. Without notify_file only the in-app records are
 * written (the core runs without chat channels).
 *
 * approvals/approvals.h is not included here (its `enum rsre_channel` clashes with the
 * transports' `struct rsre_channel`): the handle is passed opaque.
 */

#include <stdint.h>
#include <uv.h>

#include "approvals/operators.h"
#include "http/metrics.h"
#include "incidents/engine.h"
#include "store/store.h"

struct rsre_approvals;
struct rsre__wire_notify;

struct rsre__wire_notify_deps {
    uv_loop_t *loop;
    rsre_store *store;
    struct rsre_incident_engine *engine;
    struct rsre_approvals *approvals;
    const struct rsre_operators *operators;
    struct rsre_metrics *metrics;
    const char *file; /* notifications file; "" or NULL: in-app only */
};

/* Starts notifications. Returns 0 with *out, or an error (logged with the file's line:col). */
int rsre__wire_notify_create(const struct rsre__wire_notify_deps *d,
                             struct rsre__wire_notify **out);
/* An incident event from the engine's notify hook (after commit). */
void rsre__wire_notify_incident(struct rsre__wire_notify *w, const rsre_store_incident *inc,
                                const char *what);
/* Something changed approvals (a vote through the API): announce and edit on the next turn. */
void rsre__wire_notify_kick(struct rsre__wire_notify *w);
/* A chat platform's webhook request from the admin API (http/api.h): the WhatsApp verify
 * handshake and notifications, Telegram updates in webhook mode. Returns the HTTP status (404
 * when that channel is not configured); `out` may get a text body (the challenge). */
struct rsre_api_webhook;
int rsre__wire_notify_webhook(struct rsre__wire_notify *w, const struct rsre_api_webhook *req,
                              char *out, size_t cap);
/* The channel-health heartbeat, inside the caller's transaction (the daemon's tick, before
 * the engine's tick): channel health is reported on change only, so the last reported state is
 * re-asserted for `fresh_ms` (rsre_incident_engine_observe_refresh of "notify:channels"), and
 * later health observations carry `fresh_ms` too. Nothing while no health was reported yet or
 * a change is still to be observed. Returns 0 or an engine error. NULL w: 0. */
int rsre__wire_notify_heartbeat(struct rsre__wire_notify *w, rsre_store_txn *txn, int64_t fresh_ms,
                                int64_t now);
/* Stops the transports and the timer; `closed(arg)` runs once everything is released (the loop
 * must keep running). NULL w: closed runs at once. */
void rsre__wire_notify_close(struct rsre__wire_notify *w, void (*closed)(void *), void *arg);

#endif
