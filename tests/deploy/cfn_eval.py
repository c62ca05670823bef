"""The value of a CloudFormation template's property, for given parameter values: what
CloudFormation computes when it creates the stack, for the intrinsic functions the shipped
templates use in values the tests evaluate (the launch template's user data).

Written here rather than taken from a library: cfn-lint resolves intrinsic functions only
inside its own rules, and no maintained package evaluates a template for given parameters
without AWS. An unknown function raises, so a template that starts using one fails the test
instead of being evaluated wrongly.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

PSEUDO = {"AWS::Region": "eu-west-1", "AWS::AccountId": "111122223333",
          "AWS::Partition": "aws", "AWS::StackName": "kafka-edge-test",
          "AWS::URLSuffix": "amazonaws.com"}


class Stack:
    """A template with parameter values (defaults filled in) and resource names."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str],
                 resources: Mapping[str, str] | None = None) -> None:
        self.template = template
        declared = template.get("Parameters", {})
        unknown = set(parameters) - set(declared)
        if unknown:
            raise KeyError(f"not parameters of the template: {sorted(unknown)}")
        self.values: dict[str, Any] = {}
        for name, spec in declared.items():
            value = parameters.get(name, spec.get("Default"))
            if value is None:
                raise KeyError(f"parameter {name} has no default: give it")
            _check(name, spec, str(value))
            is_list = spec["Type"].startswith("List<") or spec["Type"] == "CommaDelimitedList"
            self.values[name] = ([v for v in str(value).split(",") if v] if is_list
                                 else str(value))
        self.values.update(PSEUDO)
        self.values.update(resources or {})  # Ref of a resource: its physical name

    def condition(self, name: str) -> bool:
        return bool(self.evaluate(self.template["Conditions"][name]))

    def evaluate(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.evaluate(n) for n in node]
        if not isinstance(node, dict):
            return node
        if len(node) != 1 or not next(iter(node)).startswith(("Fn::", "Ref", "Condition")):
            return {k: self.evaluate(v) for k, v in node.items()}
        (function, arg), = node.items()
        match function:
            case "Ref":
                return self.values[arg]
            case "Fn::Base64":
                return base64.b64encode(str(self.evaluate(arg)).encode()).decode()
            case "Fn::Join":
                return str(arg[0]).join(str(v) for v in self.evaluate(arg[1]))
            case "Fn::Select":
                return self.evaluate(arg[1])[int(self.evaluate(arg[0]))]
            case "Fn::Sub":
                return self._sub(arg)
            case "Fn::If":
                return self.evaluate(arg[1] if self.condition(arg[0]) else arg[2])
        return self._logic(function, arg)

    def _logic(self, function: str, arg: Any) -> bool:
        match function:
            case "Condition":
                return self.condition(arg)
            case "Fn::Equals":
                return bool(self.evaluate(arg[0]) == self.evaluate(arg[1]))
            case "Fn::Not":
                return not self.evaluate(arg[0])
            case "Fn::And":
                return all(self.evaluate(a) for a in arg)
            case "Fn::Or":
                return any(self.evaluate(a) for a in arg)
        raise NotImplementedError(f"{function} is not evaluated here")

    def _sub(self, arg: Any) -> str:
        text, names = (arg, {}) if isinstance(arg, str) else arg
        local = {k: self.evaluate(v) for k, v in names.items()}

        def sub(m: re.Match[str]) -> str:
            name = m.group(2)
            if m.group(1):  # ${!Name} is the text ${Name}
                return "${" + name + "}"
            return str(local[name] if name in local else self.values[name])

        return re.sub(r"\$\{(!?)([^}]+)\}", sub, text)


def _check(name: str, spec: Mapping[str, Any], value: str) -> None:
    """What CloudFormation checks of a parameter value before it creates anything."""
    problems = []
    if "AllowedValues" in spec and value not in spec["AllowedValues"]:
        problems.append(f"not one of {spec['AllowedValues']}")
    if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
        problems.append(f"does not match {spec['AllowedPattern']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        problems.append(f"longer than {spec['MaxLength']}")
    if spec["Type"] == "Number" and not (float(spec.get("MinValue", "-inf")) <= float(value)
                                         <= float(spec.get("MaxValue", "inf"))):
        problems.append("out of range")
    if problems:
        raise ValueError(f"parameter {name}={value!r}: {'; '.join(problems)}")
