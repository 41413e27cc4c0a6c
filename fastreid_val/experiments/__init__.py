"""Experiment tools behind tools/compare.py and tools/analyze_features.py."""
