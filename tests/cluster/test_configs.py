"""The cluster files are valid for the tools that read them: Ray's launcher schema, KubeRay's and
Serve's config shapes, the runtime environment's upload, the pins of the container image."""

from __future__ import annotations

import copy
import importlib
import re
import shlex
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from rl.train_cli import compose_config

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
TORCH_PIN = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch=="))


def kuberay(name: str) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((CLUSTER / "kuberay" / name).read_text())}


@pytest.mark.parametrize("name", ["aws.yaml", "onprem.yaml"])
def test_launcher_configs_pass_rays_schema_with_token_auth(name: str) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((CLUSTER / name).read_text())
    validate_config(prepare_config(copy.deepcopy(raw)))  # what `ray up` does first
    commands = raw["head_start_ray_commands"] + raw["worker_start_ray_commands"]
    starts = [c for c in commands if "ray start" in c]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token" in c for c in starts)
    assert raw["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert any(TORCH_PIN in c and "whl/cpu" in c for c in raw["setup_commands"])


def test_rayjob_trains_with_a_valid_command_line() -> None:
    job = kuberay("rayjob-train.yaml")["RayJob"]
    command = shlex.split(job["spec"]["entrypoint"])
    assert command[:3] == ["python", "-m", "rl.train"]
    config = compose_config(command[3:])  # the overrides exist and compose
    assert config["run_dir"].startswith("/data/runs") and config["train"]["num_env_runners"] == 8
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["authOptions"]["mode"] == "token" and cluster["rayVersion"] == ray.__version__


def test_raycluster_and_rayservice_share_version_auth_and_image() -> None:
    clusters = [kuberay("raycluster.yaml")["RayCluster"]["spec"],
                kuberay("rayservice.yaml")["RayService"]["spec"]["rayClusterConfig"],
                kuberay("rayjob-train.yaml")["RayJob"]["spec"]["rayClusterSpec"]]
    images = set()
    for spec in clusters:
        assert spec["rayVersion"] == ray.__version__ and spec["authOptions"] == {"mode": "token"}
        groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
        images |= {c["image"] for g in groups for c in g["template"]["spec"]["containers"]}
    assert len(images) == 1


def test_rayservice_deploys_the_ensemble_app() -> None:
    from ray.serve.schema import ServeDeploySchema

    docs = kuberay("rayservice.yaml")
    deploy = ServeDeploySchema.model_validate(yaml.safe_load(docs["RayService"]["spec"]["serveConfigV2"]))
    (app,) = deploy.applications
    module, attribute = app.import_path.split(":")
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not in this tree")
    assert callable(getattr(importlib.import_module(module), attribute))
    from serve.config import ServeConfig

    service = ServeConfig.from_dict(yaml.safe_load(docs["ConfigMap"]["data"]["serve.yaml"]))
    assert [m.source for m in service.ensembles["main"].members] == ["/data/runs/ppo-k8s"]
    mount = app.args["config"].rsplit("/", 1)[0]
    containers = [c for g in [docs["RayService"]["spec"]["rayClusterConfig"]["headGroupSpec"],
                              *docs["RayService"]["spec"]["rayClusterConfig"]["workerGroupSpecs"]]
                  for c in g["template"]["spec"]["containers"]]
    assert all(any(v["mountPath"] == mount for v in c["volumeMounts"]) for c in containers)


def test_runtime_env_ships_code_configs_and_data_but_no_environment(tmp_path: Path) -> None:
    from ray._private.runtime_env.packaging import create_package

    runtime_env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    assert runtime_env["env_vars"]["RAY_USAGE_STATS_ENABLED"] == "0"
    package = tmp_path / "package.zip"
    # Without .gitignore's help: the excludes alone must keep the upload small.
    create_package(str(REPO), package, include_gitignore=False, excludes=runtime_env["excludes"])
    names = zipfile.ZipFile(package).namelist()
    assert {"rl/train.py", "configs/config.yaml", "cluster/local.py"} <= set(names)
    assert any(n.startswith("features/bundled/") and n.endswith(".parquet") for n in names)
    top = {n.split("/", 1)[0] for n in names}
    assert not top & {".venv", ".git", "runs", "mlruns", "tests", ".pytest_cache", ".mypy_cache"}
    assert package.stat().st_size < 50 * 2**20


def test_dockerfile_pins_match_the_project() -> None:
    text = (CLUSTER / "Dockerfile").read_text()
    assert f"ARG TORCH_VERSION={TORCH_PIN.split('==')[1]}" in text
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in text
    python = re.search(r">=(\d+\.\d+)", PYPROJECT["project"]["requires-python"])
    assert python and f"ARG PYTHON_VERSION={python.group(1)}" in text
    packages = [p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]]
    copied = set(re.findall(r"^COPY (\S+) ", text, flags=re.MULTILINE))
    assert set(packages) | {"configs"} <= copied
