"""Stored data: tables kept and protected, logs kept for a set time."""

from __future__ import annotations

import os
import sys

from cfnlint.rules import CloudFormationLintRule, RuleMatch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import props, resources, truthy  # noqa: E402


class DynamoDbTableProtected(CloudFormationLintRule):
    id = "E9131"
    shortdesc = "DynamoDB tables survive the stack and can be restored"
    description = (
        "Every AWS::DynamoDB::Table has DeletionPolicy and UpdateReplacePolicy Retain, "
        "DeletionProtectionEnabled: true (DeleteTable is refused to anyone), point-in-time "
        "recovery and SSESpecification.SSEEnabled: true"
    )
    source_url = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithTables.Basics.html#WorkingWithTables.Basics.DeletionProtection"
    tags = ["dynamodb", "data"]

    def match(self, cfn):
        matches = []
        for name, table in resources(cfn, ("AWS::DynamoDB::Table",)):
            base = ["Resources", name]
            for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
                if table.get(policy) != "Retain":
                    matches.append(
                        RuleMatch(base, f"{policy} must be Retain, got {table.get(policy)}")
                    )
            p = props(table)
            path = base + ["Properties"]
            if (
                p.get("DeletionProtectionEnabled") is not True
                and p.get("DeletionProtectionEnabled") != "true"
            ):
                matches.append(RuleMatch(path, "DeletionProtectionEnabled must be true"))
            pitr = p.get("PointInTimeRecoverySpecification")
            if not (isinstance(pitr, dict) and truthy(pitr.get("PointInTimeRecoveryEnabled"))):
                matches.append(RuleMatch(path, "point-in-time recovery must be enabled"))
            sse = p.get("SSESpecification")
            if not (isinstance(sse, dict) and truthy(sse.get("SSEEnabled"))):
                matches.append(RuleMatch(path, "SSESpecification.SSEEnabled must be true"))
        return matches


class LogGroupRetention(CloudFormationLintRule):
    id = "E9132"
    shortdesc = "Log groups have a retention"
    description = (
        "Every AWS::Logs::LogGroup sets RetentionInDays (else logs are kept, and paid for, forever)"
    )
    source_url = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/Working-with-log-groups-and-streams.html#SettingLogRetention"
    tags = ["logs"]

    def match(self, cfn):
        return [
            RuleMatch(
                ["Resources", name, "Properties"], "no RetentionInDays: the logs are kept forever"
            )
            for name, group in resources(cfn, ("AWS::Logs::LogGroup",))
            if props(group).get("RetentionInDays") is None
        ]
