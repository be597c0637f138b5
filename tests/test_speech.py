"""The speech engine without Discord: what is read out, the audio made for a voice message, and the
Speaker against the loopback model server's /v1/audio/speech (real audio, real faults)."""

from __future__ import annotations

import math
from array import array

import pytest

from bot.audio import WAVEFORM_MAX_POINTS, voice_message_audio, waveform
from bot.errors import AudioUnplayable, NothingToSay, SpeechFailed, SpeechOverBudget
from bot.speech import clip, speakable
from bot.usage import day_key
from tests.standins.audio_samples import decode, tone
from tests.standins.model_server import Error, Garbage, Stall


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Plain words.", "Plain words."),
        ("**Bold**, *it*, __under__, ~~gone~~ and ||secret||.", "Bold, it, under, gone and secret."),
        ("snake_case_name stays", "snake_case_name stays"),
        ("Before\n```py\nprint(1)\n```\nafter", "Before\nafter"),
        ("Unclosed ```code that runs to the end", "Unclosed"),
        ("Use `pip install` now", "Use pip install now"),
        ("Read [the docs](https://example.com/docs) today.", "Read the docs today."),
        ("See https://example.com/a?b=1, or www.example.org.", "See, or."),
        ("Hi <@123> in <#456> <:party:789> at <t:1700000000:R>!", "Hi in at!"),
        ("# Title\n> quoted\n- item\n-# small", "Title\nquoted\nitem\nsmall"),
        ("The answer.\n\n*(Answer cut short: it reached the reply length limit.)*", "The answer."),
    ],
)
def test_only_what_makes_sense_aloud_is_read_out(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


def test_long_text_is_cut_at_a_sentence_end_else_a_word() -> None:
    text = "One two three. Four five six! Seven eight nine ten eleven twelve."
    assert clip(text, 30) == "One two three. Four five six!"
    assert clip(text, len(text)) == text
    assert clip("abcdefghij klmnopqrstu vwxyz", 12) == "abcdefghij"
    assert clip("x" * 50, 10) == "x" * 10


@pytest.mark.parametrize("response_format", ["opus", "wav", "mp3", "flac", "aac"])
def test_any_server_format_becomes_a_measured_ogg_opus_voice_message(response_format: str) -> None:
    data = tone(3.0, response_format)
    audio = voice_message_audio(data)
    decoded = decode(audio.ogg)
    assert (decoded.container, decoded.codec, decoded.sample_rate) == ("ogg", "opus", 48_000)
    assert abs(audio.seconds - decoded.seconds) <= 0.1 and abs(audio.seconds - 3.0) <= 0.1
    assert audio.transcoded == (response_format != "opus")
    if response_format == "opus":
        assert audio.ogg == data, "OGG Opus from the server is sent as it came"
    assert len(audio.waveform) == math.ceil(audio.seconds / 0.1 - 1e-9), "one point per 100 ms"
    # The tone (at 61% of full scale) swells and fades: the sketch rises to the middle and falls again.
    middle = audio.waveform[len(audio.waveform) // 2]
    assert 145 <= middle <= 160 and audio.waveform[0] < middle / 3 and audio.waveform[-1] < middle / 3


def test_the_waveform_is_at_most_256_points() -> None:
    audio = voice_message_audio(tone(40.0, "opus"))
    assert len(audio.waveform) == WAVEFORM_MAX_POINTS
    assert waveform(array("h"), 0.05) == b"\x00", "no samples: one silent point"


@pytest.mark.parametrize("data", [b"", b"not audio" * 100, tone(1.0, "wav")[:60]], ids=["empty", "garbage", "cut"])
def test_bytes_that_are_not_playable_audio_are_refused(data: bytes) -> None:
    with pytest.raises(AudioUnplayable):
        voice_message_audio(data)


async def test_the_speaker_reads_out_and_records_the_characters(services, model_server) -> None:
    spoken = await services.speaker.speak("Hello **there**.", guild_id=7, user_id=8)
    [request] = model_server.speech.requests
    assert request.input == "Hello there." == spoken.script.text and spoken.script.complete
    assert abs(spoken.audio.seconds - decode(request.sent).seconds) <= 0.1
    day = day_key(services.chat.clock())
    model = services.speaker.model
    for key in (services.keys.guild_usage(7, day), services.keys.user_usage(8, day)):
        assert await services.redis.hgetall(key) == {
            f"req:{model}".encode(): b"1",
            f"tts_chars:{model}".encode(): str(len("Hello there.")).encode(),
        }


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [(Error(500), SpeechFailed), (Stall(5), SpeechFailed), (Garbage(), AudioUnplayable)],
    ids=["500", "timeout", "garbage"],
)
async def test_speaker_failures_are_speech_errors(services_factory, make_settings, model_server, behaviour, error):
    services = services_factory(make_settings(voice={"tts_timeout_s": 0.3}))
    model_server.speech.script(behaviour)
    with pytest.raises(error):
        await services.speaker.speak("Say this.", guild_id=None, user_id=1)


async def test_nothing_to_read_out_asks_no_server(services, model_server) -> None:
    with pytest.raises(NothingToSay):
        await services.speaker.speak("```\ncode only\n```\nhttps://example.com", guild_id=None, user_id=1)
    assert model_server.speech.requests == []


async def test_speech_over_the_budget_asks_no_server(services_factory, make_settings, model_server) -> None:
    services = services_factory(make_settings(limits={"guild_daily_tokens": 10}))
    with pytest.raises(SpeechOverBudget):
        await services.speaker.speak("Eleven char", guild_id=3, user_id=1)
    await services.speaker.speak("Ten chars.", guild_id=3, user_id=1)  # exactly the budget: fine
    assert [r.input for r in model_server.speech.requests] == ["Ten chars."]
