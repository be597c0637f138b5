"""The playground's page (Gradio): the chat, the persona picker, voice input, forget and the costs.

Web I/O only: every handler calls ``Playground`` (the engine's services) and turns a ``BotError`` into
the sentence Discord would show. Each event has an API name, so Gradio's own client can drive the page
exactly as a browser does (the browser keeps its session id in encrypted localStorage).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from bot.errors import BotError
from bot.personas import CUSTOM
from bot.usage import UsageTotals
from playground.session import Costs, Playground, new_session_id, plain_sentence, valid_session

log = logging.getLogger(__name__)

TITLE = "Bot playground"
STORAGE_KEY = "discord-bot-playground-session"
UNEXPECTED = "Something went wrong on my side; it has been logged. Please try again."
LOST_SESSION = "This page has no session yet: reload it."
SPOKEN = "🎤 "

Message = dict[str, str]


def text_of(content: Any) -> str:
    """A chat message's text, whichever shape Gradio hands it back in (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, list | tuple):
        return "".join(text_of(part) for part in content)
    return ""


def shown(chat: list[Any] | None) -> list[Message]:
    return [{"role": str(m.get("role")), "content": text_of(m.get("content"))} for m in chat or [] if m]


def money(dollars: float) -> str:
    return f"${dollars:.6f}" if dollars < 0.01 else f"${dollars:.4f}"


def totals_line(totals: UsageTotals) -> str:
    parts = [f"{totals.input_tokens:,} in + {totals.output_tokens:,} out tokens"]
    if totals.audio_seconds:
        parts.append(f"{totals.audio_seconds:.1f} s of audio")
    parts.append(f"{money(totals.cost)} estimated")
    line = " · ".join(parts)
    if totals.estimated_requests:
        line += " (tokens counted here: the server sent no usage)"
    if totals.unpriced_models:
        line += f" (no price set for {', '.join(sorted(totals.unpriced_models))})"
    return line


def costs_markdown(costs: Costs) -> str:
    turn = f"**Last turn:** {totals_line(costs.turn)}" if costs.turn else "**Last turn:** none yet"
    today = costs.today
    return (
        f"{turn}\n\n**Today (UTC, all playground sessions):** {today.tokens:,} tokens, "
        f"{today.requests:,} request{'s' if today.requests != 1 else ''}, {money(today.cost)} estimated"
    )


def sentence(exc: Exception) -> str:
    if isinstance(exc, BotError):
        log.info("Playground turn refused: %s", exc)
        return plain_sentence(exc)
    log.error("Playground handler failed", exc_info=exc)
    return UNEXPECTED


class Page:
    """The handlers, bound to the engine."""

    def __init__(self, playground: Playground) -> None:
        self.playground = playground

    async def start(self, session: Any) -> tuple[Any, ...]:
        """Page load: the browser's session (a new one the first time), its history, persona and costs."""
        session = valid_session(session) or new_session_id()
        try:
            history = await self.playground.history(session)
            persona, custom = await self.playground.persona(session)
            model = await self.playground.model(session)
            costs = costs_markdown(await self.playground.costs())
            status = ""
        except BotError as exc:
            history, persona, custom, model, costs = [], gr.skip(), "", gr.skip(), ""
            status = sentence(exc)
        return session, history, persona, custom, model, costs, status

    async def chat(self, session: Any, text: str, chat: list[Any] | None) -> AsyncIterator[tuple[Any, ...]]:
        """A typed message: shown at once, then the answer as it streams, then the costs."""
        messages = shown(chat)
        text = (text or "").strip()
        if not text:
            yield gr.skip(), messages, gr.skip()
            return
        messages.append({"role": "user", "content": text})
        conversation = valid_session(session)
        if conversation is None:
            yield "", [*messages, {"role": "assistant", "content": LOST_SESSION}], gr.skip()
            return
        yield "", messages, gr.skip()
        request = self.playground.request(conversation, text)
        async for showing, costs in self._answer(request, messages, None):
            yield gr.skip(), showing, costs

    async def listen(self, session: Any, audio: str | None, chat: list[Any] | None) -> AsyncIterator[tuple[Any, ...]]:
        """A recorded or uploaded clip: transcribed, the transcript shown, then answered like typed text."""
        messages = shown(chat)
        conversation = valid_session(session)
        if not audio:
            yield gr.skip(), messages, gr.skip()
            return
        if conversation is None:
            yield None, [*messages, {"role": "assistant", "content": LOST_SESSION}], gr.skip()
            return
        message_id = new_session_id()
        try:
            heard, audio_cost = await self.playground.hear(conversation, audio, message_id)
        except Exception as exc:
            yield None, [*messages, {"role": "assistant", "content": sentence(exc)}], gr.skip()
            return
        messages.append({"role": "user", "content": SPOKEN + heard.text})
        yield None, messages, gr.skip()
        request = self.playground.request(conversation, heard.text, spoken=True, message_id=message_id)
        async for showing, costs in self._answer(request, messages, audio_cost):
            yield gr.skip(), showing, costs

    async def _answer(
        self, request: Any, messages: list[Message], spent: UsageTotals | None
    ) -> AsyncIterator[tuple[list[Message], Any]]:
        """The engine's turn, streamed into the last message; a refusal is its one sentence."""
        answer = {"role": "assistant", "content": ""}
        messages = [*messages, answer]
        costs: Any = gr.skip()
        try:
            async for event in self.playground.turn(request):
                if isinstance(event, str):
                    answer["content"] += event
                    yield messages, costs
                else:
                    turn = event
                    if spent is not None:  # a spoken turn costs its transcription too
                        turn.add(spent)
                    costs = costs_markdown(await self.playground.costs(turn))
        except Exception as exc:
            said = answer["content"]
            # Text already shown stays, marked, as on Discord; it was not stored.
            answer["content"] = f"{said}\n\n*{sentence(exc)}*" if said else sentence(exc)
            if spent is not None:
                costs = costs_markdown(await self._costs_or_none(spent))
        if not answer["content"]:
            answer["content"] = "*(the model sent an empty answer)*"
        yield messages, costs

    async def _costs_or_none(self, spent: UsageTotals) -> Costs:
        try:
            return await self.playground.costs(spent)
        except BotError:
            return Costs(spent, UsageTotals())

    async def pick(self, session: Any, name: str, custom: str) -> str:
        """The persona picker: a built-in, or "custom" (the prompt in the box)."""
        conversation = valid_session(session)
        if conversation is None:
            return LOST_SESSION
        try:
            if name == CUSTOM:
                await self.playground.save_custom(conversation, custom or "")
            else:
                await self.playground.choose(conversation, name)
        except Exception as exc:
            return sentence(exc)
        return f"Persona **{name}**: it applies from your next message."

    async def pick_model(self, session: Any, name: str) -> str:
        conversation = valid_session(session)
        if conversation is None:
            return LOST_SESSION
        try:
            await self.playground.choose_model(conversation, name)
        except Exception as exc:
            return sentence(exc)
        return f"Model **{name}**: it answers from your next message."

    async def use_custom(self, session: Any, custom: str) -> tuple[Any, str]:
        status = await self.pick(session, CUSTOM, custom)
        return (CUSTOM if status.startswith("Persona") else gr.skip()), status

    async def forget(self, session: Any) -> tuple[Any, str]:
        conversation = valid_session(session)
        if conversation is None:
            return gr.skip(), LOST_SESSION
        try:
            removed = await self.playground.forget(conversation)
        except Exception as exc:
            return gr.skip(), sentence(exc)
        if not removed:
            return [], "There was nothing to forget."
        return [], f"Done: I forgot this conversation ({removed} message{'s' if removed != 1 else ''})."


def build(playground: Playground, secret: str) -> gr.Blocks:
    page = Page(playground)
    names = playground.persona_names
    # Uploaded and recorded audio is kept by Gradio in its temporary folder: gone after an hour.
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        session = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=secret)
        gr.Markdown(f"## {TITLE}\nThe bot's engine, personas and costs, without a Discord server.")
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(label="Conversation", height=460, elem_id="chat", buttons=["copy"])
                message = gr.Textbox(
                    show_label=False, placeholder="Type a message and press Enter", elem_id="message", lines=1
                )
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    forget = gr.Button("Forget this conversation", elem_id="forget")
                voice = gr.Audio(
                    sources=["microphone", "upload"], type="filepath", label="Speak, or upload audio", elem_id="voice"
                )
            with gr.Column(scale=2):
                persona = gr.Dropdown(names, value=names[0], label="Persona", elem_id="persona")
                models = playground.model_names
                # Shown when config.toml offers more than one model ([[models]]), as /model does on Discord.
                model = gr.Dropdown(models, value=models[0], label="Model", elem_id="model", visible=len(models) > 1)
                custom = gr.Textbox(label="Custom prompt", lines=5, elem_id="custom")
                use_custom = gr.Button("Use this prompt", elem_id="use-custom")
                status = gr.Markdown(elem_id="status")
                costs = gr.Markdown(elem_id="costs")
        demo.load(page.start, [session], [session, chat, persona, custom, model, costs, status], api_name="start")
        chat_outputs = [message, chat, costs]
        message.submit(page.chat, [session, message, chat], chat_outputs, api_name="chat")
        send.click(page.chat, [session, message, chat], chat_outputs, api_visibility="private")
        voice_outputs = [voice, chat, costs]
        voice.upload(page.listen, [session, voice, chat], voice_outputs, api_name="voice")
        voice.stop_recording(page.listen, [session, voice, chat], voice_outputs, api_visibility="private")
        persona.input(page.pick, [session, persona, custom], [status], api_name="persona")
        model.input(page.pick_model, [session, model], [status], api_name="model")
        use_custom.click(page.use_custom, [session, custom], [persona, status], api_name="custom")
        forget.click(page.forget, [session], [chat, status], api_name="forget")
        # The chat's own trash button forgets too: clearing only the page would bring it all back on reload.
        chat.clear(page.forget, [session], [chat, status], api_visibility="private")
    return demo
