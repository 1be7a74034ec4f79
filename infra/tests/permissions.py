"""Least privilege, proven by the tests: every function's policy in the SAM
template grants exactly the AWS actions its code used while the tests ran.

`./scripts/test` runs `cargo test` with COMMUNITY_RECORD_ACTIONS=target/actions:
the ports record every AWS call a function's code makes (shared/src/access.rs),
as IAM authorises it: the DynamoDB adapter's actions per call
(`store::iam_actions`, the same function its choice of request uses), with
the index a query names and the shape of the partition key an item action
names; the relay's SQS sends per queue; SES sends; Cognito deletions. Only
calls made inside a function's entry count (an HTTP route, attributed to the
function the template routes it to; a consumer, stream reader or scheduled
run, attributed to its function crate), and only from the tests of the
function crates (`functions/*`; the local server's and `shared`'s tests are
no function's).

Then this check reads the records and each function's `Policies`
(statements, SAM policy templates expanded, `dynamodb:LeadingKeys`
conditions) and fails, naming function, action and resource:
  (a) on a call no statement of the function's policy allows;
  (b) on a granted action (per resource, index and leading-key pattern)
      that no test used — unless ALLOWED_UNUSED below says why no test can
      reach it, or the grant is an event source's on-failure destination
      (Lambda itself sends there with the function's role).

Usage: permissions.py [records dir] (default target/actions). Its own tests:
infra/tests/test_permissions.py.
"""

import fnmatch
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Grants no test used, each with its reason:
# {(function logical id, action, resource as printed): reason}.
ALLOWED_UNUSED = {}

# SAM policy templates the template may use, expanded as SAM does
# (https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/serverless-policy-template-list.html).
# Each: (actions, resource kinds) where a kind is "queue", "table" or "index".
SAM_TEMPLATES = {
    "SQSSendMessagePolicy": (["sqs:SendMessage*"], ["queue"]),
    "SQSPollerPolicy": (["sqs:ChangeMessageVisibility", "sqs:ChangeMessageVisibilityBatch", "sqs:DeleteMessage",
                         "sqs:DeleteMessageBatch", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"], ["queue"]),
    "DynamoDBReadPolicy": (["dynamodb:GetItem", "dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchGetItem",
                            "dynamodb:DescribeTable"], ["table", "index"]),
    "DynamoDBWritePolicy": (["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"], ["table", "index"]),
    "DynamoDBCrudPolicy": (["dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Scan",
                            "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem",
                            "dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:ConditionCheckItem"],
                           ["table", "index"]),
}


def _logical(v):
    """The logical id a `!Ref X`, `!GetAtt X.Attr` or `${X...}` names."""
    if isinstance(v, dict):
        if "Ref" in v:
            return v["Ref"]
        if "Fn::GetAtt" in v:
            g = v["Fn::GetAtt"]
            return g[0] if isinstance(g, list) else str(g).split(".")[0]
    return None


def resource_key(r, resources):
    """A policy resource as the records name it: (kind, logical id, index).
    kind: table, queue, userpool, ses:identity, ses:configuration-set, or
    other (then the id is the resource's JSON)."""
    if isinstance(r, dict) and "Fn::If" in r:
        branch = r["Fn::If"][1]  # granted when the condition holds
        return resource_key(branch, resources)
    if isinstance(r, dict) and "Fn::GetAtt" in r:
        ga = r["Fn::GetAtt"]
        ga = ga if isinstance(ga, list) else str(ga).split(".")
        rtype = (resources.get(ga[0]) or {}).get("Type")
        if ga[1] == "Arn" and rtype == "AWS::DynamoDB::Table":
            return ("table", ga[0], None)
        if ga[1] == "Arn" and rtype == "AWS::SQS::Queue":
            return ("queue", ga[0], None)
        if ga[1] == "Arn" and rtype == "AWS::Cognito::UserPool":
            return ("userpool", ga[0], None)
    if isinstance(r, dict) and "Fn::Sub" in r and isinstance(r["Fn::Sub"], str):
        s = r["Fn::Sub"]
        if s.startswith("${") and "/index/" in s:
            table = s[2:].split(".")[0]
            return ("table", table, s.split("/index/", 1)[1])
        if ":identity/" in s:
            return ("ses:identity", None, None)
        if ":configuration-set/" in s:
            return ("ses:configuration-set", None, None)
    return ("other", json.dumps(r, sort_keys=True, default=str), None)


def show(key):
    kind, logical, index = key
    if kind == "table":
        return f"{logical}" + (f"/index/{index}" if index else "")
    return kind if logical is None else f"{kind} {logical}"


class Grant:
    """One allowed (action, resource), with its leading-key patterns (None = any key)."""

    def __init__(self, action, key, leading, where, statement=None):
        self.action, self.key, self.leading, self.where = action, key, leading, where
        self.statement = statement

    def allows(self, action, key, shape):
        if not fnmatch.fnmatchcase(action, self.action):
            return False
        kind, logical, index = self.key
        if (kind, logical) != key[:2]:
            return False
        if index != key[2] and not (index is not None and key[2] is not None and fnmatch.fnmatchcase(key[2], index)):
            return False
        if self.leading is None:
            return True
        return shape is not None and any(fnmatch.fnmatchcase(shape, p) for p in self.leading)

    def label(self, pattern=None):
        out = f"{self.action} on {show(self.key)}"
        return out + (f" for keys {pattern}" if pattern else "")


def grants(logical, fn, resources, problems):
    """The function's Allow grants; what cannot be judged goes to `problems`."""
    out = []
    for n, pol in enumerate(fn["Properties"].get("Policies") or []):
        if not isinstance(pol, dict):
            problems.append(f"{logical}: managed policy {pol} cannot be checked; grant statements")
            continue
        for name, body in pol.items():
            if name != "Statement":
                if name not in SAM_TEMPLATES:
                    problems.append(f"{logical}: SAM policy template {name} is unknown to infra/tests/permissions.py")
                    continue
                actions, kinds = SAM_TEMPLATES[name]
                target = body.get("QueueName") or body.get("TableName")
                lid = _logical(target)
                for a in actions:
                    for k in kinds:
                        key = ("queue", lid, None) if k == "queue" else ("table", lid, "*" if k == "index" else None)
                        out.append(Grant(a, key, None, f"{name}"))
                continue
            for m, st in enumerate(body):
                if st.get("Effect") != "Allow":
                    continue
                leading = None
                cond = st.get("Condition")
                if cond:
                    like = cond.get("ForAllValues:StringLike") or {}
                    if set(cond) != {"ForAllValues:StringLike"} or set(like) != {"dynamodb:LeadingKeys"}:
                        problems.append(f"{logical}: condition {json.dumps(cond, default=str)} cannot be checked "
                                        "(only ForAllValues:StringLike dynamodb:LeadingKeys)")
                        continue
                    pats = like["dynamodb:LeadingKeys"]
                    leading = tuple(pats if isinstance(pats, list) else [pats])
                acts = st.get("Action")
                res = st.get("Resource")
                for a in acts if isinstance(acts, list) else [acts]:
                    for r in res if isinstance(res, list) else [res]:
                        if isinstance(r, dict) and r.get("Ref") == "AWS::NoValue":
                            continue
                        out.append(Grant(a, resource_key(r, resources), leading, "Statement", (n, m)))
    return out


def on_failure_queues(fn):
    """Logical ids of the queues the function's event sources send failed batches to."""
    out = set()
    for ev in (fn.get("Properties", {}).get("Events") or {}).values():
        dest = (ev.get("Properties", {}).get("DestinationConfig", {})
                .get("OnFailure", {}).get("Destination"))
        lid = _logical(dest)
        if lid:
            out.add(lid)
    return out


def function_map(template, crates):
    """(crate -> logical id, (METHOD, path) -> logical id)."""
    functions = {k: v for k, v in template["Resources"].items() if v.get("Type") == "AWS::Serverless::Function"}
    by_crate = {}
    for crate in crates:
        for k, f in functions.items():
            if str(f["Properties"].get("CodeUri", "")).rstrip("/") == f"../functions/{crate}":
                by_crate[crate] = k
    routes = {}
    for k, f in functions.items():
        for ev in (f["Properties"].get("Events") or {}).values():
            if ev.get("Type") == "HttpApi":
                p = ev["Properties"]
                routes[(str(p["Method"]).upper(), str(p["Path"]))] = k
    return functions, by_crate, routes


def record_key(rec, fn):
    """A record's resource as (kind, logical id, index), resolved through the
    function's environment (TABLE_NAME, <QUEUE>_QUEUE_URL, USER_POOL_ID)."""
    env = (fn["Properties"].get("Environment") or {}).get("Variables") or {}
    res = rec["resource"]
    if res == "table":
        return ("table", _logical(env.get("TABLE_NAME")), rec.get("index"))
    if res.startswith("queue:"):
        return ("queue", _logical(env.get(f"{res[6:].upper()}_QUEUE_URL")), None)
    if res == "userpool":
        return ("userpool", _logical(env.get("USER_POOL_ID")), None)
    return (res, None, None)


def check(template, records, crates, allowed_unused=None):
    """Failures (strings) of the proof; empty when every function's policy is exactly what its tests used."""
    allowed_unused = ALLOWED_UNUSED if allowed_unused is None else allowed_unused
    resources = template["Resources"]
    functions, by_crate, routes = function_map(template, crates)
    failures = []
    used = {k: [] for k in functions}
    for rec in records:
        if rec.get("package") not in crates:
            continue  # the local server's and shared's tests: no function's
        entry = rec["entry"]
        if entry.startswith("http:"):
            method, _, path = entry[5:].partition(" ")
            logical = routes.get((method, path))
            if logical is None:
                failures.append(f"route {method} {path} (tests of {rec['package']}) is no HttpApi event of the template")
                continue
        elif entry.startswith("fn:"):
            logical = by_crate.get(entry[3:])
            if logical is None:
                failures.append(f"entry {entry} (tests of {rec['package']}) names no function crate with a function "
                                "resource (a consumer's `function()` names its crate)")
                continue
        else:
            failures.append(f"unknown entry {entry}")
            continue
        used[logical].append(rec)
    for logical, fn in sorted(functions.items()):
        problems = []
        gs = grants(logical, fn, resources, problems)
        failures += problems
        missing = {}
        for rec in used[logical]:
            key = record_key(rec, fn)
            shape = rec.get("key")
            if not any(g.allows(rec["action"], key, shape) for g in gs):
                missing.setdefault((rec["action"], key), []).append(rec)
        for (action, key), recs in missing.items():
            shapes = sorted({r["key"] for r in recs if r.get("key")})
            keys = f" (partition keys {', '.join(shapes[:3])}{', …' if len(shapes) > 3 else ''})" if shapes else ""
            entries = sorted({f"{r['entry']} (tests of {r['package']})" for r in recs})
            more = f" and {len(entries) - 3} more" if len(entries) > 3 else ""
            failures.append(f"{logical}: not granted {action} on {show(key)}{keys}, "
                            f"used by {'; '.join(entries[:3])}{more}")
        failure_queues = on_failure_queues(fn)
        mine = [(r["action"], record_key(r, fn), r.get("key")) for r in used[logical]]
        for g in gs:
            if g.key[0] == "queue" and g.key[1] in failure_queues:
                continue  # Lambda sends failed batches there with the function's role
            if (logical, g.action, show(g.key)) in allowed_unused:
                continue
            if not any(g.allows(*u) for u in mine):
                failures.append(f"{logical}: grants {g.label()}, which no test used "
                                "(test the path, or say in ALLOWED_UNUSED why none can)")
        # A leading-key pattern of a statement: used by one of its actions.
        done = set()
        for g in gs:
            for pattern in g.leading or ():
                if (g.statement, g.key, pattern) in done:
                    continue
                done.add((g.statement, g.key, pattern))
                peers = [h for h in gs if h.statement == g.statement and h.key == g.key]
                if any((logical, h.action, show(h.key)) in allowed_unused for h in peers):
                    continue
                one = [Grant(h.action, h.key, (pattern,), h.where) for h in peers]
                if not any(p.allows(*u) for p in one for u in mine):
                    actions = "/".join(sorted({h.action for h in peers}))
                    failures.append(f"{logical}: grants {actions} on {show(g.key)} for keys {pattern}, "
                                    "which no test used (test the path, or say in ALLOWED_UNUSED why none can)")
    for (logical, action, res) in allowed_unused:
        if logical not in functions:
            failures.append(f"ALLOWED_UNUSED names {logical}, no function of the template")
    return failures


def read_records(directory):
    out = []
    for p in sorted(Path(directory).glob("*.jsonl")):
        for line in p.read_text().splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def main():
    from cfnlint.decode import decode

    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target/actions"
    template, matches = decode(str(ROOT / "infra/template.yaml"))
    if template is None:
        print(matches)
        sys.exit(1)
    records = read_records(directory)
    crates = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "Cargo.toml").exists())
    if not any(r.get("package") in crates for r in records):
        print(f"permissions: no records of the function crates' tests in {directory} "
              "(run cargo test with COMMUNITY_RECORD_ACTIONS set to it)")
        sys.exit(1)
    failures = check(template, records, crates)
    for f in failures:
        print(f"FAIL {f}")
    mine = [r for r in records if r.get("package") in crates]
    print(f"permissions: {len(mine)} records of {len(crates)} function crates' tests; {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
