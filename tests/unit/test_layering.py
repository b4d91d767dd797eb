"""The import rules between the layers (DESIGN §2), checked statically with `ast`.

- `gateway_http` talks to the core only over gRPC: it never imports `service`.
- Provider adapters see domain types only: no grpc, no google.rpc, no generated protos.
- Inside `service`, only the launcher (which runs both halves in one process) imports
  `gateway_http`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_files(folder: Path) -> list[Path]:
    """Every .py file under `folder`, generated protobuf modules excluded."""
    return sorted(p for p in folder.rglob("*.py") if "_pb2" not in p.name)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module an import statement in `source` may bind, as absolute dotted names.

    `from a.b import c` yields both `a.b` and `a.b.c` (c may be a submodule); relative
    imports are resolved against `module`; `importlib.import_module("x")` and
    `__import__("x")` with a literal name count too.
    """
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".") if package else []
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                if node.module:
                    base_parts.append(node.module)
                base = ".".join(base_parts)
            else:
                base = node.module or ""
            if base:
                found.add(base)
            for alias in node.names:
                if alias.name != "*":
                    found.add(f"{base}.{alias.name}" if base else alias.name)
        elif isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if (
                name in ("import_module", "__import__")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    return found


def file_imports(path: Path) -> set[str]:
    return imported_modules(
        path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py"
    )


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def is_service(name: str) -> bool:
    return _within(name, "service")


def is_gateway_http(name: str) -> bool:
    return _within(name, "gateway_http")


def is_transport(name: str) -> bool:
    top = name.split(".", 1)[0]
    return (
        top == "grpc"
        or top.startswith("grpc_")
        or _within(name, "google.rpc")
        or top == "switchyard"
    )


def offenders(files: list[Path], forbidden: Callable[[str], bool]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in files:
        bad = sorted(name for name in file_imports(path) if forbidden(name))
        if bad:
            out[str(path.relative_to(ROOT))] = bad
    return out


# --- the scanner itself (so the rules below cannot pass by scanning nothing) ------------


def test_scanner_sees_every_import_form() -> None:
    source = """
import os, grpc.aio
from google.rpc import status_pb2
from google import rpc as r
from switchyard.v1 import chat_pb2
from . import sibling
from ..base import thing
import importlib
importlib.import_module("service.engine")
__import__("grpc_status")

def late():
    import service
"""
    names = imported_modules(source, "service.providers.openai_compat.client")
    assert {
        "os",
        "grpc.aio",
        "google.rpc",
        "google.rpc.status_pb2",
        "switchyard.v1.chat_pb2",
        "service.providers.openai_compat.sibling",
        "service.providers.base.thing",
        "service.engine",
        "grpc_status",
        "service",
    } <= names
    assert {n for n in names if is_transport(n)} == {
        "grpc.aio",
        "google.rpc",
        "google.rpc.status_pb2",
        "switchyard.v1",
        "switchyard.v1.chat_pb2",
        "grpc_status",
    }
    assert not is_transport("google.protobuf")
    assert not is_transport("grpcio_like")
    assert not is_service("services")
    assert not is_gateway_http("gateway_https")


def test_relative_import_in_package_init_resolves_against_the_package() -> None:
    names = imported_modules("from .client import X", "service.providers", is_package=True)
    assert "service.providers.client" in names


def test_scanner_finds_the_known_launcher_import() -> None:
    """A positive control: the launcher really imports gateway_http, and the scan sees it."""
    launcher = ROOT / "service" / "launcher.py"
    assert any(is_gateway_http(n) for n in file_imports(launcher))


# --- the rules --------------------------------------------------------------------------


def test_gateway_http_never_imports_service() -> None:
    files = python_files(ROOT / "gateway_http")
    assert files, "no files found under gateway_http/"
    assert ROOT / "gateway_http" / "errors.py" in files
    bad = offenders(files, is_service)
    assert not bad, f"gateway_http must not import service: {bad}"


def test_providers_never_import_grpc_or_protos() -> None:
    files = python_files(ROOT / "service" / "providers")
    assert files, "no files found under service/providers/"
    assert ROOT / "service" / "providers" / "openai_compat" / "convert.py" in files
    bad = offenders(files, is_transport)
    assert not bad, f"service/providers must not import grpc, google.rpc or switchyard: {bad}"


def test_only_the_launcher_imports_gateway_http() -> None:
    files = python_files(ROOT / "service")
    assert len(files) > 10, f"too few files found under service/: {files}"
    assert not any("_pb2" in p.name for p in files)
    bad = offenders(files, is_gateway_http)
    bad.pop("service/launcher.py", None)
    assert not bad, f"only service/launcher.py may import gateway_http: {bad}"
