"""The import rules between the project's packages (docs/architecture.md, "Layering").

Read from the source with `ast`, so an import inside a function counts as much as one at the top:
- `common` imports no project package;
- `access` imports no project package but `common`, and `tokens` and `workspaces` do not import
  each other both ways;
- no module imports another app's `api` layer, and an app's own `api` only from its `urls.py`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "integrations_project"
APPS = sorted(path.parent.name for path in ROOT.glob("*/apps.py"))
PACKAGES = [*APPS, PROJECT]


def imported_modules(source: str, package: str) -> Iterator[str]:
    """Every module a file names in an import statement, anywhere in it; relative ones resolved
    against the file's top-level package (enough for the first segment and `.api`)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"{package}.{base}" if base else package
            yield base
            # `from workspaces import api` names the api module too.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def modules_of(package: str) -> Iterator[tuple[str, set[str]]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        yield relative, set(imported_modules(path.read_text(encoding="utf-8"), package))


def top(module: str) -> str:
    return module.split(".", 1)[0]


def imports_of(package: str) -> dict[str, set[str]]:
    """Which other project packages each file of `package` imports."""
    found: dict[str, set[str]] = {}
    for relative, modules in modules_of(package):
        others = {top(module) for module in modules} & set(PACKAGES) - {package}
        if others:
            found[relative] = others
    return found


def test_the_packages_are_found():
    assert {"common", "access", "tokens", "workspaces", "channels_app"} <= set(APPS)


def test_function_level_and_relative_imports_are_seen():
    source = (
        "def f():\n    from tokens.models import X\n    from . import api\n    import workspaces.api.views\n"
    )
    assert set(imported_modules(source, "schedules")) == {
        "tokens.models",
        "tokens.models.X",
        "schedules",
        "schedules.api",
        "workspaces.api.views",
    }


def test_common_imports_no_project_package():
    assert imports_of("common") == {}


def test_access_imports_only_common():
    assert {
        path: others - {"common"} for path, others in imports_of("access").items() if others - {"common"}
    } == {}


def test_tokens_and_workspaces_do_not_import_each_other_both_ways():
    tokens_to_workspaces = [path for path, others in imports_of("tokens").items() if "workspaces" in others]
    workspaces_to_tokens = [path for path, others in imports_of("workspaces").items() if "tokens" in others]
    assert not (tokens_to_workspaces and workspaces_to_tokens), (tokens_to_workspaces, workspaces_to_tokens)


def _api_layer(module: str) -> str | None:
    """The app whose `api` layer `module` is (or is inside), else None."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] == "api" and parts[0] in APPS:
        return parts[0]
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_reaches_into_an_api_layer_it_does_not_own(package):
    wrong = []
    for relative, modules in modules_of(package):
        inside_api = relative.startswith(f"{package}/api/")
        for module in modules:
            owner = _api_layer(module)
            if owner is None or (inside_api and owner == package):
                continue
            if owner == package and relative == f"{package}/urls.py":
                continue
            wrong.append((relative, module))
    assert wrong == []
