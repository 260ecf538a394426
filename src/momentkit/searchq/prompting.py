"""The prompts of the three LLM roles (rewriter, validator, aggregator) and the reading of their answers.

Prompts are editable text files shipped in ``momentkit/searchq/prompts/``:

- ``rewriter.txt``, ``rewriter_levels.txt`` (levels S1/S2/S3), ``validator.txt``, ``aggregator.txt``:
  sections that start with a line holding only ``[name]`` (``[system]``, ``[user]``, ``[fix]`` and,
  for the rewriters, ``[retry]``); text before the first section is a comment. ``{name}``
  placeholders are filled in (``{caption}``, ``{query}``, ``{queries}``, ``{error}``, ``{reason}``,
  ``{dataset_hint}``); other braces are left as they are, so JSON can be written plainly.
- ``examples/<dataset>.json`` (``youcook2``, ``activitynet``, ``generic``): a ``hint`` sentence for
  ``{dataset_hint}`` and few-shot examples per role, shown to the model as earlier turns of the chat
  (the ``[user]`` request filled with the example, then the expected JSON answer).

:func:`load_prompts` takes a dataset name or the path of an examples file, and optionally a folder
whose files replace the shipped ones of the same name (copy ``prompts/`` and edit it).

Answers are JSON objects; :func:`parse_query`, :func:`parse_levels` and :func:`parse_verdict` read
them leniently (a ```` ``` ```` fence, text around the object and ``<think>...</think>`` blocks of
reasoning models are ignored) and raise :class:`AnswerError` when they cannot.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from momentkit.errors import InputError
from momentkit.io import read_json

PROMPT_DIR = Path(__file__).resolve().parent / "prompts"
DATASETS = ("youcook2", "activitynet", "generic")
LEVELS = ("S1", "S2", "S3")
ROLES = {  # file stem -> required sections
    "rewriter": ("system", "user", "fix", "retry"),
    "rewriter_levels": ("system", "user", "fix", "retry"),
    "validator": ("system", "user", "fix"),
    "aggregator": ("system", "user", "fix"),
}
_SECTION = re.compile(r"^\[([a-z_]+)\]\s*$")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

Message = dict[str, str]


class AnswerError(ValueError):
    """An LLM answer that does not have the requested shape."""


@dataclass(frozen=True)
class PromptTemplate:
    """The sections of one prompt file."""

    name: str
    path: str
    sections: dict[str, str]

    def render(self, section: str, **values: str) -> str:
        """The section with its ``{placeholders}`` filled in (unknown ones stay as written)."""
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0),
                                self.sections[section])


def read_template(path: str | os.PathLike, required: tuple[str, ...] = ()) -> PromptTemplate:
    """Parse a prompt file into its sections."""
    path = Path(path)
    if not path.is_file():
        raise InputError("prompt file not found", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=path) from None
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = _SECTION.match(line)
        if m:
            if m.group(1) in sections:
                raise InputError(f"section [{m.group(1)}] appears twice", path=path, line=lineno)
            current = sections[m.group(1)] = []
        elif current is not None:
            current.append(line)
    out = {k: "\n".join(v).strip() for k, v in sections.items()}
    for name in required:
        if not out.get(name):
            raise InputError(f"missing or empty section [{name}]", path=path, field=name)
    return PromptTemplate(name=path.stem, path=str(path), sections=out)


def _text(value: Any, path: Path, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError("must be a non-empty string", path=path, field=field)
    return value.strip()


def read_examples(path: str | os.PathLike) -> dict:
    """Read and check a few-shot examples file (see ``prompts/examples/generic.json``)."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object, got {type(data).__name__}", path=path)
    hint = data.get("hint", "")
    if not isinstance(hint, str):
        raise InputError("must be a string", path=path, field="hint")
    shapes = {
        "rewriter": (("caption", "query"), ()),
        "levels": (("caption", *LEVELS), ()),
        "validator": (("caption", "query", "reason"), ("consistent",)),
        "aggregator": (("query",), ()),
    }
    out: dict[str, Any] = {"hint": hint.strip()}
    for role, (texts, flags) in shapes.items():
        items = data.get(role, [])
        if not isinstance(items, list):
            raise InputError("must be a list of examples", path=path, field=role)
        checked = []
        for i, item in enumerate(items):
            where = f"{role}[{i}]"
            if not isinstance(item, dict):
                raise InputError("must be an object", path=path, field=where)
            ex = {k: _text(item.get(k), path, f"{where}.{k}") for k in texts}
            for k in flags:
                if not isinstance(item.get(k), bool):
                    raise InputError("must be true or false", path=path, field=f"{where}.{k}")
                ex[k] = item[k]
            if role == "aggregator":
                queries = item.get("queries")
                if not isinstance(queries, list) or len(queries) < 2:
                    raise InputError("must be a list of at least 2 queries", path=path, field=f"{where}.queries")
                ex["queries"] = [_text(q, path, f"{where}.queries[{j}]") for j, q in enumerate(queries)]
            checked.append(ex)
        out[role] = checked
    return out


def _dump(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False)


@dataclass(frozen=True)
class PromptSet:
    """Everything needed to build the chat messages of the three roles for one dataset."""

    templates: dict[str, PromptTemplate]
    examples: dict
    dataset: str

    @property
    def hint(self) -> str:
        return self.examples["hint"]

    def _system(self, role: str) -> Message:
        return {"role": "system", "content": self.templates[role].render("system", dataset_hint=self.hint).strip()}

    def _turns(self, role: str, pairs: list[tuple[dict, dict]]) -> list[Message]:
        out: list[Message] = []
        for values, answer in pairs:
            out.append({"role": "user", "content": self.templates[role].render("user", **values)})
            out.append({"role": "assistant", "content": _dump(answer)})
        return out

    def rewrite(self, caption: str, levels: bool = False) -> list[Message]:
        """Messages asking for the search query (or the S1/S2/S3 queries) of ``caption``."""
        if levels:
            role = "rewriter_levels"
            pairs = [({"caption": ex["caption"]}, {k: ex[k] for k in LEVELS}) for ex in self.examples["levels"]]
        else:
            role = "rewriter"
            pairs = [({"caption": ex["caption"]}, {"query": ex["query"]}) for ex in self.examples["rewriter"]]
        return [self._system(role), *self._turns(role, pairs),
                {"role": "user", "content": self.templates[role].render("user", caption=caption)}]

    def retry_rewrite(self, messages: list[Message], answer: str, reason: str, levels: bool = False) -> list[Message]:
        """The rewrite conversation continued with the validator's objection."""
        role = "rewriter_levels" if levels else "rewriter"
        return [*messages, {"role": "assistant", "content": answer},
                {"role": "user", "content": self.templates[role].render("retry", reason=reason)}]

    def validate(self, caption: str, query: str) -> list[Message]:
        """Messages asking whether ``query`` is consistent with ``caption``."""
        pairs = [({"caption": ex["caption"], "query": ex["query"]},
                  {"consistent": ex["consistent"], "reason": ex["reason"]}) for ex in self.examples["validator"]]
        return [self._system("validator"), *self._turns("validator", pairs),
                {"role": "user", "content": self.templates["validator"].render("user", caption=caption, query=query)}]

    def aggregate(self, queries: list[str]) -> list[Message]:
        """Messages asking for one query that covers all of ``queries``."""
        def bullets(qs):
            return "\n".join(f"- {q}" for q in qs)

        pairs = [({"queries": bullets(ex["queries"])}, {"query": ex["query"]}) for ex in self.examples["aggregator"]]
        return [self._system("aggregator"), *self._turns("aggregator", pairs),
                {"role": "user", "content": self.templates["aggregator"].render("user", queries=bullets(queries))}]

    def fix(self, role: str, messages: list[Message], answer: str, error: str) -> list[Message]:
        """The conversation continued with a request to answer again in the right shape."""
        return [*messages, {"role": "assistant", "content": answer},
                {"role": "user", "content": self.templates[role].render("fix", error=error)}]


def load_prompts(dataset: str = "generic", prompt_dir: str | os.PathLike | None = None) -> PromptSet:
    """The prompts for ``dataset`` (a name in :data:`DATASETS` or the path of an examples JSON file).

    Files in ``prompt_dir`` (``rewriter.txt``, ..., ``examples/<dataset>.json``) replace the shipped
    ones of the same name.
    """
    folders = [PROMPT_DIR]
    if prompt_dir is not None:
        prompt_dir = Path(prompt_dir)
        if not prompt_dir.is_dir():
            raise InputError("prompt folder not found", path=prompt_dir)
        folders.insert(0, prompt_dir)

    def find(relative: str) -> Path:
        for folder in folders:
            if (folder / relative).is_file():
                return folder / relative
        return PROMPT_DIR / relative

    templates = {role: read_template(find(f"{role}.txt"), required) for role, required in ROLES.items()}
    candidate = Path(dataset)
    if candidate.suffix.lower() == ".json":
        examples_path, name = candidate, candidate.stem
    else:
        examples_path, name = find(f"examples/{dataset}.json"), dataset
        if not examples_path.is_file():
            known = sorted({p.stem for f in folders for p in (f / "examples").glob("*.json")})
            raise InputError(f"unknown dataset {dataset!r} for the prompts; known: {', '.join(known)} "
                             "(or the path of an examples JSON file)", field="dataset")
    return PromptSet(templates=templates, examples=read_examples(examples_path), dataset=name)


# -- reading answers -------------------------------------------------------------------------------

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def answer_object(answer: str) -> dict:
    """The JSON object in an answer (fences, reasoning blocks and surrounding text ignored)."""
    if not isinstance(answer, str):
        raise AnswerError("no text")
    text = _THINK.sub("", answer).strip()
    if not text:
        raise AnswerError("the answer is empty")
    candidates = [text, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for c in candidates:
        try:
            obj = json.loads(c)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    raise AnswerError("the answer holds no JSON object")


def clean_query(value: Any, key: str = "query") -> str:
    """A query from an answer: a non-empty string, white space collapsed, enclosing quotes removed."""
    if not isinstance(value, str):
        raise AnswerError(f"'{key}' is not a string")
    text = " ".join(value.split()).strip().strip("\"'“”‘’`").strip()
    if not text:
        raise AnswerError(f"'{key}' is empty")
    return text


def parse_query(answer: str) -> str:
    """``{"query": "..."}`` -> the query."""
    obj = answer_object(answer)
    if "query" not in obj:
        raise AnswerError("the JSON object has no 'query'")
    return clean_query(obj["query"])


def parse_levels(answer: str) -> dict[str, str]:
    """``{"S1": ..., "S2": ..., "S3": ...}`` -> the three queries (keys case-insensitive)."""
    obj = {str(k).strip().upper(): v for k, v in answer_object(answer).items()}
    missing = [k for k in LEVELS if k not in obj]
    if missing:
        raise AnswerError(f"the JSON object has no {', '.join(repr(k) for k in missing)}")
    return {k: clean_query(obj[k], k) for k in LEVELS}


def parse_verdict(answer: str) -> tuple[bool, str]:
    """``{"consistent": true|false, "reason": "..."}`` -> (consistent, reason).

    ``consistent`` may also be the strings "true"/"false"/"yes"/"no".
    """
    obj = answer_object(answer)
    value = obj.get("consistent")
    if isinstance(value, str):
        value = {"true": True, "yes": True, "false": False, "no": False}.get(value.strip().lower(), value)
    if not isinstance(value, bool):
        raise AnswerError("'consistent' is not true or false")
    reason = obj.get("reason", "")
    return value, " ".join(str(reason).split()) if reason is not None else ""
