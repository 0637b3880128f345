"""The report folders: `genpi eval` (REPORT_DIR/report.*), `genpi bench` (bench.*) and `genpi run` (run.json).

  report.json   `Report` (schema in DESIGN.md); report.md and report.png beside it
  outputs.jsonl every reply of an eval run, keyed by variant, settings key and input (the resume store)
  episodes.jsonl every episode of an eval run in an environment (a shell): transcript, end, verdict;
                keyed by variant, settings key and problem (the resume store)
  bench.json    `BenchReport`; bench.md and bench.png beside it
  measurements.jsonl  one line per timed bench pass (the resume store); conversations.json the frozen
                conversations every bench variant runs through
  run.json      what `genpi run` ran, reused and how long each stage took
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import GenpiError
from .io import JsonlAppender, _first_line, read_json, read_jsonl, write_json_atomic, write_jsonl_atomic, write_text_atomic

REPORT, REPORT_MD, REPORT_PNG, OUTPUTS = "report.json", "report.md", "report.png", "outputs.jsonl"
REPORT_HTML = "report.html"
EPISODES = "episodes.jsonl"
BENCH, BENCH_MD, BENCH_PNG = "bench.json", "bench.md", "bench.png"
MEASUREMENTS, CONVERSATIONS, RUN = "measurements.jsonl", "conversations.json", "run.json"


class VariantScore(BaseModel):
    model_config = ConfigDict(extra="allow")

    score: float | None = None
    checks: dict[str, float | None] = Field(default_factory=dict)
    expectations: float | None = None
    expectations_kept: float | None = None  # of the inputs whose fact with_prompt used, the share this variant uses too
    agreement: dict[str, float | None] | None = None
    kl_to_teacher: float | None = None
    retention: float | None = None
    normalized: float | None = None
    check_retention: dict[str, float | None] | None = None
    multi_turn: list[dict] | None = None


class Report(BaseModel):
    """report.json: per variant (no_prompt, with_prompt, one per adapter) its scores and closeness to the teacher."""

    model_config = ConfigDict(extra="allow")

    scenario: str
    model: str
    n_inputs: int
    variants: dict[str, VariantScore]
    adapters: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_unset=True)


class OutputRow(BaseModel):
    """One line of outputs.jsonl."""

    model_config = ConfigDict(extra="allow")

    variant: str
    key: str
    input: str
    output: str
    conversation: list[dict] = Field(default_factory=list)
    kl_to_teacher: float | None = None


class EpisodeRow(BaseModel):
    """One line of episodes.jsonl: one variant's episode on one problem."""

    model_config = ConfigDict(extra="allow")

    variant: str
    key: str
    problem: str
    conversation: list[dict] = Field(default_factory=list)
    end_reason: str | None = None
    turns: int = 0
    valid_turns: int = 0
    success: bool | None = None
    reason: str = ""
    unrunnable: bool = False
    setup_s: float = 0.0
    env_s: float = 0.0


class ReportDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.report_path = self.path / REPORT
        self.outputs_path = self.path / OUTPUTS
        self.episodes_path = self.path / EPISODES

    def write(self, report: Report | dict, markdown: str, plot, page=None) -> None:
        """report.json, report.md, report.png drawn by `plot(path)`, and report.html written by
        `page(png_path)` (which may embed the chart)."""
        data = report.to_json() if isinstance(report, Report) else Report.model_validate(report).to_json()
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / REPORT, data)
        write_text_atomic(self.path / REPORT_MD, markdown)
        plot(self.path / REPORT_PNG)
        if page is not None:
            self.write_html(page(self.path / REPORT_PNG))

    def write_html(self, text: str) -> None:
        write_text_atomic(self.path / REPORT_HTML, text)

    @property
    def png_path(self) -> Path:
        return self.path / REPORT_PNG

    def examples(self) -> list[dict]:
        """The replies in outputs.jsonl grouped per input, in order: [{"input", "outputs": {variant: text}}]."""
        by_input: dict[str, dict] = {}
        for r in self.read_outputs().values():
            by_input.setdefault(r["input"], {"input": r["input"], "outputs": {}})["outputs"][r["variant"]] = r["output"]
        return list(by_input.values())

    def read(self) -> dict:
        """report.json as a dict (validated); a missing or malformed file is a one-line error."""
        raw = read_json(self.report_path, fix="rerun 'genpi eval' to rewrite it")
        if raw is None:
            raise GenpiError(f"no {REPORT} in '{self.path}': pass a folder written by 'genpi eval' "
                             "(for a 'genpi run' folder, its report/ subfolder)")
        try:
            return Report.model_validate(raw).to_json()
        except ValueError as e:
            raise GenpiError(f"{self.report_path} does not hold a genpi report ({_first_line(e)}): "
                             "rerun 'genpi eval' to rewrite it")

    # -- the outputs store -------------------------------------------------------------------
    def read_outputs(self) -> dict[tuple[str, str, str], dict]:
        """Stored rows by (variant, key, input)."""
        rows = read_jsonl(self.outputs_path, lambda o: OutputRow.model_validate(o).model_dump(mode="json"),
                          fix="delete outputs.jsonl to evaluate afresh")
        return {(r["variant"], r["key"], r["input"]): r for r in rows}

    def outputs_writer(self) -> JsonlAppender:
        return JsonlAppender(self.outputs_path)

    def keep_outputs(self, rows: list[dict]) -> None:
        """Rewrite outputs.jsonl with only `rows` (this run's replies, in order)."""
        write_jsonl_atomic(self.outputs_path, rows)

    # -- the episodes store ------------------------------------------------------------------
    def read_episodes(self) -> dict[tuple[str, str, str], dict]:
        """Stored episodes by (variant, key, problem)."""
        rows = read_jsonl(self.episodes_path, lambda o: EpisodeRow.model_validate(o).model_dump(mode="json"),
                          fix="delete episodes.jsonl to evaluate afresh")
        return {(r["variant"], r["key"], r["problem"]): r for r in rows}

    def episodes_writer(self) -> JsonlAppender:
        return JsonlAppender(self.episodes_path)

    def keep_episodes(self, rows: list[dict]) -> None:
        """Rewrite episodes.jsonl with only `rows` (this run's episodes, in order)."""
        write_jsonl_atomic(self.episodes_path, [EpisodeRow.model_validate(r).model_dump(mode="json") for r in rows])


class BenchReport(BaseModel):
    """bench.json: per variant tokens, FLOPs, latency, KV bytes and memory; ratios to with_prompt."""

    model_config = ConfigDict(extra="allow")

    scenario: str
    model: str
    adapter: str | None = None
    settings: dict[str, Any]
    machine: dict[str, Any]
    variants: dict[str, dict[str, Any]]
    ratios: dict[str, dict[str, Any]]
    internalized_variant: str
    notes: list[str] = Field(default_factory=list)

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_unset=True)


class BenchDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.bench_path = self.path / BENCH
        self.measurements_path = self.path / MEASUREMENTS
        self.conversations_path = self.path / CONVERSATIONS

    def write(self, result: BenchReport | dict, markdown: str, plot) -> None:
        data = result.to_json() if isinstance(result, BenchReport) else BenchReport.model_validate(result).to_json()
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.bench_path, data, indent=1)
        write_text_atomic(self.path / BENCH_MD, markdown)
        plot(self.path / BENCH_PNG)

    def read(self) -> dict:
        raw = read_json(self.bench_path, fix="rerun 'genpi bench' to rewrite it")
        if raw is None:
            raise GenpiError(f"no {BENCH} in '{self.path}': pass a folder written by 'genpi bench'")
        return BenchReport.model_validate(raw).to_json()

    def read_measurements(self, key: str) -> dict[tuple[int, str], list]:
        """Timed passes stored under `key`, by (repeat, variant)."""
        done = {}
        for rec in read_jsonl(self.measurements_path, fix="delete measurements.jsonl to time afresh"):
            if isinstance(rec, dict) and rec.get("key") == key:
                done[(rec["repeat"], rec["variant"])] = rec["conversations"]
        return done

    def measurements_writer(self) -> JsonlAppender:
        return JsonlAppender(self.measurements_path)

    def read_conversations(self, key: dict) -> list[dict] | None:
        """The frozen conversations when they were built under the same `key`, else None."""
        try:
            saved = read_json(self.conversations_path)
        except GenpiError:
            return None  # unreadable: rebuild
        if isinstance(saved, dict) and saved.get("key") == key and isinstance(saved.get("conversations"), list):
            return saved["conversations"]
        return None

    def write_conversations(self, key: dict, conversations: list[dict]) -> None:
        write_json_atomic(self.conversations_path, {"key": key, "conversations": conversations}, indent=1)


def write_run_summary(out_dir: str | Path, summary: dict) -> None:
    write_json_atomic(Path(out_dir) / RUN, summary)
