"""Regenerate the Python modules for the API contract.

Usage: python scripts/gen_proto.py [OUTPUT_DIR]   (default: src/)

The output mirrors the proto package path, so code imports
``from registration.v1 import registration_pb2``.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PROTO_FILES = ["registration/v1/registration.proto"]


def generate(output_dir: Path) -> None:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto file into output_dir."""
    well_known = resources.files("grpc_tools") / "_proto"
    for proto in PROTO_FILES:
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_DIR}",
                f"-I{well_known}",
                f"--python_out={output_dir}",
                f"--pyi_out={output_dir}",
                f"--grpc_python_out={output_dir}",
                proto,
            ]
        )
        if code != 0:
            raise SystemExit(f"protoc failed on {proto} with exit code {code}")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "src")
