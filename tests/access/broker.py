"""A test's view of the real broker: each test gets its own topic root, a listener that records
what arrives, and a sweep of the retained messages it left behind."""

import getpass
import shutil
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from access.commands import publisher
from access.mqtt import broker_from_url, new_client
from tests.conftest import MQTT_TEST_URL


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool


class Listener:
    """Subscribes to `<root>/#` and keeps every message, with its retain flag."""

    def __init__(self, root: str):
        self.root = root
        self.messages: list[Received] = []
        self._ready = threading.Event()
        broker = broker_from_url(MQTT_TEST_URL)
        self.client = new_client(f"test-listen-{uuid.uuid4().hex[:12]}")
        if broker.username:
            self.client.username_pw_set(broker.username, broker.password)
        self.client.on_message = lambda c, u, m: self.messages.append(
            Received(m.topic, m.payload, bool(m.retain))
        )
        self.client.on_subscribe = lambda *args: self._ready.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(f"{root}/#", qos=1)
        assert self._ready.wait(5), "the broker did not confirm the subscription"

    def wait_for(self, topic: str, timeout: float = 3.0) -> Received:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.messages:
                if m.topic == topic:
                    return m
            time.sleep(0.01)
        raise AssertionError(f"nothing on {topic}; got {[m.topic for m in self.messages]}")

    def close(self):
        # Disconnect first: paho's thread then ends at once instead of after its 1 s poll.
        self.client.disconnect()
        self.client.loop_stop()


def retained(root: str, settle: float = 0.3) -> list[Received]:
    """The retained messages under the root, as a new subscriber receives them."""
    listener = Listener(root)
    time.sleep(settle)
    listener.close()
    return [m for m in listener.messages if m.retain]


def clear_retained(root: str):
    """Publish an empty retained payload on every retained topic under the root."""
    found = retained(root)
    if not found:
        return
    broker = broker_from_url(MQTT_TEST_URL)
    client = new_client(f"test-sweep-{uuid.uuid4().hex[:12]}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    for m in found:
        client.publish(m.topic, b"", qos=1, retain=True).wait_for_publish(3)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def broker_root(settings):
    """MQTT_URL on the test broker and a topic root of this test's own, swept afterwards."""
    root = f"test-{uuid.uuid4().hex[:12]}/v1"
    settings.MQTT_URL = MQTT_TEST_URL
    settings.MQTT_ROOT = root
    yield root
    publisher.close()
    clear_retained(root)


@pytest.fixture
def listener(broker_root):
    listening = Listener(broker_root)
    yield listening
    listening.close()


def wait_until(predicate, timeout=10.0, step=0.02) -> bool:
    """Poll until the predicate holds or the timeout passes; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class PrivateMosquitto:
    """A Mosquitto of a test's own on a free port, which it may stop and start again (on the
    same port, without persistence: sessions and retained messages are lost, as after a crash).
    Never the system broker: other tests use it."""

    def __init__(self, directory: Path):
        if shutil.which("mosquitto") is None:
            raise FileNotFoundError("the mosquitto binary is not installed")
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = Path(directory) / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
            f"persistence false\nuser {getpass.getuser()}\n"
        )
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            assert time.monotonic() < deadline, f"mosquitto did not listen on {self.port}"
            time.sleep(0.05)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def restart(self):
        self.stop()
        self.start()
