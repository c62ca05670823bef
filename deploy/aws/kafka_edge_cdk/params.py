"""CloudFormation parameters of a stack, declared in one line each; the template's interface
groups them in the order they are declared."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnParameter, Stack

CIDR = r"^(\d{1,3}\.){3}\d{1,3}/\d{1,2}$"


class Params:
    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self.names: list[str] = []

    def _param(self, name: str, description: str, **props: Any) -> CfnParameter:
        self.names.append(name)
        self._stack.template_options.metadata = {"AWS::CloudFormation::Interface": {
            "ParameterGroups": [{"Label": {"default": "kafka-edge"},
                                 "Parameters": list(self.names)}]}}
        return CfnParameter(self._stack, name, description=description, **props)

    def text(self, name: str, description: str, *, default: str | None = None,
             kind: str = "String", pattern: str | None = None,
             allowed: Sequence[str] | None = None, max_length: int | None = None) -> str:
        param = self._param(name, description, type=kind, default=default,
                            allowed_pattern=pattern, max_length=max_length,
                            allowed_values=None if allowed is None else list(allowed))
        return str(param.value_as_string)

    def list(self, name: str, description: str, *, default: str | None = None,
             kind: str = "CommaDelimitedList") -> list[str]:
        return list(self._param(name, description, type=kind, default=default).value_as_list)

    def cidr(self, name: str, description: str) -> str:
        return self.text(name, description, pattern=CIDR)

    def number(self, name: str, default: int, description: str, *, low: int = 0,
               high: int | None = None) -> float:
        param = self._param(name, description, type="Number", default=default, min_value=low,
                            max_value=high)
        return float(param.value_as_number)

    def port(self, name: str, default: int, description: str) -> float:
        return self.number(name, default, description, low=1, high=65535)

