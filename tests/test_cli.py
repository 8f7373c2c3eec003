"""The command line, run as a user runs it: `python -m lassod ...` in a subprocess."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys

import pytest


def run_lassod(*args: str, cwd, env_extra=None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "lassod", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_keys_create_prints_only_the_key(tmp_path):
    result = run_lassod("keys", "create", "--company", "acme", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"lasso_[A-Za-z0-9]{64}\n", result.stdout)
    key = result.stdout.strip()
    with sqlite3.connect(tmp_path / "lassod.db") as connection:
        stored = connection.execute("SELECT key_hash FROM api_keys").fetchall()
    assert len(stored) == 1
    assert key not in stored[0][0]


def test_database_file_is_private(tmp_path):
    run_lassod("keys", "create", "--company", "acme", cwd=tmp_path)

    assert (tmp_path / "lassod.db").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"], ["keys", "--help"], ["keys", "create", "--help"]])
def test_help_explains_options(tmp_path, args):
    result = run_lassod(*args, cwd=tmp_path)

    assert result.returncode == 0
    assert "usage: lassod" in result.stdout


def test_bad_config_stops_start_up(tmp_path):
    config = tmp_path / "custom.toml"
    config.write_text("[delivery]\ntimeout_s = 0\n")

    result = run_lassod("--config", str(config), "serve", cwd=tmp_path)

    assert result.returncode == 2
    assert "delivery.timeout_s" in result.stderr
    assert "0" in result.stderr


def test_default_config_file_is_read(tmp_path):
    (tmp_path / "lassod.toml").write_text("[server]\nport = -5\n")

    result = run_lassod("keys", "list", cwd=tmp_path)

    assert result.returncode == 2
    assert "server.port" in result.stderr


def test_config_with_invalid_utf8_is_rejected(tmp_path):
    (tmp_path / "bad.toml").write_bytes(b"\xff")

    result = run_lassod("--config", "bad.toml", "keys", "list", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("lassod: configuration file 'bad.toml': ")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "lassod.db").exists()


def test_config_nested_too_deeply_is_rejected(tmp_path):
    (tmp_path / "deep.toml").write_text("a = " + "[" * 5000)

    result = run_lassod("--config", "deep.toml", "keys", "list", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("lassod: configuration file 'deep.toml': ")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "name",
    ["", "   ", "a\tb", "a\nb", "a\rb", "a\x1bb", "a\u2028b", " acme", "acme\u00a0"],
)
def test_keys_create_rejects_invalid_company(tmp_path, name):
    result = run_lassod("keys", "create", "--company", name, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("lassod: invalid company name ")
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""
    assert not (tmp_path / "lassod.db").exists()


def test_keys_create_accepts_inner_spaces(tmp_path):
    result = run_lassod("keys", "create", "--company", "Acme Corp", cwd=tmp_path)

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "char",
    [chr(code) for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
    + ["\u200e", "\u200f", "\u061c"],
)
def test_keys_create_rejects_bidi_control(tmp_path, char):
    name = f"evil{char}emca"

    result = run_lassod("keys", "create", "--company", name, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr == (
        f"lassod: invalid company name {name!r}: remove the bidirectional"
        f" formatting character U+{ord(char):04X}, which changes how the name"
        " displays\n"
    )
    assert result.stdout == ""
    assert not (tmp_path / "lassod.db").exists()


def test_keys_create_accepts_hebrew_name(tmp_path):
    name = "\u05e9\u05dc\u05d5\u05dd"

    result = run_lassod("keys", "create", "--company", name, cwd=tmp_path)

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("limit", ["0", "-1", "ten", "9223372036854775808"])
def test_list_rejects_limit_out_of_range(tmp_path, limit):
    created = run_lassod("keys", "create", "--company", "acme", cwd=tmp_path)
    assert created.returncode == 0, created.stderr

    result = run_lassod("deliveries", "list", "--limit", limit, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.endswith(
        "lassod deliveries list: error: argument --limit: expected an integer"
        f" from 1 to 9223372036854775807, got {limit!r}\n"
    )
    assert result.stdout == ""


def test_list_accepts_largest_limit(tmp_path):
    created = run_lassod("keys", "create", "--company", "acme", cwd=tmp_path)
    assert created.returncode == 0, created.stderr

    result = run_lassod(
        "deliveries", "list", "--limit", "9223372036854775807", cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "list"],
        ["keys", "revoke", "key_missing"],
        ["deliveries", "list"],
        ["deliveries", "show", "dlv_missing"],
        ["deliveries", "redeliver", "dlv_missing"],
    ],
)
def test_command_rejects_missing_database(tmp_path, args):
    path = tmp_path / "missing" / "lassod.db"
    environ = {"LASSOD_DATABASE_PATH": str(path)}

    result = run_lassod(*args, cwd=tmp_path, env_extra=environ)

    assert result.returncode == 2
    assert result.stderr == (
        f"lassod: database {str(path)!r} does not exist; "
        "start the daemon once or check database.path\n"
    )
    assert result.stdout == ""
    assert not (tmp_path / "missing").exists()


def test_keys_create_creates_missing_database(tmp_path):
    path = tmp_path / "missing" / "lassod.db"
    environ = {"LASSOD_DATABASE_PATH": str(path)}

    result = run_lassod(
        "keys", "create", "--company", "acme", cwd=tmp_path, env_extra=environ
    )

    assert result.returncode == 0, result.stderr
    assert path.exists()


def test_keys_create_on_read_only_database(tmp_path):
    path = tmp_path / "lassod.db"
    environ = {"LASSOD_DATABASE_PATH": str(path)}
    created = run_lassod(
        "keys", "create", "--company", "acme", cwd=tmp_path, env_extra=environ
    )
    assert created.returncode == 0, created.stderr
    read_only = {"LASSOD_DATABASE_PATH": f"file:{path}?mode=ro"}

    result = run_lassod(
        "keys", "create", "--company", "globex", cwd=tmp_path, env_extra=read_only
    )

    assert result.returncode == 1
    assert result.stderr.startswith("lassod: database ")
    assert "readonly database" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def test_serve_rejects_bracketed_host(tmp_path):
    environ = {"LASSOD_SERVER_HOST": "[::1]"}

    result = run_lassod("serve", cwd=tmp_path, env_extra=environ)

    assert result.returncode == 2
    assert result.stderr.startswith("lassod: invalid setting server.host = '[::1]'")
    assert len(result.stderr.splitlines()) == 1
