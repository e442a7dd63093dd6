"""Cohorts: many slides segmented on a Dask cluster (``segkit infer PROJECT --slides ...``).

One task per slide runs the single-machine slide path (:func:`segkit.engine.infer_slides.segment_whole`)
on a worker that loaded the model once (:mod:`segkit.cohort.worker`), so a slide's outputs are the
ones ``segkit infer`` writes for it. A slide that fails costs that slide only: its row in
``cohort.csv`` says why and every other slide completes (:mod:`segkit.cohort.run`). Slides whose
record says they are complete for the same model are skipped, so an interrupted cohort finishes the
rest when run again (:mod:`segkit.cohort.plan`).
"""
