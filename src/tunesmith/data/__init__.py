"""Corpora, preparation and caching, torch datasets."""
