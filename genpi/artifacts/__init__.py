"""The one owner of every file the stages exchange: what each holds (typed models) and how it is
read and written (atomic JSON, append-only JSONL, hashes). No other module opens these files.
"""

from .io import (JsonlAppender, append_jsonl, file_sha256, read_json, read_jsonl, rename_aside, text_sha256,
                 write_json_atomic, write_jsonl_atomic, write_text_atomic)

__all__ = ["JsonlAppender", "append_jsonl", "file_sha256", "read_json", "read_jsonl", "rename_aside",
           "text_sha256", "write_json_atomic", "write_jsonl_atomic", "write_text_atomic"]
