"""Settings reload: safe settings change live, others wait for a restart."""

from __future__ import annotations

import asyncio

from aiohttp import web

from lassod import daemon as daemon_module
from lassod.config import Settings, load_settings, merge_reloadable
from lassod.systemd import Notifier
from tests.conftest import eventually, make_settings
from tests.ops_helpers import notify_socket


def write_config(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_merge_takes_reloadable_and_reports_the_rest():
    current = Settings()
    loaded = load_settings(
        None,
        {
            "LASSOD_LOG_LEVEL": "debug",
            "LASSOD_DELIVERY_MAX_CONCURRENCY": "7",
            "LASSOD_RETENTION_SUCCEEDED_MAX_AGE_S": "3600",
            "LASSOD_SERVER_PORT": "9999",
            "LASSOD_DATABASE_PATH": "/elsewhere.db",
        },
    )

    merged, applied, needs_restart = merge_reloadable(current, loaded)

    assert merged.log.level == "debug"
    assert merged.delivery.max_concurrency == 7
    assert merged.retention.succeeded_max_age_s == 3600
    assert merged.server.port == current.server.port
    assert merged.database.path == current.database.path
    assert sorted(needs_restart) == ["database.path", "server.port"]
    assert sorted(applied) == [
        "delivery.max_concurrency",
        "log.level",
        "retention.succeeded_max_age_s",
    ]


async def test_reload_raises_concurrency_without_dropping(
    start_lassod, tmp_path, make_receiver
):
    lassod = await start_lassod(
        make_settings(tmp_path, delivery={"max_concurrency": 1})
    )
    release = asyncio.Event()

    async def hold(request: web.Request, number: int) -> web.Response:
        await release.wait()
        return web.Response(status=200)

    receiver = await make_receiver(hold)
    key = await lassod.new_key()
    table_ids = []
    for _ in range(3):
        body = {
            "name": "T",
            "schema_id": "s",
            "source_text": "x",
            "webhook_url": receiver.url,
        }
        _, table = await lassod.request("POST", "/api/v1/tables", key, json=body)
        await lassod.request(
            "POST",
            f"/api/v1/tables/{table['id']}/status",
            key,
            json={"status": "completed"},
        )
        table_ids.append(table["id"])
    await receiver.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1

    config = write_config(
        tmp_path / "lassod.toml",
        "[delivery]\nmax_concurrency = 3\nmax_concurrency_per_host = 3\n"
        "max_unproven_per_company = 3\n",
    )
    assert lassod.daemon.reload(config)

    await receiver.wait_for(3, timeout_s=3)
    release.set()

    async def all_succeeded() -> bool:
        for table_id in table_ids:
            _, table = await lassod.request("GET", f"/api/v1/tables/{table_id}", key)
            if table["webhook_status"] != "succeeded":
                return False
        return True

    await eventually(all_succeeded)
    assert len(receiver.received) == 3


async def test_reload_invalid_file_keeps_settings(lassod, tmp_path, captured_logs):
    before = lassod.daemon.settings
    config = write_config(
        tmp_path / "lassod.toml", '[delivery]\nmax_concurrency = "many"\n'
    )

    assert not lassod.daemon.reload(config)

    assert lassod.daemon.settings is before
    [failure] = [
        entry for entry in captured_logs if entry["event"] == "settings_reload_failed"
    ]
    assert "delivery.max_concurrency" in failure["error"]
    status, _ = await lassod.request("GET", "/readyz")
    assert status == 200


async def test_reload_survives_unexpected_error(
    start_lassod, tmp_path, captured_logs, monkeypatch
):
    def fail(config_path):
        raise RuntimeError("unexpected failure")

    monkeypatch.setattr(daemon_module, "load_settings", fail)
    with notify_socket() as (address, notify):
        notifier = Notifier({"NOTIFY_SOCKET": address})
        lassod = await start_lassod(make_settings(tmp_path), notifier=notifier)
        before = lassod.daemon.settings

        assert not lassod.daemon.reload(None)

        assert lassod.daemon.settings is before
        assert notify.first_lines()[-2:] == ["RELOADING=1", "READY=1"]
    [failure] = [
        entry for entry in captured_logs if entry["event"] == "settings_reload_failed"
    ]
    assert "unexpected failure" in failure["error"]


async def test_reload_reports_settings_needing_restart(lassod, tmp_path, captured_logs):
    config = write_config(tmp_path / "lassod.toml", "[server]\nmax_body_bytes = 2048\n")

    assert lassod.daemon.reload(config)

    [warning] = [
        entry for entry in captured_logs if entry["event"] == "settings_need_restart"
    ]
    # The test's settings differ from the file's defaults in other keys too.
    assert "server.max_body_bytes" in warning["settings"]
    assert "log.level" not in warning["settings"]
    assert lassod.daemon.settings.server.max_body_bytes != 2048


async def test_reload_applies_retention_and_metrics_access(lassod, tmp_path):
    config = write_config(tmp_path / "lassod.toml", '[metrics]\ntoken = "new-token"\n')

    assert lassod.daemon.reload(config)

    status, _ = await lassod.request("GET", "/metrics")
    assert status == 401
    status, _ = await lassod.request(
        "GET", "/metrics", headers={"Authorization": "Bearer new-token"}
    )
    assert status == 200

