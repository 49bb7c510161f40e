"""deploy/k8s/training/train-job.yaml: a TFJob the Kubeflow Training Operator accepts
(the fields of its kubeflow.org/v1 API and the checks of its validation), whose pods
share the run on a ReadWriteMany volume and start or resume it with a command
``dann-serve train`` parses.

The fields are those of the operator's Go types (TFJobSpec, ReplicaSpec, RunPolicy in
pkg/apis/kubeflow.org/v1) and the rules of its ValidateV1TFJob: a DNS-1035 name, a
container named "tensorflow" with an image in every replica type, at most one chief.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import click
import yaml

from dann_serve.cli.train import train

JOB = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "training" / "train-job.yaml"
SPEC_FIELDS = {"runPolicy", "successPolicy", "tfReplicaSpecs", "enableDynamicWorker"}
RUN_POLICY_FIELDS = {
    "cleanPodPolicy",
    "ttlSecondsAfterFinished",
    "activeDeadlineSeconds",
    "backoffLimit",
    "schedulingPolicy",
    "suspend",
}
REPLICA_TYPES = {"Chief", "Master", "Worker", "PS", "Evaluator"}
REPLICA_FIELDS = {"replicas", "template", "restartPolicy"}
RESTART_POLICIES = {"Always", "OnFailure", "Never", "ExitCode"}
CLEAN_POD_POLICIES = {"All", "Running", "None"}
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def _documents() -> dict[str, dict]:
    documents = [doc for doc in yaml.safe_load_all(JOB.read_text()) if doc]
    return {doc["kind"]: doc for doc in documents}


def test_the_job_has_the_fields_tfjob_defines():
    documents = _documents()
    assert set(documents) == {"TFJob", "PersistentVolumeClaim"}
    job = documents["TFJob"]
    assert job["apiVersion"] == "kubeflow.org/v1"
    assert DNS_1035.match(job["metadata"]["name"])
    spec = job["spec"]
    assert set(spec) <= SPEC_FIELDS
    assert set(spec.get("runPolicy", {})) <= RUN_POLICY_FIELDS
    assert spec["runPolicy"].get("cleanPodPolicy", "None") in CLEAN_POD_POLICIES
    replicas = spec["tfReplicaSpecs"]
    assert set(replicas) <= REPLICA_TYPES
    # MultiWorkerMirroredStrategy: one chief and workers, no parameter server.
    assert set(replicas) == {"Chief", "Worker"} and replicas["Chief"]["replicas"] == 1
    for kind, replica in replicas.items():
        assert set(replica) <= REPLICA_FIELDS, kind
        assert isinstance(replica["replicas"], int) and replica["replicas"] >= 1
        # A killed pod must come back: Never or ExitCode (1 = permanent) would not
        # restart the workers that exit 1 when they lose a peer.
        assert replica["restartPolicy"] == "OnFailure", kind
        containers = replica["template"]["spec"]["containers"]
        [tensorflow] = [c for c in containers if c["name"] == "tensorflow"]
        assert tensorflow["image"], kind


def test_every_pod_mounts_the_shared_run_volume():
    documents = _documents()
    claim = documents["PersistentVolumeClaim"]
    assert claim["apiVersion"] == "v1" and "ReadWriteMany" in claim["spec"]["accessModes"]
    for kind, replica in documents["TFJob"]["spec"]["tfReplicaSpecs"].items():
        pod = replica["template"]["spec"]
        volumes = {
            volume["name"]: volume["persistentVolumeClaim"]["claimName"]
            for volume in pod["volumes"]
            if "persistentVolumeClaim" in volume
        }
        [container] = pod["containers"]
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        env = {variable["name"]: variable["value"] for variable in container["env"]}
        assert any(
            env["RUN_DIR"].startswith(path + "/") and claim_name == claim["metadata"]["name"]
            for path, claim_name in mounts.items()
        ), kind


def _command_run(run_dir: Path, bin_dir: Path) -> list[str]:
    """The arguments the Chief's container would give ``dann-serve`` for ``run_dir``:
    its shell command run with a ``dann-serve`` on PATH that records them."""
    container = _documents()["TFJob"]["spec"]["tfReplicaSpecs"]["Chief"]["template"]["spec"][
        "containers"
    ][0]
    record = bin_dir / "arguments"
    script = bin_dir / "dann-serve"
    script.write_text(
        f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > {shlex.quote(str(record))}\n'
    )
    script.chmod(0o755)
    subprocess.run(
        [*container["command"], *container["args"]],
        check=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "RUN_DIR": str(run_dir)},
    )
    return record.read_text().splitlines()


def test_a_pod_starts_the_run_or_resumes_the_one_on_the_volume(tmp_path):
    run_dir = tmp_path / "run"
    first = _command_run(run_dir, tmp_path)
    assert first[:3] == ["train", "--distribute", "multi-worker"]
    assert "--resume" not in first and first[first.index("--out") + 1] == str(run_dir)
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    again = _command_run(run_dir, tmp_path)
    assert again == [*first, "--resume"]
    # dann-serve train accepts these options as they are.
    with click.Context(train) as context:
        train.parse_args(context, again[1:])
