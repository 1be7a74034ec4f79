"""Drift tests: the SAM template against the code.

- every route in docs/openapi.json is an HttpApi event of the function its
  `x-function` names, public exactly when the spec says so, and the template
  has no route the spec lacks;
- every crate under functions/ has exactly one function resource;
- every environment variable a function reads is set for it in the template.

Run by ./scripts/test with the .venv's python (cfn-lint decodes the template).
"""

import json
import re
import sys
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
# Variables only the local server reads (Lambda uses the built-in campaign files).
LOCAL_ONLY_ENV = {"COMMUNITY_CAMPAIGNS_DIR"}

results = []


def check(name, ok, detail=""):
    results.append((name, ok, detail))


def cap(s):
    return "".join(p.capitalize() for p in s.split("-"))


def env_names(text):
    names = set(re.findall(r'env::var(?:_os)?\(\s*"([A-Z0-9_]+)"', text))
    names |= set(re.findall(r'get\(\s*"([A-Z0-9_]+)"\s*\)', text))
    return names


def main():
    template, matches = decode(str(ROOT / "infra/template.yaml"))
    if template is None:
        print(matches)
        sys.exit(1)
    resources = template["Resources"]
    functions = {k: v for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Function"}
    spec = json.loads((ROOT / "docs/openapi.json").read_text())

    # Routes: spec -> template.
    template_routes = {}
    for logical, f in functions.items():
        for ev in (f["Properties"].get("Events") or {}).values():
            if ev.get("Type") != "HttpApi":
                continue
            p = ev["Properties"]
            public = (p.get("Auth") or {}).get("Authorizer") == "NONE"
            template_routes[(p["Method"].upper(), p["Path"])] = (logical, public)
    spec_routes = set()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if not isinstance(op, dict) or op.get("x-function") in (None, "local"):
                continue
            key = (method.upper(), path)
            spec_routes.add(key)
            want = cap(op["x-function"]) + "Function"
            got = template_routes.get(key)
            check(f"{method.upper()} {path} is routed to {want}", got is not None and got[0] == want, f"template has {got}")
            public = op.get("security") == []
            check(f"{method.upper()} {path} auth matches the spec", got is not None and got[1] == public,
                  f"spec public={public}, template public={got and got[1]}")
    for key in template_routes:
        check(f"{key[0]} {key[1]} in the template is documented", key in spec_routes)

    # One function resource per crate.
    crates = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "Cargo.toml").exists())
    for crate in crates:
        owners = [k for k, f in functions.items() if f["Properties"].get("CodeUri", "").rstrip("/") == f"../functions/{crate}"]
        check(f"functions/{crate} has exactly one function resource", len(owners) == 1, f"{owners}")
        if owners:
            meta = functions[owners[0]].get("Metadata") or {}
            check(f"functions/{crate} builds with cargo-lambda", meta.get("BuildMethod") == "rust-cargolambda")
    for logical, f in functions.items():
        uri = f["Properties"].get("CodeUri", "")
        check(f"{logical} points at a crate", any(uri.rstrip("/") == f"../functions/{c}" for c in crates), uri)

    # Environment variables.
    globals_env = set(((template.get("Globals") or {}).get("Function") or {}).get("Environment", {}).get("Variables", {}))
    shared = ROOT / "shared/src"
    init_env = env_names((shared / "lambda.rs").read_text()) | env_names((shared / "config.rs").read_text())
    queues = re.findall(r'Queue::\w+ => "([a-z]+)"', (shared / "events.rs").read_text())
    for crate in crates:
        src = "".join(p.read_text() for p in (ROOT / "functions" / crate / "src").rglob("*.rs"))
        needed = env_names(src)
        if "community::lambda::init" in src:
            needed |= init_env
        if "SqsOutbound::from_env" in src:
            needed |= {f"{q.upper()}_QUEUE_URL" for q in queues}
        needed -= LOCAL_ONLY_ENV
        owner = next((f for f in functions.values() if f["Properties"].get("CodeUri", "").rstrip("/") == f"../functions/{crate}"), None)
        have = set(globals_env)
        if owner:
            have |= set(((owner["Properties"].get("Environment") or {}).get("Variables") or {}))
        missing = sorted(needed - have)
        check(f"functions/{crate} gets every variable it reads", not missing, f"missing {missing}")

    failed = [r for r in results if not r[1]]
    for name, ok, detail in results:
        if not ok:
            print(f"FAIL {name}: {detail}")
    print(f"drift: {len(results) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
