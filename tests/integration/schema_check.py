"""schema_check.py: validates JSON instances against a JSON Schema (draft
2020-12, formats checked), for test_workflow_schema.py.

Run with Debian's /usr/bin/python3 (python3-jsonschema, tests/deps.sh):

    /usr/bin/python3 schema_check.py SCHEMA.json INSTANCES.json

INSTANCES.json is a list; prints a JSON list with, for each instance, the
list of its errors ({"path","message"}, empty when it is valid). Exits 2
when the schema itself is not a valid 2020-12 schema."""

import json
import sys

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


def main(argv):
    schema = json.load(open(argv[1], encoding="utf-8"))
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        print("not a 2020-12 schema: %s" % e.message, file=sys.stderr)
        return 2
    v = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    out = []
    for inst in json.load(open(argv[2], encoding="utf-8")):
        out.append([{"path": ".".join(str(p) for p in e.absolute_path), "message": e.message}
                    for e in v.iter_errors(inst)])
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
