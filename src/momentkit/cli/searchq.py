"""``momentkit make-search-queries CAPTIONS --out OUT.jsonl``: a search-query benchmark from captions.

Runs :mod:`momentkit.searchq.pipeline` (rewriter -> validator -> grouping -> aggregator) with any
OpenAI-compatible chat endpoint, writes the grounding JSON Lines (one file per level with
``--levels``) and ``OUT.report.json`` (with the build's manifest: prompts, model, parameters, seed),
and prints the Table 3.1-style report. Any caption format works, HD-EPIC narrations included
(``hd-epic-csv``: windows and the 80/20 split per participant are reader options, ``-o split=test``).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from momentkit.cli.options import (
    DeprecatedAlias,
    float_range,
    nonneg_float,
    nonneg_int,
    option_fields,
    positive_float,
    positive_int,
)
from momentkit.errors import InputError

# the library's argument names -> this command's options, in error messages
LIBRARY_OPTIONS = {"base_url": "--base-url", "model": "--llm-model", "concurrency": "--concurrency",
                  "max_retries": "--max-retries", "timeout": "--timeout", "threshold": "--threshold",
                  "limit": "--limit", "cache_dir": "--cache", "dataset": "--dataset", "prompts": "--prompts"}


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "momentkit" / "llm"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "make-search-queries", help="build a search-query benchmark from a caption dataset with an LLM",
        description="Turn the captions of a dataset (YouCook2, ActivityNet Captions, any grounding file) into "
        "short search queries with an LLM (rewriter, validator), group the queries of each video that mean the "
        "same thing (sentence encoder, cosine >= threshold, connected components) and let the LLM write one "
        "query per group (aggregator); a group's ground truth is the union of its captions' windows. "
        "The LLM is any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp server, hosted APIs).",
        epilog="environment: MOMENTKIT_LLM_BASE_URL (else OPENAI_BASE_URL), MOMENTKIT_LLM_MODEL, "
        "MOMENTKIT_LLM_API_KEY (else OPENAI_API_KEY). Example: momentkit make-search-queries "
        "yc2_val.json --out yc2_s_val.jsonl --dataset youcook2 --base-url http://localhost:8000/v1 "
        "--llm-model google/gemma-3-12b-it --llm-seed 0. HD-EPIC-S: momentkit make-search-queries "
        "HD_EPIC_Narrations.csv -o split=test --levels --dataset configs/searchq/hd-epic.json "
        "--out hd_epic_s.jsonl ...",
    )
    p.add_argument("captions", metavar="CAPTIONS", help="caption / grounding annotation file")
    p.add_argument("--out", required=True, metavar="FILE.jsonl",
                   help="output grounding JSON Lines (with --levels: FILE_S1.jsonl, ...) and FILE.report.json")
    p.add_argument("--format", default=None, help="annotation format of CAPTIONS (default: detected)")
    p.add_argument("--reader-option", "-o", dest="reader_options", action="append", default=[],
                   metavar="KEY=VALUE",
                   help="option of the CAPTIONS reader, repeatable; VALUE is parsed as JSON when it can be "
                   "(HD-EPIC narrations: split=train|test, window_frames=500, fps=3, boundary=clip|drop, "
                   "test_fraction=0.2, split_seed=N, durations=CSV)")
    p.add_argument("--dataset", default="generic",
                   help="few-shot examples: youcook2, activitynet, generic, or the path of an examples JSON file "
                   "such as configs/searchq/hd-epic.json (default: generic)")
    p.add_argument("--prompts", default=None, metavar="DIR",
                   help="folder of prompt files replacing the shipped ones of the same name")
    p.add_argument("--levels", action="store_true",
                   help="three progressively vaguer levels S1, S2, S3 (one benchmark each)")
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="keep every rewrite without asking the validator")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    p.add_argument("--llm-model", default=None, metavar="NAME",
                   help="the LLM's model name as the endpoint knows it (default: MOMENTKIT_LLM_MODEL)")
    p.add_argument("--model", dest="llm_model", action=DeprecatedAlias, new="--llm-model")
    p.add_argument("--api-key", default=None, help="API key (sent as a bearer token; none by default)")
    p.add_argument("--temperature", type=nonneg_float, default=0.0, help="sampling temperature, >= 0 (default: 0)")
    p.add_argument("--llm-seed", type=nonneg_int, default=None, metavar="N",
                   help="the LLM's sampling seed, sent with every request (the OpenAI 'seed' parameter; vLLM and "
                   "llama.cpp servers honour it) and recorded in the report's manifest (default: none sent)")
    p.add_argument("--max-tokens", type=positive_int, default=None, metavar="N",
                   help="answer length limit sent to the endpoint, 1 or more (default: the endpoint's)")
    p.add_argument("--concurrency", type=positive_int, default=8, metavar="N",
                   help="requests in flight at once, 1 or more (default: 8)")
    p.add_argument("--max-retries", type=nonneg_int, default=5, metavar="N",
                   help="retries of a failed request, with exponential back-off, 0 or more (default: 5)")
    p.add_argument("--timeout", type=positive_float, default=120.0, metavar="SECONDS",
                   help="seconds per request, > 0 (default: 120)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help=f"answer cache (default: {default_cache_dir()}); a repeated or resumed run reuses it")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the answer cache")
    p.add_argument("--threshold", type=float_range(-1.0, 1.0), default=0.85,
                   help="cosine similarity in [-1, 1] at or above which two queries of a video are grouped "
                        "(default: 0.85)")
    p.add_argument("--encoder", default=None,
                   help="sentence-transformers model (hub id or folder; default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--keep-overlaps", dest="merge_windows", action="store_false",
                   help="keep overlapping windows of a group apart instead of merging them")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="only the first N videos (1 or more)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from tqdm import tqdm

    from momentkit.searchq.llm import ChatClient
    from momentkit.searchq.pipeline import SearchQueryOptions, build_benchmark, report_path
    from momentkit.searchq.prompting import load_prompts
    from momentkit.searchq.report import print_report

    from momentkit.cli.data import parse_options

    # inputs, then outputs, then the endpoint: the cheapest mistakes are reported first
    with option_fields({"--option": "--reader-option"}):
        reader_options = parse_options(args.reader_options)
    fmt = check_captions(args.captions, args.format, reader_options)
    with option_fields(LIBRARY_OPTIONS):
        options = SearchQueryOptions(levels=args.levels, validate=args.validate, threshold=args.threshold,
                                     merge_windows=args.merge_windows, limit=args.limit)
    cache_dir = None if args.no_cache else (args.cache or default_cache_dir())
    check_outputs(args.out, options.level_names, cache_dir)
    with option_fields(LIBRARY_OPTIONS):
        prompts = load_prompts(args.dataset, args.prompts)
    params: dict = {"temperature": args.temperature}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    if args.llm_seed is not None:
        params["seed"] = args.llm_seed
    with option_fields(LIBRARY_OPTIONS, {"--model": "--llm-model"}):
        client = ChatClient.from_env(
            base_url=args.base_url, model=args.llm_model, api_key=args.api_key, params=params,
            cache_dir=cache_dir, concurrency=args.concurrency, max_retries=args.max_retries, timeout=args.timeout,
        )

    def progress(desc: str, total: int):
        return tqdm(total=total, desc=desc, unit="item", file=sys.stderr, disable=not sys.stderr.isatty())

    from momentkit.data.annotations import AnnotationWarning

    with warnings.catch_warnings():  # check_captions printed them
        warnings.simplefilter("ignore", AnnotationWarning)
        report = build_benchmark(args.captions, args.out, client=client, prompts=prompts, encoder=args.encoder,
                                 options=options, format=fmt, progress=progress, reader_options=reader_options)
    console = Console()
    print_report(report, console)
    for level, path in report["outputs"].items():
        console.print(f"{level}: {path}")
    console.print(f"report: {report_path(args.out)}")
    return 0


def check_captions(path: str, fmt: str | None, reader_options: dict | None = None) -> str:
    """Read the caption file once before anything else (its errors name the file and line), print the
    reader's warnings, and check that it holds captions; return its format."""
    from momentkit.data.annotations import AnnotationWarning, detect_format, read_annotations
    from momentkit.data.records import GroundingSample

    fmt = fmt or detect_format(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AnnotationWarning)
        samples = read_annotations(path, fmt, **(reader_options or {}))
    for w in caught:
        if issubclass(w.category, AnnotationWarning):
            print(f"momentkit make-search-queries: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not samples:
        raise InputError("no captions to rewrite" + (" with these reader options" if reader_options else ""),
                         path=path)
    if samples and not isinstance(samples[0], GroundingSample):
        raise InputError(f"expected captions (grounding annotations); format {fmt!r} holds "
                         f"{type(samples[0]).__name__} records", path=path)
    return fmt


def check_outputs(out: str, levels, cache_dir) -> None:
    """Every file the command writes (one per level and the report) and the cache folder must be writable."""
    from momentkit.io import check_output
    from momentkit.searchq.pipeline import level_paths, report_path

    check_output(out, "file", option="--out")
    for path in [*level_paths(out, levels).values(), report_path(out)]:
        check_output(path, "file", option="--out")
    if cache_dir is not None:  # the default one too: answers are written there as they come
        check_output(Path(cache_dir).expanduser(), "dir", option="--cache")
