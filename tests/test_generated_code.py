"""The committed protobuf modules are exactly what `make proto` generates from the .proto."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "src" / "registration" / "v1"


def load_generator() -> object:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_current(tmp_path: Path) -> None:
    load_generator().generate(tmp_path)  # type: ignore[attr-defined]
    fresh = sorted(p.name for p in (tmp_path / "registration" / "v1").iterdir())
    assert fresh == ["registration_pb2.py", "registration_pb2.pyi", "registration_pb2_grpc.py"]
    for name in fresh:
        assert (tmp_path / "registration" / "v1" / name).read_text() == (
            COMMITTED / name
        ).read_text(), f"{name} is stale: run `make proto` and commit the result"
