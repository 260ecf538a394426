"""Built-in synthetic benchmarks (``momentkit synth``): learnable, not trivial, no download.

Output layout of ``synthesize(preset, out)``::

    OUT/annotations/{train,val}.jsonl        grounding presets (QVHighlights JSON Lines)
    OUT/annotations/{source,target}.json     detection presets (ActivityNet-style JSON; target only
                                             with two domains, its "training" subset unlabelled for
                                             adaptation and its "validation" subset for evaluation)
    OUT/features/<folder>/{vid}.npz          video features (T, D), or (K, T, D) when layered
    OUT/features/<text folder>/qid{qid}.npz  query token features (L, D) + pooled (D,), or (K, L, D)
    OUT/synth.json                           config, seed, counts and the oracle baseline
"""

from __future__ import annotations

from momentkit.synth.config import PRESETS, SynthConfig, get_preset
from momentkit.synth.run import synthesize

__all__ = ["PRESETS", "SynthConfig", "get_preset", "synthesize"]
