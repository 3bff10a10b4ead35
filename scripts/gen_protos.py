"""Generate the Python gRPC stubs from protos/; the only way the stubs are produced.

Usage: ``python scripts/gen_protos.py [--out DIR]``

The stubs land in the importable packages ``aicollect/{dashboard,integration,matching,type}/v1/``
(under DIR, by default the repository root) and are committed; ``tests/test_contracts.py``
generates into a temporary directory and fails when the committed copies are stale.
The output depends only on the ``.proto`` files and the pinned grpcio-tools version.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
# The packages that hold generated code, relative to the output directory.
GENERATED_PACKAGES = (
    "aicollect/dashboard/v1",
    "aicollect/integration/v1",
    "aicollect/matching/v1",
    "aicollect/type/v1",
)
PARENT_INIT_TEXT = '"""Generated from protos/; do not edit."""\n'
_SERVICE_RE = re.compile(r"^\s*service\s+\w+", re.MULTILINE)


def proto_files() -> list[Path]:
    """Every ``.proto`` file under protos/, in a stable order."""
    return sorted(PROTO_ROOT.rglob("*.proto"))


def declares_service(path: Path) -> bool:
    """Whether a ``.proto`` file declares a service (only those get ``_pb2_grpc`` modules)."""
    return _SERVICE_RE.search(path.read_text(encoding="utf-8")) is not None


def remove_generated(out: Path) -> None:
    """Delete previously generated modules so that no stale stub survives a rename."""
    for package in GENERATED_PACKAGES:
        directory = out / package
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix in {".py", ".pyi"} and "_pb2" in path.stem:
                path.unlink()


def run_protoc(outputs: list[str], files: list[Path]) -> None:
    """Run protoc (bundled with grpcio-tools) over ``files`` with the given output flags."""
    # protoc.main() does not add the well-known types' include path by itself.
    wkt_include = Path(grpc_tools.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{wkt_include}",
        *outputs,
        *(str(path) for path in files),
    ]
    status = protoc.main(args)
    if status != 0:
        raise SystemExit(f"protoc failed with exit status {status}")


def write_package_markers(out: Path) -> None:
    """Make every generated directory an importable package."""
    for package in GENERATED_PACKAGES:
        directory = out / package
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "__init__.py").write_text("", encoding="utf-8")
        parent_init = directory.parent / "__init__.py"
        if not parent_init.exists():
            parent_init.write_text(PARENT_INIT_TEXT, encoding="utf-8")


def generate(out: Path) -> None:
    """Regenerate every stub under ``out``."""
    files = proto_files()
    if not files:
        raise SystemExit(f"no .proto files under {PROTO_ROOT}")
    out.mkdir(parents=True, exist_ok=True)
    remove_generated(out)
    write_package_markers(out)
    # mypy-protobuf writes the .pyi files: typed messages, and typed stubs and servicers
    # (grpc.aio included) for the *_pb2_grpc modules, so the services type-check strictly.
    bindir = Path(sys.executable).parent
    plugins = [
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
    ]
    run_protoc([*plugins, f"--python_out={out}", f"--mypy_out={out}"], files)
    run_protoc(
        [*plugins, f"--grpc_python_out={out}", f"--mypy_grpc_out={out}"],
        [path for path in files if declares_service(path)],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT,
        help="directory to generate into (default: the repository root)",
    )
    options = parser.parse_args(argv)
    generate(options.out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
