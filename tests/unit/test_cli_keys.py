"""`switchyard keys create|update --limit-reset`: the budget period the admin API sets,
from the command line, checked before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import cli
from service.startup import DATABASE
from service.store.keys import KeyStore


def run(data_dir: Path, *args: str) -> int:
    return cli.main(["--data-dir", str(data_dir), "keys", *args])


def stored_reset(data_dir: Path, key_id: str) -> str | None:
    store = KeyStore(data_dir / DATABASE, cache_seconds=0)
    try:
        record = store.get(key_id)
        assert record is not None
        return record.policy.limit_reset
    finally:
        store.close()


def created_id(out: str) -> str:
    fields = dict(line.split(":", 1) for line in out.splitlines())
    return fields["id"].strip()


def test_create_and_update_set_and_clear_the_budget_period(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "create", "--name", "b", "--limit", "2", "--limit-reset", "weekly") == 0
    key_id = created_id(capsys.readouterr().out)
    assert stored_reset(tmp_path, key_id) == "weekly"

    assert run(tmp_path, "update", key_id, "--limit-reset", "daily") == 0
    assert "resets daily" in capsys.readouterr().out
    assert stored_reset(tmp_path, key_id) == "daily"

    assert run(tmp_path, "update", key_id, "--limit-reset", "none") == 0
    assert "resets" not in capsys.readouterr().out
    assert stored_reset(tmp_path, key_id) is None


def test_an_unknown_period_is_a_usage_error_naming_the_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        run(tmp_path, "create", "--name", "b", "--limit-reset", "hourly")
    assert exited.value.code == cli.USAGE_ERROR
    error = capsys.readouterr().err
    assert error.startswith("switchyard: error: ")
    assert "'hourly'" in error and "daily, weekly, monthly or none" in error
    assert not (tmp_path / DATABASE).exists(), "nothing is written for a refused command"
