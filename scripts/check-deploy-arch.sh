#!/usr/bin/env bash
# Usage: scripts/check-deploy-arch.sh [--self-test]
#
# Refuses a deploy whose built binaries are for another CPU than the stack's functions
# (`make deploy` runs it between `sam build` and `sam deploy`). The stack's architecture is,
# in this order:
#   1. ARCH_OVERRIDE: the Architecture make passes to `sam deploy` (make's ARCH when it is
#      not the default arm64; empty otherwise);
#   2. Architecture=... in samconfig.toml's saved parameter_overrides (what `sam deploy`
#      sends when no override is given);
#   3. the deployed stack's Architecture parameter (what `sam deploy` keeps when neither
#      names it), read with the AWS CLI, or boto3 when there is no CLI;
#   4. the template's default (arm64), when there is no stack yet or it cannot be read.
# The binaries' architecture is the ELF e_machine of every .aws-sam/build/*/bootstrap
# (0xB7 aarch64 = arm64, 0x3E x86_64). Exit 0 when they agree, 1 with a message naming both
# when they do not (or when there is nothing built), 2 on bad usage.
#
# Settings for tests and odd layouts: SAMCONFIG (samconfig.toml), TEMPLATE (template.yaml),
# BUILD_DIR (.aws-sam/build), AWS_CLI (aws; empty: do not look the stack up), CONFIG_ENV
# (default). --self-test runs the decisions against fake files and prints `self-test ok`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

ELF_MACHINES = {0xB7: "arm64", 0x3E: "x86_64"}
ELF_NAMES = {"arm64": "aarch64", "x86_64": "x86-64"}


def load_samconfig(path):
    """The samconfig.toml tables as dicts ({} when the file is absent)."""
    if not os.path.exists(path):
        return {}
    text = open(path, encoding="utf-8").read()
    if tomllib is not None:
        return tomllib.loads(text)
    # Without tomllib: only the key = "string" lines of [env.command.parameters] tables.
    data, table = {}, None
    for line in text.splitlines():
        m = re.match(r"\s*\[([^\]]+)\]\s*$", line)
        if m:
            table = data
            for part in m.group(1).split("."):
                table = table.setdefault(part.strip(), {})
            continue
        m = re.match(r'\s*(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*$', line)
        if m and table is not None:
            table[m.group(1)] = m.group(2).encode().decode("unicode_escape")
    return data


def setting(config, env, key):
    """A `sam deploy` setting: [env.deploy.parameters], else [env.global.parameters]."""
    for command in ("deploy", "global"):
        value = config.get(env, {}).get(command, {}).get("parameters", {}).get(key)
        if value is not None:
            return value
    return None


def parse_overrides(value):
    """parameter_overrides as a dict: a string of Key=Value words (SAM quotes values), a
    list of them, or ParameterKey=K,ParameterValue=V items."""
    items = value if isinstance(value, list) else shlex.split(value)
    out = {}
    for item in items:
        m = re.match(r"ParameterKey=([^,]+),ParameterValue=(.*)$", item)
        if m:
            out[m.group(1)] = m.group(2).strip('"')
            continue
        key, sep, val = item.partition("=")
        if sep:
            out[key.strip()] = val.strip().strip('"')
    return out


def template_default(path):
    text = open(path, encoding="utf-8").read()
    m = re.search(r"^  Architecture:\n((?:    .*\n)+)", text, re.M)
    d = m and re.search(r"^    Default:\s*(\S+)", m.group(1), re.M)
    return d.group(1).strip("\"'") if d else "arm64"


def deployed_arch(aws, stack, region):
    """(architecture, None), or (None, why it is unknown)."""
    if not aws:
        return None, "the stack lookup is off (AWS_CLI is empty)"
    query = "Stacks[0].Parameters[?ParameterKey=='Architecture'].ParameterValue"
    cmd = [aws, "cloudformation", "describe-stacks", "--stack-name", stack,
           "--query", query, "--output", "text"] + (["--region", region] if region else [])
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return deployed_arch_boto3(stack, region)
    except subprocess.TimeoutExpired:
        return None, "aws cloudformation describe-stacks timed out"
    if r.returncode != 0:
        err = (r.stderr.strip().splitlines() or ["failed"])[-1].strip().rstrip(".")
        if "does not exist" in err:
            return None, f"stack {stack} does not exist yet"
        return None, f"aws cloudformation describe-stacks: {err}"
    value = r.stdout.strip()
    if value in ELF_NAMES:
        return value, None
    return None, f"stack {stack} has no Architecture parameter"


def deployed_arch_boto3(stack, region):
    try:
        import boto3
    except ImportError:
        return None, "neither the AWS CLI nor boto3 is installed"
    try:
        client = boto3.client("cloudformation", region_name=region or None)
        params = client.describe_stacks(StackName=stack)["Stacks"][0].get("Parameters", [])
    except Exception as e:  # no credentials, no region, no stack
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "does not exist" in msg:
            return None, f"stack {stack} does not exist yet"
        return None, f"describe-stacks: {msg}"
    for p in params:
        if p.get("ParameterKey") == "Architecture" and p.get("ParameterValue") in ELF_NAMES:
            return p["ParameterValue"], None
    return None, f"stack {stack} has no Architecture parameter"


def stack_arch(env):
    """(architecture, where it comes from, a warning or None)."""
    override = env.get("ARCH_OVERRIDE", "").strip()
    if override:
        return override, f"make ARCH={override}, passed to sam deploy", None
    samconfig = env.get("SAMCONFIG", "samconfig.toml")
    config_env = env.get("CONFIG_ENV", "default")
    config = load_samconfig(samconfig)
    saved = parse_overrides(setting(config, config_env, "parameter_overrides") or "")
    if saved.get("Architecture"):
        return saved["Architecture"], f"{samconfig} parameter_overrides", None
    stack = setting(config, config_env, "stack_name") or "sparkbridge"
    region = setting(config, config_env, "region") or ""
    arch, why = deployed_arch(env.get("AWS_CLI", "aws"), stack, region)
    if arch:
        return arch, f"the deployed stack {stack}'s Architecture parameter", None
    default = template_default(env.get("TEMPLATE", "template.yaml"))
    if "does not exist" in why:
        return default, f"the template default: {why}", None
    warning = f"could not read the deployed stack's Architecture ({why})"
    return default, "the template default", warning


def elf_arch(path):
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return "not an ELF file"
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return ELF_MACHINES.get(machine, f"ELF machine 0x{machine:X}")


def check(env, out=print):
    want, source, warning = stack_arch(env)
    if warning:
        out(f"warning: {warning}; assuming the template default, {want}")
    if want not in ELF_NAMES:
        out(f"refusing to deploy: Architecture {want!r} (from {source}) is neither arm64 nor x86_64")
        return 1
    build = env.get("BUILD_DIR", ".aws-sam/build")
    binaries = {p: elf_arch(p) for p in sorted(glob.glob(os.path.join(build, "*", "bootstrap")))}
    if not binaries:
        out(f"refusing to deploy: no {build}/*/bootstrap; run make build first")
        return 1
    wrong = {p: a for p, a in binaries.items() if a != want}
    if wrong:
        got = sorted(set(wrong.values()))
        names = ", ".join(os.path.relpath(p, build) for p in wrong)
        out(
            f"refusing to deploy: the stack's Architecture is {want} ({ELF_NAMES[want]}), from "
            f"{source}, but {build} holds {' and '.join(got)} binaries ({names}).\n"
            f"  Build and deploy for the stack: make deploy ARCH={want}\n"
            f"  Or, to move the stack to the other architecture: make deploy-guided ARCH=<arch> "
            f"(and answer Architecture with it)"
        )
        return 1
    out(f"architecture check: the stack runs {want} (from {source}), and all "
        f"{len(binaries)} binaries in {build} are {want}")
    return 0


def self_test():
    def elf(path, machine):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + (2).to_bytes(2, "little")
                    + machine.to_bytes(2, "little") + bytes(44))

    with tempfile.TemporaryDirectory() as d:
        template = os.path.join(d, "template.yaml")
        open(template, "w").write("Parameters:\n  Architecture:\n    Type: String\n    Default: arm64\n")
        aws = os.path.join(d, "aws")

        def fake_aws(stdout, code=0, stderr=""):
            open(aws, "w").write(f"#!/bin/sh\nprintf '%s' '{stdout}'\nprintf '%s\\n' '{stderr}' >&2\nexit {code}\n")
            os.chmod(aws, 0o755)

        def samconfig(overrides):
            path = os.path.join(d, f"samconfig-{len(os.listdir(d))}.toml")
            body = '[default.global.parameters]\nstack_name = "sparkbridge"\n'
            body += '[default.deploy.parameters]\nregion = "eu-west-1"\n'
            if overrides is not None:
                body += f"parameter_overrides = {overrides}\n"
            open(path, "w").write(body)
            return path

        def build(*machines):
            b = os.path.join(d, "build-" + "-".join(map(str, machines)))
            for i, m in enumerate(machines):
                elf(os.path.join(b, f"Fn{i}", "bootstrap"), m)
            return b

        arm, x86 = build(0xB7, 0xB7), build(0x3E, 0x3E)
        mixed, empty = build(0xB7, 0x3E), os.path.join(d, "nothing")
        saved_x86 = samconfig(r'"Architecture=\"x86_64\" Esp=\"loops\""')
        cases = [
            # (what, settings, exit code, text in the output)
            ("guided x86_64, then a plain make deploy of arm64 builds",
             dict(SAMCONFIG=saved_x86, BUILD_DIR=arm), 1, "Architecture is x86_64"),
            ("make deploy ARCH=x86_64 of x86_64 builds",
             dict(ARCH_OVERRIDE="x86_64", SAMCONFIG=saved_x86, BUILD_DIR=x86), 0, "all 2 binaries"),
            ("saved x86_64 and x86_64 builds", dict(SAMCONFIG=saved_x86, BUILD_DIR=x86), 0, "x86_64"),
            ("saved as a list", dict(SAMCONFIG=samconfig('["Architecture=x86_64", "Esp=loops"]'),
                                     BUILD_DIR=arm), 1, "samconfig-"),
            ("saved as ParameterKey/ParameterValue",
             dict(SAMCONFIG=samconfig('"ParameterKey=Architecture,ParameterValue=x86_64"'),
                  BUILD_DIR=x86), 0, "x86_64"),
        ]
        no_arch = samconfig('"Esp=loops"')
        fake_aws("x86_64")
        cases += [
            ("nothing saved, the deployed stack is x86_64, arm64 builds",
             dict(SAMCONFIG=no_arch, BUILD_DIR=arm, AWS_CLI=aws), 1, "deployed stack sparkbridge"),
            ("mixed builds", dict(SAMCONFIG=no_arch, BUILD_DIR=mixed, AWS_CLI=aws), 1, "Fn0/bootstrap"),
        ]
        failures = run(cases, template)
        fake_aws("", 255, "An error occurred (ValidationError): Stack with id sparkbridge does not exist")
        later = [
            ("first deploy, no stack, arm64 builds",
             dict(SAMCONFIG=no_arch, BUILD_DIR=arm, AWS_CLI=aws), 0, "template default"),
            ("first deploy, no stack, x86_64 builds",
             dict(SAMCONFIG=no_arch, BUILD_DIR=x86, AWS_CLI=aws), 1, "template default"),
            ("no stack lookup, x86_64 builds",
             dict(SAMCONFIG=os.path.join(d, "absent.toml"), BUILD_DIR=x86, AWS_CLI=""), 1, "arm64"),
            ("nothing built", dict(ARCH_OVERRIDE="arm64", BUILD_DIR=empty), 1, "make build"),
        ]
        failures += run(later, template)
        if failures:
            return 1
        print(f"self-test ok ({len(cases) + len(later)} cases)")
        return 0


def run(cases, template):
    failures = 0
    for what, settings, code, text in cases:
        lines = []
        got = check({"AWS_CLI": "", **settings, "TEMPLATE": template}, out=lines.append)
        if got != code or text not in "\n".join(lines):
            failures += 1
            print(f"self-test FAILED: {what}: exit {got} (want {code}), output {lines!r}")
    return failures


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--self-test"]:
        sys.exit(self_test())
    if args:
        print("usage: scripts/check-deploy-arch.sh [--self-test]", file=sys.stderr)
        sys.exit(2)
    sys.exit(check(dict(os.environ)))
PY
