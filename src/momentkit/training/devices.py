"""What a run asks to compute on, checked against what this machine and torch build offer.

Lightning (and torch) fail late and cryptically when a config asks for a GPU that is not there: an
``AssertionError`` or ``MisconfigurationException`` after the data was opened. The commands check the
request first, with these two functions, and report one :class:`~momentkit.errors.InputError` that
names the option and says what is available instead:

- :func:`check_accelerator` (``name``, ``devices``): Lightning's ``accelerator`` / ``devices`` pair, as
  ``momentkit train`` / ``test`` take them (``train.accelerator``, ``train.devices``);
- :func:`check_device` (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``): one torch device, as
  the ``--device`` option of ``momentkit predict`` / ``extract`` takes it.

Under ``torchrun`` the processes are already started, one per device: :func:`launched_devices` takes
``train.devices`` / ``train.num_nodes`` from the launcher where they are left at their defaults and
refuses values that disagree with it (Lightning would otherwise train one independent copy of the run
per process, all writing the same files).
"""

from __future__ import annotations

import os
from typing import Any

from momentkit.errors import InputError

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def available() -> list[str]:
    """What this machine can compute on, for messages: ``["cpu", "cuda (2 devices)", "mps"]``."""
    out = ["cpu"]
    n = _cuda_count()
    if n:
        out.append(f"cuda ({n} device{'s' if n > 1 else ''})")
    if _mps_available():
        out.append("mps")
    return out


def _no_cuda(field: str) -> InputError:
    import torch

    if torch.version.cuda is None:
        why = f"CUDA is not available in this torch build ({torch.__version__})"
    else:
        why = f"no CUDA device is visible (torch {torch.__version__}, built for CUDA {torch.version.cuda})"
    return InputError(f"{why}; available: {', '.join(available())}", field=field)


def _device_request(devices: Any, field: str) -> int | list[int] | None:
    """Lightning's ``devices``: a count (int, ``"2"``), indices (list, ``"0,1"``) or None for
    ``"auto"`` / ``-1`` (every device there is)."""
    if devices is None or devices == "auto" or devices == -1 or devices == "-1":
        return None
    value = devices
    if isinstance(devices, str):
        try:
            value = [int(x) for x in devices.split(",") if x.strip()] if "," in devices else int(devices)
        except ValueError:
            value = None
    ok = (isinstance(value, int) and not isinstance(value, bool) and value > 0) or (
        isinstance(value, (list, tuple)) and value
        and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value))
    if not ok:
        raise InputError(f"expected a number of devices (>= 1), a list of device indices, -1 (all) or 'auto', "
                         f"got {devices!r}", field=field)
    return list(value) if isinstance(value, (list, tuple)) else value


def check_accelerator(name: str = "auto", devices: Any = "auto", *, field: str = "train.accelerator",
                      devices_field: str = "train.devices") -> str:
    """Check Lightning's ``accelerator`` / ``devices`` pair against this machine and return the kind of
    device the run will use: ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"tpu"``.

    ``"gpu"`` means CUDA (or MPS on a Mac), ``"auto"`` the best there is. ``devices`` is a count, a list
    of indices (``[0, 2]``, ``"0,2"``), ``-1`` or ``"auto"``; a count above the devices there are, or an
    index that does not exist, is refused (on the CPU a count is a number of processes and any is fine).
    Errors are :class:`InputError` s on ``field`` / ``devices_field`` saying what is available.
    """
    kind = str(name).lower()
    if kind not in ACCELERATORS:
        raise InputError(f"unknown accelerator {name!r}; expected one of: {', '.join(ACCELERATORS)} "
                         f"(available here: {', '.join(available())})", field=field)
    request = _device_request(devices, devices_field)
    n_cuda = _cuda_count()
    if kind == "auto":
        kind = "cuda" if n_cuda else "mps" if _mps_available() else "cpu"
    elif kind == "gpu":
        if not n_cuda and not _mps_available():
            raise _no_cuda(field)
        kind = "cuda" if n_cuda else "mps"
    elif kind == "cuda" and not n_cuda:
        raise _no_cuda(field)
    elif kind == "mps" and not _mps_available():
        raise InputError(f"MPS (Apple GPU) is not available here; available: {', '.join(available())}", field=field)
    elif kind == "tpu":
        import importlib.util

        if importlib.util.find_spec("torch_xla") is None:
            raise InputError(f"TPUs need torch_xla, which is not installed; available: {', '.join(available())}",
                             field=field)
        return kind
    if kind == "cpu" or request is None:
        if kind == "cpu" and isinstance(request, list):
            raise InputError(f"device indices select GPUs and the run is on the CPU (available: "
                             f"{', '.join(available())}); give a number of processes, e.g. 1", field=devices_field)
        return kind
    count = n_cuda if kind == "cuda" else 1
    wanted = request if isinstance(request, list) else list(range(request))
    missing = [i for i in wanted if i >= count]
    if missing:
        asked = f"device {', '.join(map(str, missing))}" if isinstance(request, list) else \
            f"{request} {kind.upper()} devices"
        raise InputError(f"asks for {asked} but this machine has {count} {kind.upper()} device"
                         f"{'s' if count != 1 else ''} (indices from 0); available: {', '.join(available())}",
                         field=devices_field)
    return kind


def check_device(spec: str = "auto", *, field: str = "--device"):
    """One torch device from ``"auto"`` (CUDA when there is one, else the CPU), ``"cpu"``, ``"cuda"``,
    ``"cuda:N"``, ``"gpu"`` or ``"mps"``, checked as :func:`check_accelerator` checks; returns a
    :class:`torch.device`."""
    import torch

    text = str(spec).strip().lower()
    name, _, index = text.partition(":")
    if index and not index.isdigit():
        raise InputError(f"expected cpu, cuda, cuda:N, mps or auto, got {spec!r}", field=field)
    if name == "auto":
        name = "cuda" if _cuda_count() else "cpu"
    if name not in ("cpu", "cuda", "gpu", "mps"):
        raise InputError(f"expected cpu, cuda, cuda:N, mps or auto, got {spec!r}; available: "
                         f"{', '.join(available())}", field=field)
    indices = [int(index)] if index and name != "cpu" else "auto"
    kind = check_accelerator(name, indices, field=field, devices_field=field)
    if kind == "cpu":
        return torch.device("cpu")
    return torch.device(kind, int(index)) if index else torch.device(kind)


def launcher() -> tuple[int, int] | None:
    """``(processes per node, nodes)`` that ``torchrun`` started (from ``LOCAL_WORLD_SIZE`` and
    ``WORLD_SIZE``), or None outside it."""
    local, world = os.environ.get("LOCAL_WORLD_SIZE", ""), os.environ.get("WORLD_SIZE", "")
    if not (local.isdigit() and world.isdigit()) or int(local) < 1:
        return None
    return int(local), max(1, int(world) // int(local))


def launched_devices(devices: Any = "auto", num_nodes: int = 1, *, devices_field: str = "train.devices",
                     nodes_field: str = "train.num_nodes") -> tuple[Any, int]:
    """Lightning's ``(devices, num_nodes)`` for a run started by ``torchrun``: ``devices="auto"`` (or
    -1) becomes the processes per node and the default ``num_nodes=1`` the number of nodes; given values
    must match what was launched, else an :class:`InputError` on ``devices_field`` / ``nodes_field``.
    Outside ``torchrun`` (or with one process) both are returned unchanged."""
    started = launcher()
    if started is None or started == (1, 1):
        return devices, num_nodes
    per_node, nodes = started
    request = _device_request(devices, devices_field)
    if request is None:
        devices = per_node
    elif (len(request) if isinstance(request, list) else request) != per_node:
        raise InputError(f"is {devices!r} but torchrun started {per_node} processes per node (one per device); "
                         f"leave it at auto or give {per_node}", field=devices_field)
    if num_nodes == 1 and nodes > 1:
        num_nodes = nodes
    elif num_nodes != nodes:
        raise InputError(f"is {num_nodes} but torchrun started {nodes} node{'s' if nodes > 1 else ''} "
                         f"(WORLD_SIZE {per_node * nodes} / LOCAL_WORLD_SIZE {per_node})", field=nodes_field)
    return devices, num_nodes
