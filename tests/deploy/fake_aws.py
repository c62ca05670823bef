#!/usr/bin/python3
"""Stand-in for the AWS CLI inside the user data test's container (there is no AWS here).

It answers the one call deploy/aws/user-data.sh makes,

    aws secretsmanager get-secret-value --region R --secret-id ARN --query SecretString \\
        --output text

from ``/srv/aws/secrets.json`` (``{ARN: SecretString}``), printing the string as the CLI's text
output does, and appends each call's arguments (JSON) to ``/srv/aws/calls.log``. Anything else
fails as the CLI would: other commands or options with exit status 252 (usage), a secret it
does not hold or one of another region with 254 and ResourceNotFoundException.
"""

import json
import sys
from pathlib import Path

HOME = Path("/srv/aws")
OPTIONS = {"--region", "--secret-id", "--query", "--output"}


def main(argv: list[str]) -> int:
    with (HOME / "calls.log").open("a") as log:
        log.write(json.dumps(argv) + "\n")
    if argv[:2] != ["secretsmanager", "get-secret-value"] or len(argv) % 2:
        print(f"aws: error: this stand-in answers only get-secret-value: {argv}",
              file=sys.stderr)
        return 252
    options = dict(zip(argv[2::2], argv[3::2], strict=True))
    if set(options) != OPTIONS or options["--query"] != "SecretString" \
            or options["--output"] != "text":
        print(f"aws: error: unexpected options {sorted(options)}", file=sys.stderr)
        return 252
    secrets = json.loads((HOME / "secrets.json").read_text())
    arn = options["--secret-id"]
    if arn not in secrets or arn.split(":")[3] != options["--region"]:
        print("An error occurred (ResourceNotFoundException) when calling the GetSecretValue "
              "operation: Secrets Manager can't find the specified secret.", file=sys.stderr)
        return 254
    print(secrets[arn])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
