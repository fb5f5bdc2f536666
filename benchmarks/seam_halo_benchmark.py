"""Seams of tiled inference against the halo and the stitching window, on the real spheroids.

For each of the 8 spheroid images in ``../shared/data/spheroids`` (1440 x 1920, native
0.75 um, not resampled, as ``inference_benchmark.py``'s seams table runs them) and the first
realistic 2048 x 2048 frame of `realistic.py`, and for each halo in ``--halos``: the tiles
`spheroseg.tiling.fit_tiles` plans with that halo (max tile 768, the workflow default) are
run through the model as predict runs it (frozen, NHWC, float16 tile store) at each precision
in ``--precisions``, then stitched two ways: ``gaussian`` (MONAI's window over the whole
tile, the stitcher before this benchmark) and ``discard`` (the same window with each tile's
outer `halo` px floored, `spheroseg.tiling.discard_halo`, the stitcher now). Each result is
compared, more than one halo from the image border, with a float32 whole-frame prediction
(plain TorchScript, as ``inference_benchmark.py``) and with a whole frame from the frozen model
at the same precision (the seams alone). Also written: where the largest difference lies
(pixels from the nearest tile edge), the mask IoU at 0.5 against the float32 whole frame, the
computed fraction and the CPU seconds of the tiles' forward passes.

Results go to ``benchmarks/seam_halo_results.md``. Run from the repository root:
``python benchmarks/seam_halo_benchmark.py [--halos 32,40,48,56,64] [--precisions fp32,bf16]``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent
SPHEROIDS = ROOT.parent.parent / "shared" / "data" / "spheroids"
sys.path.insert(0, str(ROOT))


def run(net, x, precision: str):  # noqa: ANN001, ANN201 - float32 probabilities of one array
    import numpy as np
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(x))[None, None].contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        return torch.sigmoid(net(tensor).float())[0, 0].numpy()


def whole(net, frame, precision: str, divisor: int):  # noqa: ANN001, ANN201
    import numpy as np

    height, width = (-(-n // divisor) * divisor for n in frame.shape)
    padded = np.pad(frame, ((0, height - frame.shape[0]), (0, width - frame.shape[1])), mode="reflect")
    return run(net, padded, precision)[: frame.shape[0], : frame.shape[1]]


def stitch(plan, tiles, window: str):  # noqa: ANN001, ANN201 - as `spheroseg stitch` writes it
    import numpy as np

    from spheroseg.tiling import Stitcher, blending_window, weight_sum

    stitcher = Stitcher(plan, "gaussian")
    if window == "gaussian":  # the stitcher before discard_halo
        stitcher.window = blending_window(plan.tile_shape, halo=plan.halo, kind="gaussian")
        stitcher._inverse = 1.0 / weight_sum(plan, stitcher.window)[stitcher._crop]
    return stitcher.stitch(tiles).astype(np.float16).astype(np.float32)


def largest(difference, plan, border: int) -> tuple[float, int]:  # noqa: ANN001
    """Largest difference beyond `border` and its distance to the nearest tile edge."""
    import numpy as np

    inner = np.zeros_like(difference)
    inner[border:-border, border:-border] = difference[border:-border, border:-border]
    y, x = np.unravel_index(np.argmax(inner), inner.shape)
    rows = {v for o in plan.origins for v in (o[0], o[0] + plan.tile_shape[0])}
    cols = {v for o in plan.origins for v in (o[1], o[1] + plan.tile_shape[1])}
    return float(inner[y, x]), int(min(min(abs(y - e) for e in rows), min(abs(x - e) for e in cols)))


def sources() -> list[tuple[str, object]]:
    import tifffile
    from realistic import realistic_frames

    images = [(Path(p).stem, tifffile.imread(p)) for p in sorted(glob.glob(str(SPHEROIDS / "spheroid*_day?.tif")))]
    return [*images, ("synthetic 2048 frame 0", next(iter(realistic_frames(16, 2048, keyframes=8))))]


def measure(model: Path, halos: list[int], precisions: list[str]) -> list[dict]:
    import numpy as np
    import torch

    from spheroseg.inference.model import load_model, prepare_model
    from spheroseg.modelcard import read_verified_card
    from spheroseg.normalization import normalize_image
    from spheroseg.tiling import fit_tiles, pad_frame, tile_slices

    card = read_verified_card(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = torch.jit.load(str(model), map_location="cpu").eval()
    module, _ = load_model(model, device=torch.device("cpu"))
    frozen = prepare_model(module, channels=1, tile_shape=(64, 64), device=torch.device("cpu"))
    divisor, rows = card["spatial_divisor"], []
    for name, raw in sources():
        frame = normalize_image(raw, card["input"]["normalization"]).astype(np.float32)
        reference = whole(plain, frame, "fp32", divisor)
        for precision in precisions:
            same = whole(frozen, frame, precision, divisor)
            for halo in halos:
                plan = fit_tiles(frame.shape, frames=1, max_tile=768, halo=halo, divisor=divisor)
                padded = pad_frame(frame[None], plan)[0]
                start = time.process_time()
                tiles = np.stack([run(frozen, padded[tile_slices(plan, i)], precision)
                                  for i in range(len(plan.origins))]).astype(np.float16).astype(np.float32)
                cpu = time.process_time() - start
                for window in ("gaussian", "discard"):
                    stitched = stitch(plan, tiles, window)
                    vs_fp32, edge = largest(np.abs(stitched - reference), plan, halo)
                    vs_same, _ = largest(np.abs(stitched - same), plan, halo)
                    a, b = stitched > 0.5, reference > 0.5
                    rows.append({"image": name, "precision": precision, "halo": halo, "window": window,
                                 "tiles": f"{len(plan.origins)} x {plan.tile_shape[0]}x{plan.tile_shape[1]}",
                                 "computed": plan.computed_fraction, "tile_cpu_s": cpu,
                                 "vs_fp32_whole": vs_fp32, "edge": edge, "vs_same_precision_whole": vs_same,
                                 "precision_alone": float(np.abs(same - reference)[halo:-halo, halo:-halo].max()),
                                 "iou": float((a & b).sum() / max((a | b).sum(), 1))})
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def write(path: Path, rows: list[dict], args: argparse.Namespace, load: list[float]) -> None:
    lines = ["# Seams against the halo and the stitching window", "",
             f"Written by `benchmarks/seam_halo_benchmark.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"model `{args.model}`; {os.cpu_count()} CPU cores, load average {load[0]:.1f} at the start and "
             f"{os.getloadavg()[0]:.1f} at the end (CPU seconds, not wall, for the tiles' forward passes).", "",
             "Differences are the largest absolute probability difference more than one halo from the "
             "image border; *edge* is that pixel's distance to the nearest tile edge; *precision alone* "
             "is the whole frame at that precision against the float32 whole frame (no tiling).", "",
             "| image | precision | halo | window | tiles | computed | tile CPU s | max diff vs fp32 whole | edge | max diff vs whole at same precision (seams alone) | precision alone | IoU vs fp32 whole |",
             "| --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['image']} | {r['precision']} | {r['halo']} | {r['window']} | {r['tiles']} | {r['computed']:.2f} | "
              f"{r['tile_cpu_s']:.2f} | {r['vs_fp32_whole']:.4f} | {r['edge']} | {r['vs_same_precision_whole']:.4f} | "
              f"{r['precision_alone']:.4f} | {r['iou']:.4f} |" for r in rows]
    lines += ["", "## Largest over all images", "",
              "| precision | halo | window | max diff vs fp32 whole | max seams alone | min IoU |",
              "| --- | ---: | --- | ---: | ---: | ---: |"]
    keys = sorted({(r["precision"], r["halo"], r["window"]) for r in rows})
    for precision, halo, window in keys:
        mine = [r for r in rows if (r["precision"], r["halo"], r["window"]) == (precision, halo, window)]
        lines.append(f"| {precision} | {halo} | {window} | {max(r['vs_fp32_whole'] for r in mine):.4f} | "
                     f"{max(r['vs_same_precision_whole'] for r in mine):.4f} | {min(r['iou'] for r in mine):.4f} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT.parent / "models" / "default.pt")
    parser.add_argument("--halos", default="32,40,48,56,64")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--output", type=Path, default=ROOT / "seam_halo_results.md")
    args = parser.parse_args()
    load = list(os.getloadavg())
    rows = measure(args.model, [int(h) for h in args.halos.split(",")], args.precisions.split(","))
    write(args.output, rows, args, load)


if __name__ == "__main__":
    main()
