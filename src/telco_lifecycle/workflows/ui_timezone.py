"""The Airflow UI shows Copenhagen time unless its user chose otherwise.

Airflow 3.3.2 has no server setting for the UI's time zone: the UI takes the browser's, kept
in the browser's localStorage under `timezone` once the user picks one in the user menu. This
ASGI middleware (registered by plugins/retention_status.py) adds one line to the UI's HTML
page that stores Europe/Copenhagen there when nothing is stored yet, so every date the data
team reads matches the policy's clock; a user's own choice is left alone."""

from __future__ import annotations

import json
from typing import Any

from telco_lifecycle.settings import TIMEZONE

STORAGE_KEY = "timezone"  # the UI's localStorage key (useLocalStorage, JSON-encoded)
_KEY, _ZONE = json.dumps(STORAGE_KEY), json.dumps(json.dumps(TIMEZONE))
SCRIPT = (f"<script>try{{if(!localStorage.getItem({_KEY}))localStorage.setItem({_KEY},{_ZONE})}}"
          "catch(e){}</script>").encode()
HEAD = b"<head>"


class DefaultUiTimezone:
    """Insert SCRIPT at the start of <head> of every HTML page the API server sends."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        body = bytearray()

        async def send_with_default(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if _is_html(message):
                    start = message
                    return
            elif message["type"] == "http.response.body" and start is not None:
                body.extend(message.get("body", b""))
                if message.get("more_body"):
                    return
                page = bytes(body).replace(HEAD, HEAD + SCRIPT, 1)
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-length", str(len(page)).encode())]})
                await send({"type": "http.response.body", "body": page})
                return
            await send(message)

        await self.app(scope, receive, send_with_default)


def _is_html(start: dict) -> bool:
    headers = dict((k.lower(), v) for k, v in start.get("headers", []))
    return headers.get(b"content-type", b"").startswith(b"text/html") and b"content-encoding" not in headers
