"""The demo's embedded MQTT broker: amqtt (pure Python) in a background thread with its own
asyncio loop, anonymous, listening on 127.0.0.1 only. For a first run without Mosquitto.

What it lacks, checked with amqtt 0.12: MQTT 5 (a v5 CONNECT is refused "unsupported protocol
version"), hence shared subscriptions and message expiry; and it does not queue QoS 1 messages
for a disconnected persistent session. So the bridge talks MQTT 3.1.1 to it, with plain
subscriptions and one worker, and scans sent while the bridge is down are not kept. QoS 1 and
retained messages work (paho publishes and subscribes through it). Production uses Mosquitto.
"""

import asyncio
import contextlib
import logging
import socket
import threading

log = logging.getLogger(__name__)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """`EmbeddedBroker().start()` → its URL; `stop()` shuts it down."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883):
        self.host = host
        self.port = port if port_is_free(host, port) else free_port(host)
        self.loop = asyncio.new_event_loop()
        self.broker = None
        self.started = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="mqtt-broker", daemon=True)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "EmbeddedBroker":
        # amqtt and its state machine log every connection at INFO: keep the console readable.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.thread.start()
        if not self.started.wait(timeout) or self.error is not None:
            raise RuntimeError(f"the embedded MQTT broker did not start: {self.error}")
        return self

    def _run(self):
        from amqtt.broker import Broker

        asyncio.set_event_loop(self.loop)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }

        async def serve():
            self.broker = Broker(config)
            await self.broker.start()

        try:
            self.loop.run_until_complete(serve())
        except BaseException as e:  # reported to start()
            self.error = e
            self.started.set()
            return
        self.started.set()
        self.loop.run_forever()

    def stop(self, timeout: float = 5.0):
        if self.broker is None or not self.loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(self.broker.shutdown(), self.loop)
        with contextlib.suppress(Exception):
            future.result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
