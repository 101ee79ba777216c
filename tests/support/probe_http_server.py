#!/usr/bin/python3
"""HTTP(S) endpoints for the dependency-probe tests (tests/integration/test_probes_http.c).

Where no real server is packaged (MinIO, an ingress controller's metrics, a TLS site), this
serves the real wire formats the probes read:

  GET /healthz                -> 200 "ok"
  GET /broken                 -> 503 "upstream unavailable"
  GET /minio/health/live      -> 200 (MinIO liveness: empty body)
  GET /minio/health/cluster   -> 200, or 503 once set (MinIO: no write quorum)
  GET /metrics                -> Prometheus text exposition (0.0.4) in ingress-nginx's shape:
                                 nginx_ingress_controller_requests{...,status="200"|"503"}
  POST /control               -> JSON {"ok": N, "err": N, "cluster": 200|503} sets state

Three listeners on 127.0.0.1 (port 0): plain HTTP, HTTPS with a leaf for localhost/127.0.0.1
valid 30 days, HTTPS with a leaf that expired 2 days ago; both leaves are signed by a test CA
written to DIR/ca.pem (python3-cryptography). The ports go to DIR/ports as "http https expired".
"""
import datetime
import json
import os
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import ipaddress

STATE = {"ok": 0, "err": 0, "cluster": 200}
LOCK = threading.Lock()


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certs(d):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("probe test CA")).issuer_name(name("probe test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=60)).not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    with open(os.path.join(d, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    out = {}
    for label, start, end in (("valid", -1, 30), ("expired", -40, -2)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now + datetime.timedelta(days=start))
                .not_valid_after(now + datetime.timedelta(days=end))
                .add_extension(x509.SubjectAlternativeName([
                    x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                    critical=False)
                .sign(ca_key, hashes.SHA256()))
        cp, kp = os.path.join(d, label + ".crt"), os.path.join(d, label + ".key")
        with open(cp, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(kp, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        out[label] = (cp, kp)
    return out


def exposition():
    with LOCK:
        ok, err = STATE["ok"], STATE["err"]
    common = ('canary="",controller_class="k8s.io/ingress-nginx",controller_namespace="ingress-nginx",'
              'controller_pod="ingress-nginx-controller-6b7c9",host="app.example.com",ingress="api",'
              'method="GET",namespace="prod",path="/",service="api"')
    return ("# HELP nginx_ingress_controller_requests The total number of client requests\n"
            "# TYPE nginx_ingress_controller_requests counter\n"
            f"nginx_ingress_controller_requests{{{common},status=\"200\"}} {ok}\n"
            f"nginx_ingress_controller_requests{{{common},status=\"503\"}} {err}\n"
            "# HELP nginx_ingress_controller_nginx_process_connections current number of client connections\n"
            "# TYPE nginx_ingress_controller_nginx_process_connections gauge\n"
            'nginx_ingress_controller_nginx_process_connections{controller_class="k8s.io/ingress-nginx",state="active"} 3\n')


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, ctype="text/plain; charset=utf-8"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            self.send(200, "ok")
        elif self.path == "/broken":
            self.send(503, "upstream unavailable")
        elif self.path == "/minio/health/live":
            self.send(200, "")
        elif self.path == "/minio/health/cluster":
            with LOCK:
                st = STATE["cluster"]
            self.send(st, "")
        elif self.path == "/metrics":
            self.send(200, exposition(), "text/plain; version=0.0.4; charset=utf-8")
        else:
            self.send(404, "404 page not found")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n) or b"{}")
        if self.path != "/control":
            self.send(404, "")
            return
        with LOCK:
            for k in ("ok", "err", "cluster"):
                if k in body:
                    STATE[k] = int(body[k])
        self.send(200, "{}", "application/json")


def serve(ctx=None):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    if ctx:
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def main():
    d = sys.argv[1]
    certs = make_certs(d)
    ports = [serve()]
    for label in ("valid", "expired"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*certs[label])
        ports.append(serve(ctx))
    tmp = os.path.join(d, "ports.tmp")
    with open(tmp, "w") as f:
        f.write(" ".join(map(str, ports)) + "\n")
    os.rename(tmp, os.path.join(d, "ports"))
    threading.Event().wait()


if __name__ == "__main__":
    main()
