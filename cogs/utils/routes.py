"""discord.py's per-route buckets, as the request scheduler (cogs/utils/budget.py) reads them: a slot
is granted only when discord.py's own bucket for the request's route and channel has room, so a
granted request goes out at once instead of waiting there."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from discord.http import Route

if TYPE_CHECKING:
    from discord.http import HTTPClient

# discord.py's (route key, major parameters), e.g. ("POST /channels/{channel_id}/messages", "42")
Bucket = tuple[str, str]
# The paths of the requests the scheduler grants slots for (their writes are reported back).
SCHEDULED_PATH = re.compile(
    r"/channels/\d+/(messages(/\d+)?|typing|threads)$|/guilds/\d+/members/\d+$|/users/@me$|/oauth2/applications/@me$"
    r"|/gateway/bot$"
)


def _bucket(method: str, path: str, **parameters: int) -> Bucket:
    route = Route(method, path, **parameters)
    return route.key, route.major_parameters


def create_bucket(channel_id: int) -> Bucket:
    return _bucket("POST", "/channels/{channel_id}/messages", channel_id=channel_id)


def edit_bucket(channel_id: int) -> Bucket:
    return _bucket("PATCH", "/channels/{channel_id}/messages/{message_id}", channel_id=channel_id, message_id=0)


def thread_bucket(channel_id: int) -> Bucket:
    """Start Thread without Message (/chat)."""
    return _bucket("POST", "/channels/{channel_id}/threads", channel_id=channel_id)


def member_bucket(guild_id: int, user_id: int) -> Bucket:
    """Get Guild Member (the DM policy's membership check)."""
    return _bucket("GET", "/guilds/{guild_id}/members/{member_id}", guild_id=guild_id, member_id=user_id)


def typing_bucket(channel_id: int) -> Bucket:
    return _bucket("POST", "/channels/{channel_id}/typing", channel_id=channel_id)


def bucket_room(http: HTTPClient, bucket: Bucket, now: float) -> tuple[int, float]:
    """(requests discord.py would send at once in this bucket, seconds until it has room again).

    discord.py keeps its buckets in private attributes (``_bucket_hashes``, ``_buckets``); a test fails if
    an upgrade renames them. Until discord.py has seen a bucket's headers, it lets one request through."""
    key, major = bucket
    bucket_hash = http._bucket_hashes.get(key)
    limit = http._buckets.get(f"{bucket_hash or key}:{major}")
    if limit is None:
        return 1 << 30, 0.0
    if limit.expires is not None and now >= limit.expires:
        return max(1, limit.limit - limit.outgoing), 0.0
    if limit.remaining > 0:
        return limit.remaining, 0.0
    # Exhausted: until its window resets, or (no headers yet) until the request in flight answers.
    return 0, (limit.expires - now) if limit.expires is not None else 0.05
