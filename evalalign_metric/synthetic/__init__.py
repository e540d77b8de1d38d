"""Synthetic shape scenes with known truth, and the checks of a judge on them that the README reports.

- :mod:`~evalalign_metric.synthetic.scenes`: the scene generator (scenes, their prompts and their truth), which
  the demo draws from and the embedded judges were trained on;
- :mod:`~evalalign_metric.synthetic.checks`: a judge scored on new scenes, under each drawing variation and on
  iMatch's questions (``python benchmarks/scene_checks.py JUDGE`` prints them).

Example:
    >>> from evalalign_metric.synthetic import scenes
    >>> scenes.render(scenes.random_scene(scenes.random_state(0))).size
    (64, 64)
"""
