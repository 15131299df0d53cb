"""Queues: encrypted, TLS only, a dead-letter queue behind each, and their Lambda consumers
set up as AWS advises."""

from __future__ import annotations

import os
import sys

from cfnlint.rules import CloudFormationLintRule, RuleMatch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    as_list,
    function_timeout,
    getatt,
    is_anyone,
    number,
    props,
    ref,
    resources,
    sqs_event_sources,
    statements,
    truthy,
)

# SQS defaults when the property is not set.
DEFAULT_RETENTION = 345_600.0
DEFAULT_VISIBILITY = 30.0
MAX_RETENTION = 1_209_600.0


class SqsEncrypted(CloudFormationLintRule):
    id = "E9121"
    shortdesc = "Queues are encrypted at rest"
    description = "Every AWS::SQS::Queue has SqsManagedSseEnabled: true or a KmsMasterKeyId"
    source_url = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-server-side-encryption.html"
    tags = ["sqs", "encryption"]

    def match(self, cfn):
        matches = []
        for name, q in resources(cfn, ("AWS::SQS::Queue",)):
            p = props(q)
            if not truthy(p.get("SqsManagedSseEnabled")) and "KmsMasterKeyId" not in p:
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties"],
                        "not encrypted at rest (SqsManagedSseEnabled: true, or KmsMasterKeyId)",
                    )
                )
        return matches


def is_tls_only_deny(stmt: dict) -> bool:
    """Deny every SQS action to anyone when aws:SecureTransport is false, and nothing else."""
    cond = stmt.get("Condition")
    bool_cond = cond.get("Bool") if isinstance(cond, dict) else None
    secure = bool_cond.get("aws:SecureTransport") if isinstance(bool_cond, dict) else None
    return (
        stmt.get("Effect") == "Deny"
        and is_anyone(stmt.get("Principal"))
        and any(a in ("sqs:*", "*") for a in as_list(stmt.get("Action")))
        and (secure is False or secure == "false")
        and len(cond) == 1
        and len(bool_cond) == 1
    )


class SqsTlsOnly(CloudFormationLintRule):
    id = "E9122"
    shortdesc = "Queues refuse plain HTTP"
    description = (
        "Every AWS::SQS::Queue is in the Queues of a queue policy with a statement that denies "
        'sqs:* to "*" on that queue when aws:SecureTransport is false'
    )
    source_url = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-security-best-practices.html"
    tags = ["sqs", "encryption"]

    def match(self, cfn):
        matches = []
        policies = [props(p) for _, p in resources(cfn, ("AWS::SQS::QueuePolicy",))]
        for name, _ in resources(cfn, ("AWS::SQS::Queue",)):
            covered = any(
                name in [ref(q) for q in as_list(p.get("Queues"))]
                and any(
                    is_tls_only_deny(s)
                    and (name, "Arn") in [getatt(r) for r in as_list(s.get("Resource"))]
                    for s, _ in statements(p.get("PolicyDocument"), [])
                )
                for p in policies
            )
            if not covered:
                matches.append(
                    RuleMatch(
                        ["Resources", name],
                        'no TLS-only queue policy (Deny sqs:* to "*" on this queue when '
                        "aws:SecureTransport is false)",
                    )
                )
        return matches


class SqsDeadLetterQueue(CloudFormationLintRule):
    id = "E9123"
    shortdesc = "Every queue has a dead-letter queue that outlives its messages"
    description = (
        "Every AWS::SQS::Queue that is not itself a dead-letter queue redrives (deadLetterTargetArn "
        "!GetAtt <a queue of this template>.Arn, with a maxReceiveCount) to a queue that keeps "
        "messages 14 days, at least as long as the source queue (retention counts from the "
        "first enqueue)"
    )
    source_url = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html"
    tags = ["sqs"]

    def match(self, cfn):
        matches = []
        queues = dict(resources(cfn, ("AWS::SQS::Queue",)))
        sources = {}
        for name, q in queues.items():
            redrive = props(q).get("RedrivePolicy")
            target = (
                getatt(redrive.get("deadLetterTargetArn")) if isinstance(redrive, dict) else None
            )
            if target and target[1] == "Arn" and target[0] in queues:
                sources.setdefault(target[0], []).append(name)
        for name, q in queues.items():
            if name in sources:
                continue
            path = ["Resources", name, "Properties"]
            redrive = props(q).get("RedrivePolicy")
            if not isinstance(redrive, dict):
                matches.append(
                    RuleMatch(
                        path,
                        "no RedrivePolicy: a message that always fails is retried until it expires",
                    )
                )
                continue
            target = getatt(redrive.get("deadLetterTargetArn"))
            if not target or target[1] != "Arn" or target[0] not in queues:
                matches.append(
                    RuleMatch(
                        path + ["RedrivePolicy"],
                        "deadLetterTargetArn must be !GetAtt <a queue of this template>.Arn",
                    )
                )
            if "maxReceiveCount" not in redrive:
                matches.append(
                    RuleMatch(path + ["RedrivePolicy"], "RedrivePolicy without maxReceiveCount")
                )
        for dlq, srcs in sources.items():
            retention = number(props(queues[dlq]).get("MessageRetentionPeriod"))
            path = ["Resources", dlq, "Properties"]
            if retention != MAX_RETENTION:
                matches.append(
                    RuleMatch(
                        path,
                        f"dead-letter queue MessageRetentionPeriod must be {int(MAX_RETENTION)} (14 days), got {retention}",
                    )
                )
            for src in srcs:
                src_retention = number(props(queues[src]).get("MessageRetentionPeriod"))
                src_retention = DEFAULT_RETENTION if src_retention is None else src_retention
                if (retention or DEFAULT_RETENTION) < src_retention:
                    matches.append(
                        RuleMatch(path, f"keeps messages for less time than its source queue {src}")
                    )
        return matches


class SqsEventReportsBatchItemFailures(CloudFormationLintRule):
    id = "E9124"
    shortdesc = "SQS event sources report batch item failures"
    description = (
        "Every SQS event source (a SAM SQS event, an event source mapping) has FunctionResponseTypes "
        "[ReportBatchItemFailures]: else one failed record retries the whole batch"
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html"
    tags = ["sqs", "lambda"]

    def match(self, cfn):
        matches = []
        for fid, _, p, path in sqs_event_sources(cfn):
            if "ReportBatchItemFailures" not in as_list(p.get("FunctionResponseTypes")):
                matches.append(
                    RuleMatch(
                        path,
                        f"{fid}: SQS event source without FunctionResponseTypes: [ReportBatchItemFailures]",
                    )
                )
        return matches


class SqsVisibilityTimeout(CloudFormationLintRule):
    id = "E9125"
    shortdesc = "Queue visibility timeout is six times its consumer's timeout"
    description = (
        "A queue that a function consumes has a VisibilityTimeout of at least 6 x the function's "
        "Timeout (AWS guidance: room for retries of throttled invocations)"
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html"
    tags = ["sqs", "lambda"]

    def match(self, cfn):
        matches = []
        template_resources = cfn.template.get("Resources", {})
        for fid, qid, _, _ in sqs_event_sources(cfn):
            f = template_resources.get(fid)
            if not isinstance(f, dict):
                continue
            timeout = function_timeout(f)
            visibility = number(props(template_resources[qid]).get("VisibilityTimeout"))
            visibility = DEFAULT_VISIBILITY if visibility is None else visibility
            if visibility < 6 * timeout:
                matches.append(
                    RuleMatch(
                        ["Resources", qid, "Properties"],
                        f"VisibilityTimeout {visibility:g} < 6 x {fid} Timeout {timeout:g}",
                    )
                )
        return matches
