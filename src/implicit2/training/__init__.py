"""Training and evaluating one run: the loop (``loop``: full-batch amortized or minibatch, many
signals at once), its settings (``settings``), resume checkpoints (``checkpoint``), the model file
(``model_file``), evaluation (``evaluate``), run folders (``runs``), and what a run records of
its machine (``profiling``, ``provenance``, ``lease``, ``allocator``)."""
