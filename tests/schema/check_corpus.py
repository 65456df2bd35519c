#!/usr/bin/python3
"""The JSON Schema and `runbook validate` agree on every file of the corpus.

Usage: check_corpus.py SRCDIR NODEDIR     (env RUNBOOK: the built binary)

The corpus is tests/data/schema-corpus/*.yml, each file opening with
`# verdict: VERDICT` (and `# why: ...`), plus runbooks/*.yml and
tests/data/valid/*.yml (valid) and tests/data/invalid-schema/*.yml
(invalid). The verdicts:

  valid                 the schema accepts it and validate accepts it
  invalid               the schema rejects it and validate rejects it
  loader-only REASON    the schema accepts it, validate rejects it for a
                        reason JSON Schema cannot express; REASON is one
                        of the items of "Only the loader checks" in
                        docs/format.md

No verdict lets the schema reject a file that validate accepts. Each file
goes through python3-jsonschema (Draft 2020-12, the file read as YAML 1.2
core as yaml-language-server reads it), through `runbook validate`, and,
when node is installed, through Ajv 2020 in strict mode (tests/schema/
ajv_corpus.js). Ajv and the YAML reader come from NODEDIR/node_modules,
installed there with npm on first use; without node, npm or the network
the Ajv pass is skipped (counted as skipped, never as passed).
RUNBOOK_AJV_MODULES=DIR uses a node_modules directory already installed.

Prints a line per file, the number of files per verdict, then
`N passed, M failed` (`, K skipped`); exits 1 if anything failed.
"""
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import jsonschema
import yaml

VERDICTS = ("valid", "invalid", "loader-only")
AJV_PACKAGES = ["ajv@^8.12.0", "yaml@^2.3.0"]


class Core12Loader(yaml.SafeLoader):
    """YAML 1.2 core schema: what yaml-language-server reads.

    Booleans are only true/false in three cases, no yes/no/on/off; ints are
    decimal, 0o octal or 0x hex (010 is ten); no timestamps. Merge keys
    (`<<: *a`) are applied, as runbook and yaml-language-server apply them.
    """

    yaml_implicit_resolvers = {}


def _resolver(tag, regexp, first):
    Core12Loader.add_implicit_resolver(tag, re.compile(regexp, re.X), list(first))


_resolver("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_resolver("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
          "-+0123456789")
_resolver("tag:yaml.org,2002:float",
          r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
              |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", "-+0123456789.")
_resolver("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""])
_resolver("tag:yaml.org,2002:merge", r"^(?:<<)$", "<")


def _int12(loader, node):
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _float12(loader, node):
    text = loader.construct_scalar(node).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text.endswith(".nan"):
        return float("nan")
    return float(text)


Core12Loader.add_constructor("tag:yaml.org,2002:int", _int12)
Core12Loader.add_constructor("tag:yaml.org,2002:float", _float12)


def as_json(value):
    """Mapping keys become strings, as they do in JSON and in Ajv's input."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, bool):
                k = "true" if k else "false"
            elif k is None:
                k = ""
            out[str(k)] = as_json(v)
        return out
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value


def read_verdict(path):
    verdict = why = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            m = re.match(r"#\s*verdict:\s*(\S+)(?:\s+(\S+))?\s*$", line)
            if m:
                verdict = (m.group(1), m.group(2))
            m = re.match(r"#\s*why:\s*(.*\S)", line)
            if m:
                why = m.group(1)
    return verdict, why


def loader_only_reasons(src):
    """The `ids` listed under "## Only the loader checks" in docs/format.md."""
    with open(os.path.join(src, "docs", "format.md"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^## Only the loader checks\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not m:
        return None
    return set(re.findall(r"^- `([a-z0-9-]+)`", m.group(1), re.M))


def ajv_modules(nodedir):
    """(node_modules dir, None) or (None, why Ajv is skipped)."""
    node = shutil.which("node")
    if not node:
        return None, "node is not installed"
    mods = os.environ.get("RUNBOOK_AJV_MODULES")
    if mods:
        return mods, None
    mods = os.path.join(nodedir, "node_modules")
    if all(os.path.isdir(os.path.join(mods, p)) for p in ("ajv", "yaml")):
        return mods, None
    npm = shutil.which("npm")
    if not npm:
        return None, "npm is not installed"
    os.makedirs(nodedir, exist_ok=True)
    try:
        r = subprocess.run([npm, "install", "--prefix", nodedir, "--no-audit",
                            "--no-fund", "--no-save", "--loglevel=error"]
                           + AJV_PACKAGES, capture_output=True, text=True,
                           timeout=180, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, "npm install timed out (no network?)"
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        return None, "npm install failed: " + (lines[0] if lines else f"exit {r.returncode}")
    return mods, None


def run_ajv(src, mods, files):
    """{file: (verdict, why)} from Ajv, or raises RuntimeError."""
    script = os.path.join(src, "tests", "schema", "ajv_corpus.js")
    schema = os.path.join(src, "schema", "runbook.schema.json")
    r = subprocess.run(["node", script, mods, schema] + files, capture_output=True,
                       text=True, timeout=300, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        last = ((r.stdout + r.stderr).strip().splitlines() or [f"exit {r.returncode}"])[-1]
        try:
            last = json.loads(last)["error"]
        except (ValueError, KeyError, TypeError):
            pass
        raise RuntimeError(last)
    out = {}
    for line in r.stdout.splitlines():
        o = json.loads(line)
        out[o["file"]] = (o["verdict"], o.get("why", ""))
    return out


def main(argv):
    if len(argv) != 3 or not os.path.isdir(argv[1]) or not os.environ.get("RUNBOOK"):
        print("usage: RUNBOOK=BINARY check_corpus.py SRCDIR NODEDIR", file=sys.stderr)
        return 2
    src, nodedir, runbook = argv[1], argv[2], os.environ["RUNBOOK"]
    passed = failed = skipped = 0

    def report(ok, label, detail=""):
        nonlocal passed, failed
        passed += ok
        failed += not ok
        print(f"{'ok' if ok else 'FAIL'} {label}" + (f": {detail}" if detail else ""))

    with open(os.path.join(src, "schema", "runbook.schema.json"), encoding="utf-8") as f:
        validator = jsonschema.Draft202012Validator(json.load(f))

    def files(pattern):
        return sorted(glob.glob(os.path.join(src, pattern)))

    corpus_dir = "tests/data/schema-corpus"
    cases = []  # (path, verdict, reason)
    for path in files("runbooks/*.yml") + files("tests/data/valid/*.yml"):
        cases.append((path, "valid", None))
    for path in files("tests/data/invalid-schema/*.yml"):
        cases.append((path, "invalid", None))
    own = files(corpus_dir + "/*.yml")
    report(len(own) >= 120, f"{corpus_dir} holds at least 120 files", f"{len(own)} files")
    for path in own:
        verdict, _ = read_verdict(path)
        rel = os.path.relpath(path, src)
        if (not verdict or verdict[0] not in VERDICTS or
                (verdict[0] == "loader-only") != (verdict[1] is not None)):
            report(False, rel, "expected a first comment '# verdict: valid', "
                   "'# verdict: invalid' or '# verdict: loader-only REASON'")
            continue
        cases.append((path, verdict[0], verdict[1]))

    documented = loader_only_reasons(src)
    used = {reason for _, v, reason in cases if v == "loader-only"}
    if documented is None:
        report(False, "docs/format.md", "expected a section '## Only the loader checks'")
        documented = set()
    else:
        report(not used - documented and not documented - used,
               "docs/format.md lists every loader-only reason of the corpus, and only those",
               ", ".join([f"not listed: {r}" for r in sorted(used - documented)] +
                         [f"no file in the corpus: {r}" for r in sorted(documented - used)]))

    mods, skip_why = ajv_modules(nodedir)
    ajv = None
    if mods:
        try:
            ajv = run_ajv(src, mods, [p for p, _, _ in cases])
            report(True, "schema/runbook.schema.json compiles in Ajv 2020 strict mode")
        except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as e:
            report(False, "Ajv 2020 strict mode", str(e))
    else:
        skipped += 1
        print(f"skip Ajv 2020 strict mode: {skip_why}")

    counts = collections.Counter()
    reasons = collections.Counter()
    for path, verdict, reason in cases:
        rel = os.path.relpath(path, src)
        want_schema = "reject" if verdict == "invalid" else "accept"
        want_loader = "accept" if verdict == "valid" else "reject"
        got, why = {}, {}
        try:
            with open(path, encoding="utf-8") as f:
                doc = as_json(yaml.load(f, Loader=Core12Loader))
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            got["jsonschema"] = "reject" if errors else "accept"
            if errors:
                where = "/".join(str(p) for p in errors[0].absolute_path) or "(top)"
                why["jsonschema"] = f"{where}: {errors[0].message[:160]}"
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            got["jsonschema"] = "yaml-error"
            why["jsonschema"] = str(e).splitlines()[0]
        if ajv is not None:
            got["ajv"], why["ajv"] = ajv.get(path, ("missing", "no answer"))
        try:
            r = subprocess.run([runbook, "validate", path], capture_output=True, text=True,
                               timeout=30, stdin=subprocess.DEVNULL)
            got["validate"] = {0: "accept", 5: "reject"}.get(r.returncode, f"exit {r.returncode}")
            why["validate"] = (r.stderr.splitlines() or [""])[0][len(path) + 1:]
        except subprocess.TimeoutExpired:
            got["validate"] = "timed out"
        wrong = [f"{leg} said {got[leg]} ({why.get(leg, '')}), expected "
                 f"{want_loader if leg == 'validate' else want_schema}"
                 for leg in got
                 if got[leg] != (want_loader if leg == "validate" else want_schema)]
        label = f"{rel} [{verdict}{' ' + reason if reason else ''}]"
        report(not wrong, label, "; ".join(wrong))
        counts[verdict] += 1
        if reason:
            reasons[reason] += 1

    print("files per verdict: " + ", ".join(f"{v} {counts[v]}" for v in VERDICTS) +
          f" (total {sum(counts.values())})")
    print("loader-only by reason: " +
          ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
