"""A config file's errors name the line (service/config_lines.py via load_config)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigError, load_config

FILE = """\
providers:
  p: {kind: openai, base_url: "http://x"}
routing:
  retries: 2
models:
  - id: a/one
    endpoints: [{provider: p, model: one}]
  - id: a/two
    endpoints:
      - provider: p
        model: two
        pricing: {prompt: 1}
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "path"),
    [
        ("  retries: 2", "  retires: 2", 4, "config.routing.retires"),
        ("{prompt: 1}", "{promt: 1}", 12, "config.models[1].endpoints[0].pricing.promt"),
        ("provider: p, model: one", "provider: q, model: one", 7, "config.models[0]"),
    ],
)
def test_the_error_names_the_line(tmp_path: Path, old: str, new: str, line: int, path: str) -> None:
    target = tmp_path / "switchyard.yaml"
    target.write_text(FILE.replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(target, env={})
    assert str(exc.value).startswith(f"{target}, line {line}: {path}"), str(exc.value)
