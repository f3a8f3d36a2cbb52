"""The shipped Alertmanager config, run by a real Alertmanager: an alert posted to it reaches the
webhook receiver (a real HTTP server in the test, standing in for the configured URL)."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from contracts.net import free_port
from contracts.settings import REPO_ROOT

CONFIG = REPO_ROOT / "monitoring" / "alertmanager" / "alertmanager.yml"
# Debian's prometheus-alertmanager package names the server so; upstream's archive, `alertmanager`.
BINARIES = ("prometheus-alertmanager", "alertmanager")


@pytest.fixture()
def webhook() -> Iterator[tuple[str, queue.Queue[dict]]]:
    """A webhook receiver on a free port: its URL, and the JSON bodies it received."""
    received: queue.Queue[dict] = queue.Queue()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test reads what arrived, not the access log."""

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/alerts", received
    finally:
        server.shutdown()
        server.server_close()


def shipped_config_sending_to(url: str) -> dict:
    """The shipped config with every webhook pointed at `url`, and the first notification sent
    after 1 s rather than the shipped group_wait (routes and receivers unchanged)."""
    config = yaml.safe_load(CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = url
    config["route"]["group_wait"] = "1s"
    return config


@pytest.fixture()
def alertmanager(webhook, tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on a free port running the shipped config; yields its URL."""
    binary = next((found for name in BINARIES if (found := shutil.which(name))), None)
    if binary is None:
        pytest.fail("no Alertmanager binary: install it with `apt-get install -y prometheus-alertmanager`")
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(shipped_config_sending_to(webhook[0])))
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # alone: no gossip port to claim
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
            assert time.monotonic() < deadline, "Alertmanager did not become ready in 30 s"
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_an_alert_sent_to_alertmanager_reaches_the_webhook_receiver(alertmanager, webhook) -> None:
    alert = {
        "labels": {"alertname": "FraudScorerDown", "severity": "critical", "job": "fraud-scorer"},
        "annotations": {"summary": "Prometheus cannot scrape the scorer at scorer:8000: payments are not scored"},
        "startsAt": datetime.now(UTC).isoformat(),
    }
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=5).status_code == 200
    notification = webhook[1].get(timeout=20)
    receiver = yaml.safe_load(CONFIG.read_text())["route"]["receiver"]
    assert notification["receiver"] == receiver
    assert notification["status"] == "firing"
    assert notification["groupLabels"] == {"alertname": "FraudScorerDown"}
    (sent,) = notification["alerts"]
    assert sent["labels"] == alert["labels"]
    assert sent["annotations"] == alert["annotations"]
