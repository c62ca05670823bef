"""The launch template's user data: a bash script in three parts.

1. A header, through ``Fn::Sub``: the stack's values as shell variables (``KE_*``). Values that
   could hold quotes or newlines (the configuration) arrive base64-encoded; the parameters that
   go in plainly refuse quotes (their ``AllowedPattern``).
2. The files of deploy/systemd (the unit and its sysusers.d line) as variables (quoted
   here-documents: nothing in them is expanded).
3. deploy/aws/user-data.sh: the steps.

Parts 2 and 3 are literal strings of the template, with their comment lines and blank lines
left out (EC2 takes at most 16 KB of user data, and the configuration may take 5.5 KB of it),
so the unit on the instances is the one in deploy/systemd, and a change to either file changes
the shipped template (``make deploy-files``; ``make test`` checks it is current).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Fn

DEPLOY = Path(__file__).resolve().parents[2]
SCRIPT = DEPLOY / "aws" / "user-data.sh"
UNIT = DEPLOY / "systemd" / "kafka-edge.service"
SYSUSERS = DEPLOY / "systemd" / "kafka-edge.sysusers"
END = "KAFKA_EDGE_FILE"

# ${Name} is filled by Fn::Sub from the variables user_data() is given; ${AWS::Region} by
# CloudFormation
HEADER = """\
#!/bin/bash
# kafka-edge on EC2: the launch template's user data, made by deploy/aws (the CDK app).
# The stack's values:
KE_PACKAGE='${Package}'
KE_REGION='${AWS::Region}'
KE_ADMIN_PORT='${AdminPort}'
KE_WORKERS='${Workers}'
KE_CERTIFICATE_SECRETS='${CertificateSecrets}'
KE_LOG_GROUP='${LogGroup}'
KE_CONFIG_B64='${ConfigBase64}'
"""
VARIABLES = frozenset({"Package", "AdminPort", "Workers", "CertificateSecrets", "LogGroup",
                       "ConfigBase64"})


def without_comments(path: Path) -> str:
    """The file's lines less blank lines and whole-line comments (none of the three files has
    a line starting with # inside a string or here-document)."""
    lines = [line for line in path.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return "\n".join(lines) + "\n"


def file_variable(name: str, path: Path) -> str:
    text = without_comments(path)
    if END in text.splitlines():
        raise ValueError(f"{path} has a line {END}, the here-document's end")
    return f"{name}=$(cat <<'{END}'\n{text}{END}\n)\n"


def files_part() -> str:
    return (file_variable("KE_UNIT", UNIT) + file_variable("KE_SYSUSERS", SYSUSERS)
            + without_comments(SCRIPT))


def user_data(variables: Mapping[str, str]) -> str:
    """The ``UserData`` value (a token: Fn::Base64 of Fn::Join of the three parts); every
    variable of :data:`HEADER` must be given (a CloudFormation expression or a literal)."""
    if set(variables) != VARIABLES:
        raise ValueError(f"user data variables: {sorted(variables)} != {sorted(VARIABLES)}")
    return str(Fn.base64(Fn.join("", [Fn.sub(HEADER, dict(variables)), files_part()])))
