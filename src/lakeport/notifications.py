"""Run-failure notifications: a JSON POST to a webhook when one is configured.

The URL comes from LAKEPORT_FAILURE_WEBHOOK_URL (on Kubernetes, from a Secret: chat
webhook URLs carry their token in the path), so it is never logged. Without it the sensor
does nothing.
"""

import json
import urllib.request

import dagster as dg

from lakeport.credentials import optional_secret
from lakeport.profiles import PROFILE_TAG

WEBHOOK_ENV = "LAKEPORT_FAILURE_WEBHOOK_URL"


def failure_payload(context: dg.RunFailureSensorContext) -> dict:
    run = context.dagster_run
    error = context.failure_event.message if context.failure_event else None
    return {
        "text": f"lakeport: run {run.run_id} of job {run.job_name} failed",
        "run_id": run.run_id,
        "job_name": run.job_name,
        "profile": run.tags.get(PROFILE_TAG),
        "partition": run.tags.get("dagster/partition"),
        "error": error,
    }


def post_json(url: str, payload: dict, timeout: float = 10) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except OSError as exc:
        # Say what failed without echoing the URL (it may hold a token).
        raise RuntimeError(
            f"posting the run-failure notification to the webhook in {WEBHOOK_ENV} failed: "
            f"{type(exc).__name__}: {getattr(exc, 'reason', None) or getattr(exc, 'code', '')}"
        ) from None


@dg.run_failure_sensor(
    name="lakeport_run_failure_webhook",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"POSTs failed runs to the webhook in {WEBHOOK_ENV}, when it is set.",
)
def run_failure_webhook(context: dg.RunFailureSensorContext):
    url = optional_secret(WEBHOOK_ENV)
    if not url:
        context.log.debug(f"{WEBHOOK_ENV} is not set; not notifying")
        return
    status = post_json(url, failure_payload(context))
    context.log.info(f"notified the failure webhook of run {context.dagster_run.run_id} ({status})")
