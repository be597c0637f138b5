"""The optional HTTP endpoint (``[health]``): ``GET /healthz`` for orchestrators, ``GET /metrics`` for
Prometheus. It runs in the bot's event loop, so a loop blocked for long also fails the health check."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from redis.exceptions import RedisClusterException, RedisError

from bot.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from bot.app import ChatBot

log = logging.getLogger(__name__)

# A health probe must answer quickly even when Redis hangs: orchestrators time out at a few seconds.
REDIS_PROBE_TIMEOUT_S = 1.0


class HealthServer:
    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot
        self.settings = bot.settings.health
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> HealthServer:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.host, self.settings.port).start()
        self.port = self._runner.addresses[0][1]  # the real port when the config asked for 0
        log.info("Health and metrics on http://%s:%d/healthz and /metrics", self.settings.host, self.port)
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def gateway_state(self) -> dict[str, Any]:
        """Whether the bot is ready and which of its shards are connected."""
        bot = self.bot
        shards = {str(shard_id): not info.is_closed() for shard_id, info in sorted(bot.shards.items())}
        self.bot.metrics.shards_state(sum(shards.values()), len(bot.shard_ids or shards))
        ready = bot.is_ready() and not bot.is_closed() and bool(shards) and all(shards.values())
        return {"ok": ready, "shards": shards}

    async def redis_state(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(REDIS_PROBE_TIMEOUT_S):
                await self.bot.services.redis.ping()
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            self.bot.metrics.error(exc)
            return {"ok": False, "error": type(exc).__name__}
        seconds = time.perf_counter() - started
        self.bot.metrics.redis_latency(seconds, op="ping")
        return {"ok": True, "latency_ms": round(seconds * 1000, 2)}

    async def healthz(self, request: web.Request) -> web.Response:
        """200 when the gateway is connected and Redis answers, else 503; a small JSON body says which."""
        gateway, redis = self.gateway_state(), await self.redis_state()
        healthy = gateway["ok"] and redis["ok"]
        body = {"status": "ok" if healthy else "unavailable", "gateway": gateway, "redis": redis}
        return web.Response(status=200 if healthy else 503, text=json.dumps(body), content_type="application/json")

    async def metrics(self, request: web.Request) -> web.Response:
        # Gauges that describe the present are refreshed at scrape time; a ping keeps Redis latency
        # visible even when no turn is running.
        self.gateway_state()
        await self.redis_state()
        return web.Response(body=self.bot.metrics.render(), headers={"Content-Type": CONTENT_TYPE})
