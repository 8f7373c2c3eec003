"""Keys for the objects an aiohttp application shares with its handlers."""

from __future__ import annotations

from aiohttp import web

from lassod.config import Settings
from lassod.runtime import Runtime
from lassod.scheduler import Scheduler
from lassod.store import Database
from lassod.web.keycache import KeyCache
from lassod.web.ratelimit import RateLimits

DATABASE = web.AppKey("database", Database)
SCHEDULER = web.AppKey("scheduler", Scheduler)
SETTINGS = web.AppKey("settings", Settings)
RATE_LIMITS = web.AppKey("rate_limits", RateLimits)
RUNTIME = web.AppKey("runtime", Runtime)
KEY_CACHE = web.AppKey("key_cache", KeyCache)
