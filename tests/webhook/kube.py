"""What the Kubernetes API server does around a mutating webhook, for the fixtures and the harness.

The AdmissionReview wire shape (admission.k8s.io/v1), copied from the API reference and a
real request (kube-rs kube-core's test body): the Pod in `request.object` has already been
decoded and defaulted, and the built-in mutating plugins (ServiceAccount, DefaultTolerationSeconds)
have run, so it carries the kube-api-access projected volume and mounts, the default
tolerations, `terminationMessagePath`, `imagePullPolicy` and so on, `creationTimestamp: null`
and `status: {}`. A Pod made by a controller has `generateName`, no `name` and no
`metadata.namespace`; the namespace is only in `request.namespace`.

`default_pod` re-applies the defaults the API server applies to what a webhook adds before it
calls the next webhook (or this one again, on reinvocation).
"""

import copy
import json
import uuid

API_VERSION = "admission.k8s.io/v1"


def review(obj, *, namespace, operation="CREATE", name=None, old=None, dry_run=False,
           kind=("", "v1", "Pod"), resource=("", "v1", "pods"), sub_resource=None, uid=None):
    """An AdmissionReview request exactly as the API server sends it."""
    if name is None:
        name = (obj.get("metadata") or {}).get("name", "")
    options = {
        "CREATE": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        "UPDATE": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
    }.get(operation)
    if options is not None and operation == "CREATE" and obj.get("metadata", {}).get("managedFields"):
        options = dict(options, fieldManager="kubectl-client-side-apply", fieldValidation="Strict")
    if options is not None and dry_run:
        options = dict(options, dryRun=["All"])
    req = {
        "uid": uid or str(uuid.uuid5(uuid.NAMESPACE_OID, json.dumps([obj, operation, dry_run], sort_keys=True))),
        "kind": {"group": kind[0], "version": kind[1], "kind": kind[2]},
        "resource": {"group": resource[0], "version": resource[1], "resource": resource[2]},
        "requestKind": {"group": kind[0], "version": kind[1], "kind": kind[2]},
        "requestResource": {"group": resource[0], "version": resource[1], "resource": resource[2]},
    }
    if sub_resource:
        req["subResource"] = sub_resource
        req["requestSubResource"] = sub_resource
    req.update({
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": {
            "username": "system:serviceaccount:kube-system:replicaset-controller"
            if obj.get("metadata", {}).get("generateName") else "alice@example.com",
            "uid": "6c4b1ff2-2d7a-4b9e-9d5b-0f3c1c2d4e5f",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]
            if obj.get("metadata", {}).get("generateName") else ["system:authenticated"],
        },
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": options,
    })
    return {"kind": "AdmissionReview", "apiVersion": API_VERSION, "request": req}


def api_access_volume(suffix):
    """The projected volume the ServiceAccount admission plugin adds."""
    return {
        "name": f"kube-api-access-{suffix}",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                    "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
            "defaultMode": 420,
        },
    }


def api_access_mount(suffix):
    return {"name": f"kube-api-access-{suffix}", "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}


def container(name, image, *, env=None, env_from=None, mounts=None, ports=None, restart_always=False,
              command=None, args=None, resources=None, pull="IfNotPresent"):
    """A container as the API server has defaulted it."""
    c = {"name": name, "image": image}
    if command:
        c["command"] = command
    if args:
        c["args"] = args
    if ports:
        c["ports"] = [dict(p, protocol=p.get("protocol", "TCP")) for p in ports]
    if env_from:
        c["envFrom"] = env_from
    if env is not None:
        c["env"] = env
    c["resources"] = resources or {}
    if mounts is not None:
        c["volumeMounts"] = mounts
    if restart_always:
        c["restartPolicy"] = "Always"
    c["terminationMessagePath"] = "/dev/termination-log"
    c["terminationMessagePolicy"] = "File"
    c["imagePullPolicy"] = pull
    return c


def pod_spec(containers, *, init=None, volumes=None, sa="default", restart="Always", host_network=False,
             automount=None, extra=None):
    """A Pod spec as the API server has defaulted it."""
    spec = {}
    if volumes is not None:
        spec["volumes"] = volumes
    if init is not None:
        spec["initContainers"] = init
    spec["containers"] = containers
    spec.update({
        "restartPolicy": restart,
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirstWithHostNet" if host_network else "ClusterFirst",
        "serviceAccountName": sa,
        "serviceAccount": sa,
    })
    if automount is not None:
        spec["automountServiceAccountToken"] = automount
    if host_network:
        spec["hostNetwork"] = True
    spec.update({
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300},
        ],
        "priority": 0,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
    })
    if extra:
        spec.update(extra)
    return spec


def default_pod(pod):
    """Applies the API server's defaults to what a webhook added (the re-decode between webhooks)."""
    pod = copy.deepcopy(pod)
    spec = pod["spec"]
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            if "imagePullPolicy" not in c:
                c["imagePullPolicy"] = "Always" if c["image"].endswith(":latest") or ":" not in c["image"] else "IfNotPresent"
            for p in c.get("ports") or []:
                p.setdefault("protocol", "TCP")
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                pr = c.get(probe)
                if pr:
                    pr.setdefault("timeoutSeconds", 1)
                    pr.setdefault("periodSeconds", 10)
                    pr.setdefault("successThreshold", 1)
                    pr.setdefault("failureThreshold", 3)
                    if "httpGet" in pr:
                        pr["httpGet"].setdefault("scheme", "HTTP")
    for v in spec.get("volumes") or []:
        if "projected" in v:
            v["projected"].setdefault("defaultMode", 420)
    return pod
