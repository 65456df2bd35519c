#!/usr/bin/python3
"""Check schema/runbook.schema.json and the YAML files that exercise it.

Usage: check_schema.py SRCDIR

- the schema itself must be valid JSON Schema draft 2020-12;
- runbooks/*.yml and tests/data/valid/*.yml must pass the schema;
- runbooks/*.yml must open with the `yaml-language-server: $schema=` line
  that leads to schema/runbook.schema.json;
- tests/data/invalid-schema/*.yml must each fail it;
- together, tests/data/valid/*.yml must use every key the schema knows.

Prints one line per check (`ok` or `FAIL`), then `N passed, M failed`;
exits 1 if anything failed, 2 on a usage error.

Runs with Debian's /usr/bin/python3 (python3-jsonschema, python3-yaml).
"""
import glob
import json
import os
import sys

import jsonschema
import yaml


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def first_error(validator, doc):
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    e = errors[0]
    where = "/".join(str(p) for p in e.absolute_path) or "(top)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {e.message}{more}"


def schema_keys(schema):
    """Every (place, key) the schema declares: place is a $defs name or 'top'."""
    keys = set()

    def visit(node, place):
        if isinstance(node, dict):
            for k, sub in (node.get("properties") or {}).items():
                if sub is not False:  # a key refused there is not one to use
                    keys.add((place, k))
            for k, v in node.items():
                if k != "$defs":
                    visit(v, place)
        elif isinstance(node, list):
            for v in node:
                visit(v, place)

    visit({k: v for k, v in schema.items() if k != "$defs"}, "top")
    for name, sub in schema.get("$defs", {}).items():
        visit(sub, name)
    return keys


def used_keys(validator, schema, doc):
    """Every (place, key) a valid document uses, following the schema."""
    used = set()

    def resolve(node, place):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            place = ref.rsplit("/", 1)[-1]
            node = schema["$defs"][place]
        return node, place

    def walk(node, place, value):
        node, place = resolve(node, place)
        if not isinstance(node, dict):
            return
        for key in ("oneOf", "anyOf"):
            for branch in node.get(key, []):
                if validator.evolve(schema=branch).is_valid(value):
                    walk(branch, place, value)
        if isinstance(value, dict):
            props = node.get("properties") or {}
            extra = node.get("additionalProperties")
            for k, v in value.items():
                if k in props:
                    used.add((place, k))
                    walk(props[k], place, v)
                elif isinstance(extra, dict):
                    walk(extra, place, v)
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for v in value:
                walk(node["items"], place, v)

    walk(schema, "top", doc)
    return used


def main(argv):
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        print("usage: check_schema.py SRCDIR", file=sys.stderr)
        return 2
    src = argv[1]
    passed = failed = 0

    def report(ok, label, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
        line = f"{'ok' if ok else 'FAIL'} {label}"
        if detail:
            line += f": {detail}"
        print(line)

    schema_path = os.path.join(src, "schema", "runbook.schema.json")
    try:
        with open(schema_path, encoding="utf-8") as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
            raise ValueError("$schema is not draft 2020-12")
    except (OSError, ValueError, jsonschema.exceptions.SchemaError) as e:
        report(False, "schema/runbook.schema.json", str(e).splitlines()[0])
        print(f"{passed} passed, {failed} failed")
        return 1
    report(True, "schema/runbook.schema.json (draft 2020-12 metaschema)")
    validator = jsonschema.Draft202012Validator(schema)

    def files(pattern):
        return sorted(glob.glob(os.path.join(src, pattern)))

    valid = files("runbooks/*.yml") + files("tests/data/valid/*.yml")
    invalid = files("tests/data/invalid-schema/*.yml")
    for label, found, minimum in (("runbooks/*.yml", files("runbooks/*.yml"), 1),
                                  ("tests/data/valid/*.yml", files("tests/data/valid/*.yml"), 5),
                                  ("tests/data/invalid-schema/*.yml", invalid, 10)):
        if len(found) < minimum:
            report(False, label, f"expected at least {minimum} files, found {len(found)}")

    # An editor with a YAML language server finds the schema by this line.
    for path in files("runbooks/*.yml"):
        rel = os.path.relpath(path, src)
        with open(path, encoding="utf-8") as f:
            first = f.readline().rstrip("\n")
        prefix = "# yaml-language-server: $schema="
        target = first[len(prefix):] if first.startswith(prefix) else ""
        where = os.path.normpath(os.path.join(os.path.dirname(path), target))
        report(bool(target) and where == os.path.normpath(schema_path),
               f"{rel} names the schema on its first line",
               "" if target else f"expected '{prefix}../schema/runbook.schema.json', found '{first}'")

    for path in valid:
        rel = os.path.relpath(path, src)
        try:
            err = first_error(validator, load_yaml(path))
        except (OSError, yaml.YAMLError) as e:
            report(False, rel, f"cannot load: {e}")
            continue
        report(err is None, rel, err or "")

    covered = set()
    for path in files("tests/data/valid/*.yml"):
        try:
            doc = load_yaml(path)
        except (OSError, yaml.YAMLError):
            continue
        if validator.is_valid(doc):
            covered |= used_keys(validator, schema, doc)
    # inventories (docs/fleets.md): the definition `inventory` as the root
    inv_schema = {"$schema": schema["$schema"], "$defs": schema["$defs"],
                  "$ref": "#/$defs/inventory"}
    inv_validator = jsonschema.Draft202012Validator(inv_schema)
    for path in (files("tests/data/valid/inventories/*.yml") +
                 files("runbooks/*/inventory.yml")):
        rel = os.path.relpath(path, src)
        try:
            doc = load_yaml(path)
        except (OSError, yaml.YAMLError) as e:
            report(False, rel, f"cannot load: {e}")
            continue
        err = first_error(inv_validator, doc)
        report(err is None, rel + " (inventory)", err or "")
        if err is None:
            covered |= used_keys(inv_validator, inv_schema, doc)
    missing = sorted(schema_keys(schema) - covered)
    report(not missing, "tests/data/valid/*.yml use every key of the schema",
           ", ".join(f"{place}.{key}" for place, key in missing))

    for path in invalid:
        rel = os.path.relpath(path, src)
        try:
            err = first_error(validator, load_yaml(path))
        except (OSError, yaml.YAMLError) as e:
            report(False, rel, f"cannot load (must be valid YAML): {e}")
            continue
        if err is None:
            report(False, rel, "passed the schema but must fail")
        else:
            report(True, rel, f"rejected as expected: {err}")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
