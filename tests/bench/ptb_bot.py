"""The python-telegram-bot baseline of cryptosat-bench: the smallest bot that
answers /help, with the library's defaults (getUpdates long polling, updates
handled one at a time, no rate limiter).

Environment: BENCH_TOKEN (bot token), BENCH_BASE_URL (the fake Bot API,
e.g. http://127.0.0.1:PORT). Stops on SIGTERM/SIGINT.
"""

import os

from telegram import Update
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes

HELP = "CryptoSat commands (python-telegram-bot baseline)\n/help - this text"


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text(HELP)


def main() -> None:
    app = (
        ApplicationBuilder()
        .token(os.environ["BENCH_TOKEN"])
        .base_url(os.environ["BENCH_BASE_URL"] + "/bot")
        .build()
    )
    app.add_handler(CommandHandler("help", help_command))
    app.run_polling(poll_interval=0.0, timeout=25)


if __name__ == "__main__":
    main()
