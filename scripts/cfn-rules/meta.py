"""The console's parameter groups."""

from __future__ import annotations

import os
import sys

from cfnlint.rules import CloudFormationLintRule, RuleMatch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import as_list  # noqa: E402


class ParameterGroupsComplete(CloudFormationLintRule):
    id = "E9161"
    shortdesc = "Every parameter is in one parameter group"
    description = (
        "With AWS::CloudFormation::Interface ParameterGroups, every parameter is in exactly one "
        'group (else the console lists it apart, under "Other parameters"), and the groups '
        "name only parameters"
    )
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-cloudformation-interface.html"
    tags = ["parameters", "metadata"]

    def match(self, cfn):
        t = cfn.template
        interface = (t.get("Metadata") or {}).get("AWS::CloudFormation::Interface")
        if not isinstance(interface, dict):
            return []
        path = ["Metadata", "AWS::CloudFormation::Interface", "ParameterGroups"]
        seen = {}
        for group in as_list(interface.get("ParameterGroups")):
            if isinstance(group, dict):
                for name in as_list(group.get("Parameters")):
                    seen[name] = seen.get(name, 0) + 1
        params = t.get("Parameters") or {}
        matches = []
        for name in params:
            if seen.get(name, 0) != 1:
                matches.append(
                    RuleMatch(
                        ["Parameters", name],
                        f"parameter {name} is in {seen.get(name, 0)} ParameterGroups, not 1",
                    )
                )
        for name in seen:
            if name not in params:
                matches.append(RuleMatch(path, f"ParameterGroups name {name}, not a parameter"))
        return matches
