"""Settings from TOML files and LASSOD_* environment variables."""

from __future__ import annotations

import pytest

from lassod.config import ConfigError, load_settings


@pytest.fixture
def empty_config(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("")
    return path


@pytest.mark.parametrize(
    "text", ["12345", "true", "1.5", "[1]", "1979-05-27", "a # b", "\"a\"\nb = 1"]
)
def test_environment_string_setting_takes_raw_text(empty_config, text):
    settings = load_settings(empty_config, {"LASSOD_METRICS_TOKEN": text})

    assert settings.metrics.token == text


@pytest.mark.parametrize("text", ['"12345"', "'12345'"])
def test_environment_quoted_string_is_unquoted(empty_config, text):
    settings = load_settings(empty_config, {"LASSOD_METRICS_TOKEN": text})

    assert settings.metrics.token == "12345"


def test_environment_database_path_takes_raw_text(empty_config):
    settings = load_settings(empty_config, {"LASSOD_DATABASE_PATH": "2024"})

    assert settings.database.path == "2024"


def test_environment_number_setting_is_parsed(empty_config):
    environ = {"LASSOD_SERVER_PORT": "9000", "LASSOD_DELIVERY_RETRY_DELAYS_S": "[1, 5]"}

    settings = load_settings(empty_config, environ)

    assert settings.server.port == 9000
    assert settings.delivery.retry_delays_s == (1.0, 5.0)


def test_environment_quoted_number_is_rejected(empty_config):
    with pytest.raises(ConfigError) as raised:
        load_settings(empty_config, {"LASSOD_SERVER_PORT": '"9000"'})

    assert "server.port" in str(raised.value)


def test_environment_nested_too_deeply_is_rejected(empty_config):
    environ = {"LASSOD_DELIVERY_RETRY_DELAYS_S": "[" * 5000}

    with pytest.raises(ConfigError) as raised:
        load_settings(empty_config, environ)

    assert "LASSOD_DELIVERY_RETRY_DELAYS_S" in str(raised.value)


@pytest.mark.parametrize("host", ["[::1]", "[::1", "::1]"])
def test_bracketed_host_is_rejected(empty_config, host):
    with pytest.raises(ConfigError) as raised:
        load_settings(empty_config, {"LASSOD_SERVER_HOST": host})

    assert "server.host" in str(raised.value)
    assert "without brackets" in str(raised.value)


@pytest.mark.parametrize("host", ["::1", "127.0.0.1", "localhost", "0.0.0.0"])
def test_host_is_accepted(empty_config, host):
    settings = load_settings(empty_config, {"LASSOD_SERVER_HOST": host})

    assert settings.server.host == host
