"""Verification and grading of generated documents: sandboxed exercise tests (ReST^EM),
required-word checks for stories, and an LLM judge."""

from __future__ import annotations
