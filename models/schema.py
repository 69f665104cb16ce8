"""The model format as JSON Schema 2020-12, generated from the atom registry.

`models/schema/model.schema.json` is what editors validate against (every model carries
a `# yaml-language-server: $schema=...` modeline) and what `load_model` checks first;
`models/schema/atoms/<atom>.json` is each atom's own argument schema. Both are generated
here, so a new atom or argument reaches editors by running

    python -m changeline.models.schema          # or: changeline models schema --write

and a test fails while the committed files are stale.

Schema errors are turned into located, readable problems (`schema_problems`); everything
the schema cannot say (references, compensation, gates, versions) is `lint.py`'s job.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema

from changeline.errors import Problem, shown
from changeline.yamlsource import FieldPath, SourceMap

SCHEMA_DIR = Path(__file__).with_name("schema")
MODEL_SCHEMA_FILE = SCHEMA_DIR / "model.schema.json"
ATOM_SCHEMA_DIR = SCHEMA_DIR / "atoms"
API_VERSION = "changeline/v1"
KINDS = ("UpgradeModel", "ChangeModel")
ON_FAILURE = ("rollback", "pause", "continue", "abort")
PARAMETER_TYPES = ("string", "integer", "number", "boolean", "list")
ROLLBACK_STRATEGIES = ("journal", "backup")
SEMVER = (r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
          r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$")
NAME = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
STEP_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
TEMPLATE_PATTERN = r"\{\{[\s\S]*\}\}|\{%[\s\S]*%\}"


def _registry() -> dict[str, ModuleType]:
    from changeline.atoms import registry

    return registry()


# --- generation ------------------------------------------------------------------------

def atom_schema(module: ModuleType) -> dict[str, Any]:
    """One atom's argument schema as a standalone 2020-12 document."""
    spec = module.SPEC
    undo = ("has an undo" if getattr(module, "undo", None)
            else f"no undo: {spec.undo_note}" if spec.undo_note else "no undo")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:changeline:schema:atom:{spec.name}",
        "title": f"{spec.name} arguments",
        "description": f"{spec.summary}. {'Mutating' if spec.mutating else 'Read-only'}; {undo}; "
                       f"estimate {spec.estimate_s:g} s.",
        **spec.args_schema,
    }


def _templatable(schema: dict[str, Any]) -> dict[str, Any]:
    """Let every argument value be a Jinja2 template instead (rendered and checked at compile)."""
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _or_template(v) for k, v in out["properties"].items()}
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _or_template(out["additionalProperties"])
    if isinstance(out.get("items"), dict):
        out["items"] = _or_template(out["items"])
    return out


def _or_template(schema: dict[str, Any]) -> dict[str, Any]:
    inner = _templatable(schema)
    if inner.get("type") == "string" and set(inner) <= {"type", "description", "minLength", "default"}:
        return inner  # a template is a string already
    wrapper = {k: inner.pop(k) for k in ("description", "default") if k in inner}
    return {**wrapper, "anyOf": [inner, {"$ref": "#/$defs/template"}]}


def build_model_schema(registry: dict[str, ModuleType] | None = None) -> dict[str, Any]:
    """The whole model format; step `with` is checked per atom through `if`/`then` on `atom`."""
    registry = registry if registry is not None else _registry()
    atoms = sorted(registry)
    number_s = {"type": "number", "minimum": 0}
    per_atom = [
        {"if": {"properties": {"atom": {"const": name}}, "required": ["atom"]},
         "then": {"properties": {"with": {"$ref": f"#/$defs/args_{name}"}}}}
        for name in atoms
    ]
    defs: dict[str, Any] = {
        "template": {"type": "string", "pattern": TEMPLATE_PATTERN,
                     "description": "Jinja2 template over params.*, host.*, model.*, target.*, software.*"},
        "version": {"type": "string", "minLength": 1, "description": "an NE software version, e.g. 1.3.0"},
        "parameter": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "description"],
            "properties": {
                "type": {"enum": list(PARAMETER_TYPES)},
                "description": {"type": "string", "minLength": 1},
                "default": {"description": "value when not given with --param; null makes the parameter optional"},
                "example": {"description": "a typical value of a parameter that must have no default (a capacity, "
                                           "an address), checked like a default and used by the library's tests; "
                                           "a run never uses it"},
                "enum": {"type": "array", "minItems": 1},
                "minimum": {"type": "number"},
                "maximum": {"type": "number"},
                "items": {"enum": ["string", "integer", "number", "boolean"],
                          "description": "type of list items"},
            },
        },
        "step": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "atom"],
            "properties": {
                "name": {"type": "string", "pattern": STEP_NAME, "maxLength": 63,
                         "patternErrorMessage": "must be letters, digits, '.', '_' or '-'",
                         "description": "unique within the model"},
                "atom": {"enum": atoms, "description": "the atom this step runs"},
                "description": {"type": "string"},
                "with": {"type": "object", "description": "the atom's arguments (strings may be templates)"},
                "when": {"type": "string", "minLength": 1,
                         "description": "Jinja2 expression (no braces); the step runs for an NE only if true"},
                "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "seconds"},
                "retries": {"type": "integer", "minimum": 0, "maximum": 10,
                            "description": "retries of transient errors (default: the atom's)"},
                "onFailure": {"enum": list(ON_FAILURE),
                              "description": "default: campaign.onAnomaly for gates, campaign.onFailure otherwise"},
                "estimate": {**number_s, "description": "seconds (default: the atom's estimate)"},
                "manualMinutes": {**number_s, "description": "minutes the step takes by hand"},
                "gate": {"type": "boolean", "description": "a failure is an anomaly (a check, not an error)"},
            },
            "allOf": per_atom,
        },
        "stage": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "steps"],
            "properties": {
                "name": {"type": "string", "pattern": STEP_NAME,
                         "patternErrorMessage": "must be letters, digits, '.', '_' or '-'"},
                "description": {"type": "string"},
                "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
            },
        },
        "wave": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": STEP_NAME,
                         "patternErrorMessage": "must be letters, digits, '.', '_' or '-'"},
                "count": {"type": "integer", "minimum": 1, "description": "this many NEs"},
                "percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100,
                            "description": "this share of the eligible NEs (rounded up)"},
            },
            "description": "{name, count} | {name, percent} | {name} (= every NE left)",
        },
    }
    for name in atoms:
        defs[f"args_{name}"] = _templatable(dict(registry[name].SPEC.args_schema))
    spec = {
        "type": "object",
        "additionalProperties": False,
        "required": ["target", "stages"],
        "properties": {
            "target": {
                "type": "object",
                "additionalProperties": False,
                "required": ["neTypes"],
                "properties": {
                    "neTypes": {"type": "array", "minItems": 1, "uniqueItems": True,
                                "items": {"type": "string", "minLength": 1},
                                "description": "NE types (as in the type profiles: AMF, SMF, ...)"},
                    "fromVersions": {"type": "array", "minItems": 1, "uniqueItems": True,
                                     "items": {"$ref": "#/$defs/version"}},
                    "toVersion": {"$ref": "#/$defs/version"},
                    "versions": {"type": "array", "minItems": 1, "uniqueItems": True,
                                 "items": {"$ref": "#/$defs/version"},
                                 "description": "change models: the versions the change applies to (default: any)"},
                },
            },
            "software": {
                "type": "object",
                "additionalProperties": False,
                "required": ["image"],
                "properties": {"image": {"type": "string", "minLength": 1,
                                         "description": "image reference; may be a template"}},
            },
            "parameters": {
                "type": "object",
                "propertyNames": {"pattern": IDENTIFIER},
                "additionalProperties": {"$ref": "#/$defs/parameter"},
            },
            "stages": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/stage"}},
            "rollback": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "strategy": {"enum": list(ROLLBACK_STRATEGIES), "default": "journal",
                                 "description": "journal: undo journaled steps newest first, then verify with "
                                                "the rollback atom; backup: restore the NE from the backup"},
                    "verify": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "scenarios": {"anyOf": [{"type": "array", "items": {"type": "string"}},
                                                    {"$ref": "#/$defs/template"}],
                                          "description": "dial tests after rollback (default: the type's)"},
                            "restartTimeout": {"type": "number", "exclusiveMinimum": 0},
                        },
                    },
                    "estimate": {**number_s, "description": "worst-case rollback seconds per NE"},
                },
            },
            "campaign": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "waves": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/wave"}},
                    "concurrency": {"type": "integer", "minimum": 1, "description": "NEs at once per wave"},
                    "maxFailures": {"type": "integer", "minimum": 0,
                                    "description": "failed NEs tolerated; one more stops the campaign"},
                    "maxFailurePercent": {"type": "number", "minimum": 0, "maximum": 100,
                                          "description": "share of the NEs attempted so far that may fail"},
                    "onAnomaly": {"enum": list(ON_FAILURE), "default": "rollback",
                                  "description": "default onFailure of gate steps"},
                    "onFailure": {"enum": list(ON_FAILURE), "default": "rollback",
                                  "description": "default onFailure of other steps"},
                },
            },
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:changeline:schema:model:v1",
        "title": "changeline upgrade or change model",
        "description": "Generated from the atom registry by changeline.models.schema; do not edit by hand.",
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"enum": list(KINDS)},
            "metadata": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "version", "description", "owner"],
                "properties": {
                    "name": {"type": "string", "pattern": NAME, "maxLength": 63,
                             "patternErrorMessage": "must be lower-case letters, digits and '-' (like amf-upgrade)"},
                    "version": {"type": "string", "pattern": SEMVER,
                                "patternErrorMessage": "must be a semantic version like 1.0.0"},
                    "description": {"type": "string", "minLength": 1},
                    "owner": {"type": "string", "minLength": 1},
                },
            },
            "spec": spec,
        },
        "allOf": [{
            "if": {"properties": {"kind": {"const": "UpgradeModel"}}, "required": ["kind"]},
            "then": {"properties": {"spec": {
                "required": ["software"],
                "properties": {"target": {"required": ["fromVersions", "toVersion"]}},
            }}},
        }],
        "$defs": defs,
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def expected_files(registry: dict[str, ModuleType] | None = None) -> dict[Path, str]:
    registry = registry if registry is not None else _registry()
    files = {MODEL_SCHEMA_FILE: render(build_model_schema(registry))}
    for name, module in sorted(registry.items()):
        files[ATOM_SCHEMA_DIR / f"{name}.json"] = render(atom_schema(module))
    return files


def write_schemas() -> list[Path]:
    """Regenerate the committed schema files; returns the ones that changed."""
    changed = []
    ATOM_SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    files = expected_files()
    for path, text in files.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    for stray in ATOM_SCHEMA_DIR.glob("*.json"):
        if stray not in files:
            stray.unlink()
            changed.append(stray)
    return changed


def stale_schemas() -> list[Path]:
    """Committed schema files that differ from what the atom registry generates now."""
    files = expected_files()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    stale += [p for p in ATOM_SCHEMA_DIR.glob("*.json") if p not in files]
    return stale


# --- validation ------------------------------------------------------------------------

_validator: jsonschema.protocols.Validator | None = None


def model_validator() -> jsonschema.protocols.Validator:
    """Validator for the committed schema (falls back to a fresh build if the file is missing)."""
    global _validator
    if _validator is None:
        try:
            schema = json.loads(MODEL_SCHEMA_FILE.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            schema = build_model_schema()
        _validator = jsonschema.Draft202012Validator(schema)
    return _validator


def _is_with_error(path: FieldPath) -> bool:
    # Step arguments are checked by lint after rendering templates, with the atom's own schema.
    return len(path) >= 6 and path[0] == "spec" and path[1] == "stages" and path[3] == "steps" and path[5] == "with"


def schema_problems(raw: Any, source: SourceMap, registry: dict[str, ModuleType] | None = None) -> list[Problem]:
    """Located problems against the committed schema, or one built from `registry` if given."""
    validator = (model_validator() if registry is None
                 else jsonschema.Draft202012Validator(build_model_schema(registry)))
    problems: dict[tuple[FieldPath, str], Problem] = {}
    for where in non_finite_numbers(raw):  # JSON Schema's "number" admits .inf and .nan
        problems[(where, "nan")] = source.problem(where, "must be a finite number (.inf and .nan are not numbers "
                                                  "a plan can add up)")
    for err in validator.iter_errors(raw):
        path = tuple(err.absolute_path)
        if _is_with_error(path) and not (len(path) == 6 and err.validator == "type"):
            continue
        for where, message in located_messages(err, path):
            problems.setdefault((where, message), source.problem(where, message))
    return list(problems.values())


def non_finite_numbers(value: Any, path: FieldPath = ()) -> list[FieldPath]:
    """Where `.inf`, `-.inf` or `.nan` appear: no field of a model means any of them."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_numbers(v, path + (str(k),))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite_numbers(v, path + (i,))]
    return []


def located_messages(err: jsonschema.ValidationError, path: FieldPath) -> list[tuple[FieldPath, str]]:
    """A jsonschema error as (field path, readable message) pairs."""
    kind, value, instance, schema = err.validator, err.validator_value, err.instance, err.schema
    if kind == "required" and isinstance(instance, dict):
        return [(path + (name,), "is required") for name in value if name not in instance]
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = sorted(schema.get("properties", {}))
        extra = [k for k in instance if k not in known]
        hint = f" (expected one of: {', '.join(known)})" if known else ""
        return [(path + (str(k),), f"unknown field{hint}") for k in extra]
    if "propertyNames" in err.relative_schema_path:
        return [(path + (str(instance),), "a parameter name must be an identifier (letters, digits, '_') "
                 "so templates can use it as params.NAME")]
    if kind == "type":
        return [(path, f"must be {_article(value)}, got {describe(instance)}")]
    if kind == "enum":
        if path and path[-1] == "atom":
            return [(path, f"unknown atom {shown(instance)} (known: {', '.join(map(str, value))})")]
        return [(path, f"must be one of: {', '.join(map(str, value))}; got {describe(instance)}")]
    if kind == "const":
        return [(path, f"must be {value!r}, got {describe(instance)}")]
    if kind == "pattern":
        return [(path, f"{shown(instance)} {schema.get('patternErrorMessage') or 'does not match ' + value}")]
    if kind in ("minItems", "minLength", "minProperties") and value == 1:
        return [(path, "must not be empty")]
    if kind == "uniqueItems":
        return [(path, "has duplicate items")]
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        if isinstance(instance, float) and not math.isfinite(instance):
            return []  # reported once, as not finite
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
        return [(path, f"must be {op} {value:g}, got {instance!r}")]
    if kind == "maxLength":
        return [(path, f"must be at most {value} characters")]
    return [(path, err.message)]


def _article(types: Any) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
             "number": "a number", "boolean": "true or false", "null": "empty"}
    if isinstance(types, list):
        return " or ".join(names.get(t, t) for t in types)
    return names.get(types, str(types))


def describe(value: Any) -> str:
    """A YAML value as an operator would recognise it."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, float):
        return f"{value!r} (a number; quote it if it is a version)"
    if isinstance(value, int):
        return f"{value!r} (a number)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return shown(value)  # a string may be a secret written in the wrong place


if __name__ == "__main__":
    for changed_path in write_schemas():
        print(f"wrote {changed_path}")
    sys.exit(0)
