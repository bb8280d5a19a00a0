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
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from cl_bench.utils.names import check_name

RECORD_FORMAT = 1

# a name becomes a file name: refused here as it would be there (names.check_name)
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1000),
    AfterValidator(lambda name: check_name(name, "a name")),
]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Change = Annotated[float, Field(ge=-100, le=100, allow_inf_nan=False)]  # forgetting, BWT
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, StringConstraints(max_length=10_000)]


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
    resumed_after_experience: Count | None = None


class StreamInfo(_Strict):
    class_names: list[Text] | None = None
    data_sha256: Sha256 | None = None
    spec_file: Text | None = None


class BackboneWeights(_Strict):
    file: Text | None = None
    source: Text | None = None
    sha256: Sha256 | None = None


class Recipe(_Strict):
    augmentation: Text | None = None
    official_source: Text | None = None
    official_settings: dict[str, Any] = Field(default_factory=dict)


Finite = Annotated[float, Field(allow_inf_nan=False)]


class Tuning(_Strict):
    """``clbench tune``'s study, as a tuned run keeps it: the leaderboard's Kind reads
    the trials, the site's Tuning section the rest."""

    study: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    trials: Annotated[int, Field(ge=1)]
    objective: Text
    space: dict[Text, Text] = Field(default_factory=dict)
    # [trial number, value or null] per trial
    history: list[Annotated[list[Finite | None], Field(min_length=2, max_length=2)]] = Field(
        default_factory=list
    )
    importances: dict[Text, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )


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
    limit_per_class: Annotated[int, Field(ge=1)] | None = None
    device: Name | None = None
    stream_info: StreamInfo = Field(default_factory=StreamInfo)
    backbone_weights: BackboneWeights = Field(default_factory=BackboneWeights)
    recipe: Recipe | None = None  # absent in records older than recipes
    tuning: Tuning | None = None  # `clbench tune`'s study, for a tuned run
    strategy_provider: Name | None = None
    strategy_provider_version: Name | None = None
    strategy_report: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, Text | None] = Field(default_factory=dict)
    machine: dict[str, Any] = Field(default_factory=dict)
    started: Text | None = None
    finished: Text | None = None
