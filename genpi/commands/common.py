"""Arguments and validation shared by the verbs, so every verb rejects bad input the same way."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..artifacts import AdapterDir, DataDir
from ..errors import GenpiError
from ..models import ModelRef, resolve_model
from ..presets import PRESET_USES, PRESETS, check_preset, preset_model
from ..scenario import Scenario, load_scenario

if TYPE_CHECKING:
    from ..generate.specs import GeneratorSpec


def add_scenario(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", metavar="SCENARIO",
                   help="a YAML scenario file, or a plain-text file holding the prompt to internalize")


def add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, metavar="M",
                   help="base model: 'default' (embedded SmolLM2-135M-Instruct), 'tiny' (random, for tests), "
                        "a local model folder, a .gguf file, or a hub id already in the local cache "
                        "(default: the preset's model)")


def add_generator(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generator (writes pseudo inputs and reasons, plays the environment)")
    g.add_argument("--generator", default=None, metavar="G",
                   help="a local model for the generator, same forms as --model (default: the base model)")
    g.add_argument("--api-base", default=None, metavar="URL",
                   help="use an OpenAI-compatible endpoint as generator, e.g. http://localhost:8000/v1")
    g.add_argument("--api-model", default=None, metavar="NAME", help="the model name to ask the endpoint for")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the endpoint's API key (default: OPENAI_API_KEY; "
                        "the key is never printed or written)")


def add_model_api(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("base model behind a server (teacher, student and agent turns go there; "
                             "training still loads --model)")
    g.add_argument("--model-api-base", default=None, metavar="URL",
                   help="an OpenAI-compatible endpoint serving the base model (vLLM, SGLang, llama.cpp's "
                        "llama-server, transformers serve ...), e.g. http://localhost:8000/v1; genpi checks it "
                        "serves the same model as --model and refuses otherwise")
    g.add_argument("--model-api-name", default=None, metavar="NAME", help="the model name the endpoint serves")
    g.add_argument("--model-api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the endpoint's API key (default: OPENAI_API_KEY; "
                        "never printed or written)")


def add_preset(p: argparse.ArgumentParser, default: str = "quick") -> None:
    p.add_argument("--preset", default=default, choices=list(PRESETS),
                   help=f"sizes for every stage: {', '.join(f'{p} ({u})' for p, u in PRESET_USES.items())} "
                        f"(default: {default})")


def add_out(p: argparse.ArgumentParser, metavar: str, what: str) -> None:
    p.add_argument("--out", required=True, metavar=metavar, help=what)


def scenario_arg(args) -> Scenario:
    return load_scenario(args.scenario)


def model_arg(spec: str | None, preset: str = "quick") -> ModelRef:
    """--model, else the preset's model."""
    return resolve_model(spec or preset_model(check_preset(preset)))


def generator_arg(args) -> GeneratorSpec:
    """Validate the generator flags; return a typed spec (holding the key's variable name, never the key)."""
    from ..generate.specs import ApiSpec, LocalSpec, SameSpec

    if args.api_base or args.api_model:
        if not (args.api_base and args.api_model):
            raise GenpiError("--api-base and --api-model go together: pass both (e.g. --api-base "
                             "http://localhost:8000/v1 --api-model NAME)")
        if args.generator:
            raise GenpiError("pass either --generator (a local model) or --api-base/--api-model, not both")
        return ApiSpec(api_base=args.api_base, api_model=args.api_model, api_key_env=args.api_key_env)
    if args.generator:
        return LocalSpec(resolve_model(args.generator))
    return SameSpec()


def model_api_arg(args):
    """--model-api-base/--model-api-name -> a genpi.generate.specs.ApiSpec of role "base", or None."""
    from ..generate.specs import ApiSpec

    if not (args.model_api_base or args.model_api_name):
        return None
    if not (args.model_api_base and args.model_api_name):
        raise GenpiError("--model-api-base and --model-api-name go together: pass both (e.g. --model-api-base "
                         "http://localhost:8000/v1 --model-api-name NAME)")
    return ApiSpec(api_base=args.model_api_base, api_model=args.model_api_name, api_key_env=args.model_api_key_env,
                   role="base")


def out_dir_arg(path: str, what: str = "--out") -> Path:
    """Check that `path` is (or can become) a writable folder; create it."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise GenpiError(f"{what} '{path}' is a file, not a folder: pass a folder path")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GenpiError(f"cannot create {what} folder '{path}': {e.strerror}; pass a writable path")
    if not os.access(p, os.W_OK):
        raise GenpiError(f"{what} folder '{path}' is not writable: pass a writable path")
    return p


def data_dir_arg(path: str) -> Path:
    return DataDir(Path(path).expanduser()).require().path


def adapters_arg(paths: list[str] | None) -> list[Path]:
    return [AdapterDir(a).require().path for a in (paths or [])]


def fit_arg(sc: Scenario, ref: ModelRef):
    """Load the tokenizer and check the prompt fits the model's context; return the tokenizer."""
    from transformers import AutoConfig

    from ..models import load_tokenizer
    from ..scenario import check_fits

    tok = load_tokenizer(ref)
    cfg = AutoConfig.from_pretrained(ref.path, gguf_file=ref.gguf_file)
    check_fits(sc, tok, getattr(cfg, "max_position_embeddings", None))
    return tok
