#!/usr/bin/python3
"""A stand-in for the WhatsApp Cloud API (Graph API), for tests.

  POST /{version}/{phone-number-id}/messages   (Authorization: Bearer <token>,
                                                Content-Type: application/json)

Checks the documented request shape: messaging_product "whatsapp", recipient_type
"individual" (optional), to (digits, optional +), type "text" (text.body 1-4096 characters,
text.preview_url bool) or "interactive" with interactive.type "button" (body.text 1-1024,
action.buttons 1-3 of {type:"reply", reply:{id 1-256 characters, title 1-20 characters}}, ids
and titles unique), optional context.message_id of a message this number sent. Answers
{"messaging_product":"whatsapp","contacts":[{"input","wa_id"}],"messages":[{"id":"wamid..."}]}
or Graph API errors {"error":{"message","type","code","error_subcode"?,"error_data"?:
{"messaging_product","details"},"fbtrace_id"}}: 190 (bad token, 401), 100 (missing or invalid
parameter, 400), 131009 (parameter value not valid, 400), 131008 (required parameter missing).

Recipients marked "window_closed" get a 200 and then, as with the real API, a "failed" status
webhook with error 131047; those marked "undeliverable" one with 131026. Webhook notifications
(statuses, and button replies pushed by the test) are signed as Meta signs them:
X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>. They are POSTed to
--webhook-url when set, and always kept in an outbox the test can read.

Usage:  whatsapp_api_server.py --token T --phone-number-id ID --app-secret S
                               [--webhook-url URL] [--port N]
Prints "PORT <n>" on stdout once it listens on 127.0.0.1.

Test control endpoints (JSON):
  POST   /_test/recipients {"number", "window_closed"?, "undeliverable"?} or a list
  POST   /_test/faults     as the Telegram server: {"count"?, "status"+"code"+"message"?+
                           "details"?, or "sleep", or "malformed", or "raw_status"; and
                           "retry_after_header"?: a Retry-After header on that error reply}
  POST   /_test/reply      {"from", "context_id", "button"?: index | "id"?, "title"?}
                           -> {"body", "signature", "delivered"?}: a button_reply notification
  POST   /_test/config     {"webhook_url"}: where notifications are POSTed (null: nowhere)
  POST   /_test/sign       {"body": text, "secret"?} -> {"signature"} (any body, any secret)
  GET    /_test/outbox     webhook notifications built so far [{"body","signature",...}]
  GET    /_test/requests   every API request: path, content_type, auth_ok, body, status, reply
  DELETE /_test/requests   clears requests and outbox
  GET    /_test/messages   messages sent (wamid, to, type, body, buttons, context)
"""

import argparse
import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {
    "token": "",
    "phone_number_id": "",
    "app_secret": "",
    "webhook_url": None,
    "recipients": {},
    "messages": {},   # wamid -> dict
    "faults": [],
    "requests": [],
    "outbox": [],
}
DISPLAY = "15550001234"
MAX_BODY = 1 << 20


def trace():
    return secrets.token_urlsafe(12)


def gerr(http, code, message, etype="OAuthException", details=None, subcode=None):
    e = {"message": message, "type": etype, "code": code, "fbtrace_id": trace()}
    if subcode is not None:
        e["error_subcode"] = subcode
    if details:
        e["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return http, {"error": e}


def invalid(details):
    return gerr(400, 131009, "(#131009) Parameter value is not valid", details=details)


def missing(param):
    return gerr(400, 100, "(#100) The parameter %s is required." % param)


def wamid():
    return "wamid.HBgL" + secrets.token_urlsafe(33).replace("-", "A").replace("_", "B")


def sign(body, secret=None):
    key = (secret if secret is not None else STATE["app_secret"]).encode()
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def notification(value):
    return {"object": "whatsapp_business_account", "entry": [{
        "id": "102290129340398",
        "changes": [{"field": "messages", "value": dict({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": DISPLAY,
                         "phone_number_id": STATE["phone_number_id"]}}, **value)}]}]}


def emit(doc):
    """Signs a notification, keeps it in the outbox and delivers it when a URL is set."""
    body = json.dumps(doc).encode()
    item = {"body": body.decode(), "signature": sign(body)}
    with LOCK:
        STATE["outbox"].append(item)
        url = STATE["webhook_url"]
    if url:
        def post():
            req = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": "application/json", "X-Hub-Signature-256": item["signature"]})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    item["delivered"] = r.status
            except Exception as e:  # the aggregator may refuse: record it
                item["delivered"] = getattr(e, "code", str(e))
        threading.Thread(target=post, daemon=True).start()
    return item


def failed_status(mid, to, code, title, message):
    return notification({"statuses": [{
        "id": mid, "status": "failed", "timestamp": str(int(time.time())), "recipient_id": to,
        "errors": [{"code": code, "title": title, "message": message,
                    "error_data": {"details": message}}]}]})


def check_message(p):
    if p.get("messaging_product") != "whatsapp":
        return missing("messaging_product")
    if p.get("recipient_type", "individual") != "individual":
        return invalid("recipient_type must be individual")
    to = p.get("to")
    if not isinstance(to, str) or not to:
        return missing("to")
    digits = to[1:] if to.startswith("+") else to
    if not digits.isdigit() or not (6 <= len(digits) <= 20):
        return invalid("to is not a valid phone number")
    t = p.get("type", "text")
    if t == "text":
        txt = p.get("text")
        if not isinstance(txt, dict) or not isinstance(txt.get("body"), str) or not txt["body"]:
            return missing("text['body']")
        if len(txt["body"]) > 4096:
            return invalid("text['body'] is longer than 4096 characters")
        if "preview_url" in txt and not isinstance(txt["preview_url"], bool):
            return invalid("text['preview_url'] must be a boolean")
    elif t == "interactive":
        it = p.get("interactive")
        if not isinstance(it, dict) or it.get("type") != "button":
            return invalid("interactive['type'] must be button")
        body = it.get("body")
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
            return missing("interactive['body']['text']")
        if len(body["text"]) > 1024:
            return invalid("interactive['body']['text'] is longer than 1024 characters")
        btns = (it.get("action") or {}).get("buttons")
        if not isinstance(btns, list) or not (1 <= len(btns) <= 3):
            return invalid("interactive['action']['buttons'] must hold 1 to 3 buttons")
        ids, titles = set(), set()
        for b in btns:
            r = b.get("reply") if isinstance(b, dict) else None
            if not isinstance(b, dict) or b.get("type") != "reply" or not isinstance(r, dict):
                return invalid("button type must be reply")
            bid, title = r.get("id"), r.get("title")
            if not isinstance(bid, str) or not (1 <= len(bid) <= 256):
                return invalid("button id must be 1 to 256 characters")
            if not isinstance(title, str) or not (1 <= len(title) <= 20):
                return invalid("button title must be 1 to 20 characters")
            if bid in ids or title in titles:
                return invalid("button ids and titles must be unique")
            ids.add(bid)
            titles.add(title)
    else:
        return invalid("type %s is not supported here" % t)
    ctx = p.get("context")
    if ctx is not None:
        if not isinstance(ctx, dict) or ctx.get("message_id") not in STATE["messages"]:
            return invalid("context['message_id'] is not a message of this number")
    return None


def take_fault():
    if STATE["faults"]:
        f = STATE["faults"][0]
        f["count"] = f.get("count", 1) - 1
        if f["count"] <= 0:
            STATE["faults"].pop(0)
        return f
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_raw(self, status, body, ctype="application/json", retry_after_header=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if retry_after_header is not None:
            self.send_header("Retry-After", str(retry_after_header))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, doc, retry_after_header=None):
        self.send_raw(status, json.dumps(doc).encode(), retry_after_header=retry_after_header)

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, verb):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            self.send_json(*gerr(413, 1, "Request too large", "GraphMethodException"))
            return
        body = self.rfile.read(n) if n else b""
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/_test/"):
            self.control(verb, path, body)
        else:
            self.api(verb, path, body)

    def api(self, verb, path, body):
        parts = path.split("/")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        auth = self.headers.get("Authorization") or ""
        rec = {"path": path, "verb": verb, "content_type": ctype,
               "auth_ok": auth == "Bearer " + STATE["token"], "body": body.decode("utf-8", "replace")}
        with LOCK:
            STATE["requests"].append(rec)
            fault = take_fault()
        after = None
        if not rec["auth_ok"]:
            status, doc = gerr(401, 190, "Invalid OAuth access token - Cannot parse access token")
        elif len(parts) != 4 or parts[3] != "messages" or verb != "POST" or \
                not parts[1].startswith("v"):
            status, doc = gerr(400, 100, "Unknown path components: %s" % path, "OAuthException")
        elif parts[2] != STATE["phone_number_id"]:
            status, doc = gerr(400, 100, "Unsupported post request. Object with ID '%s' does not "
                               "exist, cannot be loaded due to missing permissions, or does not "
                               "support this operation." % parts[2], "GraphMethodException",
                               subcode=33)
        elif ctype != "application/json":
            status, doc = missing("messaging_product")
        elif fault and "sleep" in fault:
            time.sleep(float(fault["sleep"]))
            status, doc = gerr(500, 131000, "Something went wrong")
        elif fault and fault.get("malformed"):
            rec["status"] = 200
            self.send_raw(200, b'{"messaging_product":"whatsapp","messages":[{"id":')
            return
        elif fault and "raw_status" in fault:
            rec["status"] = int(fault["raw_status"])
            self.send_raw(int(fault["raw_status"]), b"<html>Bad Gateway</html>", "text/html",
                          retry_after_header=fault.get("retry_after_header"))
            return
        elif fault and "status" in fault:
            status, doc = gerr(int(fault["status"]), int(fault.get("code", 1)),
                               fault.get("message", "(#%s) error" % fault.get("code", 1)),
                               details=fault.get("details"))
        else:
            try:
                p = json.loads(body)
                if not isinstance(p, dict):
                    raise ValueError
            except ValueError:
                p = None
            e = missing("messaging_product") if p is None else check_message(p)
            if e:
                status, doc = e
            else:
                to = p["to"].lstrip("+")
                mid = wamid()
                with LOCK:
                    msg = {"id": mid, "to": to, "type": p.get("type", "text")}
                    if msg["type"] == "text":
                        msg["body"] = p["text"]["body"]
                    else:
                        msg["body"] = p["interactive"]["body"]["text"]
                        msg["buttons"] = [b["reply"] for b in p["interactive"]["action"]["buttons"]]
                    if p.get("context"):
                        msg["context"] = p["context"]["message_id"]
                    STATE["messages"][mid] = msg
                    rc = STATE["recipients"].get(to, {})
                status, doc = 200, {"messaging_product": "whatsapp",
                                    "contacts": [{"input": p["to"], "wa_id": to}],
                                    "messages": [{"id": mid}]}
                if rc.get("window_closed"):
                    after = failed_status(mid, to, 131047, "Re-engagement message",
                                          "Message failed to send because more than 24 hours have "
                                          "passed since the customer last replied to this number.")
                elif rc.get("undeliverable"):
                    after = failed_status(mid, to, 131026, "Message undeliverable",
                                          "Message undeliverable")
        with LOCK:
            rec["status"] = status
            rec["reply"] = doc
        try:
            self.send_json(status, doc, retry_after_header=(fault or {}).get("retry_after_header"))
        except (BrokenPipeError, ConnectionResetError):
            pass
        if after:
            emit(after)

    def control(self, verb, path, body):
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            self.send_json(400, {"error": "bad json"})
            return
        if verb == "POST" and path == "/_test/reply":
            with LOCK:
                m = STATE["messages"].get(doc.get("context_id"))
            bid, title = doc.get("id"), doc.get("title")
            if bid is None:
                if not m or "buttons" not in m:
                    self.send_json(404, {"error": "no such message with buttons"})
                    return
                b = m["buttons"][int(doc.get("button", 0))]
                bid, title = b["id"], b["title"]
            msg = {"from": doc["from"], "id": wamid(), "timestamp": str(int(time.time())),
                   "type": "interactive",
                   "interactive": {"type": "button_reply",
                                   "button_reply": {"id": bid, "title": title or "?"}}}
            if doc.get("context_id"):
                msg["context"] = {"from": DISPLAY, "id": doc["context_id"]}
            item = emit(notification({
                "contacts": [{"profile": {"name": "Operator"}, "wa_id": doc["from"]}],
                "messages": [msg]}))
            self.send_json(200, item)
            return
        with LOCK:
            if verb == "POST" and path == "/_test/recipients":
                for r in doc if isinstance(doc, list) else [doc]:
                    STATE["recipients"][str(r["number"])] = r
                out = {"recipients": len(STATE["recipients"])}
            elif verb == "POST" and path == "/_test/faults":
                STATE["faults"].extend(doc if isinstance(doc, list) else [doc])
                out = {"faults": len(STATE["faults"])}
            elif verb == "POST" and path == "/_test/config":
                if "webhook_url" in doc:
                    STATE["webhook_url"] = doc["webhook_url"]
                out = {"webhook_url": STATE["webhook_url"]}
            elif verb == "POST" and path == "/_test/sign":
                out = {"signature": sign(doc["body"].encode(), doc.get("secret"))}
            elif verb == "GET" and path == "/_test/outbox":
                out = STATE["outbox"]
            elif verb == "GET" and path == "/_test/requests":
                out = STATE["requests"]
            elif verb == "DELETE" and path == "/_test/requests":
                STATE["requests"] = []
                STATE["outbox"] = []
                out = {}
            elif verb == "GET" and path == "/_test/messages":
                out = list(STATE["messages"].values())
            else:
                self.send_json(404, {"error": "no such control endpoint"})
                return
            text = json.dumps(out)
        self.send_raw(200, text.encode())


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up (its timeout) resets the connection: not an error here.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--token", required=True)
    ap.add_argument("--phone-number-id", required=True)
    ap.add_argument("--app-secret", required=True)
    ap.add_argument("--webhook-url")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    STATE.update(token=a.token, phone_number_id=a.phone_number_id, app_secret=a.app_secret,
                 webhook_url=a.webhook_url)
    srv = Server(("127.0.0.1", a.port), Handler)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
