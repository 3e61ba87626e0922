"""Step functions of the astro DAGs, one module per step (the DAG files only wire them).

Each step takes resolved inputs and plain callbacks (``record`` for the item ledger, ``publish``
for artefacts) and returns a small reference for XCom; per-item results go to a JSON file of the
run (:mod:`include.astro.steps.runfiles`), which the summary step reads.
"""
