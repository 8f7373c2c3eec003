"""The docs match the code: README commands, CI script and example settings."""

from __future__ import annotations

import re
from pathlib import Path

from lassod import config
from lassod.config import CHECKS, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"^(python3 -m venv .*pytest.*)$", readme, re.MULTILINE)

    assert len(commands) == 1
    assert commands[0] in ci.splitlines()


def test_example_config_is_valid_and_all_defaults():
    settings = load_settings(ROOT / "lassod.toml.example", {})

    assert settings == Settings()


def test_example_config_lists_every_key():
    text = (ROOT / "lassod.toml.example").read_text()
    sections = re.findall(r"^\[(\w+)\]$", text, re.MULTILINE)
    for name in CHECKS:
        section, key = name.split(".")
        assert section in sections, name
        assert re.search(rf"^(# )?{key} = ", text, re.MULTILINE), name


def test_docs_name_only_existing_settings():
    sections = {name.split(".")[0] for name in CHECKS}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for section, key in re.findall(r"`(\w+)\.(\w+|\*)`", path.read_text()):
            if section in sections and key != "*":
                assert f"{section}.{key}" in CHECKS, (path.name, section, key)


def test_readme_explains_failed_auth_behind_proxy():
    readme = " ".join((ROOT / "README.md").read_text().split())

    assert "behind a reverse proxy all clients share the proxy's address" in readme
    assert "raise `server.failed_auth_burst` and `server.failed_auth_per_s`" in readme


def test_service_docs_list_every_reloadable_setting():
    text = " ".join((ROOT / "docs" / "service.md").read_text().split())
    start = text.index("SIGHUP (`systemctl reload lassod`) applies")
    paragraph = text[start : text.index("Attempts in flight", start)]

    for name in sorted(config.RELOADABLE):
        section = name.split(".")[0]
        if section in ("retention", "metrics"):
            assert f"every `{section}.*` setting" in paragraph
        else:
            assert f"`{name}`" in paragraph, name
