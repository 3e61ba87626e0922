"""Astrophotography pipelines: NINA raw frames → rig tree → cull → blink → calibration → 20_Data
(issue 4, :mod:`include.astro.frames` and friends) and calibration masters / catalog / reports (issue 5).

Shared public modules: :mod:`~include.astro.frames` (parser, :class:`~include.astro.frames.Frame`),
:mod:`~include.astro.headers` (fast header scan), :mod:`~include.astro.layout` (path rules, Asset names),
:mod:`~include.astro.rigs` (rig configuration), :mod:`~include.astro.samples` (sample trees).
"""
