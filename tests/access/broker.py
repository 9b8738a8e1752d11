"""A test's view of the real broker: each test gets its own topic root, a listener that records
what arrives, and a sweep of the retained messages it left behind."""

import threading
import time
import uuid
from dataclasses import dataclass

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
