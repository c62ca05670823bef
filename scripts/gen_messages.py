#!/usr/bin/env python3
"""Generate src/kafka_edge/protocol/messages.py from Apache Kafka's JSON message definitions.

The definitions (``common/message/*.json``, JSON with ``//`` comments) are read straight out of
the kafka-clients jar that ``make setup`` downloads. The output holds:

* ``API_KEYS``: every request type a *broker* listener accepts, with its valid and flexible
  versions (request and response);
* one ``Message`` description per response the proxy decodes (``DECODED_RESPONSES`` below), each
  field listed once with the versions it exists in, its nullable versions and its tag.

Usage::

    .venv/bin/python scripts/gen_messages.py            # rewrite messages.py
    .venv/bin/python scripts/gen_messages.py --check    # exit 1 if messages.py is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KAFKA_VERSION = "4.4.0"
DEFAULT_JAR = ROOT / f".cache/kafka/{KAFKA_VERSION}/libs/kafka-clients-{KAFKA_VERSION}.jar"
DEFAULT_OUT = ROOT / "src/kafka_edge/protocol/messages.py"
PREFIX = "common/message/"

# Responses the proxy decodes: ApiVersions (intersection) and every address-bearing response.
DECODED_RESPONSES = (
    "ApiVersionsResponse",
    "MetadataResponse",
    "FindCoordinatorResponse",
    "DescribeClusterResponse",
    "ProduceResponse",
    "FetchResponse",
    "ShareFetchResponse",
    "ShareAcknowledgeResponse",
    "DescribeQuorumResponse",
)

PRIMITIVES = frozenset({
    "bool", "int8", "int16", "uint16", "int32", "uint32", "int64", "float64",
    "string", "bytes", "records", "uuid",
})

LINE_LIMIT = 99


class DefinitionError(Exception):
    """A message definition uses something this generator (or the codec) does not support."""


def strip_comments(text: str) -> str:
    """Remove ``//`` comments outside JSON strings."""
    out: list[str] = []
    i = 0
    n = len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
        elif c == '"':
            in_string = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def load_definitions(jar: Path) -> dict[str, dict[str, Any]]:
    """name (e.g. ``FetchResponse``) -> parsed definition."""
    defs: dict[str, dict[str, Any]] = {}
    with zipfile.ZipFile(jar) as zf:
        for info in zf.infolist():
            if info.filename.startswith(PREFIX) and info.filename.endswith(".json"):
                text = zf.read(info).decode("utf-8")
                data = json.loads(strip_comments(text))
                defs[data["name"]] = data
    if not defs:
        raise DefinitionError(f"no {PREFIX}*.json in {jar}")
    return defs


def parse_versions(text: str | None, what: str) -> tuple[int, int | None] | None:
    """Kafka's version-range syntax: ``"3+"``, ``"0-12"``, ``"7"``, ``"none"``."""
    if text is None:
        return None
    text = str(text).strip()
    if text == "none":
        return None
    if m := re.fullmatch(r"(\d+)\+", text):
        return int(m[1]), None
    if m := re.fullmatch(r"(\d+)-(\d+)", text):
        return int(m[1]), int(m[2])
    if m := re.fullmatch(r"(\d+)", text):
        return int(m[1]), int(m[1])
    raise DefinitionError(f"{what}: cannot parse version range {text!r}")


def flexible_from(definition: dict[str, Any]) -> int | None:
    versions = parse_versions(definition.get("flexibleVersions"), definition["name"])
    if versions is None:
        return None
    if versions[1] is not None:
        raise DefinitionError(f"{definition['name']}: flexibleVersions must be open-ended")
    return versions[0]


def valid_range(definition: dict[str, Any]) -> tuple[int, int] | None:
    versions = parse_versions(definition.get("validVersions"), definition["name"])
    if versions is None:
        return None
    if versions[1] is None:
        raise DefinitionError(f"{definition['name']}: validVersions must be closed")
    return versions[0], versions[1]


# -- API_KEYS -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Api:
    key: int
    name: str
    min_version: int
    max_version: int
    request_flexible_from: int | None
    response_flexible_from: int | None


def broker_apis(defs: dict[str, dict[str, Any]]) -> list[Api]:
    apis = []
    for name, request in defs.items():
        if request.get("type") != "request" or "broker" not in request.get("listeners", []):
            continue
        valid = valid_range(request)
        if valid is None:
            continue
        base = name.removesuffix("Request")
        response = defs.get(base + "Response")
        if response is None:
            raise DefinitionError(f"{name} has no {base}Response")
        apis.append(Api(request["apiKey"], base, valid[0], valid[1],
                        flexible_from(request), flexible_from(response)))
    return sorted(apis, key=lambda a: a.key)


# -- message schemas -----------------------------------------------------------------------------


def snake_upper(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


@dataclass
class StructDef:
    name: str
    fields: list[dict[str, Any]]
    var: str = ""
    children: list[str] = field(default_factory=list)


class MessageBuilder:
    """Turns one JSON message definition into Python source (struct constants, then Message)."""

    def __init__(self, definition: dict[str, Any], taken: set[str]) -> None:
        self.definition = definition
        self.name: str = definition["name"]
        self.prefix = snake_upper(self.name.removesuffix("Response").removesuffix("Request"))
        self.taken = taken
        self.structs: dict[str, StructDef] = {}
        for common in definition.get("commonStructs", []):
            self._register(common["name"], common["fields"])
        self._collect(definition["fields"])

    def _register(self, name: str, fields: list[dict[str, Any]]) -> None:
        if name in self.structs:
            raise DefinitionError(f"{self.name}: struct {name} defined twice")
        self.structs[name] = StructDef(name, fields)
        self._collect(fields)

    def _collect(self, fields: list[dict[str, Any]]) -> None:
        for f in fields:
            if "fields" in f:
                self._register(f["type"].removeprefix("[]"), f["fields"])

    def _var(self, struct: StructDef) -> str:
        if not struct.var:
            base = snake_upper(struct.name)
            if not base.startswith(self.prefix + "_"):
                base = f"{self.prefix}_{base}"
            var = f"_{base}"
            n = 2
            while var in self.taken:
                var = f"_{base}_{n}"
                n += 1
            self.taken.add(var)
            struct.var = var
        return struct.var

    def _type_expr(self, f: dict[str, Any], emitted: dict[str, str], out: list[str]) -> str:
        type_name: str = f["type"]
        is_array = type_name.startswith("[]")
        base = type_name.removeprefix("[]")
        if base in PRIMITIVES:
            if "fields" in f:
                raise DefinitionError(f"{self.name}.{f['name']}: primitive with fields")
            if base == "records" and is_array:
                raise DefinitionError(f"{self.name}.{f['name']}: array of records")
            item = f'"{base}"'
        else:
            struct = self.structs.get(base)
            if struct is None:
                raise DefinitionError(f"{self.name}.{f['name']}: unknown type {type_name}")
            item = self._emit_struct(struct, emitted, out)
        return f"Array({item})" if is_array else item

    def _emit_struct(self, struct: StructDef, emitted: dict[str, str], out: list[str]) -> str:
        if struct.name in emitted:
            return emitted[struct.name]
        emitted[struct.name] = ""  # cycle guard
        lines = self._field_lines(struct.fields, emitted, out)
        var = self._var(struct)
        out.append(f'{var} = Struct("{struct.name}", (')
        out.extend(lines)
        out.append("))")
        out.append("")
        emitted[struct.name] = var
        return var

    def _field_lines(self, fields: list[dict[str, Any]], emitted: dict[str, str],
                     out: list[str]) -> list[str]:
        lines = []
        tags: set[int] = set()
        for f in fields:
            where = f"{self.name}.{f['name']}"
            versions = parse_versions(f.get("versions"), where)
            if versions is None:
                raise DefinitionError(f"{where}: field without versions")
            if "flexibleVersions" in f:
                raise DefinitionError(f"{where}: per-field flexibleVersions is not supported")
            type_expr = self._type_expr(f, emitted, out)
            nullable = parse_versions(f.get("nullableVersions"), where)
            base = f["type"].removeprefix("[]")
            if (nullable is not None and not f["type"].startswith("[]")
                    and base not in PRIMITIVES):
                raise DefinitionError(f"{where}: nullable struct fields are not supported")
            if nullable is not None and base in PRIMITIVES and not f["type"].startswith("[]") \
                    and base not in ("string", "bytes", "records"):
                raise DefinitionError(f"{where}: nullable {base}")
            args = [f'"{f["name"]}"', type_expr, _versions_expr(versions)]
            kwargs = []
            if nullable is not None:
                kwargs.append(f"nullable={_versions_expr(nullable)}")
            if "tag" in f:
                tag = int(f["tag"])
                if tag in tags:
                    raise DefinitionError(f"{where}: tag {tag} used twice")
                tags.add(tag)
                tagged = parse_versions(f.get("taggedVersions"), where)
                if tagged is None:
                    raise DefinitionError(f"{where}: tag without taggedVersions")
                kwargs.append(f"tag={tag}")
                kwargs.append(f"tagged={_versions_expr(tagged)}")
            elif "taggedVersions" in f:
                raise DefinitionError(f"{where}: taggedVersions without tag")
            lines.extend(_call_lines("Field", args, kwargs, indent=4))
        return lines

    def emit(self) -> tuple[str, list[str]]:
        """(variable name, source lines) for this message."""
        out: list[str] = []
        emitted: dict[str, str] = {}
        lines = self._field_lines(self.definition["fields"], emitted, out)
        valid = valid_range(self.definition)
        if valid is None:
            raise DefinitionError(f"{self.name}: no valid versions")
        var = snake_upper(self.name)
        body = f"_{var}"
        self.taken.add(body)
        out.append(f'{body} = Struct("{self.name}", (')
        out.extend(lines)
        out.append("))")
        out.append("")
        fx = flexible_from(self.definition)
        out.append(f"{var} = Message(")
        out.append(f"    api_key={self.definition['apiKey']}, valid={valid}, flexible_from={fx}, "
                   f"body={body},")
        out.append(")")
        out.append("")
        return var, out


def _versions_expr(versions: tuple[int, int | None]) -> str:
    return f"({versions[0]}, {versions[1]})"


def _call_lines(func: str, args: list[str], kwargs: list[str], indent: int) -> list[str]:
    pad = " " * indent
    one = f"{pad}{func}({', '.join(args + kwargs)}),"
    if len(one) <= LINE_LIMIT:
        return [one]
    inner = " " * (indent + 4)
    lines = [f"{pad}{func}("]
    lines.append(f"{inner}{', '.join(args)},")
    if kwargs:
        lines.append(f"{inner}{', '.join(kwargs)},")
    lines.append(f"{pad}),")
    return lines


# -- output ----------------------------------------------------------------------------------------


def render(defs: dict[str, dict[str, Any]], kafka_version: str) -> str:
    lines = [
        f"# generated from Apache Kafka {kafka_version} message definitions by "
        "scripts/gen_messages.py; do not edit",
        '"""Kafka message definitions used by kafka-edge (see schema.py for the shapes).',
        "",
        "API_KEYS: every request type a broker listener accepts (Kafka's `listeners` includes",
        '"broker"), with the request\'s validVersions and the first flexible version of the',
        "request and of the response.",
        "",
        "*_RESPONSE: the responses the proxy decodes, each described once; a field exists in",
        "`versions`, may be null in `nullable`, and lives in the tagged-field section in `tagged`.",
        "Version ranges are (first, last) inclusive, last None meaning open-ended.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from kafka_edge.protocol.schema import ApiSpec, Array, Field, Message, Struct",
        "",
        f'KAFKA_VERSION = "{kafka_version}"',
        "",
        "# key: ApiSpec(key, name, min_version, max_version, request_flexible_from,",
        "#              response_flexible_from)",
        "API_KEYS: dict[int, ApiSpec] = {",
    ]
    lines.extend(
        f'    {api.key}: ApiSpec({api.key}, "{api.name}", {api.min_version}, '
        f"{api.max_version}, {api.request_flexible_from}, {api.response_flexible_from}),"
        for api in broker_apis(defs)
    )
    lines.append("}")
    lines.append("")
    taken: set[str] = set()
    names: list[tuple[int, str]] = []
    for name in DECODED_RESPONSES:
        definition = defs.get(name)
        if definition is None:
            raise DefinitionError(f"no definition for {name}")
        lines.append("")
        lines.append(f"# {name} (API key {definition['apiKey']})")
        var, src = MessageBuilder(definition, taken).emit()
        lines.extend(src)
        names.append((definition["apiKey"], var))
    lines.append("")
    lines.append("RESPONSES: dict[int, Message] = {")
    for key, var in sorted(names):
        lines.append(f"    {key}: {var},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jar", type=Path, default=DEFAULT_JAR,
                        help="kafka-clients jar holding common/message/*.json")
    parser.add_argument("--kafka-version", default=KAFKA_VERSION)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the output file differs")
    args = parser.parse_args(argv)
    if not args.jar.is_file():
        print(f"gen_messages: {args.jar} not found (run `make setup`)", file=sys.stderr)
        return 2
    try:
        text = render(load_definitions(args.jar), args.kafka_version)
    except DefinitionError as exc:
        print(f"gen_messages: {exc}", file=sys.stderr)
        return 1
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"gen_messages: {args.out} is out of date; run scripts/gen_messages.py",
                  file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"gen_messages: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
