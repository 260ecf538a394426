"""``momentkit classify VIDEO --classes "a,b,c"``: rank class names for raw videos (zero-shot).

Frames are decoded (``--fps``, default: every frame), ``--frames-per-view`` of them taken from equal
segments (:func:`momentkit.data.classification.frame_indices`, ``--views`` views), embedded one by one
by a frozen CLIP image encoder (the joint space), and scored against the class names' CLIP text
embeddings (prompt templates averaged, cached per vocabulary):

- without ``--ckpt``: plain CLIP, the cosine of the mean-pooled frames with every class text (x100,
  softmax);
- with ``--ckpt RUN``: a trained ``classification`` model that scores class texts (VicTR, the temporal
  transformer, CLIP zero-shot), with the run's CLIP text model, prompt templates, auxiliary texts and
  frames per view; its CLIP image model is the one named by ``--backbone-model``, else the one that
  extracted its training features (the run's feature recipe), else the run's ``data.text_model``.
"""

from __future__ import annotations

import argparse

from momentkit.cli.options import DEVICE_HELP, device, positive_float, positive_int

EPILOG = """\
examples:
  momentkit classify video.mp4 --classes "riding a bike, playing guitar, cooking"
  momentkit classify videos/*.mp4 --classes-file ../shared/data/action_recognition/hmdb51_classes.csv
  momentkit classify video.mp4 --classes-file classes.txt --ckpt runs/kinetics400/victr --top-classes 3
"""


def register(sub) -> None:
    p = sub.add_parser(
        "classify", help="rank class names for videos with CLIP or a trained VicTR (zero-shot)",
        description="Embed frames of each video with a frozen CLIP, score them against class names given as "
        "text, print the ranked classes with their probabilities.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    p.add_argument("--classes", default=None, help="comma-separated class names")
    p.add_argument("--classes-file", default=None, metavar="FILE",
                   help="class names: an id,name CSV, a classInd.txt or one name per line")
    p.add_argument("--ckpt", default=None, metavar="RUN",
                   help="a trained classification run (folder, model.safetensors or .ckpt); default: plain CLIP")
    p.add_argument("--backbone-model", default=None, metavar="PATH_OR_ID",
                   help="CLIP model: Hugging Face id or local folder (default: the run's, else "
                        "openai/clip-vit-base-patch32)")
    p.add_argument("--frames-per-view", type=positive_int, default=None, metavar="N",
                   help="frames per view (default: the run's, else 8)")
    p.add_argument("--views", type=positive_int, default=1, help="temporal views averaged (default: 1)")
    p.add_argument("--fps", type=positive_float, default=None, help="decoding rate (default: every frame)")
    p.add_argument("--prompt-templates", default=None, metavar="FILE",
                   help="prompt templates, one per line with {} (default: the run's, else 'a photo of {}.')")
    p.add_argument("--readable-names", action="store_true",
                   help="turn class ids into words for the prompts (ApplyEyeMakeup -> apply eye makeup)")
    p.add_argument("--top-classes", type=positive_int, default=5, metavar="N",
                   help="classes printed per video (default: 5)")
    p.add_argument("--text-cache", default=None, metavar="DIR", help="class-text embedding cache folder")
    p.add_argument("--device", type=device, default="auto", help=DEVICE_HELP)
    p.set_defaults(func=run)


def class_names(args) -> list[str]:
    from momentkit.errors import InputError

    if (args.classes is None) == (args.classes_file is None):
        raise InputError("give --classes or --classes-file (one of them)", field="--classes")
    if args.classes_file is not None:
        from momentkit.data.classification import read_class_list

        names = read_class_list(args.classes_file)
    else:
        names = [c.strip() for c in args.classes.split(",") if c.strip()]
    if len(names) < 2:
        raise InputError(f"give at least two classes, got {len(names)}", field="--classes")
    dup = [n for i, n in enumerate(names) if n in names[:i]]
    if dup:
        raise InputError(f"class {dup[0]!r} is given twice", field="--classes")
    return names


def _run_setup(args):
    """``(model or None, run config or None, CLIP model name)``."""
    from momentkit.errors import InputError

    if args.ckpt is None:
        return None, None, args.backbone_model or "openai/clip-vit-base-patch32"
    from momentkit.training.runner import load_run
    from momentkit.video.recipe import load_run_recipe

    model, cfg, path = load_run(args.ckpt)
    if cfg.task != "classification":
        raise InputError(f"a {cfg.task} model, not a classification one", path=path, field="--ckpt")
    if getattr(getattr(model, "cfg", None), "fixed_vocabulary", False):
        raise InputError(f"model {cfg.model['name']!r} has one output per training class; classify needs a model "
                         "that scores class texts", path=path, field="--ckpt")
    if cfg.data.text_model is None:
        raise InputError("this run's class texts come from a text-embedding file (data.class_text), not from a "
                         "CLIP text encoder: new class names cannot be embedded like them", path=path, field="--ckpt")
    clip = args.backbone_model
    if clip is None:
        recipe = load_run_recipe(args.ckpt) or {}
        parts = [p for p in recipe.get("video") or [] if p.get("source") == "extract" and p.get("backbone") == "clip"]
        clip = (parts[0].get("model_path") or parts[0].get("model")) if parts else cfg.data.text_model
    return model, cfg, clip


def run(args) -> int:
    import numpy as np
    import torch

    from momentkit.data.class_text import embed_texts, read_aux_texts, read_templates
    from momentkit.data.classification import frame_indices
    from momentkit.errors import InputError
    from momentkit.io import existing_file
    from momentkit.training.devices import check_device
    from momentkit.video.backbones.clip import CLIPBackbone
    from momentkit.video.decode import read_frames

    names = class_names(args)
    videos = [existing_file(v, field="VIDEO") for v in args.videos]
    dev = str(check_device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                           "cpu" if args.device == "auto" else args.device, field="--device"))
    model, cfg, clip_name = _run_setup(args)
    data = cfg.data if cfg is not None else None
    backbone = CLIPBackbone.from_pretrained(clip_name, device=dev)
    frames = args.frames_per_view or (data.frames if data is not None else 8)
    templates = read_templates(args.prompt_templates if args.prompt_templates or data is None else data.prompt_templates)
    readable = args.readable_names or bool(data is not None and data.readable_names)
    text_model = data.text_model if data is not None else clip_name
    text_backbone = backbone if str(text_model) == str(clip_name) else None
    embed = dict(text_model=text_model, templates=templates, readable_names=readable, device=dev,
                 cache_dir=args.text_cache or (data.text_cache if data is not None else None),
                 backbone=text_backbone, field="--classes")
    class_text = torch.from_numpy(embed_texts(names, **embed))
    if model is None:
        from momentkit.models.clip_baselines import ClipZeroShot, ClipZeroShotConfig

        d = int(class_text.shape[1])
        model = ClipZeroShot(ClipZeroShotConfig(input_dim=d, text_dim=d)).eval()
    model = model.to(dev)
    batch_extra: dict = {"class_text": class_text.to(dev), "multi_label": bool(data is not None and data.multi_label)}
    if data is not None and data.aux_texts is not None:
        groups = read_aux_texts(data.aux_texts)
        aux = [t for texts in groups.values() for t in texts]
        batch_extra["aux_text"] = torch.from_numpy(embed_texts(aux, **embed)).to(dev)
        batch_extra["aux_groups"] = torch.tensor([g for g, ts in enumerate(groups.values()) for _ in ts], device=dev)
    for path in videos:
        chunk = read_frames(path, args.fps, size=backbone.image_size, interpolation=backbone.interpolation)
        if len(chunk) == 0:
            raise InputError("no frame could be decoded", path=path)
        idx = np.stack([frame_indices(len(chunk), frames, view=v, views=args.views) for v in range(args.views)])
        used = np.unique(idx)
        emb = backbone.encode_video(chunk.frames[used], np.arange(len(used)), len(used)).float()
        pos = {int(f): i for i, f in enumerate(used)}
        feats = emb[torch.as_tensor([[pos[int(f)] for f in view] for view in idx])]  # (V, T, D)
        if feats.shape[-1] != class_text.shape[-1]:
            raise InputError(f"the CLIP image embeddings are {feats.shape[-1]}-wide, the class texts "
                             f"{class_text.shape[-1]}-wide: not one CLIP model", field="--backbone-model")
        batch = {"feats": feats[None].to(dev), "labels": torch.zeros(1, len(names), device=dev),
                 "meta": [{"video": path.stem, "num_frames": len(chunk)}], **batch_extra}
        with torch.no_grad():
            row = model.postprocess(model(batch), batch)[0]
        scores = np.asarray(row["scores"], dtype=np.float64)
        order = np.argsort(-scores, kind="stable")[: args.top_classes]
        print(f"{path}")
        width = max(len(names[i]) for i in order)
        for rank, i in enumerate(order, 1):
            print(f"  {rank:>2}. {names[i]:<{width}}  {scores[i]:.4f}")
    return 0
