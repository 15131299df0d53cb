"""Least privilege: identity policies, roles and the functions that run with them."""

from __future__ import annotations

import os
import sys

from cfnlint.rules import CloudFormationLintRule, RuleMatch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    actions,
    as_list,
    functions,
    getatt,
    identity_statements,
    literals,
    props,
    resources,
    statements,
    text,
)


class IamNoWildcardActions(CloudFormationLintRule):
    """An Allow grants named actions only."""

    id = "E9101"
    shortdesc = "No wildcard or negated actions in an Allow"
    description = (
        "An Allow statement names each action: no `*` in an action, and no NotAction, "
        "NotResource or NotPrincipal (they grant everything else)"
    )
    source_url = (
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#grant-least-privilege"
    )
    tags = ["iam", "least-privilege"]

    def match(self, cfn):
        matches = []
        for _, stmt, path in identity_statements(cfn):
            if stmt.get("Effect") != "Allow":
                continue
            for key in ("NotAction", "NotResource", "NotPrincipal"):
                if key in stmt:
                    matches.append(
                        RuleMatch(path + [key], f"Allow with {key} grants everything else")
                    )
            if not actions(stmt) and "NotAction" not in stmt:
                matches.append(RuleMatch(path, "Allow statement without Action"))
            for action in actions(stmt):
                if "*" in action:
                    matches.append(RuleMatch(path + ["Action"], f"wildcard action {action!r}"))
        return matches


class IamNoWildcardResources(CloudFormationLintRule):
    """An Allow names its resources; only actions that AWS offers on no resource type may
    have Resource "*"."""

    id = "E9102"
    shortdesc = "No wildcard resources in an Allow"
    description = (
        "An Allow statement's resources contain no `*` (not `*`, not `arn:aws:dynamodb:*:*:table/*`, "
        'not `${Table.Arn}/index/*`), except for actions that only accept Resource "*" '
        "(config `star_only_actions`, default: the X-Ray trace upload actions)"
    )
    source_url = (
        "https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html"
    )
    tags = ["iam", "least-privilege"]

    def __init__(self):
        super().__init__()
        self.config_definition = {
            "star_only_actions": {
                "default": [
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                    "xray:GetSamplingStatisticSummaries",
                ],
                "type": "list",
                "itemtype": "string",
            }
        }
        self.configure()

    def match(self, cfn):
        matches = []
        star_only = set(self.config["star_only_actions"])
        for _, stmt, path in identity_statements(cfn):
            if stmt.get("Effect") != "Allow" or "NotResource" in stmt:
                continue
            if "Resource" not in stmt:
                matches.append(RuleMatch(path, "Allow statement without Resource"))
                continue
            acts = actions(stmt)
            if acts and all(a in star_only for a in acts):
                continue
            for i, resource in enumerate(as_list(stmt.get("Resource"))):
                wild = [s for s in literals(resource) if "*" in s]
                if wild:
                    matches.append(
                        RuleMatch(
                            path + ["Resource"],
                            f"Resource {wild[0]!r} for {acts}: name the resources",
                        )
                    )
        return matches


class IamInlineRolePoliciesOnly(CloudFormationLintRule):
    """Every permission is an inline policy of a role of this template."""

    id = "E9103"
    shortdesc = "Inline role policies only"
    description = (
        "No AWS::IAM policy, user or group resources, no ManagedPolicyArns (AWS managed policies "
        'use Resource "*"), and every SAM function names its Role instead of SAM Policies '
        "(SAM would create a role with AWSLambdaBasicExecutionRole)"
    )
    source_url = (
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_managed-vs-inline.html"
    )
    tags = ["iam", "least-privilege"]

    FORBIDDEN = (
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::IAM::RolePolicy",
        "AWS::IAM::UserPolicy",
        "AWS::IAM::GroupPolicy",
        "AWS::IAM::User",
        "AWS::IAM::Group",
        "AWS::IAM::AccessKey",
    )

    def match(self, cfn):
        matches = []
        for name, resource in resources(cfn, self.FORBIDDEN):
            matches.append(
                RuleMatch(
                    ["Resources", name, "Type"],
                    f"{resource['Type']} is not allowed: a role's permissions are its inline Policies",
                )
            )
        for name, role in resources(cfn, ("AWS::IAM::Role",)):
            if as_list(props(role).get("ManagedPolicyArns")):
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "ManagedPolicyArns"],
                        'ManagedPolicyArns: AWS managed policies use Resource "*"; use inline Policies',
                    )
                )
        for name, f in resources(cfn, ("AWS::Serverless::Function",)):
            p = props(f)
            if "Policies" in p:
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "Policies"],
                        'SAM Policies: SAM creates a role with managed policies on Resource "*"; '
                        "give the function its own Role with inline Policies",
                    )
                )
            if "Role" not in p:
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties"],
                        "no Role: SAM creates one with AWSLambdaBasicExecutionRole",
                    )
                )
        return matches


class IamTrustedServiceOnly(CloudFormationLintRule):
    """A role may be assumed only by the services it is for."""

    id = "E9104"
    shortdesc = "Roles trust only the allowed service principals"
    description = (
        "Every Allow of a role's AssumeRolePolicyDocument names service principals only, each in "
        "config `services` (default lambda.amazonaws.com): no account, user, `*` or federation"
    )
    source_url = "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_terms-and-concepts.html"
    tags = ["iam", "least-privilege"]

    def __init__(self):
        super().__init__()
        self.config_definition = {
            "services": {"default": ["lambda.amazonaws.com"], "type": "list", "itemtype": "string"}
        }
        self.configure()

    def match(self, cfn):
        matches = []
        allowed = set(self.config["services"])
        for name, role in resources(cfn, ("AWS::IAM::Role",)):
            base = ["Resources", name, "Properties", "AssumeRolePolicyDocument"]
            for stmt, path in statements(props(role).get("AssumeRolePolicyDocument"), base):
                if stmt.get("Effect") != "Allow":
                    continue
                principal = stmt.get("Principal")
                services = as_list(principal.get("Service")) if isinstance(principal, dict) else []
                ok = (
                    isinstance(principal, dict)
                    and set(principal) == {"Service"}
                    and services
                    and all(s in allowed for s in services)
                    and "NotPrincipal" not in stmt
                )
                if not ok:
                    matches.append(
                        RuleMatch(
                            path + ["Principal"],
                            f"may be assumed by {principal!r}, not only {sorted(allowed)}",
                        )
                    )
        return matches


class LambdaRolePerFunction(CloudFormationLintRule):
    """Each function has a role of its own, which writes only the function's own log group."""

    id = "E9105"
    shortdesc = "One role per function, writing only its own log group"
    description = (
        "Each function's Role is !GetAtt <a role of this template>.Arn used by no other function; "
        "the function has a log group of its own in the template (/aws/lambda/<FunctionName>, "
        "or its LoggingConfig.LogGroup), and the role's logs: actions are on that log group only"
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html"
    tags = ["iam", "lambda", "least-privilege"]

    @staticmethod
    def _own_log_group(cfn, f):
        p = props(f)
        configured = (
            (p.get("LoggingConfig") or {}).get("LogGroup")
            if isinstance(p.get("LoggingConfig"), dict)
            else None
        )
        groups = dict(resources(cfn, ("AWS::Logs::LogGroup",)))
        if isinstance(configured, dict) and configured.get("Ref") in groups:
            return configured["Ref"]
        name = text(p.get("FunctionName"))
        if name is None:
            return None
        want = f"/aws/lambda/{name}"
        for gid, g in groups.items():
            if text(props(g).get("LogGroupName")) == want:
                return gid
        return None

    def match(self, cfn):
        matches = []
        roles = dict(resources(cfn, ("AWS::IAM::Role",)))
        users = {}
        for fid, f in functions(cfn):
            role_path = ["Resources", fid, "Properties", "Role"]
            target = getatt(props(f).get("Role"))
            if not target or target[1] != "Arn" or target[0] not in roles:
                if "Role" in props(f):
                    matches.append(
                        RuleMatch(role_path, "Role must be !GetAtt <a role of this template>.Arn")
                    )
                continue
            rid = target[0]
            if rid in users:
                matches.append(
                    RuleMatch(
                        role_path, f"role {rid} is also {users[rid]}'s: one role per function"
                    )
                )
                continue
            users[rid] = fid
            own = self._own_log_group(cfn, f)
            if own is None:
                matches.append(
                    RuleMatch(
                        ["Resources", fid, "Properties"],
                        "no AWS::Logs::LogGroup of its own in the template (name it "
                        "/aws/lambda/<FunctionName>, with FunctionName a literal or !Sub)",
                    )
                )
                continue
            for _, stmt, path in identity_statements(cfn):
                if path[1] != rid or stmt.get("Effect") != "Allow":
                    continue
                if not any(a.startswith("logs:") for a in actions(stmt)):
                    continue
                for r in as_list(stmt.get("Resource")):
                    if getatt(r) != (own, "Arn"):
                        matches.append(
                            RuleMatch(
                                path + ["Resource"],
                                f"logs: actions on {r!r}, not the function {fid}'s own log group {own}",
                            )
                        )
        return matches
