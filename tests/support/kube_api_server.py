#!/usr/bin/python3
"""A stand-in for the Kubernetes API server, for tests (standard library only).

It speaks the real wire format of the core/v1 API for nodes, pods, events, services,
serviceaccounts and secrets, of apps/v1 (deployments, statefulsets, daemonsets, replicasets),
batch/v1 (jobs, cronjobs) and networking.k8s.io/v1 (ingresses): list responses (NodeList /
PodList / DeploymentList ... with metadata.resourceVersion and continue tokens), watch streams
(chunked JSON lines {"type": ..., "object": ...} including BOOKMARK and ERROR events with a
metav1.Status), Status objects for errors, field and label selectors, DeleteOptions
preconditions, merge / strategic-merge / JSON patches (strategic merge is applied as a merge
patch: right for the maps and scalars the executor writes, not for lists with merge keys), the
scale subresource of deployments and statefulsets (autoscaling/v1 Scale; spec.replicas omitted
when 0, as the real one), metadata.generation bumped when a workload's spec changes, the
eviction subresource (policy/v1 Eviction, PodDisruptionBudget refusals on demand) and server-side
dry run (?dryRun=All on PATCH and on the eviction's POST, DeleteOptions.dryRun in a DELETE body
or the query when there is no body, deleteOptions.dryRun in an Eviction): validated and
answered, nothing stored, no watch event.

Usage:  kube_api_server.py [--port N] [--token T] [--load FILE.json ...]
        [--bookmark-interval SECONDS] [--tls-cert PEM --tls-key PEM [--client-ca PEM]]
Prints "PORT <n>" on stdout once it listens on 127.0.0.1 (port 0 picks a free one). With
--tls-cert it serves HTTPS; with --client-ca it also requires a client certificate signed by
that CA (what an API server configured with --client-ca-file does for x509 users).

Test control endpoints (never authenticated), all JSON:
  POST   /_test/objects            body: an object or a list of objects; creates (ADDED) or
                                   replaces (MODIFIED) each one, bumping resourceVersion
  DELETE /_test/objects/RES/NS/NAME  deletes (DELETED); NS is "_" for cluster-scoped objects
  POST   /_test/expire             {"kill_watches": bool}: every resourceVersion older than
                                   the current one becomes too old (watch -> 410 Gone);
                                   kill_watches also ends open watches with an ERROR 410 event
  POST   /_test/drop               cuts every open watch connection without ending the stream
                                   ({"resource": r} limits both to the watches of r); events
                                   stored afterwards are never sent on the cut stream
  POST   /_test/config             {"token": str|null, "unavailable": bool, "gone_http": bool,
                                    "bookmark_interval": float,
                                    "pdb_block": {"NS/POD": {"pdb": name, "needs": n, "has": n,
                                                             "times": n|null}},
                                    "forbidden": [{"verb": v, "resource": r, "namespace": ns,
                                                   "name": n}]}
                                   pdb_block (replaces the previous set): evictions of these pods
                                   get the API server's 429 TooManyRequests Status naming the
                                   budget, `times` times (null = until changed), then succeed;
                                   forbidden (replaces): matching requests get the RBAC 403 text
                                   (verb get/list/watch/patch/delete/create; resource like
                                   "nodes", "deployments/scale", "pods/eviction"; namespace and
                                   name optional, "" or absent = any)
                                   "ignore_writes": bool: PATCH, DELETE and eviction answer as
                                   if they succeeded but store nothing (a write something else
                                   reverts at once; what verification must catch)
  POST   /_test/helm_release       {"name", "namespace", "revision", "status", "images":
                                   {container: image}, "kind", "chart", "chart_version",
                                   "payload_b64"?}: stores the release Secret Helm 3 writes
                                   (tests/support/helm_release.py); payload_b64 replaces Helm's
                                   encoded text (malformed-input tests), bomb_mib makes it a
                                   gzip of that many MiB of spaces. Earlier revisions in status
                                   deployed become superseded, as helm upgrade leaves them
                                   ("supersede": false keeps them). Answers the Secret.
  GET    /_test/counts             {"RESOURCE": n, ...} objects stored per resource, and
                                   "RESOURCE?FIELD=VALUE" counts for ?field=a.b&value=v
  GET    /_test/state              {"rv": n, "min_rv": n, "watchers": n, "objects": n}
  GET    /_test/requests           requests recorded so far; DELETE clears them
  GET    /_test/blob?bytes=N[&chunked=1]   a JSON document of about N bytes
  GET    /_test/longline?bytes=N   a 200 chunked stream holding one line of N bytes, no newline
"""

import argparse
import base64
import copy
import gzip
import datetime
import json
import queue
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
import helm_release  # noqa: E402  (tests/support/helm_release.py)

KINDS = {  # resource -> (kind, list kind, namespaced, apiVersion)
    "nodes": ("Node", "NodeList", False, "v1"),
    "pods": ("Pod", "PodList", True, "v1"),
    "events": ("Event", "EventList", True, "v1"),
    "deployments": ("Deployment", "DeploymentList", True, "apps/v1"),
    "statefulsets": ("StatefulSet", "StatefulSetList", True, "apps/v1"),
    "daemonsets": ("DaemonSet", "DaemonSetList", True, "apps/v1"),
    "cronjobs": ("CronJob", "CronJobList", True, "batch/v1"),
    "jobs": ("Job", "JobList", True, "batch/v1"),
    "replicasets": ("ReplicaSet", "ReplicaSetList", True, "apps/v1"),
    "services": ("Service", "ServiceList", True, "v1"),
    "serviceaccounts": ("ServiceAccount", "ServiceAccountList", True, "v1"),
    "secrets": ("Secret", "SecretList", True, "v1"),
    "ingresses": ("Ingress", "IngressList", True, "networking.k8s.io/v1"),
}
SCALABLE = ("deployments", "statefulsets")
SA_USER = "system:serviceaccount:robot-sre:robot-sre-aggregator"
PDB_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."
RESOURCE_OF_KIND = {v[0]: k for k, v in KINDS.items()}
HISTORY_MAX = 100000


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_obj(code, reason, message, details=None):
    s = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 300 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if code < 300:
        del s["message"]
        del s["reason"]
    if details:
        s["details"] = details
    return s


def get_path(obj, dotted):
    cur = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return ""
        cur = cur[part]
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if cur is None else str(cur)


def parse_field_selector(sel):
    reqs = []
    if not sel:
        return reqs
    for term in sel.split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            k, v = term.split("!=", 1)
            reqs.append((k, "!=", v))
        elif "==" in term:
            k, v = term.split("==", 1)
            reqs.append((k, "=", v))
        elif "=" in term:
            k, v = term.split("=", 1)
            reqs.append((k, "=", v))
        else:
            raise ValueError("invalid field selector term %r" % term)
    return reqs


def parse_label_selector(sel):
    reqs = []
    if not sel:
        return reqs
    for term in sel.split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            k, v = term.split("!=", 1)
            reqs.append((k, "!=", v))
        elif "==" in term or "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            reqs.append((k, "=", v))
        elif term.startswith("!"):
            reqs.append((term[1:], "absent", None))
        else:
            reqs.append((term, "exists", None))
    return reqs


def matches(obj, fsel, lsel):
    for k, op, v in fsel:
        got = get_path(obj, k)
        if op == "=" and got != v:
            return False
        if op == "!=" and got == v:
            return False
    labels = obj.get("metadata", {}).get("labels") or {}
    for k, op, v in lsel:
        if op == "=" and labels.get(k) != v:
            return False
        if op == "!=" and labels.get(k) == v:
            return False
        if op == "exists" and k not in labels:
            return False
        if op == "absent" and k in labels:
            return False
    return True


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (also used for strategic merge patches of simple fields)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(target, ops):
    """RFC 6902 add / replace / remove on object members and array indexes."""
    doc = copy.deepcopy(target)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        if op["op"] in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif op["op"] == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                parent[last] = op["value"]
        elif op["op"] == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        else:
            raise ValueError("unsupported op " + op["op"])
    return doc


class Watcher:
    def __init__(self, resource, ns, fsel, lsel):
        self.resource = resource
        self.ns = ns
        self.fsel = fsel
        self.lsel = lsel
        self.q = queue.Queue()


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.objects = {}  # (resource, ns, name) -> object
        self.rv = 1000
        self.min_rv = 0
        self.history = []  # (rv, resource, type, obj, old)
        self.watchers = []
        self.requests = []
        self.token = None
        self.unavailable = False
        self.gone_http = False
        self.bookmark_interval = 1.0
        self.pdb_block = {}  # "ns/name" -> {"pdb", "needs", "has", "times"}
        self.forbidden = []
        self.ignore_writes = False

    # All mutators hold self.lock.
    def _record(self, resource, etype, obj, old):
        self.history.append((self.rv, resource, etype, copy.deepcopy(obj), old))
        if len(self.history) > HISTORY_MAX:
            drop = len(self.history) - HISTORY_MAX
            self.min_rv = max(self.min_rv, self.history[drop - 1][0])
            del self.history[:drop]
        for w in self.watchers:
            if w.resource == resource:
                w.q.put(("event", self.rv, etype, copy.deepcopy(obj), old))

    def put(self, obj):
        kind = obj.get("kind")
        if kind not in RESOURCE_OF_KIND:
            raise ValueError("unsupported kind %r" % kind)
        resource = RESOURCE_OF_KIND[kind]
        md = obj.setdefault("metadata", {})
        name = md.get("name")
        if not name:
            raise ValueError("metadata.name is required")
        ns = md.get("namespace", "") if KINDS[resource][2] else ""
        if KINDS[resource][2] and not ns:
            ns = md["namespace"] = "default"
        key = (resource, ns, name)
        old = self.objects.get(key)
        if old is not None and md.get("uid") and old["metadata"]["uid"] != md["uid"]:
            # A new object under an old name: the old one is deleted first.
            self.delete(resource, ns, name)
            old = None
        if old is not None and not md.get("uid"):
            md["uid"] = old["metadata"]["uid"]
        self.rv += 1
        md["resourceVersion"] = str(self.rv)
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("creationTimestamp", now_rfc3339())
        obj.setdefault("apiVersion", KINDS[resource][3])
        if KINDS[resource][3] != "v1":
            md.setdefault("generation", 1)
        self.objects[key] = obj
        self._record(resource, "MODIFIED" if old is not None else "ADDED", obj,
                     copy.deepcopy(old) if old is not None else None)
        return obj

    def delete(self, resource, ns, name):
        key = (resource, ns, name)
        obj = self.objects.pop(key, None)
        if obj is None:
            return None
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._record(resource, "DELETED", obj, None)
        return obj


STATE = State()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # Clients that fail the TLS handshake or hang up are part of the tests, not news.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-api-test/1"

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()  # a failure ends this connection (Server.handle_error)
            self.request.settimeout(None)
        super().setup()

    def log_message(self, fmt, *args):  # quiet; tests read /_test/requests instead
        pass

    # ---- plumbing -------------------------------------------------------------------------

    def body_bytes(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send_json(self, code, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_status(self, code, reason, message, details=None):
        self.send_json(code, status_obj(code, reason, message, details))

    def chunk(self, data):
        self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
        self.wfile.flush()

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def record(self, body):
        u = urllib.parse.urlsplit(self.path)
        with STATE.lock:
            STATE.requests.append({
                "method": self.command,
                "path": u.path,
                "query": urllib.parse.parse_qs(u.query),
                "authorization": self.headers.get("Authorization", ""),
                "content_type": self.headers.get("Content-Type", ""),
                "body": body.decode("utf-8", "replace"),
            })

    def dispatch(self):
        body = self.body_bytes()
        u = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        parts = [urllib.parse.unquote(p) for p in u.path.split("/") if p]
        if parts[:1] == ["_test"]:
            return self.control(parts[1:], q, body)
        self.record(body)
        with STATE.lock:
            token = STATE.token
            unavailable = STATE.unavailable
        if token is not None and self.headers.get("Authorization") != "Bearer " + token:
            return self.send_status(401, "Unauthorized", "Unauthorized")
        if unavailable:
            return self.send_status(503, "ServiceUnavailable", "the server is currently unable "
                                    "to handle the request")
        if parts[:2] == ["api", "v1"]:
            gv, rest = "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            gv, rest = parts[1] + "/" + parts[2], parts[3:]
        else:
            return self.send_status(404, "NotFound", "the server could not find the requested "
                                    "resource")
        ns = None
        if len(rest) >= 2 and rest[0] == "namespaces":
            ns = rest[1]
            rest = rest[2:]
        if not rest or rest[0] not in KINDS or KINDS[rest[0]][3] != gv:
            return self.send_status(404, "NotFound", "the server could not find the requested "
                                    "resource")
        resource = rest[0]
        namespaced = KINDS[resource][2]
        if ns is not None and not namespaced:
            return self.send_status(404, "NotFound", "the server could not find the requested "
                                    "resource")
        try:
            if self.forbid(resource, rest, ns, q):
                return None
            if len(rest) == 1:
                if self.command != "GET":
                    return self.send_status(405, "MethodNotAllowed", "method not allowed")
                if q.get("watch") in ("1", "true"):
                    return self.watch(resource, ns, q)
                return self.list(resource, ns, q)
            name = rest[1]
            key_ns = (ns or "") if namespaced else ""
            if namespaced and ns is None:
                return self.send_status(404, "NotFound", "the server could not find the "
                                        "requested resource")
            if len(rest) == 3 and rest[2] == "eviction" and resource == "pods" \
                    and self.command == "POST":
                return self.evict(key_ns, name, body, q)
            if len(rest) == 3 and rest[2] == "scale" and resource in SCALABLE:
                if self.command == "GET":
                    return self.get_scale(resource, key_ns, name)
                if self.command == "PATCH":
                    return self.patch_scale(resource, key_ns, name, body, q)
                return self.send_status(405, "MethodNotAllowed", "method not allowed")
            if len(rest) != 2:
                return self.send_status(404, "NotFound", "the server could not find the "
                                        "requested resource")
            if self.command == "GET":
                return self.get_one(resource, key_ns, name)
            if self.command == "DELETE":
                return self.delete_one(resource, key_ns, name, body, q)
            if self.command == "PATCH":
                return self.patch_one(resource, key_ns, name, body, q)
            return self.send_status(405, "MethodNotAllowed", "method not allowed")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            return self.send_status(400, "BadRequest", str(e))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = lambda self: self.dispatch()

    # ---- API ------------------------------------------------------------------------------

    def not_found(self, resource, name):
        self.send_status(404, "NotFound", '%s "%s" not found' % (resource, name),
                         {"name": name, "kind": resource})

    def list(self, resource, ns, q):
        fsel = parse_field_selector(q.get("fieldSelector", ""))
        lsel = parse_label_selector(q.get("labelSelector", ""))
        limit = int(q.get("limit") or 0)
        cont = q.get("continue", "")
        rv = q.get("resourceVersion", "")
        with STATE.lock:
            start = ""
            list_rv = STATE.rv
            if cont:
                try:
                    tok = json.loads(base64.b64decode(cont))
                    list_rv, start = int(tok["rv"]), tok["start"]
                except (ValueError, KeyError, TypeError):
                    return self.send_status(400, "BadRequest", "continue key is not valid")
                if list_rv < STATE.min_rv:
                    return self.send_status(
                        410, "Expired", "The provided continue parameter is too old to display a "
                        "consistent list result. You can start a new list without the continue "
                        "parameter.")
            elif rv not in ("", "0"):
                exact = q.get("resourceVersionMatch") == "Exact" or (
                    limit and not q.get("resourceVersionMatch"))
                if exact and int(rv) < STATE.min_rv:
                    return self.send_status(
                        410, "Expired", "The resourceVersion for the provided list is too old.")
            items = []
            for (res, ons, name), obj in sorted(STATE.objects.items()):
                if res != resource or (ns is not None and ons != ns):
                    continue
                if "%s/%s" % (ons, name) <= start:
                    continue
                if matches(obj, fsel, lsel):
                    items.append(copy.deepcopy(obj))
                    if limit and len(items) > limit:
                        break  # one more than the page tells there is a next page
        md = {"resourceVersion": str(list_rv)}
        if limit and len(items) > limit:
            items = items[:limit]
            last = items[-1]["metadata"]
            token = {"rv": list_rv, "start": "%s/%s" % (last.get("namespace", ""), last["name"])}
            md["continue"] = base64.b64encode(json.dumps(token).encode()).decode()
            md["remainingItemCount"] = 1
        self.send_json(200, {"kind": KINDS[resource][1], "apiVersion": KINDS[resource][3],
                             "metadata": md, "items": items})

    def get_one(self, resource, ns, name):
        with STATE.lock:
            obj = copy.deepcopy(STATE.objects.get((resource, ns, name)))
        if obj is None:
            return self.not_found(resource, name)
        self.send_json(200, obj)

    def delete_one(self, resource, ns, name, body, q):
        opts = json.loads(body) if body else {}
        # As the real handler: DeleteOptions come from the body when there is one, else from
        # the query.
        dry = self.dry_run(opts.get("dryRun") if body else q.get("dryRun"))
        if dry is None:
            return None
        pre = opts.get("preconditions") or {}
        with STATE.lock:
            obj = STATE.objects.get((resource, ns, name))
            if obj is None:
                return self.not_found(resource, name)
            md = obj["metadata"]
            if pre.get("uid") and pre["uid"] != md["uid"]:
                return self.send_status(
                    409, "Conflict", 'Operation cannot be fulfilled on %s "%s": Precondition '
                    'failed: UID in precondition: %s, UID in object meta: %s'
                    % (resource, name, pre["uid"], md["uid"]),
                    {"name": name, "kind": resource})
            if pre.get("resourceVersion") and pre["resourceVersion"] != md["resourceVersion"]:
                return self.send_status(
                    409, "Conflict", 'Operation cannot be fulfilled on %s "%s": Precondition '
                    'failed: ResourceVersion in precondition: %s, ResourceVersion in object meta: '
                    '%s' % (resource, name, pre["resourceVersion"], md["resourceVersion"]),
                    {"name": name, "kind": resource})
            if dry or STATE.ignore_writes:
                gone = copy.deepcopy(obj)
            else:
                gone = STATE.delete(resource, ns, name)
        self.send_json(200, status_obj(200, "", "", {"name": name, "kind": resource,
                                                     "uid": gone["metadata"]["uid"]}))

    def patch_one(self, resource, ns, name, body, q):
        dry = self.dry_run(q.get("dryRun"))
        if dry is None:
            return None
        patch = json.loads(body)
        with STATE.lock:
            obj = STATE.objects.get((resource, ns, name))
            if obj is None:
                return self.not_found(resource, name)
            new = self.apply_patch(obj, patch)
            if new is None:
                return None
            new["metadata"]["uid"] = obj["metadata"]["uid"]
            new["metadata"]["name"] = name
            self.bump_generation(resource, obj, new)
            if dry or STATE.ignore_writes:
                stored = copy.deepcopy(new)
            else:
                stored = copy.deepcopy(STATE.put(new))
        self.send_json(200, stored)

    def apply_patch(self, obj, patch):
        """The patched copy of obj, or None after answering 415 (unknown patch type)."""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(patch, dict):
                raise ValueError("a merge patch must be a JSON object")
            return merge_patch(copy.deepcopy(obj), patch)
        if ctype == "application/json-patch+json":
            return json_patch(obj, patch)
        self.send_status(415, "UnsupportedMediaType",
                         "the body of the request was in an unknown format - accepted media "
                         "types include: application/json-patch+json, "
                         "application/merge-patch+json, application/apply-patch+yaml")
        return None

    @staticmethod
    def bump_generation(resource, old, new):
        """Workloads: metadata.generation moves when the spec changes."""
        if KINDS[resource][3] == "v1":
            return
        gen = old["metadata"].get("generation", 1)
        new["metadata"]["generation"] = gen + 1 if new.get("spec") != old.get("spec") else gen

    def dry_run(self, value):
        """Reads a dryRun value (a query string or a DeleteOptions list): True, False, or None
        after answering 400 for anything but "All"."""
        values = value if isinstance(value, list) else ([value] if value else [])
        for v in values:
            if v != "All":
                self.send_status(400, "BadRequest", 'Invalid value: "%s": supported values: '
                                 '"All"' % v)
                return None
        return bool(values)

    @staticmethod
    def scale_of(resource, obj):
        md = obj["metadata"]
        spec = obj.get("spec") or {}
        labels = ((spec.get("selector") or {}).get("matchLabels") or {})
        scale = {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                            "creationTimestamp") if k in md},
            "spec": {},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": ",".join("%s=%s" % kv for kv in sorted(labels.items()))},
        }
        replicas = spec.get("replicas", 1)
        if replicas:  # omitempty, as in autoscaling/v1
            scale["spec"]["replicas"] = replicas
        return scale

    def get_scale(self, resource, ns, name):
        with STATE.lock:
            obj = copy.deepcopy(STATE.objects.get((resource, ns, name)))
        if obj is None:
            return self.not_found(resource, name)
        self.send_json(200, self.scale_of(resource, obj))

    def patch_scale(self, resource, ns, name, body, q):
        dry = self.dry_run(q.get("dryRun"))
        if dry is None:
            return None
        patch = json.loads(body)
        with STATE.lock:
            obj = STATE.objects.get((resource, ns, name))
            if obj is None:
                return self.not_found(resource, name)
            scale = self.apply_patch(self.scale_of(resource, obj), patch)
            if scale is None:
                return None
            replicas = (scale.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                return self.send_status(
                    422, "Invalid", 'Scale.autoscaling "%s" is invalid: spec.replicas: Invalid '
                    'value: %s: must be greater than or equal to 0' % (name, json.dumps(replicas)),
                    {"name": name, "group": "autoscaling", "kind": "Scale"})
            new = copy.deepcopy(obj)
            new.setdefault("spec", {})["replicas"] = replicas
            self.bump_generation(resource, obj, new)
            if not dry and not STATE.ignore_writes:
                new = STATE.put(new)
            out = self.scale_of(resource, new)
        self.send_json(200, out)

    def forbid(self, resource, rest, ns, q):
        """Answers 403 as RBAC would when a configured rule matches; returns True then."""
        if len(rest) == 1:
            verb = "watch" if q.get("watch") in ("1", "true") else "list"
            name, res = "", resource
        else:
            verb = {"GET": "get", "PATCH": "patch", "DELETE": "delete", "POST": "create",
                    "PUT": "update"}.get(self.command, "")
            name = rest[1]
            res = resource + ("/" + rest[2] if len(rest) > 2 else "")
        with STATE.lock:
            rules = list(STATE.forbidden)
        for r in rules:
            if r.get("verb") not in (None, "", verb) or r.get("resource") not in (None, "", res):
                continue
            if r.get("namespace") not in (None, "", ns) or r.get("name") not in (None, "", name):
                continue
            group = KINDS[resource][3].rpartition("/")[0]
            what = ("%s.%s" % (resource, group) if group else resource)
            scope = ('in the namespace "%s"' % ns) if ns else "at the cluster scope"
            subject = ('%s "%s"' % (what, name)) if name else what
            self.send_status(403, "Forbidden", '%s is forbidden: User "%s" cannot %s resource '
                             '"%s" in API group "%s" %s' % (subject, SA_USER, verb, res, group,
                                                            scope),
                             {"name": name, "group": group, "kind": resource})
            return True
        return False

    def evict(self, ns, name, body, q):
        ev = json.loads(body) if body else {}
        if not isinstance(ev, dict) or ev.get("kind") != "Eviction" or \
                ev.get("apiVersion") not in ("policy/v1", "policy/v1beta1"):
            return self.send_status(400, "BadRequest", "the body must be a policy/v1 Eviction")
        md = ev.get("metadata") or {}
        if md.get("name") != name:
            return self.send_status(400, "BadRequest",
                                    "name in URL does not match name in Eviction object")
        if md.get("namespace") not in (None, "", ns):
            return self.send_status(400, "BadRequest", "the namespace of the provided object "
                                    "does not match the namespace sent on the request")
        qdry = self.dry_run(q.get("dryRun"))
        if qdry is None:
            return None
        bdry = self.dry_run((ev.get("deleteOptions") or {}).get("dryRun"))
        if bdry is None:
            return None
        if qdry and (ev.get("deleteOptions") or {}).get("dryRun") is not None and not bdry:
            return self.send_status(400, "BadRequest", "DryRun in DeleteOptions and "
                                    "CreateOptions don't match")
        with STATE.lock:
            if STATE.objects.get(("pods", ns, name)) is None:
                return self.not_found("pods", name)
            block = STATE.pdb_block.get("%s/%s" % (ns, name))
            if block is not None and block.get("times") is not None:
                if block["times"] <= 0:
                    block = None
                else:
                    block["times"] -= 1
            if block is None and not (qdry or bdry or STATE.ignore_writes):
                STATE.delete("pods", ns, name)
        if block is not None:
            return self.send_status(
                429, "TooManyRequests", PDB_MESSAGE,
                {"causes": [{"reason": "DisruptionBudget",
                             "message": "The disruption budget %s needs %d healthy pods and has "
                             "%d currently" % (block.get("pdb", "pdb"), block.get("needs", 1),
                                               block.get("has", 1))}]})
        self.send_json(201, status_obj(201, "", ""))

    def watch(self, resource, ns, q):
        fsel = parse_field_selector(q.get("fieldSelector", ""))
        lsel = parse_label_selector(q.get("labelSelector", ""))
        rv = q.get("resourceVersion", "")
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(q.get("timeoutSeconds") or 1800)
        kind = KINDS[resource][0]
        w = Watcher(resource, ns, fsel, lsel)
        with STATE.lock:
            too_old = rv not in ("", "0") and int(rv) < STATE.min_rv
            gone_http = STATE.gone_http
            backlog = []
            if not too_old:
                if rv in ("", "0"):
                    for (res, ons, _), obj in sorted(STATE.objects.items()):
                        if res == resource:
                            backlog.append(("event", STATE.rv, "ADDED", copy.deepcopy(obj), None))
                else:
                    start = int(rv)
                    for (hrv, res, etype, obj, old) in STATE.history:
                        if hrv > start and res == resource:
                            backlog.append(("event", hrv, etype, copy.deepcopy(obj), old))
                STATE.watchers.append(w)
            interval = STATE.bookmark_interval
            current_rv = STATE.rv
            min_rv = STATE.min_rv
        if too_old and gone_http:
            return self.send_status(410, "Expired", "too old resource version: %s (%d)"
                                    % (rv, min_rv))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if too_old:
            self.send_line({"type": "ERROR", "object": status_obj(
                410, "Expired", "too old resource version: %s (%d)" % (rv, current_rv))})
            self.end_chunks()
            return
        for item in backlog:
            w.q.put(item)
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.end_chunks()
                    return
                try:
                    item = w.q.get(timeout=min(left, interval))
                except queue.Empty:
                    if bookmarks:
                        with STATE.lock:
                            brv = STATE.rv
                        self.send_line({"type": "BOOKMARK", "object": {
                            "kind": kind, "apiVersion": KINDS[resource][3],
                            "metadata": {"resourceVersion": str(brv)}}})
                    continue
                if item[0] == "drop":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if item[0] == "gone":
                    self.send_line({"type": "ERROR", "object": status_obj(
                        410, "Expired", "too old resource version: %s (%d)"
                        % (rv, item[1]))})
                    self.end_chunks()
                    return
                _, erv, etype, obj, old = item
                if ns is not None and obj["metadata"].get("namespace", "") != ns:
                    continue
                now_match = matches(obj, fsel, lsel)
                was_match = old is not None and matches(old, fsel, lsel)
                if etype == "MODIFIED":
                    if now_match and not was_match:
                        etype = "ADDED"
                    elif was_match and not now_match:
                        etype = "DELETED"
                    elif not now_match:
                        continue
                elif not now_match:
                    continue
                self.send_line({"type": etype, "object": obj})
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            with STATE.lock:
                if w in STATE.watchers:
                    STATE.watchers.remove(w)

    def send_line(self, obj):
        self.chunk(json.dumps(obj).encode() + b"\n")

    # ---- test control ---------------------------------------------------------------------

    def control(self, parts, q, body):
        req = json.loads(body) if body else {}
        cmd = parts[0] if parts else ""
        if cmd == "objects" and self.command == "POST":
            objs = req if isinstance(req, list) else [req]
            out = []
            with STATE.lock:
                for o in objs:
                    out.append(copy.deepcopy(STATE.put(copy.deepcopy(o))))
            return self.send_json(200, out if isinstance(req, list) else out[0])
        if cmd == "objects" and self.command == "DELETE" and len(parts) == 4:
            resource, ns, name = parts[1], parts[2], parts[3]
            with STATE.lock:
                gone = STATE.delete(resource, "" if ns == "_" else ns, name)
            if gone is None:
                return self.not_found(resource, name)
            return self.send_json(200, gone)
        if cmd == "expire":
            with STATE.lock:
                STATE.min_rv = STATE.rv
                if req.get("kill_watches"):
                    for w in STATE.watchers:
                        if req.get("resource") in (None, w.resource):
                            w.q.put(("gone", STATE.rv))
            return self.send_json(200, {"min_rv": STATE.min_rv})
        if cmd == "drop":
            with STATE.lock:
                n = 0
                for w in STATE.watchers:
                    if req.get("resource") in (None, w.resource):
                        w.q.put(("drop",))
                        n += 1
            return self.send_json(200, {"dropped": n})
        if cmd == "config":
            with STATE.lock:
                if "token" in req:
                    STATE.token = req["token"]
                if "unavailable" in req:
                    STATE.unavailable = bool(req["unavailable"])
                if "gone_http" in req:
                    STATE.gone_http = bool(req["gone_http"])
                if "bookmark_interval" in req:
                    STATE.bookmark_interval = float(req["bookmark_interval"])
                if "pdb_block" in req:
                    STATE.pdb_block = {k: dict(v) for k, v in (req["pdb_block"] or {}).items()}
                if "forbidden" in req:
                    STATE.forbidden = list(req["forbidden"] or [])
                if "ignore_writes" in req:
                    STATE.ignore_writes = bool(req["ignore_writes"])
            return self.send_json(200, {})
        if cmd == "helm_release" and self.command == "POST":
            rel = helm_release.release_json(
                req["name"], req.get("namespace", "default"), int(req.get("revision", 1)),
                req.get("status", "deployed"), req.get("images") or {},
                req.get("chart", "app"), req.get("chart_version", "1.0.0"),
                kind=req.get("kind", "Deployment"))
            payload = base64.b64decode(req["payload_b64"]) if "payload_b64" in req else None
            if "bomb_mib" in req:  # Helm's encoding of N MiB of spaces: a gzip bomb
                payload = base64.b64encode(gzip.compress(b" " * (int(req["bomb_mib"]) << 20)))
            with STATE.lock:
                if req.get("supersede", True):
                    # What helm upgrade does: the revision that was deployed is superseded.
                    for (res, ons, _), obj in list(STATE.objects.items()):
                        labels = obj["metadata"].get("labels") or {}
                        if res == "secrets" and ons == rel["namespace"] and \
                                obj.get("type") == "helm.sh/release.v1" and \
                                labels.get("name") == rel["name"] and \
                                labels.get("status") == "deployed" and \
                                int(labels.get("version", "0")) < rel["version"]:
                            try:
                                old = helm_release.decode_release(obj)
                            except (ValueError, OSError, EOFError, KeyError):
                                continue  # a malformed one stored on purpose: left alone
                            old["info"]["status"] = "superseded"
                            STATE.put(helm_release.release_secret(old))
                sec = copy.deepcopy(STATE.put(helm_release.release_secret(rel, payload)))
            return self.send_json(200, sec)
        if cmd == "counts":
            field, value = q.get("field"), q.get("value")
            with STATE.lock:
                out = {r: 0 for r in KINDS}
                for (res, _, _), obj in STATE.objects.items():
                    out[res] += 1
                    if field and get_path(obj, field) == value:
                        key = "%s?%s=%s" % (res, field, value)
                        out[key] = out.get(key, 0) + 1
            return self.send_json(200, out)
        if cmd == "state":
            with STATE.lock:
                st = {"rv": STATE.rv, "min_rv": STATE.min_rv, "watchers": len(STATE.watchers),
                      "objects": len(STATE.objects)}
            return self.send_json(200, st)
        if cmd == "requests":
            with STATE.lock:
                if self.command == "DELETE":
                    STATE.requests = []
                    return self.send_json(200, [])
                return self.send_json(200, STATE.requests)
        if cmd == "blob":
            n = int(q.get("bytes", "1024"))
            data = b'{"kind":"Blob","data":"' + b"x" * max(0, n - 25) + b'"}'
            if q.get("chunked"):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for i in range(0, len(data), 65536):
                        self.chunk(data[i:i + 65536])
                    self.end_chunks()
                except OSError:
                    self.close_connection = True
                return None
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except OSError:
                self.close_connection = True
            return None
        if cmd == "longline":
            n = int(q.get("bytes", "1024"))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                sent = 0
                while sent < n:
                    part = min(65536, n - sent)
                    self.chunk(b"y" * part)
                    sent += part
                self.end_chunks()
            except OSError:
                self.close_connection = True
            return None
        return self.send_status(404, "NotFound", "no such test endpoint")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default=None)
    ap.add_argument("--load", nargs="*", default=[])
    ap.add_argument("--bookmark-interval", type=float, default=1.0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca")
    args = ap.parse_args()
    STATE.token = args.token
    STATE.bookmark_interval = args.bookmark_interval
    with STATE.lock:
        for path in args.load:
            with open(path) as f:
                doc = json.load(f)
            for o in doc if isinstance(doc, list) else [doc]:
                STATE.put(o)
    srv = Server(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ctx.load_verify_locations(args.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        # The handshake runs in the handler's thread, so a failing client blocks nobody.
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                     do_handshake_on_connect=False)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
