"""The history document of a job: what `to_doc` hands the store."""

from __future__ import annotations

import dataclasses
import json

from tui.core.api.models import Prediction
from tui.core.records import Job


def _busy_job() -> Job:
    job = Job(local_id="a1b2c3d4e5f6", submitted_at=1_700_000_000.5, idempotency_key="batch-7",
              request={"model": "hailuo-2.3-pro", "scene": "image-to-video", "prompt": "a heron",
                       "image": {"source": "/tmp/heron.png", "sha256": "ab" * 32, "width": 640, "height": 480},
                       "end_image": None, "duration": 6, "resolution": "1080P", "prompt_expansion": True})
    job.set_status("created", 1_700_000_001.0)
    job.apply(Prediction.from_data({"id": "pred-1", "status": "completed", "outputs": ["https://x/1.mp4", "https://x/2.mp4"],
                                    "urls": {"get": "https://x/result"}, "has_nsfw_contents": [False, True],
                                    "executionTime": 91000, "timings": {"inference": 90000},
                                    "created_at": "2025-11-07T02:35:15.34950574Z"}), 1_700_000_090.0)
    return job


def test_the_document_is_what_dataclasses_would_give_and_round_trips():
    job = _busy_job()
    doc = job.to_doc()
    assert doc == dataclasses.asdict(job)
    assert Job.from_doc(json.loads(json.dumps(doc))) == job


def test_the_document_is_a_copy_a_later_change_of_the_job_does_not_reach():
    job = _busy_job()
    doc = job.to_doc()
    written = json.dumps(doc, sort_keys=True)
    job.request["image"]["width"] = 1
    job.request["prompt"] = "changed"
    job.outputs.append("https://x/3.mp4")
    job.status_history[-1][0] = "changed"
    job.raw["urls"]["get"] = "changed"
    job.has_nsfw_contents.append(False)
    assert json.dumps(doc, sort_keys=True) == written
