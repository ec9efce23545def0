"""The floor of the stack: FastAPI + uvicorn parsing an AdmissionReview and allowing it.

What a straightforward FastAPI webhook does before it decides anything: a pydantic model as
the body parameter (the embedded object as a dict), a dict returned and encoded by FastAPI.
Served by ``bench/webhook_throughput.py`` with the same workers and TLS as minerguard.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


class Kind(BaseModel):
    group: str = ""
    version: str = ""
    kind: str


class UserInfo(BaseModel):
    username: str = ""
    groups: list[str] = []


class Request(BaseModel):
    uid: str
    kind: Kind
    namespace: str = ""
    operation: str
    userInfo: UserInfo = UserInfo()  # noqa: N815 - the wire name
    object: dict[str, Any] | None = None
    oldObject: dict[str, Any] | None = None  # noqa: N815
    dryRun: bool = False  # noqa: N815


class Review(BaseModel):
    apiVersion: str  # noqa: N815
    kind: str
    request: Request


app = FastAPI()


@app.post("/validate")
async def validate(review: Review) -> dict[str, Any]:
    return {
        "apiVersion": review.apiVersion,
        "kind": "AdmissionReview",
        "response": {"uid": review.request.uid, "allowed": True},
    }
