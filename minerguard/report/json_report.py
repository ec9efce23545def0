r"""The report as JSON: the MinerDetection exactly as the API holds it, plus its timeline.

Unlike the text and HTML reports nothing is cut or rewritten: JSON is for tools, which need
the record as it is. The output is ASCII (``\uXXXX`` escapes), so a terminal showing it
cannot be steered by control or bidi characters in the data either.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from minerguard.api.detection import MinerDetection
from minerguard.report import sections, timeline


def document(detection: MinerDetection, notes: Sequence[str] = ()) -> dict[str, Any]:
    """The object: ``detection``, ``investigated``, ``timeline``, ``timelineCut``, ``notes``."""
    moments = timeline.build(detection)
    investigated = bool(detection.status and detection.status.investigation)
    return {
        "detection": detection.to_k8s(),
        "investigated": investigated,
        "timeline": [
            {
                "time": moment.time,
                "kind": moment.kind,
                "detail": moment.detail,
                "actor": moment.actor,
                "source": moment.source,
            }
            for moment in moments.moments
        ],
        "timelineCut": moments.cut,
        "notes": ([] if investigated else [sections.NOT_INVESTIGATED]) + list(notes),
    }


def render(detection: MinerDetection, notes: Sequence[str] = ()) -> str:
    """The JSON report on ``detection``, indented for reading."""
    return json.dumps(document(detection, notes), indent=2, ensure_ascii=True) + "\n"
