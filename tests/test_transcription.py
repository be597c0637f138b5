"""The transcription service on the loopback model server, the formats it accepts, and how transcripts
are quoted into Discord messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import AudioEmpty, AudioTooLarge, ConfigError
from bot.services import Services, build_transcription_client
from bot.transcription import ESTIMATE_BITS_PER_SECOND, AudioFile, audio_format, looks_like_audio
from cogs.voice import quoted
from tests.conftest import replace_settings
from tests.standins.model_server import ModelServer, Transcript

CLIP = (Path(__file__).parent / "fixtures" / "voice-message.ogg").read_bytes()
OGG = AudioFile("voice-message.ogg", "audio/ogg")


@pytest.mark.parametrize(
    ("filename", "content_type", "expected"),
    [
        ("voice-message.ogg", "audio/ogg", OGG),
        ("talk.MP3", "audio/mpeg", AudioFile("talk.MP3", "audio/mpeg")),
        ("talk.m4a", None, AudioFile("talk.m4a", "audio/mp4")),
        ("clip.mp4", "video/mp4", AudioFile("clip.mp4", "video/mp4")),
        ("take.wav", "application/octet-stream", AudioFile("take.wav", "audio/wav")),
        ("recording", "audio/ogg; codecs=opus", AudioFile("recording.ogg", "audio/ogg")),
        ("song.aac", "audio/aac", None),
        ("photo.png", "image/png", None),
        ("notes.txt", None, None),
    ],
)
def test_audio_formats_the_api_takes(filename: str, content_type: str | None, expected: AudioFile | None) -> None:
    assert audio_format(filename, content_type) == expected


def test_audio_the_api_does_not_take_still_counts_as_audio() -> None:
    assert looks_like_audio("song.aac", "audio/aac")
    assert not looks_like_audio("photo.png", "image/png")


async def test_the_length_comes_from_discord_else_an_estimate(services: Services, model_server: ModelServer) -> None:
    model_server.script_transcriptions(Transcript(" Hello bot. "), Transcript("Hello again."))
    told = await services.transcriber.transcribe(CLIP, OGG, seconds=3.35)
    assert (told.text, told.seconds, told.seconds_source) == ("Hello bot.", 3.35, "metadata")
    guessed = await services.transcriber.transcribe(CLIP, OGG)
    assert guessed.seconds == pytest.approx(len(CLIP) * 8 / ESTIMATE_BITS_PER_SECOND)
    assert guessed.seconds_source == "estimate"


async def test_delivered_bytes_are_checked_again(services_factory, make_settings, model_server) -> None:
    services = services_factory(make_settings(voice={"max_bytes": 1_000}))
    with pytest.raises(AudioEmpty):
        await services.transcriber.transcribe(b"", OGG)
    with pytest.raises(AudioTooLarge):
        await services.transcriber.transcribe(CLIP, OGG)  # metadata said small; Discord sent more
    assert model_server.transcriptions == []


async def test_a_separate_client_only_when_configured(make_settings) -> None:
    settings = make_settings()
    assert build_transcription_client(settings) is None
    elsewhere = replace_settings(settings, secrets={"transcription_base_url": "http://127.0.0.1:9/v1"})
    client = build_transcription_client(elsewhere)
    assert client is not None
    try:
        assert str(client.base_url).startswith("http://127.0.0.1:9/v1")
        assert client.api_key != settings.secrets.openai_api_key, "the chat key never goes to another server"
    finally:
        await client.close()


def test_the_shipped_config_documents_the_voice_defaults() -> None:
    from bot.settings import VoiceSettings

    shipped = load_settings(
        Path(__file__).resolve().parent.parent / "config.toml", {"DISCORD_TOKEN": "t", "OPENAI_API_KEY": "k"}
    )
    assert shipped.voice == VoiceSettings()


def test_voice_settings_are_validated(tmp_path: Path) -> None:
    env = {"DISCORD_TOKEN": "t", "OPENAI_API_KEY": "k", "TRANSCRIPTION_BASE_URL": "http://127.0.0.1:8000/v1"}
    path = tmp_path / "config.toml"
    path.write_text('[voice]\nmodel = "whisper-large-v3"\nmax_seconds = 60\n', encoding="utf-8")
    settings = load_settings(path, env)
    assert (settings.voice.model, settings.voice.max_seconds) == ("whisper-large-v3", 60.0)
    assert settings.secrets.transcription_base_url == "http://127.0.0.1:8000/v1"
    for text, message in [
        ("max_bytes = 30_000_000", "voice.max_bytes must be between 1 and 26214400"),
        ("max_seconds = 0", "voice.max_seconds must be greater than 0"),
        ('model = ""', "voice.model must name a transcription model"),
        ("enabled = 1", "voice.enabled must be true or false"),
    ]:
        path.write_text(f"[voice]\n{text}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            load_settings(path, env)


def test_a_transcript_is_quoted_line_by_line_across_messages() -> None:
    assert quoted("one\ntwo") == ["> one\n> two"]
    long = " ".join(f"word{i}" for i in range(600))  # one spoken paragraph, ~4,900 characters
    pieces = quoted(long)
    assert len(pieces) == 3
    assert all(len(p) <= 2_000 and p.startswith("> ") for p in pieces)
    assert " ".join(p.removeprefix("> ") for p in pieces).split() == long.split()
