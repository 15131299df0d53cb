"""HTTP APIs: throttled, logged without query strings, TLS 1.2 on custom domains."""

from __future__ import annotations

import json
import os
import sys

from cfnlint.rules import CloudFormationLintRule, RuleMatch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import as_list, getatt, number, props, resources  # noqa: E402

# A SAM HTTP API and the API Gateway v2 stage carry the same stage settings.
STAGES = ("AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Stage")


class HttpApiThrottled(CloudFormationLintRule):
    id = "E9141"
    shortdesc = "HTTP APIs throttle every route"
    description = (
        "Every SAM HttpApi and API Gateway v2 stage has DefaultRouteSettings with a positive "
        "ThrottlingBurstLimit and ThrottlingRateLimit (else a flood uses the account's limits)"
    )
    source_url = (
        "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-throttling.html"
    )
    tags = ["apigateway"]

    def match(self, cfn):
        matches = []
        for name, api in resources(cfn, STAGES):
            default = props(api).get("DefaultRouteSettings")
            default = default if isinstance(default, dict) else {}
            for key in ("ThrottlingBurstLimit", "ThrottlingRateLimit"):
                n = number(default.get(key))
                if n is None or n <= 0:
                    matches.append(
                        RuleMatch(
                            ["Resources", name, "Properties"],
                            f"DefaultRouteSettings needs a positive {key}",
                        )
                    )
        return matches


class HttpApiAccessLog(CloudFormationLintRule):
    id = "E9142"
    shortdesc = "HTTP APIs log each request, without its query string"
    description = (
        "Every SAM HttpApi and API Gateway v2 stage has AccessLogSettings with DestinationArn "
        "!GetAtt <a log group of this template>.Arn and a JSON Format that logs $context.requestId, "
        "$context.status and $context.routeKey, and no query string (a token passed as ?token= "
        "would reach the logs)"
    )
    source_url = "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-logging-variables.html"
    tags = ["apigateway", "logs"]

    FIELDS = ("$context.requestId", "$context.status", "$context.routeKey")

    def match(self, cfn):
        matches = []
        groups = dict(resources(cfn, ("AWS::Logs::LogGroup",)))
        for name, api in resources(cfn, STAGES):
            path = ["Resources", name, "Properties", "AccessLogSettings"]
            log = props(api).get("AccessLogSettings")
            if not isinstance(log, dict):
                matches.append(RuleMatch(path[:-1], "no AccessLogSettings"))
                continue
            target = getatt(log.get("DestinationArn"))
            if not target or target[1] != "Arn" or target[0] not in groups:
                matches.append(
                    RuleMatch(
                        path,
                        "AccessLogSettings.DestinationArn must be !GetAtt <a log group of this template>.Arn",
                    )
                )
            fmt = log.get("Format")
            try:
                parsed = json.loads(fmt) if isinstance(fmt, str) else None
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                matches.append(
                    RuleMatch(path + ["Format"], "AccessLogSettings.Format must be a JSON object")
                )
                continue
            logged = json.dumps(parsed)
            for field in self.FIELDS:
                if field not in logged:
                    matches.append(
                        RuleMatch(path + ["Format"], f"the access log does not log {field}")
                    )
            if "querystring" in logged.lower():
                matches.append(RuleMatch(path + ["Format"], "the access log logs the query string"))
        return matches


class ApiDomainTls12(CloudFormationLintRule):
    id = "E9143"
    shortdesc = "Custom API domains accept TLS 1.2 and later only"
    description = (
        "Every API Gateway custom domain (v2 DomainNameConfigurations, v1 DomainName, a SAM "
        "HttpApi Domain) has SecurityPolicy TLS_1_2"
    )
    source_url = (
        "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-ciphers.html"
    )
    tags = ["apigateway", "tls"]

    def match(self, cfn):
        matches = []
        for name, d in resources(cfn, ("AWS::ApiGatewayV2::DomainName",)):
            path = ["Resources", name, "Properties", "DomainNameConfigurations"]
            configs = as_list(props(d).get("DomainNameConfigurations"))
            if not configs:
                matches.append(
                    RuleMatch(path[:-1], "no DomainNameConfigurations (SecurityPolicy TLS_1_2)")
                )
            for i, c in enumerate(configs):
                if not isinstance(c, dict) or c.get("SecurityPolicy") != "TLS_1_2":
                    policy = c.get("SecurityPolicy") if isinstance(c, dict) else None
                    matches.append(
                        RuleMatch(path + [i], f"SecurityPolicy is {policy}, not TLS_1_2")
                    )
        for name, d in resources(cfn, ("AWS::ApiGateway::DomainName",)):
            if props(d).get("SecurityPolicy") != "TLS_1_2":
                matches.append(
                    RuleMatch(["Resources", name, "Properties"], "SecurityPolicy must be TLS_1_2")
                )
        for name, api in resources(cfn, ("AWS::Serverless::HttpApi", "AWS::Serverless::Api")):
            domain = props(api).get("Domain")
            if isinstance(domain, dict) and domain.get("SecurityPolicy") != "TLS_1_2":
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "Domain"],
                        "Domain.SecurityPolicy must be TLS_1_2",
                    )
                )
        return matches
