"""The schema of a run record, checked whenever a record is read (leaderboard, report,
sweep resume, verify, the site).

A record may come from another lab, so every field clbench reads has a type and a range,
checked strictly: a number is a JSON number (never the string "12.5", never true), finite
or explicitly null; names are non-empty strings; the accuracy matrix is square, one row
and column per experience. A record that fails is refused with its file and field, never
coerced and never half-used. Fields clbench does not read (environment facts, a newer
version's additions) are kept as they are.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

RECORD_FORMAT = 1

Name = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Change = Annotated[float, Field(ge=-100, le=100, allow_inf_nan=False)]  # forgetting, BWT
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class Metrics(_Strict):
    accuracy_curve: Annotated[list[Percent], Field(min_length=1)]
    last_accuracy: Percent
    average_incremental_accuracy: Percent
    forgetting_max: Change | None = None
    forgetting_initial: Change | None = None
    bwt: Change | None = None
    accuracy_matrix: list[list[Percent | None]] | None = None
    correct: list[list[Count]] | None = None
    test_counts: list[Count] | None = None
    compatibility: dict[str, Any] | None = None

    @field_validator("accuracy_matrix")
    @classmethod
    def _one_row_and_column_per_experience(
        cls, matrix: list[list[float | None]] | None, info: ValidationInfo
    ) -> list[list[float | None]] | None:
        experiences = len(info.data.get("accuracy_curve", ()))
        if matrix is not None and (
            len(matrix) != experiences or any(len(row) != experiences for row in matrix)
        ):
            shape = f"{len(matrix)} rows of {sorted({len(row) for row in matrix})} entries"
            raise ValueError(
                f"must be {experiences} x {experiences} (one row and column per experience "
                f"of accuracy_curve), got {shape}"
            )
        return matrix


class Resources(_Strict):
    wall_seconds: Seconds | None = None
    train_seconds: list[Seconds] | None = None
    eval_seconds: list[Seconds] | None = None
    trainable_parameters: Count | None = None
    total_parameters: Count | None = None
    rehearsal_samples: Count | None = None
    peak_rss_mib: Seconds | None = None  # a non-negative number
    torch_threads: Annotated[int, Field(ge=1)] | None = None


class Record(_Strict):
    format: Literal[1]
    stream: Name
    strategy: Name
    backbone: Name
    seed: Annotated[int, Field(ge=0, lt=2**32)]
    variant: str = ""
    metrics: Metrics
    config: dict[str, Any] = Field(default_factory=dict)
    overrides: dict[str, Any] = Field(default_factory=dict)
    reference: bool = False
    resources: Resources = Field(default_factory=Resources)
    split: Literal["test", "validation"] = "test"
