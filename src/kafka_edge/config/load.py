"""Reading a configuration file: YAML text -> :func:`parse_config`."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml

from kafka_edge.config.errors import ConfigError
from kafka_edge.config.model import Config
from kafka_edge.config.parse import parse_config

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (plain PyYAML keeps the
    last one silently). Keys brought in by a ``<<`` merge may still be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None,
                names_only: bool = False) -> Config:
    """Read and validate the YAML file at ``path``.

    Relative paths inside it are resolved against the file's folder. Raises :class:`ConfigError`
    for a file that cannot be read, YAML syntax errors (with line and column), a top level that
    is not a mapping, and every validation error of :func:`parse_config` (``names_only`` as
    there).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{file}: expected a file, got a directory"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{file}: expected UTF-8 text, got byte 0x{exc.object[exc.start]:02x} "
                           f"at offset {exc.start}"]) from None
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read: {exc.strerror}"]) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_yaml_message(file, exc)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}: invalid YAML: {exc}"]) from None
    if data is None:
        raise ConfigError([f"{file}: expected a mapping at the top level, got an empty document"])
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise ConfigError([f"{file}: expected a mapping at the top level, got {kind}"])
    return parse_config(data, base_dir=file.absolute().parent, env=env, names_only=names_only)


def _yaml_message(file: Path, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(file)
    problem = exc.problem or "invalid YAML"
    context = f" ({exc.context})" if exc.context else ""
    return f"{where}: invalid YAML: {problem}{context}"
