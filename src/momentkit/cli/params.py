"""``momentkit params CONFIG [--set KEY=VALUE]``: the trainable parameters of a config's model.

Builds the model of the config's ``model:`` section (``name`` and its options, with ``--set``
overrides as ``momentkit train`` takes them) on the CPU, without any data, and prints::

    trainable parameters of CONFIG (model: NAME)
      total                                                   4,668,868 (4.67 M)

Models with a breakdown (:data:`DETAILS`: SDST) print their parts before the total, then their own
notes (for SDST: the total with ``shared: false`` and the paper's figures).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from momentkit.errors import InputError

SDST_PAPER = "paper (QVHighlights, InternVideo2-1B): 4.10 M shared, 12.43 M unshared"


def register(sub) -> None:
    p = sub.add_parser("params", help="count the trainable parameters of a config's model",
                       description="Build the model of an experiment config's model: section and print its "
                       "trainable parameter count (for SDST also per part, the unshared variant's count and the "
                       "paper's figures). No data is read.")
    p.add_argument("config", metavar="CONFIG", help="YAML experiment config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.hidden_dim=128 (repeatable)")
    p.set_defaults(func=run)


def run(args) -> int:
    name, options = model_section(args.config, args.overrides)
    model = build_model(name, options, path=args.config)
    print(report(args.config, name, model, options))
    return 0


def model_section(path: str, overrides: Sequence[str] = ()) -> tuple[str, dict]:
    """``(name, options)`` of the config's ``model:`` section after the ``a.b=value`` overrides."""
    from momentkit.config import apply_overrides, load_yaml

    data = apply_overrides(load_yaml(path), list(overrides))
    section = data.get("model")
    if not isinstance(section, dict):
        raise InputError("expected a model: section (a mapping with name and options)", path=path, field="model")
    options = dict(section)
    name = options.pop("name", None)
    if not isinstance(name, str) or not name:
        raise InputError(f"expected a model name, got {name!r}", path=path, field="model.name")
    return name, options


def build_model(name: str, options: dict, *, path: str | None = None):
    """``create_model(name, **options)``; errors name ``model.<option>`` and the config file."""
    from momentkit.models import create_model, list_models

    known = list_models()
    if name not in known:
        raise InputError(f"unknown model {name!r}; known: {', '.join(known)}", path=path, field="model.name")
    try:
        return create_model(name, **options)
    except InputError as e:
        field = e.field or ""
        field = field if field.startswith("model") else f"model.{field}" if field else "model"
        raise InputError(e.message, path=path, field=field) from None


def report(path: str, name: str, model, options: dict) -> str:
    """The printed lines: title, the model's parts (if it has a breakdown), total, notes."""
    from momentkit.models import count_parameters

    lines = [f"trainable parameters of {path} (model: {name})"]
    details = DETAILS.get(name)
    if details is None:
        lines.append(row("total", count_parameters(model)))
    else:
        lines += details(model, options, path)
    return "\n".join(lines)


def row(label: str, count: int) -> str:
    """``"  label ... 4,668,868 (4.67 M)"``."""
    return f"  {label:<52} {count:>12,} ({count / 1e6:.2f} M)"


def sdst_details(model, options: dict, path: str) -> list[str]:
    """SDST's parts (:func:`~momentkit.models.sdst.parameter_breakdown`, ending with the total), the
    total of the same config with ``shared: false`` and the paper's figures."""
    from momentkit.models import count_parameters
    from momentkit.models.sdst import parameter_breakdown

    lines = [row(part, count) for part, count in parameter_breakdown(model).items()]
    unshared = build_model("sdst", {**options, "shared": False}, path=path)
    lines.append(row("total with shared: false", count_parameters(unshared)))
    lines.append(f"  {SDST_PAPER}")
    return lines


# model name -> lines that replace the bare total: (model, options, config path) -> lines
DETAILS: dict[str, Callable[..., list[str]]] = {"sdst": sdst_details}
