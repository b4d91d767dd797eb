"""Where in the file a config error is: the line of the path an error message names.

The config is checked after parsing, on plain data, so its errors name a path
(`config.models[2].endpoints[0].provider: ...`). For an operator editing a long file
(and for a reload refused while the gateway runs on) the line is what helps: the
YAML's node tree still knows where each key and item came from.
"""

from __future__ import annotations

import re

import yaml

_PATH = re.compile(r"^config((?:\.[^.\[\]:\s]+|\[\d+\])*)")
_STEP = re.compile(r"\.([^.\[\]:\s]+)|\[(\d+)\]")


def line_of(text: str, message: str) -> int | None:
    """The 1-based line of the deepest node of the path at the start of `message`."""
    match = _PATH.match(message)
    if match is None:
        return None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line: int | None = None
    for step in _STEP.finditer(match.group(1)):
        key, index = step.group(1), step.group(2)
        found = None
        if key is not None and isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                    line = key_node.start_mark.line + 1
                    found = value_node
                    break
        elif index is not None and isinstance(node, yaml.SequenceNode):
            position = int(index)
            if position < len(node.value):
                found = node.value[position]
                line = found.start_mark.line + 1
        if found is None:
            break
        node = found
    return line
