"""Synthesize the stacks; write or check the shipped templates.

    python -m kafka_edge_cdk.synth --write   # deploy/aws/*.template.json from the app
    python -m kafka_edge_cdk.synth --check   # exit 1 if they differ from what the app makes

(run from deploy/aws; ``make deploy-files`` does). Synthesis needs Node.js (aws-cdk-lib's jsii
runtime runs in it) and no AWS account: the stacks are environment-agnostic.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
TEMPLATES = {"KafkaEdge": HERE / "edge.template.json",
             "KafkaEdgeClient": HERE / "client.template.json"}
# jsii warns on stderr, on every start, that Node 20 (Debian's, this machine's) is past its end
# of life; it runs on it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def synthesize(settings: Path | None = None) -> dict[str, Any]:
    """The two stacks' templates by stack name: the shipped (parameterised) ones, or those of
    a settings file (:mod:`.settings`). The cloud assembly goes to a temporary folder."""
    from aws_cdk import App, CliCredentialsStackSynthesizer

    from .client_stack import ClientStack
    from .edge_stack import EdgeStack
    from .settings import load_settings

    deployment = None if settings is None else load_settings(settings)
    with tempfile.TemporaryDirectory(prefix="kafka-edge-cdk.") as outdir:
        app = App(outdir=outdir, analytics_reporting=False)
        for name, stack in (("KafkaEdge", EdgeStack), ("KafkaEdgeClient", ClientStack)):
            stack(app, name, deployment, synthesizer=CliCredentialsStackSynthesizer())
        assembly = app.synth()
        return {name: assembly.get_stack_by_name(name).template for name in TEMPLATES}


def render(template: Any) -> str:
    return json.dumps(template, indent=1) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m kafka_edge_cdk.synth")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write the shipped templates")
    mode.add_argument("--check", action="store_true", help="exit 1 if they are not current")
    args = parser.parse_args(argv)
    templates = synthesize()
    stale = []
    for name, path in TEMPLATES.items():
        text = render(templates[name])
        if args.write:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parents[1])}")
        elif not path.is_file() or path.read_text() != text:
            old = path.read_text().splitlines() if path.is_file() else []
            diff = difflib.unified_diff(old, text.splitlines(), str(path), "synthesized",
                                        lineterm="", n=1)
            print("\n".join(line[:300] for line in diff))
            stale.append(path.name)
    if stale:
        print(f"stale: {', '.join(stale)}: run `make deploy-files`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
