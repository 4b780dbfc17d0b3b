"""Merkle trees over audit record hashes, as `lifecycle_merkle_root` (migration 0015)
builds them: leaves are the records' SHA-256 hashes in audit_id order, a node is
sha256(0x01 || left || right), an odd last node moves up unchanged."""

from __future__ import annotations

import hashlib


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root(leaves: list[str]) -> str | None:
    """The root (hex) of hex leaf hashes; None for none."""
    level = [bytes.fromhex(leaf) for leaf in leaves]
    if not level:
        return None
    while len(level) > 1:
        level = [_node(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0].hex()


def proof(leaves: list[str], index: int) -> list[dict]:
    """The inclusion proof of leaf `index`: the sibling at each level and its side."""
    level = [bytes.fromhex(leaf) for leaf in leaves]
    path = []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append({"side": "left" if sibling < index else "right", "hash": level[sibling].hex()})
        level = [_node(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        index //= 2
    return path


def root_from_proof(leaf: str, path: list[dict]) -> str:
    """The root a leaf and its inclusion proof lead to."""
    node = bytes.fromhex(leaf)
    for step in path:
        sibling = bytes.fromhex(step["hash"])
        node = _node(sibling, node) if step["side"] == "left" else _node(node, sibling)
    return node.hex()
