"""Answer human-in-the-loop tasks from code, through Airflow's own HITL REST API.

Used by the headless runner (``scripts/run_dag.py`` with ``APPROVE=all``) and by the end-to-end
tests. It polls ``GET /api/v2/dags/{dag}/dagRuns/~/hitlDetails?response_received=false`` on the
in-process FastAPI app and PATCHes each waiting task once it has waited ``delay`` seconds (answering
sooner races the scheduler, see apache/airflow#71172).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

APPROVING = ("Approve", "Approved", "Yes", "OK", "Accept", "Continue")

# detail (the hitlDetails JSON of one task) -> PATCH body, or None to leave it waiting
Answer = Callable[[dict[str, Any]], dict[str, Any] | None]


def approve_all(detail: dict[str, Any]) -> dict[str, Any]:
    """The approving option (``Approve`` or the first default/option) with default params."""
    options: list[str] = list(detail.get("options") or [])
    chosen = next((o for o in options if o in APPROVING), None)
    if chosen is None:
        chosen = (detail.get("defaults") or options)[0]
    params = {
        k: (v.get("value") if isinstance(v, dict) else v)
        for k, v in (detail.get("params") or {}).items()
    }
    return {"chosen_options": [chosen], "params_input": params}


class HitlResponder(threading.Thread):
    def __init__(
        self,
        dag_id: str,
        answer: Answer = approve_all,
        *,
        delay: float = 1.5,
        poll: float = 0.5,
        client: Any = None,
        run_id: str = "~",
    ) -> None:
        super().__init__(daemon=True, name=f"hitl-responder-{dag_id}")
        self.dag_id = dag_id
        self.answer = answer
        self.delay = delay
        self.poll = poll
        self._client = client
        self.run_id = run_id
        self._stop_event = threading.Event()
        self.answered: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def _make_client(self) -> Any:
        from airflow.api_fastapi.app import create_app
        from fastapi.testclient import TestClient

        return TestClient(create_app(apps="core"))

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        client = self._client or self._make_client()
        first_seen: dict[tuple[str, str, int], float] = {}
        while not self._stop_event.is_set():
            try:
                resp = client.get(
                    f"/api/v2/dags/{self.dag_id}/dagRuns/{self.run_id}/hitlDetails",
                    params={"response_received": "false", "limit": 100},
                )
                resp.raise_for_status()
                for detail in resp.json().get("hitl_details", []):
                    ti = detail["task_instance"]
                    key = (ti["dag_run_id"], ti["task_id"], int(ti.get("map_index", -1)))
                    if ti.get("state") not in ("deferred", "awaiting_input"):
                        continue
                    seen = first_seen.setdefault(key, time.monotonic())
                    if time.monotonic() - seen < self.delay:
                        continue
                    body = self.answer(detail)
                    if body is None:
                        continue
                    url = (
                        f"/api/v2/dags/{self.dag_id}/dagRuns/{key[0]}/taskInstances/"
                        f"{key[1]}/{key[2]}/hitlDetails"
                    )
                    r = client.patch(url, json=body)
                    if r.status_code >= 400:
                        self.errors.append(f"{url}: {r.status_code} {r.text}")
                        log.error("HITL answer failed: %s %s", r.status_code, r.text)
                    else:
                        log.info("answered %s with %s", key, body)
                        self.answered.append({"task_id": key[1], "map_index": key[2], **body})
            except Exception as exc:  # keep polling: the run may still be starting
                log.debug("HITL poll: %s", exc)
            self._stop_event.wait(self.poll)
