#!/usr/bin/python3
"""Builds Helm 3 release Secrets the way Helm's storage driver writes them (standard library only).

Helm 3 (pkg/storage/driver/secrets.go, util.go) stores each revision of a release as a Secret
named `sh.helm.release.v1.<name>.v<version>` of type `helm.sh/release.v1`, labelled
owner=helm, name=<name>, status=<status>, version=<version> (and modifiedAt), whose
`data.release` is the release encoded as: JSON (pkg/release.Release) -> gzip -> base64. Secret
data is []byte, so the API server returns that text base64-encoded once more: a client reads
base64(base64(gzip(json))).

Usage as a module:
    release_json(name, namespace, version, status, images, ...) -> dict (pkg/release.Release)
    release_secret(release_dict) -> dict (a v1 Secret as the API returns it)
Usage as a program (prints the Secret JSON):
    helm_release.py --name api --namespace prod --revision 3 --status pending-upgrade \
        --image web=registry.local/api:1.2 [--image worker=...] [--chart api --chart-version 1.2.0]
"""

import argparse
import base64
import datetime
import gzip
import json
import sys

STATUSES = ("unknown", "deployed", "uninstalled", "superseded", "failed", "uninstalling",
            "pending-install", "pending-upgrade", "pending-rollback")


def _ts(offset_s=0):
    t = datetime.datetime(2026, 11, 27, 10, 0, 0, tzinfo=datetime.timezone.utc)
    t += datetime.timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000000000Z")


def manifest(name, namespace, images, kind="Deployment"):
    """The rendered manifest Helm keeps in the release: YAML documents, each with its
    "# Source:" comment, one workload whose containers run `images` ({container: image})."""
    docs = []
    docs.append("---\n# Source: %s/templates/service.yaml\napiVersion: v1\nkind: Service\n"
                "metadata:\n  name: %s\n  labels:\n    app.kubernetes.io/name: %s\n"
                "    app.kubernetes.io/managed-by: Helm\nspec:\n  type: ClusterIP\n  ports:\n"
                "    - port: 80\n      targetPort: http\n      protocol: TCP\n      name: http\n"
                "  selector:\n    app.kubernetes.io/name: %s\n" % (name, name, name, name))
    containers = ""
    for cname, image in images.items():
        containers += ("        - name: %s\n          image: \"%s\"\n"
                       "          imagePullPolicy: IfNotPresent\n          ports:\n"
                       "            - name: http\n              containerPort: 8080\n"
                       % (cname, image))
    docs.append("---\n# Source: %s/templates/%s.yaml\napiVersion: apps/v1\nkind: %s\n"
                "metadata:\n  name: %s\n  labels:\n    app.kubernetes.io/name: %s\n"
                "    app.kubernetes.io/instance: %s\n    app.kubernetes.io/managed-by: Helm\n"
                "spec:\n  replicas: 2\n  selector:\n    matchLabels:\n"
                "      app.kubernetes.io/name: %s\n  template:\n    metadata:\n      labels:\n"
                "        app.kubernetes.io/name: %s\n    spec:\n      serviceAccountName: %s\n"
                "      containers:\n%s"
                % (name, kind.lower(), kind, name, name, name, name, name, name, containers))
    return "\n".join(docs)


def release_json(name, namespace, version, status, images, chart="app", chart_version="1.0.0",
                 app_version="1.0.0", kind="Deployment", description=None):
    if status not in STATUSES:
        raise ValueError("unknown Helm status %r" % status)
    values = {"image": {"repository": "", "tag": ""}, "replicaCount": 2}
    first = next(iter(images.values()), "")
    if ":" in first:
        values["image"]["repository"], values["image"]["tag"] = first.rsplit(":", 1)
    template = "apiVersion: apps/v1\nkind: %s\nmetadata:\n  name: {{ .Release.Name }}\n" % kind
    return {
        "name": name,
        "info": {
            "first_deployed": _ts(),
            "last_deployed": _ts(60 * version),
            "deleted": "",
            "description": description or {
                "deployed": "Upgrade complete" if version > 1 else "Install complete",
                "failed": "Upgrade \"%s\" failed: context deadline exceeded" % name,
                "pending-upgrade": "Preparing upgrade",
                "pending-install": "Initial install underway",
                "pending-rollback": "Rollback in progress",
                "superseded": "Superseded",
            }.get(status, status),
            "status": status,
            "notes": "1. Get the application URL by running these commands:\n",
        },
        "chart": {
            "metadata": {"name": chart, "version": chart_version, "description":
                         "A Helm chart for Kubernetes", "apiVersion": "v2",
                         "appVersion": app_version, "type": "application"},
            "lock": None,
            "templates": [{"name": "templates/%s.yaml" % kind.lower(),
                           "data": base64.b64encode(template.encode()).decode()}],
            "values": values,
            "schema": None,
            "files": [],
        },
        "config": {"image": values["image"]},
        "manifest": manifest(name, namespace, images, kind),
        "version": version,
        "namespace": namespace,
    }


def encode_release(rel):
    """Helm's encodeRelease: json.Marshal -> gzip (best compression) -> base64 (std)."""
    raw = json.dumps(rel, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=9)).decode()


def decode_release(secret):
    """The release a Secret holds (the inverse of release_secret)."""
    text = base64.b64decode(secret["data"]["release"])
    return json.loads(gzip.decompress(base64.b64decode(text)))


def release_secret(rel, payload=None):
    """The v1 Secret holding `rel`, as the API server returns it (data values base64).
    `payload` (bytes) replaces Helm's encoded text (for malformed-input tests)."""
    name, version, status = rel["name"], rel["version"], rel["info"]["status"]
    text = encode_release(rel).encode() if payload is None else payload
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": {
            "name": "sh.helm.release.v1.%s.v%d" % (name, version),
            "namespace": rel["namespace"],
            "labels": {"name": name, "owner": "helm", "status": status,
                       "version": str(version), "modifiedAt": "1764237600"},
        },
        "data": {"release": base64.b64encode(text).decode()},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--namespace", default="default")
    ap.add_argument("--revision", type=int, default=1)
    ap.add_argument("--status", default="deployed", choices=STATUSES)
    ap.add_argument("--image", action="append", default=[], help="container=image")
    ap.add_argument("--chart", default="app")
    ap.add_argument("--chart-version", default="1.0.0")
    ap.add_argument("--kind", default="Deployment")
    a = ap.parse_args()
    images = dict(i.split("=", 1) for i in a.image)
    rel = release_json(a.name, a.namespace, a.revision, a.status, images, a.chart,
                       a.chart_version, kind=a.kind)
    json.dump(release_secret(rel), sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    sys.exit(main())
