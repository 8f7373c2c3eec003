"""Settings: one frozen object read at start-up from TOML and LASSOD_* variables."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

DEFAULT_CONFIG_PATH = Path("lassod.toml")
ENV_PREFIX = "LASSOD_"


class ConfigError(Exception):
    """An invalid setting in the configuration file or environment."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024
    shutdown_grace_s: float = 5.0
    # Token buckets: requests per API key, failed authentications per client
    # address (per /64 for IPv6).
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 100
    failed_auth_per_s: float = 1.0
    failed_auth_burst: int = 10


@dataclass(frozen=True)
class DatabaseSettings:
    path: str = "lassod.db"


@dataclass(frozen=True)
class DeliverySettings:
    timeout_s: float = 10.0
    retry_delays_s: tuple[float, ...] = (30.0, 300.0, 1800.0)
    max_concurrency: int = 100
    response_max_bytes: int = 64 * 1024
    response_excerpt_bytes: int = 1024
    # Maximum delay that a receiver's Retry-After header may set for a retry.
    retry_after_max_s: float = 3600.0
    # Each retry delay is scaled by a random factor in [1 - j, 1 + j], so 0
    # keeps the configured schedule exact.
    retry_jitter: float = 0.0
    # A catalog subscription whose attempts have all failed for this long is
    # deactivated.
    disable_after_failing_s: float = 5 * 24 * 3600.0
    # After a secret changes, the old secret also signs for this long.
    secret_rotation_grace_s: float = 24 * 3600.0
    # None: a quarter of max_concurrency, so one hanging receiver can hold at
    # most a quarter of the attempt slots.
    max_concurrency_per_host: int | None = None
    # None: half of max_concurrency, so one company's receivers that do not
    # respond within a second can hold at most half of the attempt slots.
    max_unproven_per_company: int | None = None

    @property
    def per_host_limit(self) -> int:
        """Return the cap on concurrent attempts to one scheme, host and port."""
        if self.max_concurrency_per_host is not None:
            return min(self.max_concurrency_per_host, self.max_concurrency)
        return max(1, self.max_concurrency // 4)

    @property
    def unproven_limit(self) -> int:
        """Return the cap on one company's concurrent attempts to unproven hosts."""
        if self.max_unproven_per_company is not None:
            return min(self.max_unproven_per_company, self.max_concurrency)
        return max(1, self.max_concurrency // 2)


@dataclass(frozen=True)
class SecuritySettings:
    allow_private_targets: bool = False
    allowed_cidrs: tuple[str, ...] = ()
    require_https: bool = False


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True)
class RetentionSettings:
    """How long finished deliveries, their attempts and events are kept."""

    succeeded_max_age_s: float = 30 * 24 * 3600.0
    # Also applies to cancelled deliveries.
    abandoned_max_age_s: float = 90 * 24 * 3600.0
    interval_s: float = 60.0
    batch_size: int = 500


@dataclass(frozen=True)
class MetricsSettings:
    """Access rules for GET /metrics: allowed client networks and a bearer token."""

    allowed_clients: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    token: str | None = None


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    log: LogSettings = field(default_factory=LogSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)


SECTIONS: dict[str, type] = {
    "server": ServerSettings,
    "database": DatabaseSettings,
    "delivery": DeliverySettings,
    "security": SecuritySettings,
    "log": LogSettings,
    "retention": RetentionSettings,
    "metrics": MetricsSettings,
}

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")


def _int_range(low: int, high: int) -> Any:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(name, value, f"an integer from {low} to {high}")
        if not low <= value <= high:
            raise _invalid(name, value, f"an integer from {low} to {high}")
        return value

    return check


def _number_range(low: float, high: float) -> Any:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid(name, value, f"a number from {low} to {high}")
        if math.isnan(value) or not low <= value <= high:
            raise _invalid(name, value, f"a number from {low} to {high}")
        return float(value)

    return check


def _delay_list(name: str, value: Any) -> tuple[float, ...]:
    allowed = "a list of 0 to 20 numbers, each from 0 to 604800 seconds"
    if not isinstance(value, (list, tuple)) or len(value) > 20:
        raise _invalid(name, value, allowed)
    check = _number_range(0, 7 * 24 * 3600)
    return tuple(check(name, item) for item in value)


def _cidr_list(name: str, value: Any) -> tuple[str, ...]:
    """Accept a list of CIDR ranges, or one comma-separated string of them."""
    allowed = "a list of CIDR ranges such as [\"10.0.0.0/8\", \"fd00::/8\"]"
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or len(value) > 1000:
        raise _invalid(name, value, allowed)
    networks = []
    for item in value:
        try:
            if not isinstance(item, str):
                raise TypeError(item)
            networks.append(str(ipaddress.ip_network(item)))
        except (TypeError, ValueError):
            raise _invalid(
                name,
                value,
                f"{allowed}; {item!r} is not a CIDR range with host bits zero",
            ) from None
    return tuple(networks)


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _invalid(name, value, "true or false")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise _invalid(name, value, "a non-empty string")
    return value


def _host(name: str, value: Any) -> str:
    """Accept a host name or IP address, rejecting the URL form "[::1]".

    The brackets are not part of an IPv6 address, so binding to "[::1]" would
    fail later with a name resolution error.
    """
    host = _text(name, value)
    if "[" in host or "]" in host:
        raise _invalid(
            name, value, "a host name or IP address without brackets, such as ::1"
        )
    return host


def _choice(*options: str) -> Any:
    def check(name: str, value: Any) -> str:
        if value not in options:
            raise _invalid(name, value, "one of " + ", ".join(options))
        return value

    return check


def _invalid(name: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"invalid setting {name} = {value!r}: expected {allowed}")


CHECKS: dict[str, Any] = {
    "server.host": _host,
    "server.port": _int_range(0, 65535),
    "server.max_body_bytes": _int_range(1024, 256 * 1024 * 1024),
    "server.shutdown_grace_s": _number_range(0, 600),
    "server.rate_limit_per_s": _number_range(0.01, 1_000_000),
    "server.rate_limit_burst": _int_range(1, 1_000_000),
    "server.failed_auth_per_s": _number_range(0.01, 1_000_000),
    "server.failed_auth_burst": _int_range(1, 1_000_000),
    "database.path": _text,
    "delivery.timeout_s": _number_range(0.01, 300),
    "delivery.retry_delays_s": _delay_list,
    "delivery.max_concurrency": _int_range(1, 10000),
    "delivery.response_max_bytes": _int_range(1024, 64 * 1024 * 1024),
    "delivery.response_excerpt_bytes": _int_range(0, 64 * 1024),
    "delivery.retry_after_max_s": _number_range(0, 7 * 24 * 3600),
    "delivery.retry_jitter": _number_range(0, 1),
    "delivery.disable_after_failing_s": _number_range(1, 365 * 24 * 3600),
    "delivery.secret_rotation_grace_s": _number_range(0, 30 * 24 * 3600),
    "delivery.max_concurrency_per_host": _int_range(1, 10000),
    "delivery.max_unproven_per_company": _int_range(1, 10000),
    "security.allow_private_targets": _boolean,
    "security.allowed_cidrs": _cidr_list,
    "security.require_https": _boolean,
    "log.level": _choice(*LOG_LEVELS),
    "log.format": _choice(*LOG_FORMATS),
    "retention.succeeded_max_age_s": _number_range(1, 100 * 365 * 24 * 3600),
    "retention.abandoned_max_age_s": _number_range(1, 100 * 365 * 24 * 3600),
    "retention.interval_s": _number_range(0.01, 24 * 3600),
    "retention.batch_size": _int_range(1, 100_000),
    "metrics.allowed_clients": _cidr_list,
    "metrics.token": _text,
}


def _text_settings() -> frozenset[str]:
    """Return the names of the settings whose type is str or str | None."""
    names = set()
    for section, section_type in SECTIONS.items():
        for key, hint in typing.get_type_hints(section_type).items():
            if hint in (str, str | None):
                names.add(f"{section}.{key}")
    return frozenset(names)


TEXT_SETTINGS = _text_settings()


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read settings from a TOML file and LASSOD_<SECTION>_<KEY> variables.

    Without a path, ./lassod.toml is read when it exists. Raises ConfigError
    naming the key, the value and what is allowed.
    """
    environ = os.environ if environ is None else environ
    raw = _read_file(path)
    _apply_environment(raw, environ)
    return _build(raw)


def _read_file(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return {}
        path = DEFAULT_CONFIG_PATH
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"configuration file {str(path)!r}: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"configuration file {str(path)!r}: invalid UTF-8 at byte "
            f"{error.start}; save the file as UTF-8"
        ) from None
    except RecursionError:
        raise ConfigError(
            f"configuration file {str(path)!r}: arrays or tables nested too deeply"
        ) from None
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {error}") from None


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for variable, text in environ.items():
        if not variable.startswith(ENV_PREFIX):
            continue
        rest = variable[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        name = f"{section}.{key}"
        if name not in CHECKS:
            raise ConfigError(
                f"unknown environment variable {variable}: "
                f"expected LASSOD_<SECTION>_<KEY> for one of {', '.join(CHECKS)}"
            )
        is_text = name in TEXT_SETTINGS
        raw.setdefault(section, {})[key] = _parse_environment_value(
            variable, text, is_text
        )


def _parse_environment_value(variable: str, text: str, is_text: bool) -> Any:
    """Parse a variable's text as one TOML value, or keep it as a plain string.

    A string setting keeps the text as it is unless the text is a quoted TOML
    string, so that a token such as 12345 is not read as a number.
    """
    try:
        parsed = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:
        raise ConfigError(
            f"environment variable {variable}: arrays or tables nested too deeply"
        ) from None
    if list(parsed) != ["value"]:
        return text
    if is_text and not isinstance(parsed["value"], str):
        return text
    return parsed["value"]


def _build(raw: dict[str, Any]) -> Settings:
    sections: dict[str, Any] = {}
    for section, values in raw.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"unknown section [{section}]: expected one of {', '.join(SECTIONS)}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table of settings")
        known = {f.name for f in dataclasses.fields(SECTIONS[section])}
        checked = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(
                    f"unknown setting {section}.{key}: "
                    f"[{section}] accepts {', '.join(sorted(known))}"
                )
            checked[key] = CHECKS[f"{section}.{key}"](f"{section}.{key}", value)
        sections[section] = SECTIONS[section](**checked)
    return Settings(**sections)


# Settings that SIGHUP applies to a running daemon. Every other setting keeps
# its start-up value until a restart.
RELOADABLE = frozenset(
    {
        "log.level",
        "delivery.timeout_s",
        "delivery.retry_delays_s",
        "delivery.max_concurrency",
        "delivery.max_concurrency_per_host",
        "delivery.max_unproven_per_company",
        "delivery.retry_after_max_s",
        "delivery.retry_jitter",
        "delivery.disable_after_failing_s",
        "delivery.response_max_bytes",
        "delivery.response_excerpt_bytes",
        "retention.succeeded_max_age_s",
        "retention.abandoned_max_age_s",
        "retention.interval_s",
        "retention.batch_size",
        "metrics.allowed_clients",
        "metrics.token",
    }
)


def merge_reloadable(
    current: Settings, loaded: Settings
) -> tuple[Settings, list[str], list[str]]:
    """Take the reloadable settings from `loaded`, keep the rest of `current`.

    Returns the merged settings, the names of the settings it changed, and
    the names of changed settings that need a restart, so the caller can
    report both.
    """
    merged = current
    applied = []
    needs_restart = []
    for section in SECTIONS:
        old_section = getattr(current, section)
        new_section = getattr(loaded, section)
        changes = {}
        for item in dataclasses.fields(old_section):
            name = f"{section}.{item.name}"
            value = getattr(new_section, item.name)
            if value == getattr(old_section, item.name):
                continue
            if name in RELOADABLE:
                changes[item.name] = value
                applied.append(name)
            else:
                needs_restart.append(name)
        if changes:
            merged = dataclasses.replace(
                merged, **{section: dataclasses.replace(old_section, **changes)}
            )
    return merged, applied, needs_restart
