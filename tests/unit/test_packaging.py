"""The install stays quiet: every folder setuptools would take for a package is listed in
pyproject.toml (else it prints a "Package would be ignored" warning block per folder)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_importable_data_folder_is_a_listed_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    roots = config["package-dir"]
    missing = []
    for package, folder in roots.items():
        for path in sorted((REPO / folder).rglob("*")):
            if not path.is_dir() or path.name == "__pycache__" or not any(p.is_file() for p in path.iterdir()):
                continue
            parts = path.relative_to(REPO / folder).parts
            if not all(part.isidentifier() for part in parts):
                continue  # e.g. library/amf/1.3: Python cannot import it, setuptools says nothing
            name = ".".join((package, *parts))
            if name not in listed:
                missing.append(name)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
