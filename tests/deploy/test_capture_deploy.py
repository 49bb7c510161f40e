"""deploy/k8s/capture/capture.yaml: replicas of ``dann-serve serve --capture-dir`` that
all write into one ReadWriteMany volume, started with options ``serve`` accepts, behind
a Service of their own whose selector does not overlap TensorFlow Serving's Deployment."""

from __future__ import annotations

from pathlib import Path

import click
import yaml
from support.helpers import k8s_documents

from dann_serve.cli.serve import serve

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "capture" / "capture.yaml"


def _documents() -> dict[str, dict]:
    documents = [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]
    return {doc["kind"]: doc for doc in documents}


def _option(arguments: list[str], name: str) -> str:
    [value] = [arg.split("=", 1)[1] for arg in arguments if arg.startswith(f"{name}=")]
    return value


def test_every_capturing_replica_writes_into_the_shared_volume():
    documents = _documents()
    assert set(documents) == {"PersistentVolumeClaim", "Deployment", "Service"}
    claim = documents["PersistentVolumeClaim"]
    assert claim["apiVersion"] == "v1" and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    deployment = documents["Deployment"]
    assert deployment["apiVersion"] == "apps/v1" and deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    claims = {
        volume["name"]: volume["persistentVolumeClaim"]["claimName"]
        for volume in pod["volumes"]
        if "persistentVolumeClaim" in volume
    }
    [container] = pod["containers"]
    mounts = {mount["mountPath"]: claims.get(mount["name"]) for mount in container["volumeMounts"]}
    folder = _option(container["args"], "--capture-dir")
    assert mounts[folder] == claim["metadata"]["name"]
    # The server's user may write into the volume; the root filesystem stays read-only.
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_replicas_start_with_options_serve_accepts():
    [container] = _documents()["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["dann-serve"] and container["args"][0] == "serve"
    with click.Context(serve) as context:
        serve.parse_args(context, container["args"][1:])
        assert 0 < context.params["capture_rate"] <= 1
        assert context.params["capture_max_images"] >= 1


def test_the_service_reaches_the_capturing_replicas_and_no_deployment_fights_over_them():
    documents = _documents()
    labels = documents["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert documents["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert documents["Service"]["spec"]["selector"].items() <= labels.items()
    [serving] = [doc for doc in k8s_documents() if doc["kind"] == "Deployment"]
    assert not serving["spec"]["selector"]["matchLabels"].items() <= labels.items()
