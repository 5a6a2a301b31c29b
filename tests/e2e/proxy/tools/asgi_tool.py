"""A tool served by hypercorn, as deployed: HTTP/1.1, h2c upgrades honoured (hypercorn's
default), websockets. It routes without regard to case, as Express and ASP.NET do, so /ADMIN is
its admin area. Each request is printed to stdout as one JSON line.

Usage: python asgi_tool.py PORT
"""

import asyncio
import json
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config


def log(scope, **extra):
    fields = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    line = {
        "server": "hypercorn",
        "type": scope["type"],
        "http_version": scope.get("http_version"),
        "method": scope.get("method"),
        "path": scope["path"],
        "headers": fields,
        **extra,
    }
    print(json.dumps(line), flush=True)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    log(scope)
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "text": f"echo: {message.get('text')}"})
    while (await receive()).get("more_body"):
        pass
    route = scope["path"].lower()
    if route == "/admin" or route.startswith("/admin/"):
        body = b"admin area: " + scope["path"].encode()
    else:
        body = b"page: " + scope["path"].encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main():
    config = Config()
    config.bind = [f"127.0.0.1:{sys.argv[1]}"]
    config.accesslog = None
    asyncio.run(serve(app, config))


if __name__ == "__main__":
    main()
