"""Subscribers: the list, consent, tokens, CSV, suppression and bounces.

This package receives a SQLAlchemy engine or session from its caller and never
imports Publisher's wiring, so it can be tested and reused on its own.
"""

from __future__ import annotations
