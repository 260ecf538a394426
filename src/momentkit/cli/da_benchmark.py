"""``momentkit make-da-benchmark SCENARIO --out DIR``: build a cross-domain TAL benchmark (thesis ch. 2).

EPIC-Kitchens-100 scenarios s1..s6 read the official annotation folder (``--epic``); s1..s4 also need
the kitchen -> counter colour map (``--colours``). ``charades-ego`` reads user-provided Charades and
CharadesEgo files. Writes ``source.json``, ``target.json`` (detection JSON, subsets training /
validation) and ``summary.json``, and prints the counts beside the thesis's.
"""

from __future__ import annotations

import argparse

from momentkit.cli.options import fraction, option_fields, seed

# the library's argument names -> this command's options, in error messages
LIBRARY_OPTIONS = {"out": "--out", "epic": "--epic", "colours": "--colours", "split": "--split-file",
                   "val_fraction": "--val-fraction", "seed": "--seed", "exclude_participants": "--exclude-participants",
                   "charades": "--charades", "charades_ego": "--charades-ego", "mapping": "--mapping",
                   "verb_classes": "--verb-classes", "scenario": "SCENARIO", "classes": "--epic"}
LIBRARY_WORDS = {"(pass classes=)": "(it belongs in the --epic folder)"}


def participant(text: str) -> str:
    """An argparse type: an EPIC-Kitchens participant id such as P35."""
    if not (text[:1] == "P" and text[1:].isdigit()):
        raise argparse.ArgumentTypeError(f"expected a participant id such as P35, got {text!r}")
    return text


def register(sub) -> None:
    p = sub.add_parser(
        "make-da-benchmark", help="build a domain-adaptation TAL benchmark (EPIC S1-S6, Charades -> CharadesEgo)",
        description="Build the source / target detection JSON files of a cross-domain temporal action "
        "localisation scenario (thesis ch. 2) for `momentkit train`, and print its counts beside the "
        "thesis's.\n\nscenarios:\n"
        "  s1 / s2        dark / white counters -> the other kitchens, EPIC-Kitchens-55 videos\n"
        "  s3 / s4        dark / white counters -> the other kitchens, videos new in EPIC-Kitchens-100\n"
        "  s5 / s6        EPIC-Kitchens-55 videos -> new videos / new videos -> EPIC-Kitchens-55 videos\n"
        "  charades-ego   Charades (third person) -> CharadesEgo (egocentric)\n\n"
        "colour map (s1-s4): CSV 'kitchen,colour' or JSON {kitchen: colour}; colour dark|white|other; kitchen "
        "P01 (all videos of P01), or P01@55 / P01@100 for one era.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", metavar="SCENARIO", type=str.lower,
                   choices=("s1", "s2", "s3", "s4", "s5", "s6", "charades-ego"), help="s1 ... s6 or charades-ego")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder for source.json, target.json and summary.json (created)")
    g = p.add_argument_group("EPIC-Kitchens-100 (s1-s6)")
    g.add_argument("--epic", metavar="DIR", help="folder of the EPIC-Kitchens-100 annotation files")
    g.add_argument("--colours", "--colors", dest="colours", metavar="FILE",
                   help="kitchen -> counter colour map (s1-s4)")
    g.add_argument("--split-file", metavar="CSV", help="'video_id,subset' CSV instead of the seeded split")
    g.add_argument("--val-fraction", type=fraction, default=None,
                   help="share of each era's videos in validation, strictly between 0 and 1 "
                        "(default: the thesis's, 90/432 and 44/194)")
    g.add_argument("--seed", type=seed, default=0,
                   help="random seed of the training / validation split, an integer >= 0 (default: 0)")
    g.add_argument("--exclude-participants", nargs="*", type=participant, default=["P35"], metavar="PXX",
                   help="participants left out (default P35, as the thesis's counts; give none to keep all)")
    c = p.add_argument_group("Charades -> CharadesEgo")
    c.add_argument("--charades", metavar="DIR", help="folder with Charades_v1_train.csv and Charades_v1_test.csv")
    c.add_argument("--charades-ego", metavar="DIR",
                   help="folder with CharadesEgo_v1_train.csv and CharadesEgo_v1_test.csv")
    c.add_argument("--mapping", metavar="FILE", help="Charades_v1_mapping.txt (default: found in either folder)")
    c.add_argument("--verb-classes", metavar="FILE",
                   help="Charades_v1_verbclasses.txt (default: found in either folder)")
    c.add_argument("--majority-verbs", action="store_true",
                   help="keep the 10 most frequent verbs of the files instead of the thesis's list")
    c.add_argument("--keep-duplicates", action="store_true",
                   help="keep segments repeated by the verb collapse (same verb and times)")
    p.add_argument("--drop-empty", action="store_true", help="drop videos left without any segment of the verbs")
    p.set_defaults(func=run)


def run(args) -> int:
    from momentkit.io import check_output
    from momentkit.tal.benchmarks import format_summary

    check_output(args.out, "dir", option="--out")
    with option_fields(LIBRARY_OPTIONS, LIBRARY_WORDS):
        bench = build_charades(args) if args.scenario == "charades-ego" else build_epic(args)
        paths = bench.write(args.out)
    print(format_summary(bench.summary))
    print(f"\nwritten: {paths['source']}, {paths['target']}, {paths['summary']}")
    return 0


def build_charades(args):
    """The Charades -> CharadesEgo benchmark of the options."""
    from momentkit.errors import InputError
    from momentkit.tal.benchmarks import build_charades_ego, charades_ego_files

    if not args.charades or not args.charades_ego:
        missing = "--charades" if not args.charades else "--charades-ego"
        raise InputError("charades-ego needs --charades DIR and --charades-ego DIR", field=missing)
    files = charades_ego_files(args.charades, args.charades_ego, mapping=args.mapping, verb_classes=args.verb_classes)
    kwargs = {"dedupe": not args.keep_duplicates, "keep_empty": not args.drop_empty}
    if args.majority_verbs:
        kwargs["verbs"] = None
    return build_charades_ego(**files, **kwargs)


def build_epic(args):
    """The EPIC-Kitchens-100 benchmark of scenario ``args.scenario`` (s1 ... s6)."""
    from momentkit.errors import InputError
    from momentkit.tal.benchmarks import build_epic_benchmark

    if not args.epic:
        raise InputError(f"{args.scenario} needs --epic DIR (the EPIC-Kitchens-100 annotations)", field="--epic")
    return build_epic_benchmark(args.scenario, args.epic, colours=args.colours, split=args.split_file,
                                val_fraction=args.val_fraction, seed=args.seed,
                                exclude_participants=args.exclude_participants, keep_empty=not args.drop_empty)
