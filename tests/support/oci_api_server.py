#!/usr/bin/python3
"""A stand-in for the OCI Core Services (compute) and Container Engine APIs, for tests.

It speaks the real wire format of the calls the OCI executor makes:

  GET    /20160918/instances/{instanceId}                 -> Instance
  POST   /20160918/instances/{instanceId}?action=ACTION   -> Instance (STOP, START, SOFTSTOP,
                                                             RESET, SOFTRESET)
  GET    /20180222/nodePools/{nodePoolId}                  -> NodePool (with nodes[])
  DELETE /20180222/nodePools/{nodePoolId}/node/{nodeId}?isDecrementSize=true|false
                                                          -> 202, opc-work-request-id

with OCI's JSON shapes (Instance: id, displayName, lifecycleState, availabilityDomain,
compartmentId, faultDomain, shape, region, timeCreated, ...; NodePool: id, clusterId, name,
nodeConfigDetails.size, nodes[] with id / name / lifecycleState / privateIp / nodePoolId),
OCI's error bodies ({"code": "NotAuthenticated", "message": ...}) and headers (opc-request-id
on every answer, folding in the client's own; etag; opc-work-request-id; Retry-After on 429).

Every API request's signature is verified for real ("Request Signatures", signature version
1): the Authorization header is parsed, the keyId must be <tenancy>/<user>/<fingerprint of
the configured PUBLIC key>, the signed header list must hold date, (request-target) and host
(plus content-length, content-type and x-content-sha256 for POST/PUT/PATCH), the signing string
is rebuilt from the request as received, x-content-sha256 and content-length must match the
body, the date must be within 5 minutes, and the RSA-SHA256 (PKCS#1 v1.5) signature must
verify with the public key. Anything else: 401 NotAuthenticated. POSTs carrying an
opc-retry-token already seen are answered from the first answer without acting again.

State changes take time, as in OCI: a SOFTRESET goes RUNNING -> STOPPING -> STOPPED ->
STARTING -> RUNNING, one step per --transition seconds (an instance marked "stuck" stays
STOPPING until a RESET); a deleted node is DELETING, its instance TERMINATING then TERMINATED,
then it leaves the pool and, unless isDecrementSize=true, a replacement node joins it.

Usage:  oci_api_server.py --public-key FILE --tenancy OCID --user OCID [--port N]
                          [--transition SECONDS]
Prints "PORT <n>" on stdout once it listens on 127.0.0.1 (port 0 picks a free one).

Test control endpoints (never authenticated), JSON:
  POST   /_test/instances   an Instance-like object or a list: {"id", "displayName"?,
                            "lifecycleState"?, "stuck"?}; creates or replaces
  POST   /_test/nodepools   {"id", "name"?, "size"?, "nodes": [instance ids]}; the instances
                            are created RUNNING when unknown
  POST   /_test/faults      a fault or a list, consumed in order by matching requests:
                            {"method"?, "path"?: substring, "status", "count"?: 1,
                             "retry_after"?: str, "code"?, "message"?}
  POST   /_test/config      {"public_key"?: PEM, "transition"?: seconds, "tenancy"?, "user"?}
  GET    /_test/actions     actions performed (instance actions, node deletions)
  GET    /_test/requests    every API request: method, path, status, verified, reason, headers
  DELETE /_test/requests    clears both lists
"""

import argparse
import base64
import datetime
import email.utils
import hashlib
import json
import re
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

LOCK = threading.Lock()
STATE = {
    "public_key": None,
    "key_id": None,
    "tenancy": "",
    "user": "",
    "transition": 0.2,
    "instances": {},   # id -> dict (the Instance) plus private fields starting with "_"
    "pools": {},       # id -> dict (the NodePool)
    "faults": [],
    "actions": [],
    "requests": [],
    "retry_tokens": {},  # token -> (status, body, headers)
    "seq": 0,
}

BODY_METHODS = ("POST", "PUT", "PATCH")
MAX_SKEW = 300
COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaa7mvsxbzmz2yhcfgxdgyocyfxdwajqlm6aaszxxvxkxqjfpxmqpaq"
CLUSTER = "ocid1.cluster.oc1.iad.aaaaaaaaae3tsmzygvrtgmbwmm2tgyrtgm4daodbgy2tcobrgyytimrsgjqw"


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def fingerprint(pub):
    der = pub.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    h = hashlib.md5(der).hexdigest()
    return ":".join(h[i:i + 2] for i in range(0, 32, 2))


def set_public_key(pem):
    pub = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    STATE["public_key"] = pub
    STATE["key_id"] = "%s/%s/%s" % (STATE["tenancy"], STATE["user"], fingerprint(pub))


def new_instance(iid, name=None, state="RUNNING"):
    region = iid.split(".")[3] if iid.count(".") >= 4 else "iad"
    return {
        "availabilityDomain": "Uocm:US-ASHBURN-AD-1",
        "capacityReservationId": None,
        "compartmentId": COMPARTMENT,
        "dedicatedVmHostId": None,
        "definedTags": {},
        "displayName": name or ("oke-c" + iid[-10:]),
        "extendedMetadata": {},
        "faultDomain": "FAULT-DOMAIN-1",
        "freeformTags": {},
        "id": iid,
        "imageId": "ocid1.image.oc1.iad.aaaaaaaat2x2gkqhbmodwkkenbcsy5zivcb4kf6xxiayqdg3oq2kgy3lpqra",
        "launchMode": "PARAVIRTUALIZED",
        "lifecycleState": state,
        "metadata": {},
        "region": region,
        "shape": "VM.Standard.E4.Flex",
        "shapeConfig": {"ocpus": 2.0, "memoryInGBs": 16.0, "vcpus": 4},
        "sourceDetails": {"sourceType": "image", "bootVolumeSizeInGBs": 50},
        "timeCreated": now_rfc3339(),
        "_plan": [],      # [(time, state)] transitions still to come
        "_stuck": False,
        "_etag": uuid.uuid4().hex,
    }


def new_node(iid, pool_id, name=None, state="ACTIVE"):
    STATE["seq"] += 1
    return {
        "id": iid,
        "name": name or ("oke-node-%d" % STATE["seq"]),
        "availabilityDomain": "Uocm:US-ASHBURN-AD-1",
        "subnetId": "ocid1.subnet.oc1.iad.aaaaaaaaxkovn4gbd5oqtqjmhyjqbusgwgdq4nqxf3xemeyjbwhaqkyyk5qq",
        "nodePoolId": pool_id,
        "faultDomain": "FAULT-DOMAIN-1",
        "privateIp": "10.0.10.%d" % (20 + STATE["seq"] % 200),
        "publicIp": None,
        "nodeError": None,
        "kubernetesVersion": "v1.29.1",
        "lifecycleState": state,
        "lifecycleDetails": "",
        "_plan": [],
    }


def advance(now=None):
    """Applies every planned transition that is due."""
    now = now or time.time()
    for inst in STATE["instances"].values():
        while inst["_plan"] and inst["_plan"][0][0] <= now:
            _, st = inst["_plan"].pop(0)
            inst["lifecycleState"] = st
            inst["_etag"] = uuid.uuid4().hex
    for pool in STATE["pools"].values():
        for node in list(pool["nodes"]):
            while node["_plan"] and node["_plan"][0][0] <= now:
                _, step = node["_plan"].pop(0)
                if step == "REMOVE":
                    pool["nodes"].remove(node)
                    break
                if step.startswith("REPLACE:"):
                    nid = step.split(":", 1)[1]
                    inst = new_instance(nid, state="PROVISIONING")
                    inst["_plan"] = [(now + STATE["transition"], "RUNNING")]
                    STATE["instances"][nid] = inst
                    nn = new_node(nid, pool["id"], state="CREATING")
                    nn["_plan"] = [(now + STATE["transition"], "ACTIVE")]
                    pool["nodes"].append(nn)
                    continue
                node["lifecycleState"] = step


def public(obj):
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def pool_json(pool):
    out = public(pool)
    out["nodes"] = [public(n) for n in pool["nodes"]]
    return out


def new_instance_id(region="iad"):
    raw = uuid.uuid4().hex + uuid.uuid4().hex
    return "ocid1.instance.oc1.%s.an%s" % (region, raw[:58])


AUTH_RE = re.compile(r'([A-Za-z]+)="([^"]*)"')


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "oci-api-test/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    # ---- plumbing ----
    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def opc_id(self):
        mine = uuid.uuid4().hex.upper()
        theirs = self.headers.get("opc-request-id")
        return ("%s/%s" % (theirs, mine)) if theirs else mine

    def send(self, status, obj=None, headers=None, raw=None):
        body = raw if raw is not None else (json.dumps(obj).encode() if obj is not None else b"")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("opc-request-id", self._opc)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        return status

    def error(self, status, code, message, headers=None):
        return self.send(status, {"code": code, "message": message}, headers)

    def record(self, status, verified, reason):
        STATE["requests"].append({
            "method": self.command, "path": self.path, "status": status,
            "verified": verified, "reason": reason,
            "headers": {k.lower(): v for k, v in self.headers.items()},
        })

    # ---- signature ----
    def verify(self, body):
        """Returns None when the request is signed correctly, else the reason."""
        auth = self.headers.get("Authorization")
        if not auth or not auth.startswith("Signature "):
            return "no Signature authorization"
        rest = auth[len("Signature "):]
        params = dict(AUTH_RE.findall(rest))
        rebuilt = ",".join('%s="%s"' % m for m in AUTH_RE.findall(rest))
        if rebuilt != rest:
            return "malformed Authorization parameters"
        for p in ("version", "keyId", "algorithm", "headers", "signature"):
            if p not in params:
                return "missing %s" % p
        if params["version"] != "1":
            return "unsupported version"
        if params["algorithm"] != "rsa-sha256":
            return "unsupported algorithm"
        if STATE["public_key"] is None or params["keyId"] != STATE["key_id"]:
            return "unknown keyId"
        names = params["headers"].lower().split(" ")
        required = ["date", "(request-target)", "host"]
        if self.command in BODY_METHODS:
            required += ["content-length", "content-type", "x-content-sha256"]
        for r in required:
            if r not in names and not (r == "date" and "x-date" in names):
                return "header %s not signed" % r
        lines = []
        for name in names:
            if name == "(request-target)":
                lines.append("(request-target): %s %s" % (self.command.lower(), self.path))
                continue
            values = self.headers.get_all(name) or []
            if len(values) != 1:
                return "header %s sent %d times" % (name, len(values))
            lines.append("%s: %s" % (name, values[0]))
        if self.command in BODY_METHODS:
            want = base64.b64encode(hashlib.sha256(body).digest()).decode()
            if self.headers.get("x-content-sha256") != want:
                return "x-content-sha256 does not match the body"
            if self.headers.get("content-length") != str(len(body)):
                return "content-length does not match the body"
        date = self.headers.get("x-date") or self.headers.get("date")
        try:
            when = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return "unparseable date"
        if abs(time.time() - when) > MAX_SKEW:
            return "date outside the allowed clock skew"
        try:
            sig = base64.b64decode(params["signature"], validate=True)
            STATE["public_key"].verify(sig, "\n".join(lines).encode(), padding.PKCS1v15(),
                                       hashes.SHA256())
        except (InvalidSignature, ValueError):
            return "signature does not verify"
        return None

    def fault(self):
        for f in STATE["faults"]:
            if f.get("method") and f["method"] != self.command:
                continue
            if f.get("path") and f["path"] not in self.path:
                continue
            f["count"] = f.get("count", 1) - 1
            if f["count"] <= 0:
                STATE["faults"].remove(f)
            return f
        return None

    # ---- API ----
    def api(self, body):
        with LOCK:
            advance()
            reason = self.verify(body)
            if reason:
                st = self.error(401, "NotAuthenticated",
                                "The required information to complete authentication was not "
                                "provided or was incorrect.")
                self.record(st, False, reason)
                return
            f = self.fault()
            if f:
                hdrs = {"Retry-After": f["retry_after"]} if f.get("retry_after") else None
                defaults = {429: ("TooManyRequests", "Too many requests for the user"),
                            500: ("InternalError", "Internal error occurred"),
                            503: ("ServiceUnavailable", "Service unavailable")}
                code, msg = defaults.get(f["status"], ("InternalError", "injected"))
                st = self.error(f["status"], f.get("code", code), f.get("message", msg), hdrs)
                self.record(st, True, "fault")
                return
            st = self.route(body)
            self.record(st, True, "")

    def route(self, body):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        parts = u.path.split("/")
        if len(parts) == 4 and parts[1] == "20160918" and parts[2] == "instances":
            inst = STATE["instances"].get(parts[3])
            if inst is None:
                return self.error(404, "NotAuthorizedOrNotFound",
                                  "Authorization failed or requested resource not found.")
            if self.command == "GET" and not u.query:
                return self.send(200, public(inst), {"etag": inst["_etag"]})
            if self.command == "POST" and list(q.keys()) == ["action"]:
                return self.instance_action(inst, q["action"][0])
        if len(parts) == 4 and parts[1] == "20180222" and parts[2] == "nodePools":
            pool = STATE["pools"].get(parts[3])
            if pool is None:
                return self.error(404, "NotAuthorizedOrNotFound",
                                  "Authorization failed or requested resource not found.")
            if self.command == "GET" and not u.query:
                return self.send(200, pool_json(pool), {"etag": pool["_etag"]})
        if (len(parts) == 6 and parts[1] == "20180222" and parts[2] == "nodePools"
                and parts[4] == "node" and self.command == "DELETE"):
            pool = STATE["pools"].get(parts[3])
            if pool is None:
                return self.error(404, "NotAuthorizedOrNotFound",
                                  "Authorization failed or requested resource not found.")
            return self.delete_node(pool, parts[5], q)
        return self.error(404, "NotAuthorizedOrNotFound",
                          "Authorization failed or requested resource not found.")

    def instance_action(self, inst, action):
        token = self.headers.get("opc-retry-token")
        if token and token in STATE["retry_tokens"]:
            st, obj, hdrs = STATE["retry_tokens"][token]
            return self.send(st, obj, hdrs)
        t, now, state = STATE["transition"], time.time(), inst["lifecycleState"]
        allowed = {"SOFTRESET": ("RUNNING",), "RESET": ("RUNNING", "STOPPING"),
                   "SOFTSTOP": ("RUNNING",), "STOP": ("RUNNING", "STOPPING"),
                   "START": ("STOPPED",)}
        if action not in allowed:
            return self.error(400, "InvalidParameter", "Invalid action: %s" % action)
        if state not in allowed[action]:
            return self.error(409, "IncorrectState",
                              "Instance %s is in an incorrect state: %s" % (inst["id"], state))
        if action == "SOFTRESET":
            inst["lifecycleState"] = "STOPPING"
            inst["_plan"] = [] if inst["_stuck"] else [
                (now + t, "STOPPED"), (now + 2 * t, "STARTING"), (now + 3 * t, "RUNNING")]
        elif action == "RESET":
            inst["lifecycleState"] = "STOPPING"
            inst["_plan"] = [(now + t, "STARTING"), (now + 2 * t, "RUNNING")]
        elif action in ("STOP", "SOFTSTOP"):
            inst["lifecycleState"] = "STOPPING"
            inst["_plan"] = [(now + t, "STOPPED")]
        else:
            inst["lifecycleState"] = "STARTING"
            inst["_plan"] = [(now + t, "RUNNING")]
        inst["_etag"] = uuid.uuid4().hex
        STATE["actions"].append({"action": action, "instance": inst["id"], "time": now,
                                 "opc_request_id": self._opc, "retry_token": token})
        obj, hdrs = public(inst), {"etag": inst["_etag"]}
        if token:
            STATE["retry_tokens"][token] = (200, obj, hdrs)
        return self.send(200, obj, hdrs)

    def delete_node(self, pool, node_id, q):
        node = next((n for n in pool["nodes"] if n["id"] == node_id), None)
        if node is None:
            return self.error(404, "NotAuthorizedOrNotFound",
                              "Authorization failed or requested resource not found.")
        if node["lifecycleState"] in ("DELETING", "DELETED"):
            return self.error(409, "Conflict", "Node %s is already being deleted" % node_id)
        decrement = q.get("isDecrementSize", ["false"])[0] == "true"
        t, now = STATE["transition"], time.time()
        node["lifecycleState"] = "DELETING"
        plan = [(now + 2 * t, "REMOVE")]
        if not decrement:
            plan.insert(0, (now + 2 * t, "REPLACE:" + new_instance_id()))
        else:
            pool["nodeConfigDetails"]["size"] -= 1
        node["_plan"] = plan
        inst = STATE["instances"].get(node_id)
        if inst:  # OKE drains first, then terminates
            inst["_plan"] = [(now + t, "TERMINATING"), (now + 2 * t, "TERMINATED")]
        wr = "ocid1.clustersworkrequest.oc1.iad.aaaaaaaa" + uuid.uuid4().hex
        STATE["actions"].append({"action": "DELETE_NODE", "node_pool": pool["id"],
                                 "node": node_id, "isDecrementSize": decrement, "time": now,
                                 "opc_request_id": self._opc, "work_request": wr})
        return self.send(202, None, {"opc-work-request-id": wr})

    # ---- test control ----
    def control(self, body):
        with LOCK:
            advance()
            path = self.path
            data = json.loads(body) if body else None
            if self.command == "POST" and path == "/_test/instances":
                for o in data if isinstance(data, list) else [data]:
                    inst = new_instance(o["id"], o.get("displayName"),
                                        o.get("lifecycleState", "RUNNING"))
                    inst["_stuck"] = bool(o.get("stuck"))
                    STATE["instances"][o["id"]] = inst
                return self.send(200, {"ok": True})
            if self.command == "POST" and path == "/_test/nodepools":
                nodes = []
                pool = {"id": data["id"], "clusterId": CLUSTER, "compartmentId": COMPARTMENT,
                        "name": data.get("name", "pool1"), "kubernetesVersion": "v1.29.1",
                        "nodeShape": "VM.Standard.E4.Flex", "lifecycleState": "ACTIVE",
                        "nodeConfigDetails": {"size": data.get("size", len(data["nodes"])),
                                              "placementConfigs": []},
                        "_etag": uuid.uuid4().hex}
                for iid in data["nodes"]:
                    if iid not in STATE["instances"]:
                        STATE["instances"][iid] = new_instance(iid)
                    nodes.append(new_node(iid, data["id"]))
                pool["nodes"] = nodes
                STATE["pools"][data["id"]] = pool
                return self.send(200, {"ok": True})
            if self.command == "POST" and path == "/_test/faults":
                STATE["faults"].extend(data if isinstance(data, list) else [data])
                return self.send(200, {"ok": True})
            if self.command == "POST" and path == "/_test/config":
                for k in ("tenancy", "user", "transition"):
                    if k in data:
                        STATE[k] = data[k]
                if "public_key" in data:
                    set_public_key(data["public_key"])
                elif STATE["public_key"] is not None:
                    STATE["key_id"] = "%s/%s/%s" % (STATE["tenancy"], STATE["user"],
                                                    fingerprint(STATE["public_key"]))
                return self.send(200, {"ok": True})
            if self.command == "GET" and path == "/_test/actions":
                return self.send(200, STATE["actions"])
            if self.command == "GET" and path == "/_test/requests":
                return self.send(200, STATE["requests"])
            if self.command == "DELETE" and path == "/_test/requests":
                STATE["requests"].clear()
                STATE["actions"].clear()
                return self.send(200, {"ok": True})
            if self.command == "GET" and path.startswith("/_test/instances/"):
                inst = STATE["instances"].get(path.rsplit("/", 1)[1])
                return self.send(200 if inst else 404, public(inst) if inst else {})
            return self.send(404, {"code": "NotFound", "message": "no such control endpoint"})

    def handle_any(self):
        self._opc = self.opc_id()
        body = self.read_body()
        if self.path.startswith("/_test/"):
            self.control(body)
        else:
            self.api(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Clients hang up (tests abandon requests, tear down): not an error of the server.
        if isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--public-key")
    ap.add_argument("--tenancy", default="")
    ap.add_argument("--user", default="")
    ap.add_argument("--transition", type=float, default=0.2)
    a = ap.parse_args()
    STATE["tenancy"], STATE["user"], STATE["transition"] = a.tenancy, a.user, a.transition
    if a.public_key:
        with open(a.public_key, "rb") as f:
            set_public_key(f.read())
    srv = Server(("127.0.0.1", a.port), Handler)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
