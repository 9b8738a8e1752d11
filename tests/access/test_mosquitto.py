"""`manage.py mosquitto_config`: the files it writes, then a real Mosquitto run on them proving
that each controller is confined to its own subtree and that nobody gets in without a login."""

import getpass
import shutil
import socket
import stat
import subprocess
import threading
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from access.models import Controller
from access.mqtt import new_client
from tests.access.broker import free_port
from tests.conftest import REQUIRED

BACKEND_URL = "mqtt://backend:backend-secret@127.0.0.1:1883"


@pytest.fixture
def enrolled(controllers, settings):
    """ctrl-a and ctrl-b with MQTT passwords (plaintexts returned), the backend in MQTT_URL."""
    settings.MQTT_URL = BACKEND_URL
    return {key: c.set_mqtt_password() for key, c in controllers.items()}


def lines(path):
    return path.read_text().splitlines()


def test_the_password_file_has_the_backend_and_every_enrolled_controller(enrolled, tmp_path):
    Controller.objects.create(id="ctrl-new", name="Not enrolled yet")
    Controller.objects.create(id="ctrl-off", name="Retired", is_active=False).set_mqtt_password()
    call_command("mosquitto_config", "--out", str(tmp_path), stdout=StringIO(), stderr=StringIO())
    users = {line.split(":", 1)[0]: line.split(":", 1)[1] for line in lines(tmp_path / "passwd")}
    assert set(users) == {"backend", "ctrl-a", "ctrl-b"}
    assert users["ctrl-a"] == Controller.objects.get(id="ctrl-a").mqtt_password_hash
    assert all(h.startswith("$7$101$") for h in users.values())
    assert "backend-secret" not in (tmp_path / "passwd").read_text()
    assert stat.S_IMODE((tmp_path / "passwd").stat().st_mode) == 0o640


def test_the_acl_confines_controllers_with_patterns_and_opens_the_tree_to_the_backend(
    enrolled, tmp_path, settings
):
    settings.MQTT_ROOT = "campus/v1"
    call_command("mosquitto_config", "--out", str(tmp_path), "--mode", "600", stdout=StringIO())
    acl = lines(tmp_path / "acl")
    assert "pattern write campus/v1/ctrl/%u/door/+/scan" in acl
    assert "pattern read campus/v1/ctrl/%u/door/+/decision" in acl
    assert "pattern read campus/v1/ctrl/%u/acl/push" in acl
    for controller in ("ctrl-a", "ctrl-b"):
        block = acl[acl.index(f"user {controller}") + 1 :][:2]
        assert block == [
            "topic read campus/v1/site/mode",
            "topic read campus/v1/sys/backend/status",
        ]
    # No controller rule reaches outside its own subtree, and none publishes with a wildcard.
    rules = [line.split() for line in acl if line.startswith("pattern")]
    for _, access, topic in rules:
        assert "/%u/" in topic
        assert "#" not in topic or topic.endswith("/%u/#")
    assert acl.index("user backend") > max(acl.index(" ".join(r)) for r in rules)
    backend = acl[acl.index("user backend") + 1 :]
    assert {"topic readwrite campus/v1/#", "topic readwrite cmnd/#", "topic readwrite stat/#",
            "topic readwrite tele/#"} <= set(backend)  # fmt: skip
    assert stat.S_IMODE((tmp_path / "acl").stat().st_mode) == 0o600


def test_the_acl_follows_the_tasmota_prefix(enrolled, tmp_path, settings):
    settings.TASMOTA_PREFIX = "site-a"
    call_command("mosquitto_config", "--out", str(tmp_path), "--mode", "600", stdout=StringIO())
    acl = lines(tmp_path / "acl")
    assert "pattern read site-a/cmnd/%u/#" in acl and "pattern write site-a/stat/%u/#" in acl
    assert "topic readwrite site-a/tele/#" in acl


def test_the_backend_login_is_required(controllers, settings, tmp_path):
    settings.MQTT_URL = "mqtt://127.0.0.1:1883"
    with pytest.raises(CommandError, match="backend's login"):
        call_command("mosquitto_config", "--out", str(tmp_path))


def test_a_controller_named_like_the_backend_is_refused(controllers, settings, tmp_path):
    settings.MQTT_URL = "mqtt://ctrl-a:pw@127.0.0.1:1883"
    controllers["a"].set_mqtt_password()
    with pytest.raises(CommandError, match="is the backend's login"):
        call_command("mosquitto_config", "--out", str(tmp_path))


# --- a real broker


@pytest.fixture
def broker(enrolled, tmp_path):
    """A private Mosquitto on a spare port, configured with the generated files."""
    if shutil.which("mosquitto") is None:
        message = "the mosquitto binary is not installed"
        if "mqtt" in REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    call_command("mosquitto_config", "--out", str(tmp_path), stdout=StringIO())
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous false\n"
        f"password_file {tmp_path / 'passwd'}\n"
        f"acl_file {tmp_path / 'acl'}\n"
        "set_tcp_nodelay true\n"
        "persistence false\n"
        "log_type all\n"
        # Started as root, Mosquitto would switch to its own user, who cannot read tmp_path.
        f"user {getpass.getuser()}\n"
    )
    log_path = tmp_path / "mosquitto.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mosquitto did not start: {log_path.read_text()}")
                time.sleep(0.05)
        yield {"port": port, **enrolled}
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Session:
    """A paho client that records CONNACK and received messages, for assertions."""

    def __init__(self, port, client_id, username=None, password=None):
        self.client = new_client(client_id, username=username, password=password)
        self.connack = threading.Event()
        self.subacks = threading.Semaphore(0)
        self.received = []
        self.arrived = threading.Condition()
        self.reason = None
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subacks.release()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.connack.wait(5), "no CONNACK"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.reason = reason_code
        self.connack.set()
        if reason_code.is_failure:
            client.disconnect()

    def _on_message(self, client, userdata, message):
        with self.arrived:
            self.received.append((message.topic, message.payload))
            self.arrived.notify_all()

    @property
    def accepted(self) -> bool:
        return not self.reason.is_failure

    def subscribe(self, topic):
        self.client.subscribe(topic, qos=1)
        assert self.subacks.acquire(timeout=5), "no SUBACK"

    def publish(self, topic, payload, retain=False):
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def wait_for(self, topic, timeout=5) -> bool:
        with self.arrived:
            return self.arrived.wait_for(
                lambda: any(t == topic for t, _ in self.received), timeout=timeout
            )

    def topics(self):
        return [t for t, _ in self.received]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def sessions(broker):
    opened = []

    def open_session(client_id, username=None, password=None):
        session = Session(broker["port"], client_id, username, password)
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()


SCAN_A = "campus/v1/ctrl/ctrl-a/door/D-001/scan"
SCAN_B = "campus/v1/ctrl/ctrl-b/door/D-102/scan"


@pytest.mark.mqtt
def test_a_controller_publishes_only_under_its_own_subtree(broker, sessions):
    backend = sessions("bridge", "backend", "backend-secret")
    assert backend.accepted
    backend.subscribe("campus/v1/#")
    a = sessions("ctrl-a", "ctrl-a", broker["a"])
    assert a.accepted
    a.publish(SCAN_B, b'{"v":1,"forged":true}')  # pretends to be ctrl-b: dropped
    a.publish(SCAN_A, b'{"v":1}')
    assert backend.wait_for(SCAN_A)
    time.sleep(0.3)
    assert SCAN_B not in backend.topics()
    assert backend.topics() == [SCAN_A]


@pytest.mark.mqtt
def test_a_controller_reads_its_own_decisions_and_the_site_mode_only(broker, sessions):
    backend = sessions("bridge", "backend", "backend-secret")
    backend.publish("campus/v1/site/mode", b'{"v":1,"ver":1,"mode":"normal"}', retain=True)
    a = sessions("ctrl-a", "ctrl-a", broker["a"])
    a.subscribe("campus/v1/#")
    assert a.wait_for("campus/v1/site/mode")
    backend.publish("campus/v1/ctrl/ctrl-b/door/D-102/decision", b'{"v":1}')
    backend.publish("campus/v1/ctrl/ctrl-a/door/D-001/decision", b'{"v":1}')
    assert a.wait_for("campus/v1/ctrl/ctrl-a/door/D-001/decision")
    time.sleep(0.3)
    assert "campus/v1/ctrl/ctrl-b/door/D-102/decision" not in a.topics()
    backend.publish("campus/v1/site/mode", b"", retain=True)


@pytest.mark.mqtt
def test_a_wrong_password_is_refused(broker, sessions):
    assert not sessions("ctrl-b", "ctrl-b", broker["a"]).accepted
    assert not sessions("ctrl-x", "ctrl-a", "guess").accepted
    assert sessions("ctrl-b", "ctrl-b", broker["b"]).accepted


@pytest.mark.mqtt
def test_anonymous_clients_are_refused(broker, sessions):
    assert not sessions("anonymous").accepted
