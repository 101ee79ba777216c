#!/usr/bin/python3
"""A stand-in for the Telegram Bot API (https://core.telegram.org/bots/api), for tests.

Speaks the documented wire format of the methods the aggregator uses, at
/bot<token>/<method>, with parameters as a JSON body (Content-Type: application/json), as a
form, or in the query string:

  sendMessage          chat_id, text (1-4096 characters after trimming), reply_markup
                       (InlineKeyboardMarkup: inline_keyboard, an array of button rows; each
                       button has text and exactly one of callback_data (1-64 bytes) or url)
                       -> Message {message_id, from, chat, date, text, reply_markup?}
  editMessageText      chat_id + message_id (or inline_message_id), text, reply_markup
                       -> Message; "message is not modified" when nothing changes
  answerCallbackQuery  callback_query_id of an unanswered query, text (0-200 characters)
                       -> true
  getUpdates           offset, limit (1-100), timeout (long polling), allowed_updates
                       -> [Update]; updates below offset are confirmed and forgotten; a
                       second concurrent getUpdates terminates the first with 409
  getMe                -> User (the bot)

Every answer is {"ok":true,"result":...} or {"ok":false,"error_code":N,"description":"...",
"parameters"?:{"retry_after":N}} exactly as Telegram sends them: 401 "Unauthorized" for a wrong
token, 404 "Not Found" for an unknown method, 400 "Bad Request: chat_id is empty", "Bad Request:
message text is empty", "Bad Request: message is too long", "Bad Request: chat not found",
"Bad Request: BUTTON_DATA_INVALID", "Bad Request: can't parse reply keyboard markup JSON
object", "Bad Request: message to edit not found", "Bad Request: message is not modified: ...",
"Bad Request: query is too old and response timeout expired or query ID is invalid", 403
"Forbidden: bot was blocked by the user" for a chat marked blocked.

Usage:  telegram_api_server.py --token TOKEN [--port N]
Prints "PORT <n>" on stdout once it listens on 127.0.0.1 (port 0 picks a free one).

Test control endpoints (JSON):
  POST   /_test/chats     {"id", "type"?: "private", "blocked"?: false} or a list: known chats
  POST   /_test/faults    a fault or a list, consumed in order by matching requests:
                          {"method"?: name, "count"?: 1, and one of:
                           "status" + "description"? + "retry_after"? (an error reply),
                           "sleep": seconds (answer late: past the client's timeout),
                           "malformed": true (a 200 with a body that is not JSON),
                           "raw_status" (a bare HTTP status without a Bot API body);
                           "retry_after_header"?: a Retry-After header on that error reply}
  POST   /_test/press     {"chat_id", "message_id", "from_id", "data"?} -> {"update_id",
                          "callback_query_id"}: queues a callback_query for a sent message
                          (data defaults to the button's callback_data at "button": index)
  POST   /_test/updates   raw Update objects (update_id assigned when absent) to queue
  GET    /_test/requests  every Bot API request: method, content_type, params, status, reply
  DELETE /_test/requests  clears it
  GET    /_test/messages  messages by chat: current text, reply_markup, edits
  GET    /_test/answers   answered callback queries
  GET    /_test/state     {"next_update_id", "confirmed_offset", "queued"}
"""

import argparse
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COND = threading.Condition()
STATE = {
    "token": "",
    "chats": {},        # id (int) -> {"id", "type", "blocked"}
    "messages": {},     # (chat_id, message_id) -> dict
    "next_message_id": 100,
    "updates": [],      # queued Update objects
    "next_update_id": 5000,
    "confirmed": 0,     # highest offset confirmed
    "poll_gen": 0,      # bumps when a new getUpdates starts (409 for the older one)
    "queries": {},      # callback_query id -> {"answered": bool, ...}
    "answers": [],
    "faults": [],
    "requests": [],
}

BOT = {"id": 7000000001, "is_bot": True, "first_name": "Robot SRE", "username": "robot_sre_bot"}
MAX_BODY = 1 << 20


def err(code, desc, params=None):
    d = {"ok": False, "error_code": code, "description": desc}
    if params:
        d["parameters"] = params
    return code, d


def ok(result):
    return 200, {"ok": True, "result": result}


def utf16_len(s):
    return len(s.encode("utf-16-le")) // 2


def parse_chat_id(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        s = v.strip()
        if s.lstrip("-").isdigit():
            return int(s)
        if s.startswith("@"):
            return s
    return None


def check_markup(rm):
    """None when valid, else the Bot API's error description."""
    if isinstance(rm, str):
        try:
            rm = json.loads(rm)
        except ValueError:
            return "Bad Request: can't parse reply keyboard markup JSON object", None
    if not isinstance(rm, dict) or not isinstance(rm.get("inline_keyboard"), list):
        return "Bad Request: can't parse reply keyboard markup JSON object", None
    for row in rm["inline_keyboard"]:
        if not isinstance(row, list):
            return "Bad Request: can't parse inline keyboard button: InlineKeyboardButton row must be an array", None
        for b in row:
            if not isinstance(b, dict) or not isinstance(b.get("text"), str) or not b["text"]:
                return "Bad Request: can't parse inline keyboard button: Text must be non-empty", None
            kinds = [k for k in ("callback_data", "url", "switch_inline_query", "pay",
                                 "login_url", "web_app") if k in b]
            if len(kinds) != 1:
                return "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard", None
            if "callback_data" in b:
                d = b["callback_data"]
                if not isinstance(d, str) or not (1 <= len(d.encode()) <= 64):
                    return "Bad Request: BUTTON_DATA_INVALID", None
            if "url" in b:
                u = b["url"]
                if not isinstance(u, str) or not (u.startswith("https://") or u.startswith("http://")) or " " in u:
                    return "Bad Request: BUTTON_URL_INVALID", None
    return None, rm


def check_text(p):
    t = p.get("text")
    if not isinstance(t, str) or not t.strip():
        return "Bad Request: message text is empty"
    if utf16_len(t) > 4096:
        return "Bad Request: message is too long"
    return None


def chat_of(p):
    if "chat_id" not in p or p["chat_id"] in ("", None):
        return None, err(400, "Bad Request: chat_id is empty")
    cid = parse_chat_id(p["chat_id"])
    if cid is None or cid not in STATE["chats"]:
        return None, err(400, "Bad Request: chat not found")
    c = STATE["chats"][cid]
    if c.get("blocked"):
        return None, err(403, "Forbidden: bot was blocked by the user")
    return c, None


def m_send(p):
    c, e = chat_of(p)
    if e:
        return e
    t = check_text(p)
    if t:
        return err(400, t)
    markup = None
    if "reply_markup" in p:
        d, markup = check_markup(p["reply_markup"])
        if d:
            return err(400, d)
    STATE["next_message_id"] += 1
    mid = STATE["next_message_id"]
    msg = {"message_id": mid, "from": BOT, "chat": {"id": c["id"], "type": c["type"]},
           "date": int(time.time()), "text": p["text"]}
    if markup:
        msg["reply_markup"] = markup
    STATE["messages"][(c["id"], mid)] = dict(msg, edits=0)
    return ok(msg)


def m_edit(p):
    if "inline_message_id" in p:
        return err(400, "Bad Request: message to edit not found")
    c, e = chat_of(p)
    if e:
        return e
    mid = p.get("message_id")
    if isinstance(mid, str) and mid.isdigit():
        mid = int(mid)
    if not isinstance(mid, int) or isinstance(mid, bool):
        return err(400, "Bad Request: message identifier is not specified")
    t = check_text(p)
    if t:
        return err(400, t)
    m = STATE["messages"].get((c["id"], mid))
    if not m:
        return err(400, "Bad Request: message to edit not found")
    markup = None
    if "reply_markup" in p:
        d, markup = check_markup(p["reply_markup"])
        if d:
            return err(400, d)
    if m["text"] == p["text"] and m.get("reply_markup") == markup:
        return err(400, "Bad Request: message is not modified: specified new message content and "
                        "reply markup are exactly the same as a current content and reply markup "
                        "of the message")
    m["text"] = p["text"]
    if markup:
        m["reply_markup"] = markup
    else:
        m.pop("reply_markup", None)
    m["edits"] += 1
    m["edit_date"] = int(time.time())
    out = {k: v for k, v in m.items() if k != "edits"}
    return ok(out)


def m_answer(p):
    q = p.get("callback_query_id")
    if not isinstance(q, str) or q not in STATE["queries"] or STATE["queries"][q]["answered"]:
        return err(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
    text = p.get("text", "")
    if not isinstance(text, str) or len(text) > 200:
        return err(400, "Bad Request: MESSAGE_TOO_LONG")
    STATE["queries"][q]["answered"] = True
    STATE["answers"].append({"callback_query_id": q, "text": text})
    return ok(True)


def m_getme(p):
    return ok(BOT)


METHODS = {
    "sendmessage": m_send,
    "editmessagetext": m_edit,
    "answercallbackquery": m_answer,
    "getme": m_getme,
}


def get_updates(p):
    """Runs with COND held; may wait on it."""
    try:
        offset = int(p.get("offset", 0) or 0)
        limit = int(p.get("limit", 100) or 100)
        timeout = int(p.get("timeout", 0) or 0)
    except (TypeError, ValueError):
        return err(400, "Bad Request: wrong parameter")
    if not (1 <= limit <= 100):
        limit = 100
    allowed = p.get("allowed_updates")
    if isinstance(allowed, str):
        try:
            allowed = json.loads(allowed)
        except ValueError:
            allowed = None
    if offset > 0:
        STATE["updates"] = [u for u in STATE["updates"] if u["update_id"] >= offset]
        STATE["confirmed"] = max(STATE["confirmed"], offset)
    STATE["poll_gen"] += 1
    gen = STATE["poll_gen"]
    COND.notify_all()
    deadline = time.time() + timeout

    def ready():
        return [u for u in STATE["updates"]
                if not allowed or any(k in u for k in allowed)][:limit]

    while True:
        if STATE["poll_gen"] != gen:
            return err(409, "Conflict: terminated by other getUpdates request; make sure that "
                            "only one bot instance is running")
        got = ready()
        left = deadline - time.time()
        if got or left <= 0:
            return ok(got)
        COND.wait(min(left, 0.5))


def take_fault(method):
    for i, f in enumerate(STATE["faults"]):
        if f.get("method") in (None, method):
            f["count"] = f.get("count", 1) - 1
            if f["count"] <= 0:
                del STATE["faults"][i]
            return f
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status, doc, raw=None, retry_after_header=None):
        body = raw if raw is not None else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if retry_after_header is not None:
            self.send_header("Retry-After", str(retry_after_header))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            return None
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, verb):
        u = urllib.parse.urlsplit(self.path)
        body = self.read_body()
        if body is None:
            self.send_json(*err(413, "Request Entity Too Large"))
            return
        if u.path.startswith("/_test/"):
            self.control(verb, u.path, body)
            return
        parts = u.path.split("/")
        if len(parts) != 3 or not parts[1].startswith("bot"):
            self.send_json(*err(404, "Not Found"))
            return
        self.api(parts[1][3:], parts[2], u.query, body)

    def api(self, token, method, query, body):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        params = dict(urllib.parse.parse_qsl(query))
        bad_json = False
        if body:
            if ctype == "application/json":
                try:
                    j = json.loads(body)
                    if isinstance(j, dict):
                        params.update(j)
                    else:
                        bad_json = True
                except ValueError:
                    bad_json = True
            elif ctype == "application/x-www-form-urlencoded":
                params.update(dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"))))
            # any other content type: the parameters are not seen (as with Telegram)
        rec = {"method": method, "content_type": ctype, "params": params, "http": self.command,
               "time": time.time()}
        with COND:
            STATE["requests"].append(rec)
            fault = take_fault(method)
        if token != STATE["token"]:
            status, doc = err(401, "Unauthorized")
        elif bad_json:
            status, doc = err(400, "Bad Request: can't parse JSON object")
        elif fault and "sleep" in fault:
            time.sleep(float(fault["sleep"]))
            status, doc = None, None
        elif fault and fault.get("malformed"):
            rec["status"] = 200
            self.send_json(200, None, raw=b'{"ok":true,"result":{"message_id":')
            return
        elif fault and "raw_status" in fault:
            rec["status"] = fault["raw_status"]
            b = b"<html><body>upstream error</body></html>"
            self.send_response(int(fault["raw_status"]))
            self.send_header("Content-Type", "text/html")
            if "retry_after_header" in fault:
                self.send_header("Retry-After", str(fault["retry_after_header"]))
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)
            return
        elif fault and "status" in fault:
            params_out = {"retry_after": fault["retry_after"]} if "retry_after" in fault else None
            status, doc = err(int(fault["status"]), fault.get("description", "Error"), params_out)
        else:
            status, doc = None, None
        if status is None:
            with COND:
                lname = method.lower()
                if lname == "getupdates":
                    status, doc = get_updates(params)
                elif lname in METHODS:
                    status, doc = METHODS[lname](params)
                else:
                    status, doc = err(404, "Not Found")
        with COND:
            rec["status"] = status
            rec["reply"] = doc
        try:
            self.send_json(status, doc, retry_after_header=(fault or {}).get("retry_after_header"))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def control(self, verb, path, body):
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            self.send_json(400, {"error": "bad json"})
            return
        with COND:
            if verb == "POST" and path == "/_test/chats":
                for c in doc if isinstance(doc, list) else [doc]:
                    cid = int(c["id"])
                    STATE["chats"][cid] = {"id": cid, "type": c.get("type", "private"),
                                           "blocked": bool(c.get("blocked", False))}
                out = {"chats": len(STATE["chats"])}
            elif verb == "POST" and path == "/_test/faults":
                STATE["faults"].extend(doc if isinstance(doc, list) else [doc])
                out = {"faults": len(STATE["faults"])}
            elif verb == "POST" and path == "/_test/press":
                cid = int(doc["chat_id"])
                mid = int(doc["message_id"])
                m = STATE["messages"].get((cid, mid))
                data = doc.get("data")
                if data is None:
                    if not m or "reply_markup" not in m:
                        self.send_json(404, {"error": "no such message with buttons"})
                        return
                    btns = [b for row in m["reply_markup"]["inline_keyboard"] for b in row
                            if "callback_data" in b]
                    data = btns[int(doc.get("button", 0))]["callback_data"]
                STATE["next_update_id"] += 1
                uid = STATE["next_update_id"]
                qid = "%d%06d" % (int(doc["from_id"]), uid)
                STATE["queries"][qid] = {"answered": False}
                frm = {"id": int(doc["from_id"]), "is_bot": False, "first_name": "Op"}
                msg = {"message_id": mid, "from": BOT, "chat": {"id": cid, "type": "private"},
                       "date": int(time.time()), "text": m["text"] if m else ""}
                STATE["updates"].append({"update_id": uid, "callback_query": {
                    "id": qid, "from": frm, "message": msg, "chat_instance": "-%d" % cid,
                    "data": data}})
                COND.notify_all()
                out = {"update_id": uid, "callback_query_id": qid}
            elif verb == "POST" and path == "/_test/updates":
                ids = []
                for upd in doc if isinstance(doc, list) else [doc]:
                    if "update_id" not in upd:
                        STATE["next_update_id"] += 1
                        upd["update_id"] = STATE["next_update_id"]
                    cq = upd.get("callback_query")
                    if isinstance(cq, dict) and isinstance(cq.get("id"), str):
                        STATE["queries"].setdefault(cq["id"], {"answered": False})
                    STATE["updates"].append(upd)
                    ids.append(upd["update_id"])
                COND.notify_all()
                out = {"update_ids": ids}
            elif verb == "GET" and path == "/_test/requests":
                out = STATE["requests"]
            elif verb == "DELETE" and path == "/_test/requests":
                STATE["requests"] = []
                out = {}
            elif verb == "GET" and path == "/_test/messages":
                out = [dict(v) for v in STATE["messages"].values()]
            elif verb == "GET" and path == "/_test/answers":
                out = STATE["answers"]
            elif verb == "GET" and path == "/_test/state":
                out = {"next_update_id": STATE["next_update_id"],
                       "confirmed_offset": STATE["confirmed"], "queued": len(STATE["updates"])}
            else:
                self.send_json(404, {"error": "no such control endpoint"})
                return
            text = json.dumps(out)
        self.send_json(200, None, raw=text.encode())


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
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    STATE["token"] = a.token
    srv = Server(("127.0.0.1", a.port), Handler)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
