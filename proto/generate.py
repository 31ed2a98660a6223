"""Generate the committed Python stubs in `rlvr/v1/` from `proto/rlvr/v1/*.proto`.

Run `python proto/generate.py` after editing a .proto; tests/test_packaging.py fails when the
committed stubs differ from what this produces.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
REPO = PROTO_ROOT.parent


def generate(out_root: Path = REPO) -> list[Path]:
    """Run protoc (from grpcio-tools) for every .proto; returns the generated files."""
    from grpc_tools import protoc

    protos = sorted(PROTO_ROOT.glob("rlvr/v1/*.proto"))
    args = ["protoc", f"-I{PROTO_ROOT}", f"--python_out={out_root}", f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}", *[str(p) for p in protos]]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    for package in (out_root / "rlvr", out_root / "rlvr" / "v1"):
        (package / "__init__.py").touch()
    return sorted((out_root / "rlvr" / "v1").glob("*.py*"))


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO):
        print(path)
