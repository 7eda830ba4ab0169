"""The progress side channel of `--executor ray`: tasks report where they started to one small actor.

A module of its own that imports nothing heavy, so the actor's process (on the driver's node) starts in a
moment and stays small; tinyml.sweep.ray_executor creates it and drains it for the progress bar.
"""

from __future__ import annotations


class SweepStatus:
    """Start events of sweep points, (point id, node), kept until the driver drains them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def started(self, point_id: str, node: str) -> None:
        self.events.append((point_id, node))

    def drain(self) -> list[tuple[str, str]]:
        out, self.events = self.events, []
        return out
