#!/usr/bin/env bash
# Usage: scripts/template-mutants.sh [--keep]
#
# Shows that the template's checks catch what they claim. Each mutant is one small breakage of
# a copy of template.yaml (a wildcard resource, a managed policy, a public queue policy, a
# function URL, a secret on the wrong function, an unencrypted queue, a missing alarm, ...)
# with what must catch it: either a text that tests/it/template.rs must fail with, or the id of
# one of the custom cfn-lint rules of scripts/cfn-rules/ (E9xxx) that must report it.
# The template tests are built once; then the checks of the template under test
# (`template::real_template::`) run against each copy (SPARKBRIDGE_TEMPLATE=<copy>), and one cfn-lint
# run (with the custom rules) lints every copy. A mutant counts as caught when the tests fail
# with its text, or cfn-lint reports its rule id on that copy (a failure for another
# reason, say a copy that no longer parses, does not count). The unmutated template must pass
# every test and cfn-lint first.
# cfn-lint is $CFN_LINT when set, else the one on PATH (.ci/run puts .venv/bin first).
# Prints `mutants=N caught=N`; exits non-zero if any mutant survives or the template fails.
# --keep leaves the copies and logs in the work directory it prints.
set -euo pipefail
cd "$(dirname "$0")/.."

keep=false
[ "${1:-}" = "--keep" ] && keep=true
work="$(mktemp -d "${TMPDIR:-/tmp}/template-mutants.XXXXXX")"
if ! $keep; then trap 'rm -rf "$work"' EXIT; fi

# Build the test binary that holds the template tests (tests/it/main.rs, module `template`)
# once and find it. --workspace --locked, as `make test` builds it, so after `make test` (CI)
# this builds nothing: `-p sparkbridge-tests` would resolve features for that package alone
# and rebuild the dependencies. The library (shared/) has a test binary named `it` too: the one wanted is
# found by its source file. It holds other modules (some need moto): every run below names
# the template module's tests.
bin="$(cargo test --workspace --locked --test it --no-run --message-format=json 2>"$work/build.log" |
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("src_path") == sys.argv[1] \
            and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])
' "$PWD/tests/it/main.rs")" || true
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  cat "$work/build.log" >&2
  echo "template-mutants: could not build the template tests" >&2
  exit 1
fi

# The unmutated template passes every test of the template module, and cfn-lint with the custom rules.
if ! SPARKBRIDGE_TEMPLATE="$PWD/template.yaml" "$bin" template:: --test-threads=2 >"$work/baseline.log" 2>&1; then
  cat "$work/baseline.log" >&2
  echo "template-mutants: the unmutated template.yaml fails its tests" >&2
  exit 1
fi
cfn_lint="${CFN_LINT:-cfn-lint}"
if ! command -v "$cfn_lint" >/dev/null; then
  echo "template-mutants: no $cfn_lint (scripts/setup.sh deploy installs it into .venv; or set CFN_LINT)" >&2
  exit 1
fi
lint() { "$cfn_lint" --append-rules scripts/cfn-rules --format parseable -- "$@"; }
if ! lint template.yaml >"$work/baseline-lint.log" 2>&1; then
  cat "$work/baseline-lint.log" >&2
  echo "template-mutants: the unmutated template.yaml fails cfn-lint" >&2
  exit 1
fi

# Write the mutants: <n>-<name>.yaml and <n>-<name>.expect (a text the test failure must
# contain, or a custom cfn-lint rule id, E9xxx, that must report the copy).
python3 - "$work" template.yaml <<'PY'
import re
import sys

work, source = sys.argv[1], sys.argv[2]
text = open(source).read()


def block(t, name):
    """Span of the top-level entry `  name:` (a parameter, resource or output), up to the
    next line indented two spaces or less."""
    m = re.search(r"^  " + re.escape(name) + r":\n", t, re.M)
    if not m:
        raise SystemExit(f"mutant setup: no entry {name}")
    nxt = re.compile(r"^(?:  \S|\S)", re.M).search(t, m.end())
    return m.start(), (nxt.start() if nxt else len(t))


def edit(t, old, new, within=None):
    """Replaces the one occurrence of `old` (in entry `within`, or in the whole file)."""
    start, end = block(t, within) if within else (0, len(t))
    part = t[start:end]
    if part.count(old) != 1:
        raise SystemExit(f"mutant setup: {old!r} occurs {part.count(old)} times in {within or 'the file'}")
    return t[:start] + part.replace(old, new) + t[end:]


def drop(t, name):
    """Removes a whole top-level entry."""
    start, end = block(t, name)
    return t[:start] + t[end:]


def add_resource(t, yaml):
    return edit(t, "\nOutputs:\n", "\n" + yaml + "\nOutputs:\n")


M = []  # (name, expected text in the test failure or cfn-lint rule id, mutated template)


def mutant(name, expect, mutated):
    if mutated == text:
        raise SystemExit(f"mutant setup: {name} changes nothing")
    M.append((name, expect, mutated))


# ---- IAM: actions and resources of each role ------------------------------------------
mutant("worker-state-on-star", "WorkerRole: grant dynamodb:GetItem on * is not in the allow-list",
       edit(text, "Resource: !GetAtt StateTable.Arn", 'Resource: "*"', "WorkerRole"))
mutant("worker-state-on-every-table", "WorkerRole: missing grant dynamodb:PutItem",
       edit(text, "Resource: !GetAtt StateTable.Arn", "Resource: !Sub arn:aws:dynamodb:*:*:table/*", "WorkerRole"))
mutant("worker-queries-again", "WorkerRole: grant dynamodb:Query on",
       edit(text, "                  - dynamodb:DeleteItem\n",
            "                  - dynamodb:DeleteItem\n                  - dynamodb:Query\n", "WorkerRole"))
mutant("screener-query-on-every-index", "ScreenerRole: missing grant dynamodb:Query",
       edit(text, "${StateTable.Arn}/index/by_deadline", "${StateTable.Arn}/index/*", "ScreenerRole"))
mutant("ingest-may-read-the-queue", "IngestSparkloopRole: grant sqs:ReceiveMessage",
       edit(text, "Action: sqs:SendMessage", "Action: [sqs:SendMessage, sqs:ReceiveMessage]", "IngestSparkloopRole"))
mutant("worker-writes-another-log-group", "E9105",
       edit(text, "Resource: !GetAtt WorkerLogGroup.Arn", "Resource: !GetAtt IngestLoopsLogGroup.Arn", "WorkerRole"))
mutant("role-assumable-by-anyone", "E9104",
       edit(text, "Principal: { Service: lambda.amazonaws.com }", 'Principal: { AWS: "*" }', "IngestEsputnikRole"))
mutant("managed-policy", "E9103",
       edit(text, "    Properties:\n",
            "    Properties:\n      ManagedPolicyArns: [arn:aws:iam::aws:policy/AdministratorAccess]\n",
            "ReconcilerRole"))
mutant("role-policy-resource", "E9103",
       add_resource(text, """  WorkerExtraPolicy:
    Type: AWS::IAM::RolePolicy
    Properties:
      RoleName: !Ref WorkerRole
      PolicyName: more
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: dynamodb:Scan
            Resource: !GetAtt StateTable.Arn
"""))
mutant("iam-policy-resource", "E9103",
       add_resource(text, """  IngestExtraPolicy:
    Type: AWS::IAM::Policy
    Properties:
      PolicyName: more
      Roles: [!Ref IngestLoopsRole]
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: sqs:ReceiveMessage
            Resource: !GetAtt EventQueue.Arn
"""))
mutant("secrets-on-a-wildcard", "ReconcilerRole: missing grant secretsmanager:GetSecretValue",
       edit(text, "Resource: !Ref SecretsArn",
            "Resource: !Sub arn:aws:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*", "ReconcilerRole"))
mutant("secrets-under-another-condition", "IngestLoopsRole: missing grant secretsmanager:GetSecretValue",
       edit(text, "          - HasSecretsArn\n", "          - TracingEnabled\n", "IngestLoopsRole"))

# ---- nothing public --------------------------------------------------------------------
mutant("queue-policy-allows-anyone", "E9112",
       edit(text, "                aws:SecureTransport: \"false\"\n",
            "                aws:SecureTransport: \"false\"\n"
            "          - Effect: Allow\n"
            "            Principal: \"*\"\n"
            "            Action: sqs:SendMessage\n"
            "            Resource: !GetAtt EventQueue.Arn\n", "QueuesTlsOnlyPolicy"))
mutant("function-url-auth-none", "E9111",
       edit(text, "      Role: !GetAtt IngestLoopsRole.Arn\n",
            "      Role: !GetAtt IngestLoopsRole.Arn\n      FunctionUrlConfig:\n        AuthType: NONE\n",
            "IngestLoopsFunction"))
mutant("lambda-url-resource", "E9111",
       add_resource(text, """  WorkerUrl:
    Type: AWS::Lambda::Url
    Properties:
      AuthType: NONE
      TargetFunctionArn: !GetAtt WorkerFunction.Arn
"""))

# ---- secrets ---------------------------------------------------------------------------
mutant("api-key-on-ingest", "IngestSparkloopFunction: has SPARKLOOP_API_KEY",
       edit(text, "          SPARKLOOP_WEBHOOK_TOKEN: !Ref SparkloopWebhookToken\n",
            "          SPARKLOOP_WEBHOOK_TOKEN: !Ref SparkloopWebhookToken\n"
            "          SPARKLOOP_API_KEY: !Ref SparkloopApiKey\n", "IngestSparkloopFunction"))
mutant("api-key-on-screener", "ScreenerFunction: has LOOPS_API_KEY",
       edit(text, "          TABLE_NAME: !Ref StateTable\n",
            "          TABLE_NAME: !Ref StateTable\n          LOOPS_API_KEY: !Ref LoopsApiKey\n", "ScreenerFunction"))
mutant("webhook-secret-on-worker", "WorkerFunction: has LOOPS_SIGNING_SECRET",
       edit(text, "          TABLE_NAME: !Ref StateTable\n",
            "          TABLE_NAME: !Ref StateTable\n          LOOPS_SIGNING_SECRET: !Ref LoopsSigningSecret\n",
            "WorkerFunction"))
mutant("secrets-arn-on-screener", "ScreenerFunction: gets SECRETS_ARN but reads no secret",
       edit(text, "          TABLE_NAME: !Ref StateTable\n",
            "          TABLE_NAME: !Ref StateTable\n"
            "          SECRETS_ARN: !If [HasSecretsArn, !Ref SecretsArn, !Ref AWS::NoValue]\n",
            "ScreenerFunction"))

# ---- queues ----------------------------------------------------------------------------
mutant("event-queue-unencrypted", "E9121",
       edit(text, "SqsManagedSseEnabled: true", "SqsManagedSseEnabled: false", "EventQueue"))
mutant("tls-policy-on-one-queue", "E9122",
       edit(text, "        - !Ref DeadLetterQueue\n", "", "QueuesTlsOnlyPolicy"))
mutant("tls-policy-without-condition", "E9122",
       edit(text, "            Condition:\n              Bool:\n                aws:SecureTransport: \"false\"\n", "",
            "QueuesTlsOnlyPolicy"))
mutant("dlq-larger-messages", "DeadLetterQueue: MaximumMessageSize",
       edit(text, "MaximumMessageSize: 262144", "MaximumMessageSize: 1048576", "DeadLetterQueue"))
mutant("functions-larger-messages", "MAX_MESSAGE_BYTES is",
       edit(text, 'MAX_MESSAGE_BYTES: "262144"', 'MAX_MESSAGE_BYTES: "1048576"'))

# ---- the API ---------------------------------------------------------------------------
mutant("any-route-unthrottled", "RouteSettings has no throttling of its own for",
       edit(text, '        "ANY /webhooks/esputnik":\n          ThrottlingBurstLimit: 10\n          ThrottlingRateLimit: 5\n',
            "", "HttpApi"))
mutant("no-default-throttling", "E9141",
       edit(text, "      DefaultRouteSettings:\n        ThrottlingBurstLimit: 200\n        ThrottlingRateLimit: 100\n",
            "", "HttpApi"))
mutant("no-access-log", "E9142",
       edit(text, "        DestinationArn: !GetAtt ApiAccessLogGroup.Arn\n", "", "HttpApi"))
mutant("access-log-with-query-string", "E9142",
       edit(text, '"path":"$context.path",', '"path":"$context.path","query":"$request.querystring.token",', "HttpApi"))

# ---- the worker, the table, the schedules ----------------------------------------------
mutant("worker-unbounded-concurrency", "ScalingConfig.MaximumConcurrency must be",
       edit(text, "            ScalingConfig:\n              MaximumConcurrency: !Ref WorkerMaxConcurrency\n", "",
            "WorkerFunction"))
mutant("table-deletable", "E9131",
       edit(text, "DeletionProtectionEnabled: true", "DeletionProtectionEnabled: false", "StateTable"))
mutant("table-deleted-with-stack", "E9131",
       edit(text, "    DeletionPolicy: Retain\n", "    DeletionPolicy: Delete\n", "StateTable"))
mutant("screener-schedule-retries", "ScreenerFunction.Hourly: RetryPolicy.MaximumRetryAttempts must be 0",
       edit(text, "            RetryPolicy:\n              MaximumRetryAttempts: 0\n",
            "            RetryPolicy:\n              MaximumRetryAttempts: 2\n", "ScreenerFunction"))
mutant("reconciler-async-retries", "ReconcilerFunction: EventInvokeConfig.MaximumRetryAttempts must be 0",
       edit(text, "      EventInvokeConfig:\n        MaximumRetryAttempts: 0\n", "", "ReconcilerFunction"))
mutant("reconcile-every-few-minutes", "parameter ReconcileSchedule: AllowedPattern admits",
       edit(text, "(1 hour|", "([1-9][0-9]? minutes|1 hour|", "ReconcileSchedule"))
mutant("reconcile-schedule-unchecked", "parameter ReconcileSchedule: no AllowedPattern",
       re.sub(r"(?m)^    AllowedPattern: '\(rate.*\n", "", text, count=1))

# ---- alarms and the dashboard ----------------------------------------------------------
mutant("no-dlq-alarm", "no alarm DeadLetterQueueNotEmptyAlarm",
       drop(text, "DeadLetterQueueNotEmptyAlarm"))
mutant("worker-errors-alarm-tolerates-errors", "WorkerErrorsAlarm: Threshold is 5",
       edit(text, "      Threshold: 0\n", "      Threshold: 5\n", "WorkerErrorsAlarm"))
mutant("auth-alarm-threshold-literal", "AuthFailuresAlarm: Threshold is 20",
       edit(text, "Threshold: !Ref AuthFailuresAlarmThreshold", "Threshold: 20", "AuthFailuresAlarm"))
mutant("dashboard-threshold-literal", "line is at 20.0, alarm AuthFailuresAlarm fires above",
       edit(text, '"value": ${AuthFailuresAlarmThreshold}', '"value": 20', "Dashboard"))
mutant("dashboard-without-reconciler-errors",
       "has no AWS/Lambda Errors row for ReconcilerFunction",
       edit(text, '                  [ "...", "${ReconcilerFunction}", { "label": "reconciler" } ],\n', "",
            "Dashboard"))

# ---- the custom domain -----------------------------------------------------------------
mutant("dns-record-without-zone-condition", "ApiDomainRecord: must be the A alias",
       edit(text, "    Condition: HasHostedZone\n", "", "ApiDomainRecord"))
mutant("domain-accepts-tls-1-0", "E9143",
       edit(text, "SecurityPolicy: TLS_1_2", "SecurityPolicy: TLS_1_0", "ApiDomainName"))
mutant("loops-url-on-the-wrong-path", "output LoopsWebhookUrl",
       edit(text, "      - !Sub https://${DomainName}/webhooks/loops\n",
            "      - !Sub https://${DomainName}/webhooks/sparkloop\n", "LoopsWebhookUrl"))

# ---- the docs agree --------------------------------------------------------------------
mutant("parameter-default-not-documented", "docs/operations.md shows SecretsTtlSecs defaulting to",
       edit(text, "    Default: 300\n", "    Default: 600\n", "SecretsTtlSecs"))

for i, (name, expect, mutated) in enumerate(M, 1):
    base = f"{work}/{i:02d}-{name}"
    open(base + ".yaml", "w").write(mutated)
    open(base + ".expect", "w").write(expect)
PY

# One cfn-lint run, over only the copies a rule must catch (cfn-lint lints each copy in full),
# printing `<copy>:<line>:<col>:<line>:<col>:<rule>:<message>` lines.
by_rule=()
for m in "$work"/*.yaml; do
  grep -Eqx 'E9[0-9]{3}' "${m%.yaml}.expect" && by_rule+=("$m")
done
lint "${by_rule[@]}" >"$work/lint.log" 2>&1 || true

total=0
caught=0
survivors=()
for m in "$work"/*.yaml; do
  name="$(basename "${m%.yaml}")"
  expect="$(cat "${m%.yaml}.expect")"
  log="${m%.yaml}.log"
  total=$((total + 1))
  if [[ "$expect" =~ ^E9[0-9]{3}$ ]]; then
    grep -F -- "$m:" "$work/lint.log" >"$log" || true
    if grep -Eq -- "^[^ ]*:[0-9]+:[0-9]+:[0-9]+:[0-9]+:$expect:" "$log"; then
      caught=$((caught + 1))
      echo "caught   $name ($expect)"
    else
      survivors+=("$name (cfn-lint does not report $expect)")
    fi
  elif SPARKBRIDGE_TEMPLATE="$m" "$bin" template::real_template:: --test-threads=2 >"$log" 2>&1; then
    survivors+=("$name (the tests pass)")
  elif grep -qF -- "$expect" "$log"; then
    caught=$((caught + 1))
    echo "caught   $name"
  else
    survivors+=("$name (the tests fail, but not with: $expect)")
  fi
done

for s in "${survivors[@]}"; do echo "SURVIVED $s"; done
echo "mutants=$total caught=$caught"
$keep && echo "copies and logs: $work"
[ "$caught" -eq "$total" ] && [ "$total" -gt 0 ]
