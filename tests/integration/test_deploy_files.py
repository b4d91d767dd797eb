"""The deployment files, validated offline (issue 17, item 4): the compose file by
`docker compose config` (or Debian's docker-compose), the Kubernetes manifests by
kubernetes-validate against the Kubernetes schemas, the Dockerfile and the configs by
what the gateway itself requires. No container engine runs here; a missing validator
fails these tests (`make test` installs docker-compose)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker is not None:
        plugin = subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False, timeout=60
        )
        if plugin.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is None:
        pytest.fail(
            "neither `docker compose` nor `docker-compose` (apt-get install docker-compose)"
        )
    return [legacy]


def compose_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*compose_command(), "-f", str(path), "config"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **env},
    )


def test_the_compose_file_is_valid_and_runs_three_replicas_behind_a_balancer() -> None:
    done = compose_config(DEPLOY / "compose.yaml", {"SWITCHYARD_ADMIN_KEY": "sk-test-admin"})
    assert done.returncode == 0, done.stderr
    resolved: Any = yaml.safe_load(done.stdout)
    services = resolved["services"]
    assert set(services) == {"gateway", "lb", "postgres", "redis"}
    gateway = services["gateway"]
    assert gateway["deploy"]["replicas"] == 3
    env = gateway["environment"]
    assert env["SWITCHYARD_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in env["SWITCHYARD_DATABASE_URL"]
    assert env["SWITCHYARD_REDIS_URL"] == "redis://redis:6379/0"
    assert env["SWITCHYARD_ADMIN_KEY"] == "sk-test-admin"
    assert "/readyz" in " ".join(gateway["healthcheck"]["test"])
    published = {str(p.get("published")) for p in services["lb"]["ports"]}
    assert {"8080", "50051"} <= published
    assert "gateway" not in {k for k, v in services.items() if v.get("ports")}, "only the lb"


def test_the_compose_file_needs_an_admin_key() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHYARD_ADMIN_KEY"}
    done = subprocess.run(
        [*compose_command(), "-f", str(DEPLOY / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )
    assert done.returncode != 0
    assert "SWITCHYARD_ADMIN_KEY" in done.stderr


def test_the_validator_rejects_what_it_should(tmp_path: Path) -> None:
    """A typo in a manifest fails: the validation below is not a formality."""
    broken = tmp_path / "deployment.yaml"
    text = (DEPLOY / "kubernetes" / "deployment.yaml").read_text(encoding="utf-8")
    broken.write_text(text.replace("readinessProbe:", "readinesProbe:"), encoding="utf-8")
    done = subprocess.run(
        [str(VALIDATE), "--strict", str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode != 0, done.stdout


def test_the_kubernetes_manifests_are_valid() -> None:
    assert {p.name for p in MANIFESTS} >= {
        "deployment.yaml",
        "service.yaml",
        "pdb.yaml",
        "hpa.yaml",
        "secret.yaml",
        "configmap.yaml",
    }
    done = subprocess.run(
        [str(VALIDATE), "--strict", *map(str, MANIFESTS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / "kubernetes" / name).read_text(encoding="utf-8"))


def test_the_deployment_probes_drains_and_runs_unprivileged() -> None:
    deployment = _load("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    grace = float(container["args"][container["args"].index("--shutdown-grace") + 1])
    assert pod["terminationGracePeriodSeconds"] > grace + 5  # the preStop pause, then drain
    secret_keys = set(_load("secret.yaml")["stringData"])
    assert {"SWITCHYARD_ADMIN_KEY", "SWITCHYARD_DATABASE_URL", "SWITCHYARD_REDIS_URL"} <= (
        secret_keys
    )
    assert container["envFrom"] == [{"secretRef": {"name": "switchyard"}}]
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert _load("service.yaml")["spec"]["selector"] == labels
    assert _load("pdb.yaml")["spec"]["selector"]["matchLabels"] == labels
    hpa = _load("hpa.yaml")["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["minReplicas"] >= _load("pdb.yaml")["spec"]["minAvailable"] + 1


def test_the_shipped_configs_load(tmp_path: Path) -> None:
    load_config(DEPLOY / "switchyard.yaml", env={})
    inline = tmp_path / "from-configmap.yaml"
    inline.write_text(_load("configmap.yaml")["data"]["switchyard.yaml"], encoding="utf-8")
    assert load_config(inline, env={}) == load_config(DEPLOY / "switchyard.yaml", env={})


def test_the_dockerfile_builds_what_the_makefile_builds() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    final = dockerfile.rsplit("\nFROM ", 1)[1]  # the runtime stage
    user = re.search(r"^USER (\S+)", final, re.M)
    assert user is not None and not user.group(1).startswith(("root", "0:", "0\n"))
    assert user.group(1).split(":")[0] != "0"
    assert 'ENTRYPOINT ["switchyard", "serve"]' in final
    assert "HEALTHCHECK" in final and "/healthz" in final
    assert "slim" in final.splitlines()[0]
    packages = re.search(r"^MODEL_PACKAGES := (.+)$", makefile, re.M)
    assert packages is not None
    for package in packages.group(1).split():
        assert package in dockerfile, f"{package} is not in the image"
    cmake = re.search(r"^LLAMA_CMAKE_ARGS := (.+)$", makefile, re.M)
    assert cmake is not None and f'CMAKE_ARGS="{cmake.group(1)}"' in dockerfile
