"""Two processes under ``torchrun`` on the CPU: the README's commands, run as written.

- ``momentkit train`` (Lightning DDP, gloo): each rank trains on its own half of the epoch (disjoint,
  together the whole training set), evaluation is gathered and written once (one ``metrics_val.json``,
  one learning-curve row per evaluation, nothing written by rank 1), and the best checkpoint loads
  in one process (``momentkit test --ckpt``) and scores what the two processes scored.
- ``momentkit extract`` (sharded, the ranks never talk): the same bytes in the same files as one
  process, every file written once by the rank whose share it is, and after rank 1 is killed
  (SIGKILL) the same command finishes the job without rewriting a finished file.

What the processes do is recorded from outside the code under test: a ``sitecustomize`` module on the
children's ``PYTHONPATH`` installs an audit hook (every file opened for writing or renamed under the
watched folder, by rank), records the sample ids of each training and validation step, and makes
rank 1 kill itself at a chosen file. Every command runs with a timeout; its whole process group is
killed when it overruns or the test fails.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from test_readme import TINY, bash_blocks, command_lines

pytestmark = pytest.mark.usefixtures("one_thread")

TORCHRUN = REPO / ".venv" / "bin" / "torchrun"
TIMEOUT = 240  # seconds a command may take here before its processes are killed (a few tens normally)

# imported by every Python process of the commands (torchrun's agent and its workers)
SITECUSTOMIZE = textwrap.dedent('''
    import json, os, signal, sys

    _LOG = os.environ.get("MK_TEST_LOG")
    if _LOG:
        _RANK = int(os.environ.get("RANK", -1))  # -1: not a torchrun worker
        _WATCH = os.path.realpath(os.environ["MK_TEST_WATCH"]) + os.sep
        _KILL = os.environ.get("MK_TEST_KILL")  # "RANK:N": that rank dies at the N-th .npz it completes
        _busy = [False]
        _renamed = [0]

        def _emit(**row):
            fd = os.open(os.path.join(_LOG, f"events.{os.getpid()}.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                os.write(fd, (json.dumps({"rank": _RANK, **row}) + "\\n").encode())
            finally:
                os.close(fd)

        def _watched(path):
            if isinstance(path, int):
                return None
            path = os.path.realpath(os.fsdecode(path))
            return path if path.startswith(_WATCH) else None

        def _hook(event, args):
            if _busy[0] or event not in ("open", "os.rename"):
                return
            _busy[0] = True
            try:
                if event == "open":
                    path, mode, flags = args
                    writes = any(c in mode for c in "wax+") if mode else bool(flags & (os.O_WRONLY | os.O_RDWR))
                    path = _watched(path) if writes else None
                    if path:
                        _emit(event="open", path=path)
                else:
                    src, dst = _watched(args[0]), _watched(args[1])
                    if dst:
                        if _KILL and dst.endswith(".npz"):
                            rank, n = map(int, _KILL.split(":"))
                            if rank == _RANK:
                                _renamed[0] += 1
                                if _renamed[0] == n:  # before the rename: its temporary file stays behind
                                    _emit(event="killed", path=dst)
                                    os.kill(os.getpid(), signal.SIGKILL)
                        _emit(event="rename", src=src, path=dst)
            finally:
                _busy[0] = False

        sys.addaudithook(_hook)

        if _RANK >= 0 and os.environ.get("MK_TEST_STEPS"):
            from momentkit.training.module import TaskModule

            def _recording(stage, step):
                def wrapped(self, batch, *args, **kwargs):
                    _emit(event="step", stage=stage, epoch=int(self.current_epoch), world=int(self.trainer.world_size),
                          qids=[m["qid"] for m in batch["meta"]])
                    return step(self, batch, *args, **kwargs)
                return wrapped

            TaskModule.training_step = _recording("train", TaskModule.training_step)
            TaskModule.validation_step = _recording("val", TaskModule.validation_step)
''')


# ------------------------------------------------------------------------------------ helpers
def readme_torchrun(subcommand: str) -> list[str]:
    """The README's two-process command of ``subcommand`` (``torchrun --nproc-per-node 2 ... SUBCOMMAND``)."""
    found = [w for block in bash_blocks() for w in command_lines(block)
             if w[:3] == ["torchrun", "--nproc-per-node", "2"] and "momentkit.cli.main" in w
             and w[w.index("momentkit.cli.main") + 1] == subcommand]
    assert len(found) == 1, f"the README should show one `torchrun --nproc-per-node 2 ... {subcommand}`: {found}"
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def instrumented_env(tmp: Path, watch: Path, **extra: str) -> tuple[dict, Path]:
    """The environment of a command: one thread, a free port for torchrun's rendezvous, and the
    recording ``sitecustomize``; returns it and the new folder the events of this command go to."""
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp / f"events-{len(list(tmp.glob('events-*')))}"
    log.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PET_MASTER_PORT=str(free_port()), PYTHONPATH=str(site),
               MK_TEST_LOG=str(log), MK_TEST_WATCH=str(watch), **extra)
    return env, log


def run(argv: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """Run a command in its own process group; the group is killed when the command overruns ``TIMEOUT``
    or the test stops, and whatever of it outlives the command (workers of a failed torchrun)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.communicate()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def events(log: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(log.glob("events.*.jsonl")) for line in f.read_text().splitlines()]


def checksums(folder: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``folder``, hidden ones included."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------ training
def test_two_process_training(tmp_path, monkeypatch):
    from momentkit.cli.main import main

    words = readme_torchrun("train")
    work = tmp_path / "work"
    work.mkdir()
    (work / "configs").symlink_to(REPO / "configs", target_is_directory=True)
    monkeypatch.chdir(work)
    # the tiny qvh-small of the README test: 14 training and 6 validation queries
    assert main(["synth", "qvh-small", "--out", "data/qvh-small", *TINY["synth"]]) == 0
    train_qids = [json.loads(line)["qid"] for line in (work / "data/qvh-small/annotations/train.jsonl").open()]
    val_qids = [json.loads(line)["qid"] for line in (work / "data/qvh-small/annotations/val.jsonl").open()]
    assert len(set(train_qids)) == len(train_qids) == 14 and len(set(val_qids)) == len(val_qids) == 6

    argv = [str(TORCHRUN), *words[1:], *TINY["train"]]  # the README's command, sized as the README test sizes it
    env, log = instrumented_env(tmp_path, work, MK_TEST_STEPS="1")
    done = run(argv, work, env)
    assert done.returncode == 0, f"{shlex.join(argv)} failed:\n{done.stderr[-4000:]}"
    out_dir = work / next(w.split("=", 1)[1] for w in words if w.startswith("train.out_dir="))

    rows = events(log)
    steps = [r for r in rows if r["event"] == "step"]
    assert {r["world"] for r in steps} == {2} and {r["rank"] for r in steps} == {0, 1}
    for stage, qids in (("train", train_qids), ("val", val_qids)):
        seen = {rank: [q for r in steps if r["stage"] == stage and r["rank"] == rank for q in r["qids"]]
                for rank in (0, 1)}
        assert len(seen[0]) == len(seen[1]) == len(qids) // 2, (stage, seen)  # each once, halves
        assert set(seen[0]).isdisjoint(seen[1]), (stage, seen)
        assert sorted(seen[0] + seen[1]) == sorted(qids), (stage, seen)

    # the run folder: written by rank 0 alone (rank 1 only probes whether it can write there)
    written = [r for r in rows
               if r["event"] in ("open", "rename") and Path(r["path"]).is_relative_to(out_dir.resolve())]
    by_rank1 = [r["path"] for r in written if r["rank"] != 0 and ".momentkit-write-test." not in r["path"]]
    assert not by_rank1, by_rank1
    for name in ("metrics_val.json", "predictions_val.jsonl", "model.safetensors"):
        assert [r["rank"] for r in written if r["event"] == "rename" and r["path"] == str((out_dir / name).resolve())] \
            == [0], name
    curve = (out_dir / "curve.csv").read_text().splitlines()
    assert len(curve) == 2 and curve[1].startswith("1,1,"), curve  # one evaluation: epoch 1, step 1
    with (out_dir / "logs/csv/metrics.csv").open() as fh:
        logged = [r for r in csv.DictReader(fh) if r.get("val/MR-full-mAP")]
    assert len(logged) == 1, logged  # the evaluation logged once
    metrics = json.loads((out_dir / "metrics_val.json").read_text())

    # the checkpoint loads in one process and scores the validation set as the two processes did
    ckpt = str(out_dir / "checkpoints" / "best.ckpt")
    assert main(["test", words[words.index("train") + 1], "--ckpt", ckpt, "--set", "train.out_dir=runs/one",
                 *TINY["test"]]) == 0
    again = json.loads((work / "runs/one/metrics_val.json").read_text())
    assert again["brief"] == metrics["brief"]
    # the same predictions up to float rounding (a batch of 3 queries per process instead of 6 pads differently)
    ours, theirs = ({r["qid"]: r for r in map(json.loads, (d / "predictions_val.jsonl").open())}
                    for d in (work / "runs/one", out_dir))
    assert sorted(ours) == sorted(theirs) == sorted(val_qids)
    for qid, row in ours.items():
        for key in ("pred_relevant_windows", "pred_saliency_scores"):
            assert np.allclose(row[key], theirs[qid][key], rtol=1e-5, atol=1e-6), (qid, key)


# ------------------------------------------------------------------------------------ extraction
def _shares(vids: list[str], qids: list[str], world: int, batch: int) -> dict[int, set[str]]:
    """Which rank writes which file: the i-th video (sorted ids) rank i % world, the j-th batch of the
    queries (sorted ids, as strings) rank j % world."""
    out = {r: set() for r in range(world)}
    for i, vid in enumerate(sorted(vids)):
        out[i % world].add(f"{vid}.npz")
    for i, qid in enumerate(sorted(qids)):
        out[(i // batch) % world].add(f"qid{qid}.npz")
    return out


def test_sharded_extraction(tmp_path, monkeypatch):
    from momentkit.cli.main import main
    from momentkit.video.testing import make_tiny_clip, make_video

    words = readme_torchrun("extract")
    argv = words[words.index("momentkit.cli.main") + 1:]
    work = tmp_path / "work"
    clip = make_tiny_clip(tmp_path / "tiny-clip")
    at = argv.index("--backbone-model") + 1
    argv[at] = str(clip)  # the README's model, here a tiny random CLIP
    videos = work / argv[argv.index("--videos") + 1]
    for i in range(6):  # 3 to 8 s long
        make_video(videos / f"v{i}.mp4", duration=3.0 + i, fps=8, width=48, height=32)
    queries = work / argv[argv.index("--queries") + 1]
    queries.parent.mkdir(parents=True)
    vocab = "a red square moves right while a blue circle moves left across the dark scene".split()
    with queries.open("w") as fh:  # 70 queries of 2 to 14 words: two batches of 64 and 6
        for q in range(70):
            fh.write(json.dumps({"qid": q, "query": " ".join(vocab[: 2 + (q * 5) % 13]), "vid": f"v{q % 6}",
                                 "duration": 3.0, "relevant_windows": [[0.0, 2.0]]}) + "\n")
    out = argv[argv.index("--out") + 1].rstrip("/")
    outs = [work / out, work / f"{out}_text"]

    def folder_sums(root: Path) -> dict[str, str]:
        return {f"{d.name}/{k}": v for d in (root / out, root / f"{out}_text") for k, v in checksums(d).items()}

    # one process (in this one)
    one = tmp_path / "one"
    (one / out).parent.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert main([*argv[:argv.index("--out") + 1], str(one / out), *argv[argv.index("--out") + 2:],
                 "--no-progress"]) == 0
    reference = folder_sums(one)
    names = sorted(k.split("/", 1)[1] for k in reference if k.endswith(".npz"))
    assert len(names) == 6 + 70 and not any(k.split("/", 1)[1].startswith(".") for k in reference)
    share = _shares([f"v{i}" for i in range(6)], [str(q) for q in range(70)], 2, 64)
    assert sorted(share[0] | share[1]) == names and len(share[0]) == 3 + 64 and len(share[1]) == 3 + 6

    command = [str(TORCHRUN), *words[1:words.index("momentkit.cli.main") + 1], *argv]

    def watched_writes(rows: list[dict]) -> dict[str, list[int]]:
        """Final file name -> the ranks that renamed a finished file onto it."""
        found: dict[str, list[int]] = {}
        for r in rows:
            if r["event"] == "rename":
                found.setdefault(Path(r["path"]).name, []).append(r["rank"])
        return found

    # two processes: the same files, each written once, by the rank whose share it is
    env, log = instrumented_env(tmp_path, work)
    done = run(command, work, env)
    assert done.returncode == 0, f"{shlex.join(command)} failed:\n{done.stderr[-4000:]}"
    assert "rank 0/2: 3 videos extracted" in done.stdout and "rank 1/2: 3 videos extracted" in done.stdout
    assert folder_sums(work) == reference
    writes = watched_writes(events(log))
    assert sorted(writes) == sorted(names + ["extract_info.json"])
    assert writes.pop("extract_info.json") == [0, 0]  # the recipe of each folder, by rank 0
    assert all(len(ranks) == 1 for ranks in writes.values()), writes
    for rank in (0, 1):
        assert {n for n, r in writes.items() if r == [rank]} == share[rank]
    opened = {Path(r["path"]).name for r in events(log) if r["event"] == "open"}
    probes = {n for n in opened if n.startswith(".momentkit-write-test.")}  # can --out be written?
    assert all(n.startswith(".") and n.endswith(".tmp") for n in opened - probes), opened  # atomic writes only

    # rank 1 killed (SIGKILL) at its second video, then the same command again
    for d in outs:
        for f in d.iterdir():
            f.unlink()
    env, log = instrumented_env(tmp_path, work, MK_TEST_KILL="1:2")
    killed = run(command, work, env)
    assert killed.returncode != 0
    kill_rows = events(log)
    assert [Path(r["path"]).name for r in kill_rows if r["event"] == "killed"] == ["v3.npz"]
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for d in outs for p in d.iterdir()
              if not p.name.startswith(".")}
    assert work / out / "v1.npz" in before and work / out / "v3.npz" not in before
    assert any(p.name.startswith(".v3.npz.") and p.name.endswith(".tmp") for p in (work / out).iterdir())

    env, log = instrumented_env(tmp_path, work)
    resumed = run(command, work, env)
    assert resumed.returncode == 0, f"{shlex.join(command)} failed:\n{resumed.stderr[-4000:]}"
    assert folder_sums(work) == reference  # the same bytes, and no temporary file left
    for p, stamp in before.items():
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == stamp, f"{p.name} was written again"
    # by folder and name: each folder has its own extract_info.json, and where the kill comes before rank 0
    # reached the text folder, the resumed run writes that folder's recipe for the first time
    rewrites: dict[str, list[int]] = {}
    for r in events(log):
        if r["event"] == "rename":
            rewrites.setdefault(f"{Path(r['path']).parent.name}/{Path(r['path']).name}", []).append(r["rank"])
    kept = {f"{p.parent.name}/{p.name}" for p in before}
    assert not set(rewrites) & kept, rewrites
    assert all(len(ranks) == 1 for ranks in rewrites.values()), rewrites
    assert sorted(set(rewrites) | kept) == sorted(reference)


# ------------------------------------------------------------------------------------ what torchrun started
def _launched(monkeypatch, local: int | None, world: int | None) -> None:
    for name, value in (("LOCAL_WORLD_SIZE", local), ("WORLD_SIZE", world)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(value))


def test_devices_follow_torchrun(monkeypatch):
    from momentkit.errors import InputError
    from momentkit.training.devices import launched_devices, launcher

    _launched(monkeypatch, None, None)
    assert launcher() is None and launched_devices("auto", 1) == ("auto", 1)  # one process: Lightning decides
    _launched(monkeypatch, 2, 2)
    assert launcher() == (2, 1)
    assert launched_devices("auto", 1) == (2, 1) and launched_devices(-1, 1) == (2, 1)
    assert launched_devices(2, 1) == (2, 1) and launched_devices("0,1", 1) == ("0,1", 1)
    _launched(monkeypatch, 4, 8)  # 2 nodes of 4
    assert launched_devices("auto", 1) == (4, 2) and launched_devices([0, 1, 2, 3], 2) == ([0, 1, 2, 3], 2)
    with pytest.raises(InputError, match="torchrun started 4 processes per node") as e:
        launched_devices(2, 1)
    assert e.value.field == "train.devices"
    with pytest.raises(InputError, match="torchrun started 2 nodes") as e:
        launched_devices("auto", 3)
    assert e.value.field == "train.num_nodes"
    _launched(monkeypatch, 1, 1)
    assert launched_devices(1, 1) == (1, 1)


def test_train_refuses_devices_that_torchrun_did_not_start(monkeypatch, tmp_path, capsys):
    from momentkit.cli.main import main

    _launched(monkeypatch, 2, 2)
    monkeypatch.chdir(tmp_path)
    config = str(REPO / "configs/synthetic/qvh_small_moment_detr.yaml")
    assert main(["train", config, "--set", "train.devices=1", "--set", "train.accelerator=cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "train.devices" in err and "torchrun started 2 processes per node" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_the_guide_shows_the_readme_commands():
    guide = (REPO / "docs" / "multi_process.md").read_text(encoding="utf-8")
    blocks = [cmd for lang, block in re.findall(r"^```(\w*)\n(.*?)^```", guide, re.M | re.S) if lang == "bash"
              for cmd in command_lines(block)]
    assert readme_torchrun("train") in blocks and readme_torchrun("extract") in blocks
