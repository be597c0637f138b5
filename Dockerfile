# The bot in a container: slim Python 3.12, a non-root user, dependencies in their own cached layer.
# Build and run (see README, "Deploying"): docker compose up -d
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 bot
WORKDIR /app

# Only requirements.txt first: code changes do not reinstall the dependencies.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY bot/ bot/
COPY cogs/ cogs/
COPY playground/ playground/
COPY config.toml .
# The embedded Redis (used when REDIS_URL is unset) keeps its data here; mount a volume on it.
RUN mkdir -p /app/data && chown bot:bot /app/data
USER bot

CMD ["python", "-m", "bot"]
