"""Nothing public: no function URL, no resource policy that allows anyone, and only resource
types that were reviewed for what they expose."""

from __future__ import annotations

import os
import sys

from cfnlint.rules import CloudFormationLintRule, RuleMatch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import is_anyone, props, resources, statements  # noqa: E402


class NoFunctionUrl(CloudFormationLintRule):
    """A function URL bypasses the API in front of the functions (its throttling, its access
    log), whatever its AuthType."""

    id = "E9111"
    shortdesc = "No Lambda function URLs"
    description = "No AWS::Lambda::Url and no FunctionUrlConfig on a SAM function (or in Globals)"
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"
    tags = ["lambda", "public"]

    def match(self, cfn):
        matches = []
        for name, _ in resources(cfn, ("AWS::Lambda::Url",)):
            matches.append(
                RuleMatch(
                    ["Resources", name, "Type"], "AWS::Lambda::Url: a function URL bypasses the API"
                )
            )
        for name, f in resources(cfn, ("AWS::Serverless::Function",)):
            cfg = props(f).get("FunctionUrlConfig")
            if cfg is not None:
                auth = cfg.get("AuthType") if isinstance(cfg, dict) else cfg
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "FunctionUrlConfig"],
                        f"FunctionUrlConfig (AuthType {auth}): a function URL bypasses the API",
                    )
                )
        return matches


class ResourcePolicyNotPublic(CloudFormationLintRule):
    """No resource policy allows anyone."""

    id = "E9112"
    shortdesc = 'No resource policy allows Principal "*"'
    description = (
        'Queue, topic, bucket and secret policies have no Allow for Principal "*" (or '
        '{AWS: "*"}) and no Allow with NotPrincipal; a Lambda permission is not for "*". A '
        'Deny for "*" (such as a TLS-only statement) is fine'
    )
    source_url = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html"
    tags = ["public", "resource-policy"]

    POLICIES = {
        "AWS::SQS::QueuePolicy": "PolicyDocument",
        "AWS::SNS::TopicPolicy": "PolicyDocument",
        "AWS::S3::BucketPolicy": "PolicyDocument",
        "AWS::SecretsManager::ResourcePolicy": "ResourcePolicy",
    }

    def match(self, cfn):
        matches = []
        for name, r in resources(cfn, tuple(self.POLICIES)):
            key = self.POLICIES[r["Type"]]
            for stmt, path in statements(props(r).get(key), ["Resources", name, "Properties", key]):
                if stmt.get("Effect") != "Allow":
                    continue
                if is_anyone(stmt.get("Principal")) or "NotPrincipal" in stmt:
                    matches.append(RuleMatch(path, f"an Allow for anyone: {dict(stmt)!r}"))
        for name, p in resources(cfn, ("AWS::Lambda::Permission",)):
            if props(p).get("Principal") == "*":
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "Principal"],
                        "a Lambda permission for anyone",
                    )
                )
        return matches


class ReviewedResourceTypes(CloudFormationLintRule):
    """A resource type is reviewed for what it exposes (a policy, a URL, a permission) before
    the stack may declare it."""

    id = "E9113"
    shortdesc = "Only reviewed resource types"
    description = (
        "Every resource type is in config `types` (default: the types this stack was reviewed "
        "with); add a type there after reviewing what it exposes"
    )
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-template-resource-type-ref.html"
    tags = ["resources", "review"]

    def __init__(self):
        super().__init__()
        self.config_definition = {
            "types": {
                "default": [
                    "AWS::Serverless::Function",
                    "AWS::Serverless::HttpApi",
                    "AWS::Logs::LogGroup",
                    "AWS::IAM::Role",
                    "AWS::SQS::Queue",
                    "AWS::SQS::QueuePolicy",
                    "AWS::DynamoDB::Table",
                    "AWS::SNS::Topic",
                    "AWS::SNS::Subscription",
                    "AWS::CloudWatch::Alarm",
                    "AWS::CloudWatch::Dashboard",
                    "AWS::ApiGatewayV2::DomainName",
                    "AWS::ApiGatewayV2::ApiMapping",
                    "AWS::Route53::RecordSet",
                    "AWS::Lambda::EventInvokeConfig",
                ],
                "type": "list",
                "itemtype": "string",
            }
        }
        self.configure()

    def match(self, cfn):
        matches = []
        allowed = set(self.config["types"])
        for name, r in cfn.template.get("Resources", {}).items():
            ty = r.get("Type") if isinstance(r, dict) else None
            if ty not in allowed:
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Type"],
                        f"resource type {ty} was not reviewed for this stack (review what it "
                        "exposes, then add it to the rule's `types`)",
                    )
                )
        return matches
