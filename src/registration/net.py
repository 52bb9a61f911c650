"""Addresses as the settings spell them."""

from __future__ import annotations


def split_address(address: str) -> tuple[str, int]:
    """`host:port` → (host, port); an empty host means 127.0.0.1."""
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)
