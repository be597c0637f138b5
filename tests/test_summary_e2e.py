"""Long memory through Discord: a conversation longer than the window gets a summary, and /forget
removes it with the history (discord.py against the stand-in Discord, a real Redis)."""

from __future__ import annotations

from tests.harness import MANAGE_MESSAGES
from tests.test_summary import PADDING, answer_summaries, chats, summaries


async def test_a_long_conversation_is_summarised_and_forget_removes_the_summary(chat_bot, world) -> None:
    async with chat_bot(model={"context_window": 700, "max_reply_tokens": 100}) as chat:
        answer_summaries(chat.model)
        for i in range(8):
            await chat.mention(world.channel_id, f"message {i} {PADDING}")
            await chat.answer(world.channel_id, f"echo: message {i} {PADDING}")
        await chat.bot.services.chat.summarizer.wait()
        assert summaries(chat.model), "the conversation outgrew its window"
        summary_key = chat.bot.services.keys.summary(world.channel_id)
        assert await chat.bot.services.redis.exists(summary_key)
        await chat.mention(world.channel_id, "what was the fruit?")
        await chat.answer(world.channel_id, "echo: what was the fruit?")
        assert "SUMMARY: fruit is kiwi" in chats(chat.model)[-1].messages[1]["content"]
        reply = await chat.command("forget", permissions=MANAGE_MESSAGES)
        assert reply.content.startswith("Done: I forgot this conversation")
        assert not await chat.bot.services.redis.exists(summary_key)
        await chat.mention(world.channel_id, "fresh start")
        await chat.answer(world.channel_id, "echo: fresh start")
        assert [m["role"] for m in chats(chat.model)[-1].messages] == ["system", "user"]
