"""Training and evaluation of grounding models with Lightning (``momentkit train`` / ``test``)."""
