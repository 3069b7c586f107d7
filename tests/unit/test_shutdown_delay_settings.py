"""The shutdown delay: default, config file, environment and flag, in that order of precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import settings as gs


def config(tmp_path: Path, delay: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(f'[server]\nshutdown_delay_s = "{delay}"\n')
    return str(path)


def test_delay_is_five_seconds_when_nothing_sets_it() -> None:
    assert gs.load(env={}).server.shutdown_delay_s == 5.0


@pytest.mark.parametrize(
    ("text", "seconds"), [("5s", 5.0), ("12", 12.0), ("1500ms", 1.5), ("1m", 60.0), ("0", 0.0)]
)
def test_environment_sets_the_delay_when_given_a_duration(text: str, seconds: float) -> None:
    assert gs.load(env={"GATEWAY_SHUTDOWN_DELAY": text}).server.shutdown_delay_s == seconds


def test_environment_wins_over_the_config_file_when_both_are_set(tmp_path: Path) -> None:
    path = config(tmp_path, "20s")
    assert gs.load(env={}, config_path=path).server.shutdown_delay_s == 20.0
    assert gs.load(env={"GATEWAY_SHUTDOWN_DELAY": "7s"}, config_path=path).server.shutdown_delay_s == 7.0


def test_flag_wins_over_the_environment_when_both_are_set(tmp_path: Path) -> None:
    loaded = gs.load(
        env={"GATEWAY_SHUTDOWN_DELAY": "7s"}, config_path=config(tmp_path, "20s"), shutdown_delay="2s"
    )
    assert loaded.server.shutdown_delay_s == 2.0


@pytest.mark.parametrize(
    ("env", "flag", "named"), [("soon", None, "GATEWAY_SHUTDOWN_DELAY"), ("", "-1s", "--shutdown-delay")]
)
def test_loading_fails_naming_the_source_when_the_delay_is_not_a_duration(
    env: str, flag: str | None, named: str
) -> None:
    with pytest.raises(gs.SettingsError, match=f"{named}: .* is not a duration"):
        gs.load(env={"GATEWAY_SHUTDOWN_DELAY": env}, shutdown_delay=flag)
