"""Load a model file: YAML with positions, modeline, JSON Schema, semantic lint, then a Model.

Every problem is collected and raised at once as `InputError`, each as
`FILE:LINE:COL: field.path: message`; nothing else escapes (fuzz-tested).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from changeline.errors import InputError, Problem
from changeline.models.lint import lint
from changeline.models.model import Model, build_model
from changeline.models.schema import schema_problems
from changeline.yamlsource import SourceMap, decode_text, load_yaml_text, read_input_file

MODELINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=(\S+)\s*$", re.MULTILINE)


def default_registry() -> dict[str, ModuleType]:
    from changeline.atoms import registry

    return registry()


def default_catalogue() -> dict[str, Any]:
    from changeline.catalogue import builtin_catalogue

    return builtin_catalogue()


# One run reaches a model at several levels - the CLI's preflight, the campaign flow and, on a
# worker, each NE's flow - and each has only the file's name: validate a file's content once per
# process. Keyed by the bytes, so an edited file is validated anew; a file that fails is not kept.
_VALIDATED: dict[tuple[str, bytes], Model] = {}
_VALIDATED_MAX = 64


def load_model(path: str | Path, *, registry: dict[str, ModuleType] | None = None,
               catalogue: dict[str, Any] | None = None) -> Model:
    """Read and validate a model file; raises InputError with every problem found.

    With the built-in atoms and catalogue, bytes this process has validated already (under
    any name of the same file) are not parsed, schema-checked and linted again."""
    path = Path(path)
    data = read_input_file(path)  # regular files of bounded size only
    if registry is not None or catalogue is not None:
        return load_model_bytes(data, str(path), registry=registry, catalogue=catalogue)
    key = (str(path.resolve()), data)
    model = _VALIDATED.get(key)
    if model is None:
        model = load_model_bytes(data, str(path))
        while len(_VALIDATED) >= _VALIDATED_MAX:
            _VALIDATED.pop(next(iter(_VALIDATED)))
        _VALIDATED[key] = model
    if model.file == str(path):
        return model
    # Named another way (the CLI's relative path, the flow's absolute one): problems found
    # later name the file as this caller does.
    return dataclasses.replace(model, file=str(path), source=dataclasses.replace(model.source, file=str(path)))


def load_model_bytes(data: bytes, file: str, *, registry: dict[str, ModuleType] | None = None,
                     catalogue: dict[str, Any] | None = None) -> Model:
    text = decode_text(data, file)
    return load_model_text(text, file, registry=registry, catalogue=catalogue, sha256=hashlib.sha256(data).hexdigest())


def load_model_text(text: str, file: str = "<model>", *, registry: dict[str, ModuleType] | None = None,
                    catalogue: dict[str, Any] | None = None, sha256: str | None = None) -> Model:
    raw, source = load_yaml_text(text, file)
    raw = _string_keys(raw)
    problems = document_problems(raw, source, text, registry=registry, catalogue=catalogue)
    if problems:
        raise InputError(problems)
    return build_model(raw, source, sha256 or hashlib.sha256(text.encode("utf-8")).hexdigest())


def document_problems(raw: Any, source: SourceMap, text: str, *, registry: dict[str, ModuleType] | None = None,
                      catalogue: dict[str, Any] | None = None) -> list[Problem]:
    if not isinstance(raw, dict):
        return [source.problem((), "a model must be a mapping with apiVersion, kind, metadata and spec")]
    problems = modeline_problems(text, source.file)
    problems += schema_problems(raw, source, registry)
    problems += lint(raw, source, registry=registry if registry is not None else default_registry(),
                     catalogue=catalogue if catalogue is not None else default_catalogue())
    unique = {(p.line, p.column, p.field, p.message): p for p in problems}
    return [unique[k] for k in sorted(unique, key=lambda k: (k[0], k[1], k[2], k[3]))]


def modeline_problems(text: str, file: str) -> list[Problem]:
    match = MODELINE.search(text)
    if match is None:
        return [Problem(file, 1, 1, "", "missing modeline '# yaml-language-server: $schema=<path to "
                        "models/schema/model.schema.json>' (editors validate the model with it)")]
    if not match.group(1).endswith("model.schema.json"):
        line = text.count("\n", 0, match.start()) + 1
        return [Problem(file, line, 1, "", f"the modeline's $schema {match.group(1)!r} is not model.schema.json")]
    return []


def _string_keys(value: Any) -> Any:
    """YAML allows `1: x` or `true: x`; the source map names them by str(key), so must we."""
    if isinstance(value, dict):
        return {str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value
