"""Compile the client's .proto sources into the descriptor set the package loads.

The client ships one serialized ``FileDescriptorSet`` (``dann_client/protos/
serving.binpb``) instead of generated ``*_pb2.py`` modules: generated modules
register their messages in protobuf's process-wide pool, where the names
``tensorflow.serving.*`` clash with the official ``tensorflow-serving-api``
modules whenever both are imported. The descriptor set is loaded into a private
pool instead (see ``dann_client.messages``). The .proto files sit side by side
under flat names (``predict.proto``, ``tensor.proto``, ...): file names are local
to the pool, while proto packages, message names and field numbers, which are
what travels on the wire, are the official ones.

Run after editing a .proto file (needs ``grpcio-tools``, a dev-only tool)::

    python client/tools/compile_protos.py          # rewrite serving.binpb
    python client/tools/compile_protos.py --check  # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent.parent / "dann_client" / "protos"
OUTPUT = PROTO_ROOT / "serving.binpb"


def compile_descriptor_set() -> bytes:
    """Run protoc (from grpcio-tools) over every .proto under PROTO_ROOT."""
    from importlib.resources import files

    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = str(files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.binpb"
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            *sources,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed; see the messages above")
        data = out.read_bytes()
    # protoc lists files with dependencies first, the order a pool must load them
    # in; re-serialising deterministically makes --check a plain byte comparison.
    parsed = descriptor_pb2.FileDescriptorSet.FromString(data)
    return parsed.SerializeToString(deterministic=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, do not write")
    args = parser.parse_args(argv)
    fresh = compile_descriptor_set()
    if args.check:
        current = OUTPUT.read_bytes() if OUTPUT.exists() else b""
        if current != fresh:
            print(f"{OUTPUT} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_bytes(fresh)
    print(f"wrote {OUTPUT} ({len(fresh)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
