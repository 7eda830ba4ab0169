"""Pruning sweeps: many pruned models trained and measured as points of one table and one set of charts.

    from tinyml.sweep.points import Point
    from tinyml.sweep.runner import SweepContext, run_point
    record = run_point(Point("depth", cut=5, head="dscnn32_16"), SweepContext(base=..., data=..., out=...))

`points.py` names the points, `runner.py` runs them (stages, resume, processes), `stages.py` holds the host
stages (train, profile), `device.py` the device ones (quantize, build, bench), `report.py` and `plots.py`
write results.{csv,json,md} and the PNG charts.
"""
