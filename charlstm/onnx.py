"""charlstm models as ONNX graphs (needs onnx: python3 -m pip install '.[onnx]' from the checkout).

    import charlstm, charlstm.onnx
    charlstm.onnx.save_onnx(charlstm.load("run/best.npz"), "model.onnx")

The graph (ids [T, B] and h0 [, c0] [L, B, H] in; logits [T, B, V] and hT [, cT] out) and the
mapping of every cell's weights: charlstm/export/onnx_graph.py and docs/handoff.md.
"""

from __future__ import annotations

from charlstm.export.onnx_graph import save_onnx, to_onnx

__all__ = ["to_onnx", "save_onnx"]
