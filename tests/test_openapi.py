"""The OpenAPI contract: the document is valid and a live lassod keeps it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from lassod import delivery, openapi
from lassod.delivery import AttemptResult

ROOT = Path(__file__).resolve().parent.parent


def test_repo_copy_matches_code():
    stored = (ROOT / "docs" / "openapi.json").read_bytes()

    assert stored == openapi.dumps(), "run: python -m lassod.openapi > docs/openapi.json"


async def test_document_is_served(lassod):
    status, document = await lassod.request("GET", "/api/v1/openapi.json")

    assert status == 200
    assert document["openapi"] == "3.1.0"
    assert "/api/v1/tables" in document["paths"]


async def test_every_route_is_documented(lassod):
    app_routes = set()
    for resource in lassod.daemon.app.router.resources():
        for route in resource:
            if route.method != "HEAD":
                app_routes.add((route.method.lower(), resource.canonical))
    documented = {
        (method, path)
        for path, item in openapi.build()["paths"].items()
        for method in item
    }
    # Operational endpoints for probes and Prometheus, not the public API.
    app_routes -= {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")}

    assert app_routes == documented


async def test_lists_take_only_documented_parameters(lassod):
    key = await lassod.new_key()
    lists = {
        path: item["get"]
        for path, item in openapi.build()["paths"].items()
        if "get" in item and "{" not in path and "parameters" in item["get"]
    }
    assert len(lists) == 6, sorted(lists)

    for path, operation in lists.items():
        documented = [
            parameter["name"]
            for parameter in operation["parameters"]
            if parameter["in"] == "query"
        ]
        status, error = await lassod.request("GET", f"{path}?colour=red", key)

        assert status == 422, path
        assert error["field"] == "colour", path
        allowed = error["message"].rpartition("allowed are ")[2].split(", ")
        assert sorted(allowed) == sorted(documented), path


# Host names of exactly 253 characters, the API's limit, and of one more.
MAX_LENGTH_HOST = ".".join(["a" * 63] * 3 + ["b" * 61])
OVERLONG_HOST = MAX_LENGTH_HOST + "b"


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://example.com/hook", True),
        ("https://a.b.example.com/", True),
        ("https://a.b.c.d.e.f.example.com:8443/hook?x=1#y", True),
        (f"http://{MAX_LENGTH_HOST}/", True),
        (f"http://{OVERLONG_HOST}/", False),
        ("https://a..example.com/", False),
        ("https://-a.example.com/", False),
        ("ftp://example.com/", False),
    ],
)
async def test_url_pattern_matches_api(lassod, url, accepted):
    schemas = openapi.build()["components"]["schemas"]
    pattern = schemas["NewSubscription"]["properties"]["url"]["pattern"]
    key = await lassod.new_key()

    status, body = await lassod.request(
        "POST",
        "/api/v1/catalog/webhooks",
        key,
        json={"url": url, "events": ["attribute.created"]},
    )

    assert bool(re.search(pattern, url)) is accepted
    assert status == (201 if accepted else 422), body


class NoNetworkSender:
    """Stands in for the outbound sender: generated webhook URLs point at
    arbitrary hosts, and this test checks the API contract, not delivery."""

    async def send(self, job):
        return AttemptResult(succeeded=True, duration_ms=0, status_code=204)

    async def close(self):
        pass


@pytest.fixture
def no_outbound(monkeypatch):
    monkeypatch.setattr(delivery.Sender, "create", classmethod(lambda cls, *settings: NoNetworkSender()))


@pytest.mark.timeout(120)
async def test_schemathesis_finds_no_violation(no_outbound, lassod, tmp_path):
    command = shutil.which("st") or str(Path(sys.executable).parent / "st")
    if not os.path.exists(command):
        pytest.fail("schemathesis is missing: install the test extra")
    key = await lassod.new_key()
    process = await asyncio.create_subprocess_exec(
        command,
        "--config-file", str(ROOT / "tests" / "schemathesis.toml"),
        "run", f"{lassod.base_url}/api/v1/openapi.json",
        "--url", lassod.base_url,
        "--header", f"Authorization: Bearer {key}",
        "--checks", "all",
        "--max-examples", "25",
        "--max-time", "45",
        "--seed", "1",
        "--generation-allow-x00", "false",
        "--workers", "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    output, _ = await process.communicate()

    assert process.returncode == 0, output.decode()[-30000:]
