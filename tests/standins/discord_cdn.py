"""The stand-in's CDN: attachment downloads, whole or with the faults a test asks for (hang, cut off)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .discord_messages import Result
from .discord_recorder import RecordedRequest
from .discord_world import World

if TYPE_CHECKING:
    from .discord_standin import DiscordStandin


class CdnRoutes:
    """Part of ``RestApi`` (tests/standins/discord_rest.py), which sets these attributes."""

    s: DiscordStandin
    world: World

    async def cdn(self, request: web.Request, rec: RecordedRequest, body: Any, files: list) -> Result:
        stored = self.world.attachments.get(int(request.match_info["attachment_id"]))
        if stored is None:
            return 404, web.Response(status=404, text="Not Found")
        stored.downloads += 1
        self.s.cdn_downloads += 1
        # Set as a header: aiohttp refuses a charset inside content_type= ("text/plain; charset=utf-8").
        headers = {"Content-Type": stored.content_type}
        if stored.fault == "hang":
            # Headers never come; released when the stand-in closes, so its shutdown is not held up.
            await self.s.cdn_released.wait()
            return 200, web.Response(status=503)
        if stored.fault == "cut":
            response = web.StreamResponse(headers={**headers, "Content-Length": str(len(stored.data))})
            await response.prepare(request)
            await response.write(stored.data[: stored.cut_after])
            assert request.transport is not None
            request.transport.close()  # mid-body, as when a CDN edge drops the connection
            return 200, response
        return 200, web.Response(body=stored.data, headers=headers)
