"""No plain-text secrets: credentials are NoEcho parameters, never literals, never in every
function's environment or in an output."""

from __future__ import annotations

import os
import re
import sys

from cfnlint.rules import CloudFormationLintRule, RuleMatch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import is_secret_name, literals, ref, resources, truthy  # noqa: E402

# Credential formats: Standard Webhooks / Stripe secrets, AWS access keys, PEM private keys.
KNOWN_PREFIXES = ("whsec_", "sk_live_", "sk_test_", "-----BEGIN", "AKIA", "ASIA")
TOKEN_LIKE = re.compile(r"^[A-Za-z0-9+/=_-]{20,}$")
# A credential inside a longer string (a description, a !Sub).
EMBEDDED = re.compile(r"(whsec_|sk_live_)[A-Za-z0-9+/=]{16,}|PRIVATE KEY-----")


def looks_like_secret(s: str) -> bool:
    """A known credential prefix, or a long token of letters and digits."""
    s = s.strip()
    if s.startswith(KNOWN_PREFIXES):
        return True
    return bool(TOKEN_LIKE.match(s)) and any(c.isdigit() for c in s) and any(c.isalpha() for c in s)


def secret_parameters(cfn) -> list[str]:
    return [n for n in cfn.template.get("Parameters", {}) if is_secret_name(n)]


class SecretParameterNoEcho(CloudFormationLintRule):
    id = "E9151"
    shortdesc = "Secret parameters are NoEcho without a default"
    description = (
        "A parameter whose name says it holds a credential (secret, password, token, API key, "
        "user; not an ARN, URL or TTL) is NoEcho: true with no Default but an empty one"
    )
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html"
    tags = ["secrets", "parameters"]

    def match(self, cfn):
        matches = []
        params = cfn.template.get("Parameters", {})
        for name in secret_parameters(cfn):
            p = params[name] if isinstance(params[name], dict) else {}
            if not truthy(p.get("NoEcho")):
                matches.append(
                    RuleMatch(["Parameters", name], "secret-like parameter without NoEcho: true")
                )
            default = p.get("Default")
            if default not in (None, ""):
                matches.append(
                    RuleMatch(
                        ["Parameters", name, "Default"], "secret-like parameter with a Default"
                    )
                )
        return matches


class NoPlainTextSecrets(CloudFormationLintRule):
    id = "E9152"
    shortdesc = "No secret in the template, in every function or in an output"
    description = (
        "No environment variable named like a secret holds a literal, no environment variable "
        "holds a credential-looking literal, no secret parameter is in Globals (every function) "
        "or in an output, and no credential format appears anywhere in the resources"
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-encryption"
    tags = ["secrets"]

    def match(self, cfn):
        matches = []
        t = cfn.template
        secrets = set(secret_parameters(cfn))
        envs = []
        globals_vars = (
            ((t.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
        ).get("Variables")
        if isinstance(globals_vars, dict):
            envs.append((["Globals", "Function", "Environment", "Variables"], globals_vars, True))
        for name, f in resources(cfn, ("AWS::Serverless::Function", "AWS::Lambda::Function")):
            env = ((f.get("Properties") or {}).get("Environment") or {}).get("Variables")
            if isinstance(env, dict):
                envs.append(
                    (["Resources", name, "Properties", "Environment", "Variables"], env, False)
                )
        for path, variables, is_globals in envs:
            for var, value in variables.items():
                at = path + [var]
                if isinstance(value, str) and value and is_secret_name(var):
                    matches.append(RuleMatch(at, f"{var} is a literal; pass a NoEcho parameter"))
                if any(looks_like_secret(s) for s in literals(value)):
                    matches.append(RuleMatch(at, f"{var} holds a secret-looking literal"))
                if is_globals and ref(value) in secrets:
                    matches.append(
                        RuleMatch(at, f"Globals hands secret {ref(value)} to every function")
                    )
        outputs = t.get("Outputs") or {}
        for oname, output in outputs.items():
            named = set()
            for s in literals(output):
                named.update(p for p in secrets if f"${{{p}}}" in s)
            for p in secrets:
                if _refers(output, p):
                    named.add(p)
            for p in sorted(named):
                matches.append(RuleMatch(["Outputs", oname], f"output names secret parameter {p}"))
        for name, resource in (t.get("Resources") or {}).items():
            for s in literals(resource):
                if EMBEDDED.search(s):
                    matches.append(
                        RuleMatch(["Resources", name], f"a secret-looking literal: {s[:12]}...")
                    )
        return matches


def _refers(value, name: str) -> bool:
    if ref(value) == name:
        return True
    if isinstance(value, dict):
        return any(_refers(v, name) for v in value.values())
    if isinstance(value, list):
        return any(_refers(v, name) for v in value)
    return False
