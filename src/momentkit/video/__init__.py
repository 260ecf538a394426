"""From raw video to features: decoding (:mod:`.decode`), frozen backbones (:mod:`.backbones`) and
the extraction job (:mod:`.extract`) behind ``momentkit extract``."""
