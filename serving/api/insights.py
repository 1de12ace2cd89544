"""The API's routes beyond the score table: what changed between runs, the action list, the account grades.

Each route reads through the same reader as the rest of the API and returns what the matching
command prints (`custscore changes`, `actions`, `accounts`), as JSON. Inputs are checked before
they reach the reader, with the checks and errors of serving/api/app.py (which imports this module
when it builds the app). The action list has no owner grouping here: owners live in the data's
customers table, which the API does not read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from serving.actions import ActionPolicy, actions_of_run
from serving.api.app import ApiError, _first_line, _reading, _run_id
from serving.api.responses import Json, records
from serving.changes import ChangesError, changes_between
from serving.scorecard import GRADES, read_account_grades
from serving.segments import SEGMENTS

MAX_TOP = 1_000
MAX_ROWS = 1_000
RunQuery = Annotated[str | None, Query(max_length=10_000, description="A published run (default: the latest)")]


def insights_router(reader: Any, policy: ActionPolicy) -> APIRouter:
    """/v1/changes, /v1/actions and /v1/accounts (the key check is added by create_app, as for every /v1 route)."""
    router = APIRouter(prefix="/v1")

    @router.get("/changes", tags=["changes"],
                summary="The segment transition matrix and the customers whose p_churn or CLV moved most, with why")
    async def get_changes(from_run: RunQuery = None, to_run: RunQuery = None,
                          segment: Annotated[str | None, Query(max_length=10_000)] = None,
                          top: Annotated[int, Query(ge=1, le=MAX_TOP)] = 10, lang: Literal["en", "zh"] = "en") -> Json:
        _run_id(from_run)
        _run_id(to_run)
        if segment is not None and segment not in SEGMENTS:
            raise ApiError(404, "segment_not_found", f"no segment of that name; segments: {', '.join(SEGMENTS)}")
        try:
            report = await run_in_threadpool(changes_between, reader, from_run, to_run, segment=segment, top=top, lang=lang)
        except ChangesError as exc:
            raise ApiError(404, "run_not_found", _first_line(exc)) from exc
        return Json(report)

    @router.get("/actions", tags=["actions"],
                summary="Whom to offer a retention action first: expected net gain within a budget, with the reasons to call")
    async def get_actions(run_id: RunQuery = None,
                          budget: Annotated[float | None, Query(gt=0, le=1e12)] = None,
                          budget_kind: Literal["count", "money"] | None = None,
                          offer_cost: Annotated[float | None, Query(ge=0, le=1e12)] = None,
                          save_rate: Annotated[float | None, Query(gt=0, le=1)] = None) -> Json:
        _run_id(run_id)
        asked = {k: v for k, v in {"budget": budget, "budget_kind": budget_kind, "offer_cost": offer_cost,
                                   "save_rate": save_rate}.items() if v is not None}
        try:
            chosen = ActionPolicy(**{**policy.model_dump(), **asked})
        except ValidationError as exc:
            raise ApiError(400, "bad_request", exc.errors()[0].get("msg", "invalid")) from exc
        if chosen.budget_kind == "count" and chosen.budget > MAX_ROWS:
            raise ApiError(400, "bad_request", f"query budget: at most {MAX_ROWS} customers per answer")
        frame = await run_in_threadpool(lambda: _reading(lambda: actions_of_run(reader, chosen, run_id)))
        return Json({"policy": chosen.model_dump(mode="json", exclude={"sensitivity_save_rates"}),
                     "customers": records(frame.head(MAX_ROWS))})

    @router.get("/accounts", tags=["accounts"],
                summary="Key-account grades (key / regular / potential) with their dimension scores and sentences")
    async def get_accounts(run_id: RunQuery = None, grade: Annotated[str | None, Query(max_length=10_000)] = None,
                           limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 100) -> Json:
        _run_id(run_id)
        if grade is not None and grade not in GRADES:
            raise ApiError(400, "bad_request", f"query grade: one of {', '.join(GRADES)}")
        card = await run_in_threadpool(lambda: _reading(lambda: read_account_grades(reader, run_id, grade=grade)))
        if card is None:
            raise ApiError(404, "not_graded", "that run was published without account grades")
        return Json({"accounts": records(card.head(limit)), "total": int(len(card))})

    return router
