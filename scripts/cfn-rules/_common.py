"""Helpers shared by the custom cfn-lint rules of this directory.

cfn-lint loads every `[A-Za-z1-9]*.py` file of an `--append-rules` directory as a module of
its own; this file (leading underscore) is not loaded as rules, and each rule module imports
it by path (`sys.path`), so the helpers are not declared as rules twice.

cfn-lint 1.x does not run the SAM transform: the rules see `AWS::Serverless::*` resources,
with `Globals` already merged into each function, and the short tags (`!Ref`, `!GetAtt`,
`!Sub`, `!If`) in their long forms.
"""

from __future__ import annotations

from typing import Any, Iterator

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")

Path = list


def as_list(value: Any) -> list:
    """A list as it is, nothing for None, else the one value."""
    if isinstance(value, list):
        return list(value)
    if value is None:
        return []
    return [value]


def ref(value: Any) -> str | None:
    """The name in `{"Ref": name}`."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("Ref"), str):
        return value["Ref"]
    return None


def getatt(value: Any) -> tuple[str, str] | None:
    """`(resource, attribute)` of `{"Fn::GetAtt": ...}`, in its list or dotted form."""
    if not isinstance(value, dict) or len(value) != 1 or "Fn::GetAtt" not in value:
        return None
    arg = value["Fn::GetAtt"]
    if isinstance(arg, str) and "." in arg:
        resource, attribute = arg.split(".", 1)
        return resource, attribute
    if isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg):
        return arg[0], arg[1]
    return None


def sub_text(value: Any) -> str | None:
    """The template string of `{"Fn::Sub": ...}`."""
    if not isinstance(value, dict) or "Fn::Sub" not in value:
        return None
    arg = value["Fn::Sub"]
    if isinstance(arg, str):
        return arg
    if isinstance(arg, list) and arg and isinstance(arg[0], str):
        return arg[0]
    return None


def text(value: Any) -> str | None:
    """A literal string, or the template string of a `!Sub`."""
    if isinstance(value, str):
        return value
    return sub_text(value)


def literals(value: Any) -> Iterator[str]:
    """Every literal string inside `value`; the names in `!Ref X` and `!GetAtt X.Y` are not."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from literals(item)
    elif isinstance(value, dict):
        if ref(value) is not None or getatt(value) is not None:
            return
        for item in value.values():
            yield from literals(item)


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def resources(cfn, types) -> Iterator[tuple[str, dict]]:
    """`(logical id, resource)` of every resource of the given types."""
    for name, resource in cfn.template.get("Resources", {}).items():
        if isinstance(resource, dict) and resource.get("Type") in types:
            yield name, resource


def props(resource: dict) -> dict:
    p = resource.get("Properties", {})
    return p if isinstance(p, dict) else {}


def branches(value: Any, path: Path) -> Iterator[tuple[Any, Path]]:
    """The values an `!If` may stand for (each branch, recursively), with their paths;
    `!Ref AWS::NoValue` stands for nothing."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("Fn::If"), list):
        args = value["Fn::If"]
        for i in (1, 2):
            if i < len(args):
                yield from branches(args[i], path + ["Fn::If", i])
        return
    if ref(value) == "AWS::NoValue":
        return
    yield value, path


def statements(document: Any, path: Path) -> Iterator[tuple[dict, Path]]:
    """The statements of a policy document, with their paths."""
    for doc, doc_path in branches(document, path):
        if not isinstance(doc, dict):
            continue
        stmts = doc.get("Statement")
        base = doc_path + ["Statement"]
        if isinstance(stmts, dict):
            candidates = [(stmts, base)]
        else:
            candidates = [(s, base + [i]) for i, s in enumerate(as_list(stmts))]
        for stmt, stmt_path in candidates:
            for s, s_path in branches(stmt, stmt_path):
                if isinstance(s, dict):
                    yield s, s_path


# Identity policies: (resource type, the property holding the policy document)
IDENTITY_POLICY_TYPES = {
    "AWS::IAM::Policy": "PolicyDocument",
    "AWS::IAM::ManagedPolicy": "PolicyDocument",
    "AWS::IAM::RolePolicy": "PolicyDocument",
    "AWS::IAM::UserPolicy": "PolicyDocument",
    "AWS::IAM::GroupPolicy": "PolicyDocument",
}


def identity_statements(cfn) -> Iterator[tuple[str, dict, Path]]:
    """`(logical id, statement, path)` of every identity policy statement: the inline policies
    of roles (through `!If`), and the policy resources."""
    for name, role in resources(cfn, ("AWS::IAM::Role",)):
        base = ["Resources", name, "Properties", "Policies"]
        for i, policy in enumerate(as_list(props(role).get("Policies"))):
            for p, p_path in branches(policy, base + [i]):
                if isinstance(p, dict):
                    for stmt, path in statements(
                        p.get("PolicyDocument"), p_path + ["PolicyDocument"]
                    ):
                        yield name, stmt, path
    for name, resource in resources(cfn, tuple(IDENTITY_POLICY_TYPES)):
        key = IDENTITY_POLICY_TYPES[resource["Type"]]
        base = ["Resources", name, "Properties", key]
        for stmt, path in statements(props(resource).get(key), base):
            yield name, stmt, path


def actions(stmt: dict) -> list[str]:
    return [a for a in as_list(stmt.get("Action")) if isinstance(a, str)]


def is_anyone(principal: Any) -> bool:
    """`"*"` or `{"AWS": "*"}` (alone or in a list)."""
    if principal == "*":
        return True
    return isinstance(principal, dict) and "*" in as_list(principal.get("AWS"))


def functions(cfn) -> Iterator[tuple[str, dict]]:
    yield from resources(cfn, FUNCTION_TYPES)


def function_timeout(function: dict) -> float:
    """The function's Timeout (Globals are merged in), else Lambda's default of 3 s."""
    t = number(props(function).get("Timeout"))
    return 3.0 if t is None else t


def sqs_event_sources(cfn) -> Iterator[tuple[str, str, dict, Path]]:
    """`(function id, queue id, event source properties, path)` of every SQS event source
    whose queue is a queue of this template: the SAM `SQS` events and the event source
    mappings."""
    queues = dict(resources(cfn, ("AWS::SQS::Queue",)))
    for fid, f in resources(cfn, ("AWS::Serverless::Function",)):
        events = props(f).get("Events")
        if not isinstance(events, dict):
            continue
        for ename, event in events.items():
            if not isinstance(event, dict) or event.get("Type") != "SQS":
                continue
            p = event.get("Properties") if isinstance(event.get("Properties"), dict) else {}
            target = getatt(p.get("Queue"))
            if target and target[0] in queues:
                path = ["Resources", fid, "Properties", "Events", ename, "Properties"]
                yield fid, target[0], p, path
    for mid, m in resources(cfn, ("AWS::Lambda::EventSourceMapping",)):
        p = props(m)
        target = getatt(p.get("EventSourceArn"))
        fid = ref(p.get("FunctionName")) or (getatt(p.get("FunctionName")) or (None,))[0]
        if target and target[0] in queues and fid:
            yield fid, target[0], p, ["Resources", mid, "Properties"]


SECRET_WORDS = (
    "secret",
    "password",
    "passwd",
    "token",
    "apikey",
    "privatekey",
    "user",
    "credential",
)
# Where a secret is, or how long it is kept: a setting, not a secret (SecretsArn, SECRETS_TTL_SECS).
NOT_SECRET_SUFFIXES = ("arn", "url", "ttl", "secs", "seconds", "days")


def is_secret_name(name: str) -> bool:
    """A parameter or environment variable name that says it holds a credential."""
    n = name.lower().replace("_", "").replace("-", "")
    if n.endswith(NOT_SECRET_SUFFIXES):
        return False
    return any(w in n for w in SECRET_WORDS)
