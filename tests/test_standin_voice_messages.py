"""The stand-in Discord checks voice messages as Discord does: the bot's tests rely on it refusing
what Discord would refuse. Raw multipart uploads, as any client would send them."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import TEST_DISCORD_TOKEN
from tests.standins.audio_samples import tone
from tests.standins.discord_voice import IS_VOICE_MESSAGE, SEND_VOICE_MESSAGES

OPUS = tone(1.5, "opus")
WAVEFORM = base64.b64encode(bytes(range(0, 255, 17))).decode()


def voice_payload(**changes: Any) -> dict[str, Any]:
    entry = {"id": 0, "filename": "voice-message.ogg", "duration_secs": 1.5, "waveform": WAVEFORM}
    payload: dict[str, Any] = {
        "flags": IS_VOICE_MESSAGE,
        "attachments": [entry],
        "allowed_mentions": {"parse": []},  # the mention audit of every test applies here too
    }
    for key, value in changes.items():
        if key in entry:
            entry[key] = value
        else:
            payload[key] = value
    return {k: v for k, v in payload.items() if v is not None}


async def post(
    dc: Any,
    channel_id: int,
    payload: dict[str, Any],
    files: list[bytes],
    content_type: str = "application/octet-stream",
) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    form.add_field("payload_json", json.dumps(payload), content_type="application/json")
    for index, data in enumerate(files):
        form.add_field(f"files[{index}]", data, filename="voice-message.ogg", content_type=content_type)
    async with aiohttp.ClientSession() as session:
        url = f"{dc.api_base}/api/v10/channels/{channel_id}/messages"
        async with session.post(url, data=form, headers={"Authorization": f"Bot {TEST_DISCORD_TOKEN}"}) as response:
            return response.status, await response.json()


async def test_a_valid_voice_message_is_stored_with_its_length_and_waveform(discord_standin, world) -> None:
    status, message = await post(discord_standin, world.dm_channel_id, voice_payload(), [OPUS])
    assert status == 200 and message["flags"] & IS_VOICE_MESSAGE and message["content"] == ""
    [attachment] = message["attachments"]
    assert (attachment["duration_secs"], attachment["waveform"]) == (1.5, WAVEFORM)
    assert attachment["content_type"] == "audio/ogg"
    status, message = await post(discord_standin, world.dm_channel_id, voice_payload(), [OPUS], "audio/ogg")
    assert status == 200 and message["attachments"][0]["content_type"] == "audio/ogg"


async def test_a_voice_message_whose_attachment_is_not_audio_is_refused(discord_standin, world) -> None:
    """Discord respects duration_secs and waveform only for an audio/ Content-Type."""
    for payload, declared in (
        (voice_payload(filename="voice-message.bin"), "application/octet-stream"),
        (voice_payload(), "video/ogg"),
    ):
        status, body = await post(discord_standin, world.dm_channel_id, payload, [OPUS], declared)
        assert (status, body["code"]) == (400, 50035), declared
        [recorded] = discord_standin.voice_message_violations
        assert "audio/ Content-Type" in recorded
        discord_standin.voice_message_violations.clear()  # expected here; the fixture fails on any other


@pytest.mark.parametrize(
    ("payload", "files", "problem"),
    [
        (voice_payload(content="hello"), [OPUS], "may not carry content"),
        (voice_payload(), [OPUS, OPUS], "exactly one file"),
        (voice_payload(attachments=[]), [OPUS], "exactly one attachments entry"),
        (voice_payload(id=1), [OPUS], "does not name the uploaded part"),
        (voice_payload(duration_secs=None), [OPUS], "duration_secs must be a positive number"),
        (voice_payload(duration_secs=1.7), [OPUS], "is not the audio's length"),
        (voice_payload(waveform=None), [OPUS], "waveform must be a base64 string"),
        (voice_payload(waveform="***"), [OPUS], "not valid base64"),
        (voice_payload(waveform=base64.b64encode(bytes(257)).decode()), [OPUS], "1 to 256 bytes"),
        (voice_payload(), [b"OggS" + bytes(200)], "not playable audio"),
        (voice_payload(), [tone(1.5, "wav")], "a voice message is OGG Opus"),
    ],
    ids=[
        "content",
        "two-files",
        "no-entry",
        "wrong-id",
        "no-duration",
        "wrong-duration",
        "no-waveform",
        "bad-base64",
        "long-waveform",
        "not-audio",
        "not-opus",
    ],
)
async def test_what_discord_refuses_is_refused(discord_standin, world, payload, files, problem) -> None:
    status, body = await post(discord_standin, world.dm_channel_id, payload, files)
    assert (status, body["code"]) == (400, 50035)
    [recorded] = discord_standin.voice_message_violations
    assert problem in recorded
    discord_standin.voice_message_violations.clear()  # expected here; the fixture fails on any other


async def test_refusing_channels_and_the_missing_permission(discord_standin, world) -> None:
    discord_standin.refuse_voice_messages(world.dm_channel_id)
    status, body = await post(discord_standin, world.dm_channel_id, voice_payload(), [OPUS])
    assert (status, body["code"], body["message"]) == (400, 50173, "Cannot send voice messages in this channel")
    discord_standin.deny_bot(world.channel_id, SEND_VOICE_MESSAGES)
    status, body = await post(discord_standin, world.channel_id, voice_payload(), [OPUS])
    assert (status, body["code"]) == (403, 50013)
