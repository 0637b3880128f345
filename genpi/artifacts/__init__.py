"""The one owner of every file the stages exchange: what each holds (typed pydantic models) and how it
is read and written (atomic JSON, append-only JSONL with one torn-line policy, file hashes).

    DataDir      DATA_DIR of `genpi synth`: records.jsonl (Record), inputs.jsonl, calls.jsonl, meta.json (SynthMeta)
    AdapterDir   ADAPTER_DIR of `genpi train`: the PEFT files, genpi.json (AdapterMeta), checkpoints/run.json
    ReportDir    REPORT_DIR of `genpi eval`: report.json (Report), report.md/png, outputs.jsonl,
                 episodes.jsonl (EpisodeRow)
    BenchDir     REPORT_DIR of `genpi bench`: bench.json (BenchReport), bench.md/png, measurements.jsonl,
                 conversations.json
No other module names or opens these files.
"""

from .adapter import META as ADAPTER_META, AdapterDir, AdapterMeta
from .data import META as DATA_META, RECORDS, DataDir, Record, SynthMeta, Turn, input_id
from .io import (JsonlAppender, append_jsonl, file_sha256, read_json, read_jsonl, rename_aside, text_sha256,
                 write_json_atomic, write_jsonl_atomic, write_text_atomic)
from .reports import BENCH, EPISODES, OUTPUTS, REPORT, BenchDir, BenchReport, EpisodeRow, OutputRow, Report, ReportDir, VariantScore, write_run_summary

__all__ = ["ADAPTER_META", "BENCH", "DATA_META", "EPISODES", "EpisodeRow", "OUTPUTS", "RECORDS", "REPORT", "AdapterDir", "AdapterMeta", "BenchDir", "BenchReport", "DataDir", "JsonlAppender", "OutputRow",
           "Record", "Report", "ReportDir", "SynthMeta", "Turn", "VariantScore", "append_jsonl", "file_sha256",
           "input_id", "read_json", "read_jsonl", "rename_aside", "text_sha256", "write_json_atomic",
           "write_jsonl_atomic", "write_run_summary", "write_text_atomic"]
