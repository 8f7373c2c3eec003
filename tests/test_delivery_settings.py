"""Settings for retries, Retry-After, deactivation and secret rotation."""

from __future__ import annotations

import pytest

from lassod.config import ConfigError, DeliverySettings, load_settings


def test_defaults():
    delivery = DeliverySettings()
    assert delivery.retry_after_max_s == 3600.0
    assert delivery.retry_jitter == 0.0
    assert delivery.disable_after_failing_s == 5 * 24 * 3600
    assert delivery.secret_rotation_grace_s == 24 * 3600


def test_read_from_file_and_environment(tmp_path):
    path = tmp_path / "lassod.toml"
    path.write_text("[delivery]\nretry_jitter = 0.1\nretry_after_max_s = 120\n")
    environ = {"LASSOD_DELIVERY_SECRET_ROTATION_GRACE_S": "60"}
    delivery = load_settings(path, environ=environ).delivery
    assert delivery.retry_jitter == 0.1
    assert delivery.retry_after_max_s == 120.0
    assert delivery.secret_rotation_grace_s == 60.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LASSOD_DELIVERY_RETRY_JITTER", "1.5"),
        ("LASSOD_DELIVERY_RETRY_AFTER_MAX_S", "-1"),
        ("LASSOD_DELIVERY_DISABLE_AFTER_FAILING_S", "0"),
        ("LASSOD_DELIVERY_SECRET_ROTATION_GRACE_S", "true"),
    ],
)
def test_out_of_range_names_key(tmp_path, variable, value):
    (tmp_path / "empty.toml").write_text("")
    with pytest.raises(ConfigError) as raised:
        load_settings(tmp_path / "empty.toml", environ={variable: value})
    key = "delivery." + variable.removeprefix("LASSOD_DELIVERY_").lower()
    assert key in str(raised.value)
