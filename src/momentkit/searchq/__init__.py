"""Search-query benchmarks from caption datasets (thesis chapter 3; ``momentkit make-search-queries``).

Captions written by annotators who watched the video are turned into the short, vague queries that
users type, and queries that now mean the same thing are grouped into multi-moment queries:

- :mod:`momentkit.searchq.llm`: OpenAI-compatible chat client (retries, concurrency limit, cache);
- :mod:`momentkit.searchq.prompting`: the editable prompts and few-shot examples, reading answers;
- :mod:`momentkit.searchq.grouping`: sentence-encoder grouping per video (connected components);
- :mod:`momentkit.searchq.pipeline`: rewriter -> validator -> grouping -> aggregator;
- :mod:`momentkit.searchq.report`: the Table 3.1-style report.
"""

from momentkit.searchq.grouping import (
    DEFAULT_ENCODER,
    DEFAULT_THRESHOLD,
    SentenceEncoder,
    group_per_video,
    load_encoder,
    similarity_components,
)
from momentkit.searchq.llm import ChatClient, LLMError
from momentkit.searchq.pipeline import (
    SearchQueryOptions,
    SearchQueryPipeline,
    SearchQueryResult,
    build_benchmark,
    union_windows,
)
from momentkit.searchq.prompting import AnswerError, PromptSet, load_prompts
from momentkit.searchq.report import benchmark_row, print_report, query_length

__all__ = [
    "DEFAULT_ENCODER",
    "DEFAULT_THRESHOLD",
    "AnswerError",
    "ChatClient",
    "LLMError",
    "PromptSet",
    "SearchQueryOptions",
    "SearchQueryPipeline",
    "SearchQueryResult",
    "SentenceEncoder",
    "benchmark_row",
    "build_benchmark",
    "group_per_video",
    "load_encoder",
    "load_prompts",
    "print_report",
    "query_length",
    "similarity_components",
    "union_windows",
]
