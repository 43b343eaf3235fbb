"""A user-space TCP relay on 127.0.0.1 that adds network delay (``tc netem`` is not
available in this sandbox).

    python relay.py LISTEN_PORT:TARGET_PORT:DELAY_MS [...]

Each connection to LISTEN_PORT is forwarded to TARGET_PORT; every chunk read in either
direction is held DELAY_MS before it is written, in order, so a request/response round trip
through the relay gains 2 x DELAY_MS.  A PETALS server listens on P and announces P + 1000,
where its relay sits, so every peer (client or server) reaching it pays its delay.
Standard library only; runs until terminated.
"""
from __future__ import annotations

import asyncio
import sys
import time


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                break
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(1 << 16)
            await queue.put((time.monotonic() + delay_s, data or None))
            if not data:
                break
        await task
    except (ConnectionError, asyncio.CancelledError):
        task.cancel()
    finally:
        try:
            writer.close()
        except Exception:
            pass


def _handler(target_port: int, delay_s: float):
    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pump(client_reader, server_writer, delay_s),
                             _pump(server_reader, client_writer, delay_s),
                             return_exceptions=True)
    return handle


async def main(specs: list[str]) -> None:
    servers = []
    for spec in specs:
        listen, target, delay_ms = spec.split(":")
        srv = await asyncio.start_server(_handler(int(target), float(delay_ms) / 1e3),
                                         "127.0.0.1", int(listen))
        servers.append(srv)
        print(f"relay 127.0.0.1:{listen} -> {target}, {float(delay_ms):g} ms each way", flush=True)
    print("relay ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1:]))
    except KeyboardInterrupt:
        pass
