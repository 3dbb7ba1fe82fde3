"""The run-failure sensor POSTs to a real HTTP server when a webhook URL is configured."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest

from lakeport.notifications import WEBHOOK_ENV, run_failure_webhook


@pytest.fixture
def webhook():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/secret-token", received
    server.shutdown()
    thread.join()


@dg.op
def explode():
    raise RuntimeError("the warehouse is on fire")


@dg.job(tags={"lakeport/profile": "large"})
def doomed():
    explode()


def failure_context(instance):
    result = doomed.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    event = next(
        e for e in result.all_events if e.event_type == dg.DagsterEventType.PIPELINE_FAILURE
    )
    return dg.build_run_status_sensor_context(
        sensor_name=run_failure_webhook.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
    ).for_run_failure()


def test_failed_run_is_posted_to_the_webhook(webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv(WEBHOOK_ENV, url)
    with dg.instance_for_test() as instance:
        context = failure_context(instance)
        run_failure_webhook(context)
    assert len(received) == 1
    path, content_type, payload = received[0]
    assert path == "/hooks/secret-token"
    assert content_type == "application/json"
    assert payload["job_name"] == "doomed"
    assert payload["run_id"] == context.dagster_run.run_id
    assert payload["profile"] == "large"
    assert "explode" in payload["error"]


def test_no_webhook_configured_posts_nothing(webhook, monkeypatch):
    _, received = webhook
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    with dg.instance_for_test() as instance:
        run_failure_webhook(failure_context(instance))
    assert received == []


def test_unreachable_webhook_error_does_not_leak_the_url(monkeypatch):
    monkeypatch.setenv(WEBHOOK_ENV, "http://127.0.0.1:9/hooks/secret-token")
    with dg.instance_for_test() as instance:
        context = failure_context(instance)
        with pytest.raises(RuntimeError) as raised:
            run_failure_webhook(context)
    assert WEBHOOK_ENV in str(raised.value)
    assert "secret-token" not in str(raised.value)
