"""The demo's embedded broker (amqtt): paho at QoS 1 through it, and the bridge in its MQTT 3.1.1
mode (plain subscriptions, one worker) answering a simulated controller. No Mosquitto needed."""

import threading
import time
import uuid

import pytest
from django.conf import settings

from access.bridge import Bridge, BridgeConfig
from access.embedded_broker import EmbeddedBroker, free_port
from access.models import Controller, Credential, Door
from access.mqtt import broker_from_url, new_client
from access.simulator import SimulatedController


@pytest.fixture
def embedded():
    broker = EmbeddedBroker(port=free_port()).start()
    yield broker
    broker.stop()


def test_paho_publishes_and_subscribes_at_qos_1_with_retained_messages(embedded):
    got, arrived = [], threading.Event()
    sub = new_client(f"sub-{uuid.uuid4().hex[:6]}")
    sub.on_message = lambda c, u, m: (got.append((m.topic, m.payload, m.qos)), arrived.set())
    url = broker_from_url(embedded.url)
    sub.connect(url.host, url.port)
    sub.loop_start()
    pub = new_client(f"pub-{uuid.uuid4().hex[:6]}")
    pub.connect(url.host, url.port)
    pub.loop_start()
    pub.publish("campus/v1/site/mode", b'{"v":1}', qos=1, retain=True).wait_for_publish(5)
    sub.subscribe("campus/v1/#", qos=1)
    assert arrived.wait(5)
    assert got[0] == ("campus/v1/site/mode", b'{"v":1}', 1)
    for client in (sub, pub):
        client.disconnect()
        client.loop_stop()


def test_an_embedded_broker_moves_to_a_free_port_when_its_own_is_taken(embedded):
    second = EmbeddedBroker(port=embedded.port)
    assert second.port != embedded.port


@pytest.mark.django_db(transaction=True)
def test_the_bridge_answers_through_the_embedded_broker_in_mqtt_3_1_1(embedded, bob, acme):
    ctrl = Controller.objects.create(id="ctrl-a", name="Entrance")
    Door.objects.create(id="D-001", name="Entrance", controller=ctrl, kind="perimeter",
                        direction="in")  # fmt: skip
    badge = Credential(holder=bob)
    badge.set_uid("B0B0B0B0")
    badge.save()
    broker = broker_from_url(embedded.url)
    config = BridgeConfig(broker=broker, client_id="demo-bridge", v5=False, run_jobs=False)
    bridge, stop = Bridge(config), threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert bridge.ready.wait(10)
        sim = SimulatedController("ctrl-a", broker=broker, key=settings.CREDENTIAL_KEY, heartbeat=0)
        sim.start()
        answer = sim.scan("D-001", "B0B0B0B0")
        assert (answer["result"], answer["reason"]) == ("grant", "common_area")
        deadline = time.monotonic() + 5
        while not Controller.objects.get(pk="ctrl-a").online and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Controller.objects.get(pk="ctrl-a").online
        sim.stop()
    finally:
        stop.set()
        thread.join(15)
