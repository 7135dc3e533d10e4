"""Wiring llmwatch into a FastAPI (any ASGI) gateway: one event per request, off the hot path.

FastAPI is not an llmwatch dependency; ``pip install fastapi uvicorn`` to run this:
``LLMWATCH_BOOTSTRAP_SERVERS=127.0.0.1:9092 uvicorn fastapi_gateway:app``.
"""

import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request  # type: ignore[import-not-found]

from connectors.gateway import AsyncGatewayPublisher
from schemas.models import InferenceEvent
from stream.settings import Settings, kafka_client_config

settings = Settings()
publisher = AsyncGatewayPublisher(
    kafka_client_config(settings), inference_topic=settings.topic_inference
)


@asynccontextmanager
async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
    async with publisher:  # polls delivery reports; flushes on shutdown
        yield


app = FastAPI(lifespan=lifespan)


@app.middleware("http")
async def llmwatch_middleware(request: Request, call_next):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    response = await call_next(request)
    publisher.publish(  # never blocks, never raises for Kafka trouble (drops are counted)
        InferenceEvent(
            ts=datetime.now(UTC),
            gateway="gw-1",
            model=request.headers.get("x-model", "unknown"),
            model_version=request.headers.get("x-model-version", "unknown"),
            route=request.url.path,
            request_id=request.headers.get("x-request-id", uuid.uuid4().hex),
            status="ok" if response.status_code < 400 else "error",
            http_status=response.status_code,
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )
    )
    return response


@app.get("/llmwatch/stats")
async def llmwatch_stats() -> dict[str, object]:
    return publisher.stats().as_dict()
