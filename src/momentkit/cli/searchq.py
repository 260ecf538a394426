"""``momentkit make-search-queries CAPTIONS --out OUT.jsonl``: a search-query benchmark from captions.

Runs :mod:`momentkit.searchq.pipeline` (rewriter -> validator -> grouping -> aggregator) with any
OpenAI-compatible chat endpoint, writes the grounding JSON Lines (one file per level with
``--levels``) and ``OUT.report.json``, and prints the Table 3.1-style report.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from momentkit.errors import InputError


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
        "--model google/gemma-3-12b-it",
    )
    p.add_argument("captions", metavar="CAPTIONS", help="caption / grounding annotation file")
    p.add_argument("--out", required=True, help="output grounding JSON Lines (with --levels: OUT_S1.jsonl, ...)")
    p.add_argument("--format", default=None, help="annotation format of CAPTIONS (default: detected)")
    p.add_argument("--dataset", default="generic",
                   help="few-shot examples: youcook2, activitynet, generic, or the path of an examples JSON file "
                   "(default: generic)")
    p.add_argument("--prompts", default=None, metavar="DIR",
                   help="folder of prompt files replacing the shipped ones of the same name")
    p.add_argument("--levels", action="store_true",
                   help="three progressively vaguer levels S1, S2, S3 (one benchmark each)")
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="keep every rewrite without asking the validator")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    p.add_argument("--model", default=None, help="model name as the endpoint knows it")
    p.add_argument("--api-key", default=None, help="API key (sent as a bearer token; none by default)")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default: 0)")
    p.add_argument("--max-tokens", type=int, default=None, help="answer length limit sent to the endpoint")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once (default: 8)")
    p.add_argument("--max-retries", type=int, default=5,
                   help="retries of a failed request, with exponential back-off (default: 5)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default: 120)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help=f"answer cache (default: {default_cache_dir()}); a repeated or resumed run reuses it")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the answer cache")
    p.add_argument("--threshold", type=float, default=0.85,
                   help="cosine similarity at or above which two queries of a video are grouped (default: 0.85)")
    p.add_argument("--encoder", default=None,
                   help="sentence-transformers model (hub id or folder; default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--keep-overlaps", dest="merge_windows", action="store_false",
                   help="keep overlapping windows of a group apart instead of merging them")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N videos")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from tqdm import tqdm

    from momentkit.searchq.llm import ChatClient
    from momentkit.searchq.pipeline import SearchQueryOptions, build_benchmark, report_path
    from momentkit.searchq.prompting import load_prompts
    from momentkit.searchq.report import print_report

    if args.max_tokens is not None and args.max_tokens < 1:
        raise InputError(f"must be a positive integer, got {args.max_tokens}", field="--max-tokens")
    if args.timeout <= 0:
        raise InputError(f"must be positive, got {args.timeout}", field="--timeout")
    params: dict = {"temperature": args.temperature}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    client = ChatClient.from_env(
        base_url=args.base_url, model=args.model, api_key=args.api_key, params=params,
        cache_dir=None if args.no_cache else (args.cache or default_cache_dir()),
        concurrency=args.concurrency, max_retries=args.max_retries, timeout=args.timeout,
    )
    prompts = load_prompts(args.dataset, args.prompts)
    options = SearchQueryOptions(levels=args.levels, validate=args.validate, threshold=args.threshold,
                                 merge_windows=args.merge_windows, limit=args.limit)

    def progress(desc: str, total: int):
        return tqdm(total=total, desc=desc, unit="item", file=sys.stderr, disable=not sys.stderr.isatty())

    report = build_benchmark(args.captions, args.out, client=client, prompts=prompts, encoder=args.encoder,
                             options=options, format=args.format, progress=progress)
    console = Console()
    print_report(report, console)
    for level, path in report["outputs"].items():
        console.print(f"{level}: {path}")
    console.print(f"report: {report_path(args.out)}")
    return 0
