"""The Kubernetes manifests in deploy/k8s, rendered as `kubectl kustomize`
renders them and held to the rules an operator relies on: probes on the
plaintext health port, resources, a locked-down security context, network
policies that admit each role's natural callers alone, and the replica
counts, autoscalers and disruption budgets of the production layout.

Every rule is a test of its own, so that breaking one rule fails one test
by name. `EVAULT_K8S_DIR` renders another copy of deploy/k8s instead (a
scratch copy with a rule broken on purpose, say); `KUBECTL` names the
kubectl binary.
"""

import base64
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = Path(os.environ.get("EVAULT_K8S_DIR", ROOT / "deploy" / "k8s"))
KUBECTL = os.environ.get("KUBECTL", "kubectl")

# The release whose API schemas the manifests are validated against: one
# they are meant for (they need 1.27 or later, for native gRPC probes), and
# that of the kubectl on the project's CI machine.
KUBERNETES_VERSION = "1.32.0"

OVERLAYS = ["dev", "production", "production-cert-manager"]
PRODUCTION = ["production", "production-cert-manager"]

HEALTH_PORT = 8081
ROLE_PORTS = {"up": 7400, "gateway": 7400, "ingest": 7401, "tree": 7402, "signer": 7403}

# The gRPC health name each role's readiness follows. Never
# evault.v1.SequencerService: it is NOT_SERVING on a standby tree.
READINESS = {
    "up": {"evault.v1.TreeService"},
    "signer": {"evault.v1.SignerService"},
    "tree": {"evault.v1.TreeService"},
    "ingest": {"evault.v1.IngestService"},
    "gateway": {"evault.v1.TreeService", "evault.v1.IngestService"},
}

# Who may connect to each component, by component label; "scraper" is
# Prometheus in the monitoring namespace, reading /metrics.
ADMITTED = {
    "signer": {"tree", "scraper"},
    "tree": {"ingest", "gateway", "scraper"},
    "ingest": {"gateway", "scraper"},
    "postgres": {"up", "tree", "ingest", "gateway", "migrate"},
    "postgres-signer": {"signer", "migrate"},
}

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
CERT_MANAGER = "cert-manager.io/"


@functools.cache
def rendered(overlay):
    """The overlay's manifests, as `kubectl kustomize` renders them (once)."""
    if shutil.which(KUBECTL) is None:
        pytest.fail(f"{KUBECTL} not found: the manifests are rendered with `kubectl kustomize`")
    done = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {overlay}: {done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(params=OVERLAYS)
def docs(request):
    return rendered(request.param)


@pytest.fixture(params=PRODUCTION)
def production(request):
    return rendered(request.param)


@pytest.fixture
def cert_manager():
    return rendered("production-cert-manager")


# ------------------------------------------------------ reading manifests


def workloads(docs, jobs=True):
    """(kind, name, pod labels, pod spec) of every workload."""
    found = []
    for doc in docs:
        kind = doc["kind"]
        if kind not in WORKLOAD_KINDS or (not jobs and kind in {"Job", "CronJob"}):
            continue
        spec = doc["spec"]
        if kind == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        template = spec["template"]
        labels = template.get("metadata", {}).get("labels", {})
        found.append((kind, doc["metadata"]["name"], labels, template["spec"]))
    assert found, "no workloads rendered"
    return found


def containers(pod):
    return list(pod.get("initContainers", [])) + list(pod.get("containers", []))


def each_container(docs, jobs=True):
    """(workload, pod spec, container) for every container and init container."""
    for kind, name, _, pod in workloads(docs, jobs):
        for container in containers(pod):
            yield f"{kind}/{name}/{container['name']}", pod, container


def effective(pod, container, field):
    """A security setting as it applies: the container's, else the pod's."""
    own = container.get("securityContext", {})
    if field in own:
        return own[field]
    return pod.get("securityContext", {}).get(field)


def component(labels):
    return labels.get("app.kubernetes.io/component")


def role_workloads(docs, role):
    return [w for w in workloads(docs) if component(w[2]) == role]


def pod_labels(docs, role):
    """The pod labels of the one workload of `role`."""
    found = role_workloads(docs, role)
    assert len(found) == 1, f"{len(found)} workloads of {role}"
    return found[0][2]


def vault_containers(docs):
    """(role, container) of every container running the vault's binary as a server."""
    for kind, _, labels, pod in workloads(docs, jobs=False):
        if labels.get("app.kubernetes.io/name") == "evault":
            for container in pod["containers"]:
                yield component(labels), container


def env(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def selects(selector, labels):
    """Whether a Kubernetes label selector matches `labels`."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def is_scraper(peer):
    """Prometheus in the monitoring namespace, and nothing wider."""
    namespaces = peer.get("namespaceSelector")
    pods = peer.get("podSelector")
    return (
        namespaces == {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
        and bool(pods)
        and bool(pods.get("matchLabels") or pods.get("matchExpressions"))
        and "ipBlock" not in peer
    )


def admitted(docs, labels):
    """Who the namespace's NetworkPolicies let reach pods with `labels`: a set
    of component names, "scraper", or "anyone"."""
    pods = [w[2] for w in workloads(docs)]
    who = set()
    for policy in (d for d in docs if d["kind"] == "NetworkPolicy"):
        spec = policy["spec"]
        if not selects(spec.get("podSelector", {}), labels):
            continue
        if "Ingress" not in spec.get("policyTypes", ["Ingress"]):
            continue
        for rule in spec.get("ingress", []):
            peers = rule.get("from")
            if not peers:
                who.add("anyone")
                continue
            for peer in peers:
                if is_scraper(peer):
                    who.add("scraper")
                    continue
                selector = peer.get("podSelector") or {}
                if "ipBlock" in peer or "namespaceSelector" in peer:
                    who.add("anyone")
                elif not (selector.get("matchLabels") or selector.get("matchExpressions")):
                    who.add("anyone")
                else:
                    matched = {component(p) for p in pods if selects(selector, p)}
                    # A selector that names pods the overlay does not run is
                    # still a grant: record what it names.
                    for expr in selector.get("matchExpressions") or []:
                        if expr["key"] == "app.kubernetes.io/component" and expr["operator"] == "In":
                            matched |= set(expr["values"])
                    value = (selector.get("matchLabels") or {}).get("app.kubernetes.io/component")
                    if value:
                        matched.add(value)
                    who |= matched or {"anyone"}
    return who


def probe(container, kind):
    got = container.get(kind)
    assert got, f"{container['name']}: no {kind}"
    return got


# ------------------------------------------------------------ every container


def test_every_container_has_startup_liveness_and_readiness_probes(docs):
    for where, _, container in each_container(docs, jobs=False):
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container.get(kind), f"{where}: no {kind}"


def test_every_container_requests_and_limits_cpu_and_memory(docs):
    for where, _, container in each_container(docs):
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                assert resources.get(bound, {}).get(resource), f"{where}: no {bound}.{resource}"


def test_every_container_runs_as_non_root(docs):
    for where, pod, container in each_container(docs):
        assert effective(pod, container, "runAsNonRoot") is True, f"{where}: runAsNonRoot is not true"


def test_every_container_runs_as_a_non_zero_uid(docs):
    for where, pod, container in each_container(docs):
        uid = effective(pod, container, "runAsUser")
        assert isinstance(uid, int) and uid > 0, f"{where}: runAsUser {uid!r}"


def test_every_container_has_a_read_only_root_filesystem(docs):
    for where, _, container in each_container(docs):
        got = container.get("securityContext", {}).get("readOnlyRootFilesystem")
        assert got is True, f"{where}: readOnlyRootFilesystem is not true"


def test_no_container_may_escalate_privileges(docs):
    for where, _, container in each_container(docs):
        got = container.get("securityContext", {}).get("allowPrivilegeEscalation")
        assert got is False, f"{where}: allowPrivilegeEscalation is not false"


def test_every_container_drops_all_capabilities(docs):
    for where, _, container in each_container(docs):
        capabilities = container.get("securityContext", {}).get("capabilities", {})
        assert capabilities.get("drop") == ["ALL"], f"{where}: capabilities.drop is not [ALL]"
        assert not capabilities.get("add"), f"{where}: adds capabilities {capabilities['add']}"


def test_every_container_uses_the_runtime_default_seccomp_profile(docs):
    for where, pod, container in each_container(docs):
        profile = effective(pod, container, "seccompProfile") or {}
        assert profile.get("type") == "RuntimeDefault", f"{where}: seccompProfile {profile!r}"


def test_every_pod_spec_disables_the_service_account_token(docs):
    for kind, name, _, pod in workloads(docs):
        assert pod.get("automountServiceAccountToken") is False, f"{kind}/{name}"


def test_every_vault_container_has_a_writable_tmp_on_an_empty_dir(docs):
    for kind, name, labels, pod in workloads(docs):
        if labels.get("app.kubernetes.io/name") != "evault":
            continue
        empty = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in containers(pod):
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert mounts.get("/tmp") in empty, f"{kind}/{name}/{container['name']}: /tmp is no emptyDir"


# ------------------------------------------------------------------- probes


def test_vault_servers_listen_on_every_interface(docs):
    for role, container in vault_containers(docs):
        variables = env(container)
        assert variables.get("EVAULT_LISTEN") == f"0.0.0.0:{ROLE_PORTS[role]}", role
        assert variables.get("EVAULT_HEALTH_LISTEN") == f"0.0.0.0:{HEALTH_PORT}", role


def test_probes_use_grpc_on_the_health_port(docs):
    for role, container in vault_containers(docs):
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        assert ports.get("health") == HEALTH_PORT, f"{role}: no port named health on {HEALTH_PORT}"
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            grpc = probe(container, kind).get("grpc")
            assert grpc, f"{role}: {kind} is not a gRPC probe"
            assert grpc.get("port") == HEALTH_PORT, f"{role}: {kind} on port {grpc.get('port')}"


def test_liveness_and_startup_probe_the_server_wide_name(docs):
    for role, container in vault_containers(docs):
        for kind in ("startupProbe", "livenessProbe"):
            service = probe(container, kind)["grpc"].get("service", "")
            assert service == "", f"{role}: {kind} checks {service!r}, not the server-wide name"


def test_readiness_probes_the_roles_own_service(docs):
    for role, container in vault_containers(docs):
        service = probe(container, "readinessProbe")["grpc"].get("service", "")
        assert service in READINESS[role], f"{role}: readiness checks {service!r}"


def test_tree_readiness_follows_tree_service_so_a_standby_serves_reads(production):
    trees = [c for role, c in vault_containers(production) if role == "tree"]
    assert trees, "no tree"
    for container in trees:
        assert probe(container, "readinessProbe")["grpc"]["service"] == "evault.v1.TreeService"


def test_no_probe_follows_the_sequencer(docs):
    for role, container in vault_containers(docs):
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            service = probe(container, kind).get("grpc", {}).get("service", "")
            assert service != "evault.v1.SequencerService", f"{role}: {kind}"


# --------------------------------------------------------- network policies


def test_the_namespace_denies_ingress_by_default(docs):
    assert any(
        d["kind"] == "NetworkPolicy"
        and d["spec"].get("podSelector") in ({}, None)
        and "Ingress" in d["spec"].get("policyTypes", [])
        and not d["spec"].get("ingress")
        for d in docs
    ), "no default-deny ingress policy"


def test_every_long_running_pod_has_a_network_policy_of_its_own(docs):
    policies = [d["spec"] for d in docs if d["kind"] == "NetworkPolicy"]
    for kind, name, labels, _ in workloads(docs, jobs=False):
        own = [
            p
            for p in policies
            if p.get("podSelector") and selects(p["podSelector"], labels) and p.get("ingress")
        ]
        assert own, f"{kind}/{name}: no NetworkPolicy selects its pods"


def test_production_runs_every_role_and_postgres(production):
    roles = {component(w[2]) for w in workloads(production, jobs=False)}
    assert {"signer", "tree", "ingest", "gateway", "postgres"} <= roles


@pytest.mark.parametrize("role", ["signer", "tree", "ingest"])
def test_internal_roles_admit_only_their_natural_callers(production, role):
    who = admitted(production, pod_labels(production, role))
    assert who, f"{role}: no policy admits anyone, not even its callers"
    assert who <= ADMITTED[role], f"{role} admits {sorted(who - ADMITTED[role])}"
    assert ADMITTED[role] - {"scraper"} <= who, f"{role} refuses {sorted(ADMITTED[role] - who)}"


def test_signer_admits_only_tree(production):
    assert admitted(production, pod_labels(production, "signer")) - {"scraper"} == {"tree"}


def test_the_gateway_admits_anyone_on_its_port(production):
    assert "anyone" in admitted(production, pod_labels(production, "gateway"))


def test_postgres_admits_only_the_vaults_processes(docs):
    found = False
    for _, name, labels, _ in workloads(docs, jobs=False):
        role = component(labels)
        if not role.startswith("postgres"):
            continue
        found = True
        who = admitted(docs, labels)
        assert who, f"{name}: admits nobody"
        assert who <= ADMITTED[role], f"{name} admits {sorted(who - ADMITTED[role])}"
    assert found, "no PostgreSQL"


# ------------------------------------------------------- production layout


def test_tree_runs_two_replicas_in_production(production):
    trees = role_workloads(production, "tree")
    assert trees, "no tree"
    replicas = sum(
        d["spec"].get("replicas", 1)
        for d in production
        if d["kind"] in WORKLOAD_KINDS and component(d["metadata"].get("labels", {})) == "tree"
    )
    assert replicas == 2


def test_ingest_and_gateway_call_every_tree_by_its_own_address(production):
    for role, container in vault_containers(production):
        if role in ("ingest", "gateway"):
            trees = env(container)["EVAULT_TREE"].split(",")
            assert len(trees) == 2 and len(set(trees)) == 2, f"{role}: --tree {trees}"
            assert all(t.startswith("https://") for t in trees), f"{role}: --tree {trees}"


def test_production_roles_talk_mutual_tls(production):
    for role, container in vault_containers(production):
        variables = env(container)
        for name in ("EVAULT_TLS_CERT", "EVAULT_TLS_KEY", "EVAULT_TLS_CA"):
            assert variables.get(name), f"{role}: no {name}"
        for peer in ("EVAULT_SIGNER", "EVAULT_TREE", "EVAULT_INGEST"):
            for address in (variables.get(peer) or "").split(","):
                assert not address or address.startswith("https://"), f"{role}: {peer} {address}"


def test_signer_runs_one_replica_replaced_by_recreate(production):
    (signer,) = [d for d in production if d["kind"] == "Deployment" and d["metadata"]["name"] == "signer"]
    assert signer["spec"].get("replicas", 1) == 1
    assert signer["spec"]["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize("role", ["ingest", "gateway"])
def test_stateless_roles_have_an_autoscaler(production, role):
    targets = [
        d["spec"]
        for d in production
        if d["kind"] == "HorizontalPodAutoscaler" and d["spec"]["scaleTargetRef"]["name"] == role
    ]
    assert len(targets) == 1, f"{role}: {len(targets)} autoscalers"
    assert targets[0]["minReplicas"] >= 2, f"{role}: one replica leaves nothing through a restart"
    (deployment,) = [d for d in production if d["kind"] == "Deployment" and d["metadata"]["name"] == role]
    assert "replicas" not in deployment["spec"], f"{role}: a replica count would fight the autoscaler"


@pytest.mark.parametrize("role", ["ingest", "gateway"])
def test_stateless_roles_have_a_disruption_budget(production, role):
    labels = pod_labels(production, role)
    budgets = [
        d["spec"]
        for d in production
        if d["kind"] == "PodDisruptionBudget" and selects(d["spec"]["selector"], labels)
    ]
    assert budgets, f"{role}: no PodDisruptionBudget"


def test_the_migration_job_migrates_both_databases(production):
    (job,) = [d for d in production if d["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "migrate"
    names = {e["name"] for e in container.get("env", [])}
    flags = set(container["args"])
    assert "EVAULT_DATABASE_URL" in names or "--database-url" in flags
    assert "EVAULT_SIGNER_DATABASE_URL" in names or "--signer-database-url" in flags


def test_production_secrets_hold_no_private_key(production):
    for secret in (d for d in production if d["kind"] == "Secret"):
        for key, value in (secret.get("data") or {}).items():
            text = base64.b64decode(value).decode("utf-8", "replace")
            assert "PRIVATE KEY" not in text, f"{secret['metadata']['name']}/{key} holds a real key"


# ------------------------------------------------------------- cert-manager


def test_cert_manager_issues_each_role_the_secret_it_mounts(cert_manager):
    certificates = {
        c["spec"]["secretName"]: c for c in cert_manager if c["kind"] == "Certificate"
    }
    secrets = {d["metadata"]["name"] for d in cert_manager if d["kind"] == "Secret"}
    for role in ("signer", "tree", "ingest", "gateway"):
        certificate = certificates.get(f"{role}-tls")
        assert certificate, f"no Certificate writes {role}-tls"
        assert certificate["spec"]["dnsNames"][0] == role, "the Service name comes first"
        assert f"{role}-tls" not in secrets, f"the placeholder {role}-tls would overwrite cert-manager's"
    assert "metrics" in certificates["evault-metrics-tls"]["spec"]["dnsNames"]


def test_cert_manager_resources_have_their_required_fields(cert_manager):
    """What cert-manager's CRDs require, which kubernetes-validate cannot know."""
    issuers = {d["metadata"]["name"] for d in cert_manager if d["kind"] == "Issuer"}
    custom = [d for d in cert_manager if d["apiVersion"].startswith(CERT_MANAGER)]
    assert custom
    for doc in custom:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        assert doc["apiVersion"] == "cert-manager.io/v1", name
        assert doc["metadata"].get("namespace"), f"{name}: no namespace"
        spec = doc["spec"]
        if doc["kind"] == "Certificate":
            assert spec.get("secretName"), f"{name}: no secretName"
            assert spec.get("issuerRef", {}).get("name"), f"{name}: no issuerRef.name"
            assert spec.get("dnsNames") or spec.get("commonName"), f"{name}: no name to certify"
            if spec["issuerRef"].get("kind", "Issuer") == "Issuer":
                assert spec["issuerRef"]["name"] in issuers, f"{name}: unknown issuer"
        elif doc["kind"] == "Issuer":
            kinds = {"selfSigned", "ca", "acme", "vault", "venafi"}
            assert len(kinds & set(spec)) == 1, f"{name}: exactly one issuer type"
        else:
            pytest.fail(f"{name}: no check for this kind")


# ---------------------------------------------------------------- schemas


def kubernetes_validate():
    found = shutil.which("kubernetes-validate") or str(Path(sys.executable).parent / "kubernetes-validate")
    if not Path(found).exists():
        pytest.fail("kubernetes-validate not found: pip install -r tests/k8s/requirements.txt")
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_validate_strict(overlay, tmp_path):
    """Every built-in resource against the API's schemas, unknown fields
    refused; cert-manager's custom resources are checked above."""
    known = [d for d in rendered(overlay) if not d["apiVersion"].startswith(CERT_MANAGER)]
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(yaml.safe_dump_all(known))
    done = subprocess.run(
        [kubernetes_validate(), "--strict", "--quiet", "--kubernetes-version", KUBERNETES_VERSION, str(manifest)],
        capture_output=True,
        text=True,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARN" not in output and "ERROR" not in output, output
