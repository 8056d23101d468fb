#!/usr/bin/env python3
"""Validates route files against schema/routes.schema.json (needs python3-jsonschema and PyYAML).

Usage: scripts/validate-route-schema.py [FILE_OR_DIR ...]   (default: routes/ and examples/)
Test files (*.test.yaml) are skipped. Exit 0 when every file validates, 1 otherwise.
"""
import json, os, sys
import jsonschema, yaml

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(root, "schema", "routes.schema.json")) as f:
    schema = json.load(f)
validator = jsonschema.Draft202012Validator(schema)
paths = sys.argv[1:] or [os.path.join(root, "routes"), os.path.join(root, "examples")]
files = []
for p in paths:
    if os.path.isdir(p):
        files += [os.path.join(p, n) for n in sorted(os.listdir(p))
                  if n.endswith((".yaml", ".yml")) and not n.endswith((".test.yaml", ".test.yml"))]
    else:
        files.append(p)
failed = 0
for f in files:
    with open(f) as fh:
        doc = yaml.safe_load(fh)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    for e in errors:
        print(f"{f}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}")
    failed += bool(errors)
    if not errors:
        print(f"{f}: ok")
print(f"{len(files)} file(s), {failed} invalid")
sys.exit(1 if failed or not files else 0)
