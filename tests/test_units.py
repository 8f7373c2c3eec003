"""Pure parts: signing, configuration, status transitions, ids and gc set-up."""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import re
import time
import uuid

import pytest

from lassod import daemon, ids, signing, tables
from lassod.config import ConfigError, load_settings


class TestSigning:
    def test_lasso_signature_matches_documented_check(self):
        body = '{"data":"naïve ☕"}'.encode()
        header = signing.lasso_signature("s3cret", body)
        expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(expected, header)

    def test_standard_signature_uses_decoded_whsec_key(self):
        key = b"\x01\x02\x03" * 8
        secret = "whsec_" + base64.b64encode(key).decode()
        signed = hmac.new(key, b"evt_1.100.{}", hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(signed).decode()
        assert signing.standard_signature(secret, "evt_1", 100, b"{}") == expected

    def test_standard_signature_plain_secret_is_utf8(self):
        signed = hmac.new("sé".encode(), b"evt_1.100.{}", hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(signed).decode()
        assert signing.standard_signature("sé", "evt_1", 100, b"{}") == expected


class TestTransitions:
    @pytest.mark.parametrize(
        "current, new, result",
        [
            ("queued", "processing", "apply"),
            ("queued", "completed", "apply"),
            ("processing", "processing", "apply"),
            ("processing", "queued", "conflict"),
            ("completed", "completed", "noop"),
            ("completed", "failed", "conflict"),
            ("failed", "failed", "noop"),
            ("failed", "processing", "conflict"),
        ],
    )
    def test_transition(self, current, new, result):
        assert tables.transition(current, new) == result


class TestConfig:
    def test_defaults_without_file(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        settings = load_settings(environ={})
        assert settings.server.host == "127.0.0.1"
        assert settings.server.port == 8080
        assert settings.database.path == "lassod.db"
        assert settings.delivery.timeout_s == 10
        assert settings.delivery.retry_delays_s == (30, 300, 1800)
        assert settings.delivery.max_concurrency == 100
        assert settings.security.allow_private_targets is False

    def test_reads_file_and_environment(self, tmp_path):
        path = tmp_path / "lassod.toml"
        path.write_text('[server]\nport = 9000\n[delivery]\nretry_delays_s = [0.5, 1]\n')
        environ = {"LASSOD_SERVER_HOST": "::1", "LASSOD_SECURITY_ALLOW_PRIVATE_TARGETS": "true"}
        settings = load_settings(path, environ)
        assert settings.server.port == 9000
        assert settings.server.host == "::1"
        assert settings.delivery.retry_delays_s == (0.5, 1.0)
        assert settings.security.allow_private_targets is True

    @pytest.mark.parametrize(
        "text, names",
        [
            ("[server]\nprt = 1\n", ["server.prt"]),
            ("[srv]\nport = 1\n", ["srv"]),
            ("[server]\nport = 'x'\n", ["server.port", "'x'"]),
            ("[server]\nport = 70000\n", ["server.port", "70000"]),
            ("[delivery]\ntimeout_s = -1\n", ["delivery.timeout_s", "-1"]),
            ("[delivery]\nretry_delays_s = 5\n", ["delivery.retry_delays_s"]),
            ("[delivery]\nmax_concurrency = 0\n", ["delivery.max_concurrency"]),
            ("[security]\nallow_private_targets = 'yes'\n", ["security.allow_private_targets"]),
            ("[server\n", ["lassod.toml"]),
        ],
    )
    def test_invalid_file_names_key_and_value(self, tmp_path, text, names):
        path = tmp_path / "lassod.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_settings(path, {})
        for name in names:
            assert name in str(caught.value)

    def test_unknown_environment_variable(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        with pytest.raises(ConfigError, match="LASSOD_SERVER_PROT"):
            load_settings(None, {"LASSOD_SERVER_PROT": "1"})

    def test_missing_file(self, tmp_path):
        with pytest.raises(ConfigError, match="not found"):
            load_settings(tmp_path / "absent.toml", {})


class TestOrderedIds:
    def test_format_is_prefix_time_and_random_hex(self):
        value = ids.new_ordered_id("dlv")

        assert re.fullmatch(r"dlv_[0-9a-f]{28}", value)
        created_ms = int(value[4:16], 16)
        assert abs(created_ms - time.time() * 1000) < 5_000

    def test_later_ids_sort_later(self):
        earlier = [ids.new_ordered_id("evt") for _ in range(50)]
        time.sleep(0.002)
        later = [ids.new_ordered_id("evt") for _ in range(50)]

        assert max(earlier) < min(later)

    def test_ids_of_one_millisecond_differ(self):
        values = {ids.new_ordered_id("dlv") for _ in range(10_000)}

        assert len(values) == 10_000


class TestUuids:
    def test_random_uuids_are_version_4_in_canonical_form(self):
        values = [ids.new_uuid() for _ in range(2_000)]

        for value in values:
            parsed = uuid.UUID(value)
            assert parsed.version == 4
            assert parsed.variant == uuid.RFC_4122
            assert str(parsed) == value
        assert len(set(values)) == len(values)


class TestFreezeStartupObjects:
    def test_objects_alive_at_start_leave_the_collected_generations(self):
        alive = [object()]
        try:
            frozen = daemon.freeze_startup_objects()

            assert frozen == gc.get_freeze_count() > 0
            assert not any(item is alive for item in gc.get_objects())
        finally:
            gc.unfreeze()

    def test_objects_created_later_are_still_collected(self):
        try:
            daemon.freeze_startup_objects()
            later = [object()]

            assert any(item is later for item in gc.get_objects())
        finally:
            gc.unfreeze()
