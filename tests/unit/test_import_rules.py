"""The layering of ../shared/STYLE.md, made executable."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What each inner layer may import: an allowlist, so a new library cannot slip in.
DOMAIN_MAY_IMPORT = set(sys.stdlib_module_names) | {"domain", "ports", "__future__"}
PORTS_MAY_IMPORT = {"domain", "typing", "collections", "datetime", "__future__"}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", files("domain"), ids=str)
def test_domain_imports_only_the_standard_library_domain_and_ports(path):
    for name in imports(path):
        assert name.split(".")[0] in DOMAIN_MAY_IMPORT, f"{path} imports {name}"


@pytest.mark.parametrize("path", files("ports"), ids=str)
def test_ports_import_only_domain_and_typing(path):
    for name in imports(path):
        assert name.split(".")[0] in PORTS_MAY_IMPORT, f"{path} imports {name}"


# Modules directly in adapters/ (not in an adapter's folder) belong to no adapter: what
# several share (the storage JSON, the error translation).
SHARED_BY_ADAPTERS = {path.stem for path in (ROOT / "adapters").glob("*.py")} - {"__init__"}


@pytest.mark.parametrize("path", files("adapters"), ids=str)
def test_adapters_never_import_handlers_or_another_adapter(path):
    own = path.relative_to(ROOT / "adapters").parts[0]
    for name in imports(path):
        parts = name.split(".")
        assert parts[0] != "handlers", f"{path} imports {name}"
        if parts[0] == "adapters" and len(parts) > 1 and parts[1] not in SHARED_BY_ADAPTERS:
            assert parts[1] == own, f"{path} imports another adapter: {name}"


@pytest.mark.parametrize("name", sorted(SHARED_BY_ADAPTERS))
def test_what_adapters_share_imports_no_adapter(name):
    for imported in imports(ROOT / "adapters" / f"{name}.py"):
        parts = imported.split(".")
        assert parts[0] != "handlers", imported
        assert parts[0] != "adapters" or parts[1] in SHARED_BY_ADAPTERS, imported


@pytest.mark.parametrize("path", files("handlers"), ids=str)
def test_only_the_composition_root_imports_adapters(path):
    if path.name == "bootstrap.py":
        return
    assert not any(n.split(".")[0] == "adapters" for n in imports(path)), path
