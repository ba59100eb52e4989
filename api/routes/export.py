"""CSV for the pages' downloads, rendered here so it follows leadml's one CSV rule.

The ranked-leads page shows leads it got as JSON; its "Download CSV" sends the rows shown to this
route and saves the answer. Cells that a spreadsheet would run as formulas (a lead id or a reason
text starting with `=`, `+`, `-`, `@`) are neutralised by `leadml.spreadsheet`, the same helper
`leadml score -o` writes with.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ScorerRole
from api.schemas import AUTH_RESPONSES
from leadml.spreadsheet import csv_text

router = APIRouter(prefix="/v1", tags=["export"])

Cell = str | int | float | bool | None


class CsvRows(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: Annotated[list[str], Field(min_length=1, max_length=1000)]
    rows: Annotated[list[list[Cell]], Field(max_length=100_000)] = []


@router.post(
    "/csv",
    summary="Rows as CSV a spreadsheet opens safely",
    description="A header and rows in, text/csv out; text cells that would run as spreadsheet"
    " formulas get a leading ' (OWASP CSV injection).",
    response_class=Response,
    responses={
        **AUTH_RESPONSES,
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
    },
)
async def rows_as_csv(body: CsvRows, _: ScorerRole) -> Response:
    return Response(csv_text(body.columns, body.rows), media_type="text/csv; charset=utf-8")
