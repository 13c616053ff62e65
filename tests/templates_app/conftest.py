"""Fixtures for templates, org import and bundles: throwaway template folders."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def org_root(tmp_path, settings) -> Path:
    """An empty ORG_TEMPLATES_DIR under a parent folder (room for sibling folders)."""
    root = tmp_path / "orgs"
    root.mkdir()
    settings.ORG_TEMPLATES_DIR = root
    return root


@pytest.fixture
def templates_root(tmp_path, settings) -> Path:
    root = tmp_path / "templates"
    root.mkdir()
    settings.TEMPLATES_DIR = root
    return root


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
