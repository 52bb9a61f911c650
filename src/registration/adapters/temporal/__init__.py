"""Temporal: connecting, the payload codec that encrypts every payload, search attributes."""
