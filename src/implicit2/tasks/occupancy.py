"""3D occupancy: classify points as inside/outside a mesh (logits, BCE).

Conventions (the authors' code): the mesh is centred at its vertex mean, scaled so the largest
|coordinate| is 1 and mapped to the unit cube with ``(v + 1) / 2``; **model coordinates are these
[0, 1]³ points**, at training and test alike. Points are drawn uniformly in the mesh's bounding box
± 1e-3; labels come from ray parity tests (:mod:`implicit2.tasks.containment`, deterministic,
the same on every machine). Test sets (fixed, seeded): ``easy`` — uniform in the same box;
``hard`` — points on the surface (a face chosen uniformly, as the authors do, then a uniform
barycentric point) plus N(0, 0.001²) noise.
IoU counts a point as occupied where the logit > 0: ``iou_easy``, ``iou_hard``.

The paper samples fresh training points every step; here ``prepare`` labels a large fixed pool
(``train_points``, 2²² by default) and ``sample_index`` draws uniformly from it — with 50,000 points
a step, 10,000 steps see each pool point about 120 times.

Meshes must be watertight (containment of an open scan is ill-defined): ``prepare`` refuses others
unless the option ``allow_non_watertight: true`` is set. The registry sets it for the paper's five
Stanford scans, which have holes and which the authors labelled by ray parity as they are
(``trimesh.repair.fill_holes`` cannot close them); a user's own mesh must opt in.

``prepare`` options: ``train_points`` (pool size, default 2²²), ``test_points`` (size of each test
set, default 2²⁰), ``seed`` (default 0), ``allow_non_watertight`` (default false), ``render_size``
(preview rays per side, default 96), ``mesh_resolution`` (marching-cubes grid, default 64).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from implicit2.data.manifest import raw_file
from implicit2.io import atomic_path
from implicit2.names import MESH_SUFFIXES
from implicit2.tasks import render
from implicit2.tasks.base import Predict, PreparedData, Task
from implicit2.tasks.containment import Containment
from implicit2.tasks.options import check_options, flag, positive_int
from implicit2.tasks.preview import save_png, tile
from implicit2.tasks.scores import iou, run_predict
from implicit2.tasks.storage import check_array, open_prepared, save_prepared, signal_names

if TYPE_CHECKING:
    import trimesh

logger = logging.getLogger(__name__)

MARGIN = 1e-3
NOISE = 1e-3

OPTIONS = {
    "train_points": "size of the labelled training pool (default 2**22)",
    "test_points": "size of each test set, easy and hard (default 2**20)",
    "seed": "random seed of the point sets (default 0)",
    "allow_non_watertight": "accept a mesh with holes (labels become unreliable; default false)",
    "render_size": "rays per side of the preview renderings (default 96)",
    "mesh_resolution": "grid size of the exported marching-cubes mesh (default 64)",
}
ARRAYS = (
    "train_points",
    "train_labels",
    "easy_points",
    "easy_labels",
    "hard_points",
    "hard_labels",
    "gt_depth",
    "gt_normal",
    "signal_names",
)


def load_mesh(path: Path) -> trimesh.Trimesh:
    """Read a mesh with trimesh (scenes are merged); errors name the file."""
    import trimesh

    if path.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"{path}: unsupported mesh type; use one of {', '.join(MESH_SUFFIXES)}")
    try:
        mesh = trimesh.load(str(path), force="mesh")
    except Exception as error:  # trimesh raises many types for a bad file
        raise ValueError(f"{path}: not a readable mesh ({error})") from error
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0 or len(mesh.vertices) == 0:
        raise ValueError(f"{path}: the mesh is empty (no faces)")
    check_array(mesh.vertices, f"{path}: vertices", ndim=2, kinds="f")
    if float(np.ptp(mesh.vertices, axis=0).max()) == 0.0:
        raise ValueError(f"{path}: all vertices coincide")
    return mesh


def normalise(mesh: trimesh.Trimesh) -> tuple[np.ndarray, float]:
    """Centre at the vertex mean, scale max |v| to 1, map to [0, 1]³ (in place); returns the
    centre and scale used (original = centre + (unit · 2 − 1) · scale)."""
    centre = mesh.vertices.mean(axis=0)
    centred = mesh.vertices - centre
    scale = float(np.abs(centred).max())
    mesh.vertices = (centred / scale + 1.0) / 2.0
    return centre, scale


def surface_points(mesh: trimesh.Trimesh, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` surface points: a face chosen uniformly, then a uniform barycentric point."""
    faces = rng.integers(0, len(mesh.faces), count)
    u, v = rng.random(count), rng.random(count)
    root = np.sqrt(u)
    weights = np.stack([1.0 - root, v * root, (1.0 - v) * root], axis=-1)
    return np.einsum("ij,ijk->ik", weights, mesh.vertices[mesh.faces[faces]])


class Occupancy(Task):
    """3D occupancy (dragon, buddha, bunny, armadillo, lucy)."""

    name = "occupancy"
    loss_kind = "bce"

    def prepare(self, raw: Path, out: Path, options: dict[str, Any]) -> None:
        """Normalise the mesh, label the training pool and both test sets, render the truth."""
        options = check_options(self.name, options, OPTIONS)
        train_count = positive_int(self.name, options, "train_points", 2**22)
        test_count = positive_int(self.name, options, "test_points", 2**20)
        seed = options.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(
                f"{self.name}: prepare option seed must be an integer ≥ 0, got {seed!r}"
            )
        render_size = positive_int(self.name, options, "render_size", 96)
        resolution = positive_int(self.name, options, "mesh_resolution", 64)
        if resolution < 2:
            raise ValueError(f"{self.name}: mesh_resolution must be at least 2")
        path, dataset = raw_file(raw)
        mesh = load_mesh(path)
        watertight = bool(mesh.is_watertight)
        if not watertight and not flag(self.name, options, "allow_non_watertight"):
            raise ValueError(
                f"{path}: the mesh is not watertight, so inside/outside labels from ray tests are "
                "unreliable. Repair it (close its holes) or set the prepare option "
                "allow_non_watertight: true to use it anyway "
                "(implicit2 fit: --allow-non-watertight)"
            )
        centre, scale = normalise(mesh)
        low = mesh.vertices.min(axis=0) - MARGIN
        high = mesh.vertices.max(axis=0) + MARGIN
        rng = np.random.default_rng(seed)
        # Points are stored as float32: label exactly the stored values.
        train = rng.uniform(low, high, (train_count, 3)).astype(np.float32)
        easy = rng.uniform(low, high, (test_count, 3)).astype(np.float32)
        hard = surface_points(mesh, test_count, rng) + rng.normal(0.0, NOISE, (test_count, 3))
        hard = hard.astype(np.float32)
        inside = Containment(mesh)  # the mesh's ray grids, built once for the three sets
        train_labels, easy_labels, hard_labels = (
            inside(points).astype(np.uint8) for points in (train, easy, hard)
        )
        gt_depth, gt_normal = render.render_mesh(mesh, low, high, render_size)
        meta = {
            "source": str(path),
            "options": options,
            "watertight": watertight,
            "bounds": [low.tolist(), high.tolist()],
            "centre": centre.tolist(),
            "scale": scale,
            "render_size": render_size,
            "mesh_resolution": resolution,
            "views": list(render.VIEWS),
            "occupied_fraction": {
                "train": float(train_labels.mean()),
                "easy": float(easy_labels.mean()),
                "hard": float(hard_labels.mean()),
            },
        }
        save_prepared(
            out,
            self.name,
            dataset,
            meta,
            train_points=train,
            train_labels=train_labels,
            easy_points=easy,
            easy_labels=easy_labels,
            hard_points=hard,
            hard_labels=hard_labels,
            gt_depth=gt_depth,
            gt_normal=gt_normal,
            signal_names=np.array([dataset]),
        )
        logger.info(
            "prepared %s: %d training points, %d easy and %d hard test points (occupied %.3f, "
            "%.3f, %.3f) → %s",
            path.name,
            train_count,
            test_count,
            test_count,
            *meta["occupied_fraction"].values(),
            out,
        )

    def load(self, npz: Path) -> PreparedData:
        """Load the point sets: train = the pool, test = easy; ``extra`` holds the hard set and
        the ground-truth renderings."""
        path = Path(npz)
        arrays, meta, dataset = open_prepared(path, self.name, ARRAYS)
        sets = {}
        for name in ("train", "easy", "hard"):
            points = check_array(
                arrays[f"{name}_points"], f"{path}: {name}_points", ndim=2, kinds="f"
            )
            labels = check_array(
                arrays[f"{name}_labels"],
                f"{path}: {name}_labels",
                ndim=1,
                kinds="ub",
                low=0,
                high=1,
            )
            if points.shape[1] != 3 or len(points) != len(labels):
                raise ValueError(
                    f"{path}: {name}_points {points.shape} and {name}_labels {labels.shape} do "
                    "not match (N, 3) and (N,)"
                )
            sets[name] = (points.astype(np.float32), labels.astype(np.float32)[None, :, None])
        depth = check_array(arrays["gt_depth"], f"{path}: gt_depth", ndim=3, kinds="f")
        normal = check_array(arrays["gt_normal"], f"{path}: gt_normal", ndim=4, kinds="f")
        if normal.shape != (*depth.shape, 3) or depth.shape[1] != depth.shape[2]:
            raise ValueError(f"{path}: gt_depth {depth.shape} and gt_normal {normal.shape} differ")
        bounds = np.asarray(meta.get("bounds"), dtype=np.float64)
        if bounds.shape != (2, 3) or not np.isfinite(bounds).all():
            raise ValueError(f"{path}: meta bounds {meta.get('bounds')!r} are not [[3], [3]]")
        return PreparedData(
            task=self.name,
            dataset=dataset,
            train_coords=sets["train"][0],
            train_targets=sets["train"][1],
            test_coords=sets["easy"][0],
            test_targets=sets["easy"][1],
            signal_names=signal_names(arrays, 1, path),
            meta=meta,
            extra={
                "hard_coords": sets["hard"][0],
                "hard_targets": sets["hard"][1],
                "gt_depth": depth,
                "gt_normal": normal,
            },
        )

    def evaluate(self, predict: Predict, data: PreparedData) -> tuple[dict[str, Any], np.ndarray]:
        """IoU and accuracy on the easy and hard sets; predictions are easy-set logits (1, M, 1)."""
        metrics: dict[str, Any] = {}
        predictions = None
        for name, coords, targets in (
            ("easy", data.test_coords, data.test_targets),
            ("hard", data.extra["hard_coords"], data.extra["hard_targets"]),
        ):
            logits = run_predict(predict, coords, 1, 1)
            occupied, labels = logits[0, :, 0] > 0, targets[0, :, 0] > 0.5
            metrics[f"iou_{name}"] = iou(occupied, labels)
            metrics[f"accuracy_{name}"] = float(np.mean(occupied == labels))
            predictions = logits if predictions is None else predictions
        assert predictions is not None
        return metrics, predictions

    def export(
        self, predictions: np.ndarray, data: PreparedData, out_dir: Path, predict: Predict | None
    ) -> list[Path]:
        """``preview.png`` (per view: truth depth, model depth, truth normals, model normals) and
        ``mesh.ply`` (marching cubes at logit 0); both need ``predict``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if predict is None:
            logger.warning("occupancy export needs predict to render the field; nothing written")
            return []
        low, high = (np.asarray(b) for b in data.meta["bounds"])

        def logits(points: np.ndarray) -> np.ndarray:
            return run_predict(predict, points.astype(np.float32), 1, 1)[0, :, 0]

        truth_depth, truth_normal = data.extra["gt_depth"], data.extra["gt_normal"]
        size = truth_depth.shape[-1]
        depth, normal = render.render_field(logits, low, high, size, samples=max(size, 64))
        rows = []
        for view in range(len(depth)):
            hits = truth_depth[view][truth_depth[view] >= 0]
            if hits.size == 0:
                hits = depth[view][depth[view] >= 0]
            near, far = (float(hits.min()), float(hits.max())) if hits.size else (0.0, 1.0)
            rows.append(
                [
                    render.shade_depth(truth_depth[view], near, far),
                    render.shade_depth(depth[view], near, far),
                    render.shade_normals(truth_normal[view]),
                    render.shade_normals(normal[view]),
                ]
            )
        files = [save_png(out_dir / "preview.png", tile(rows))]
        mesh = render.marching_cubes(logits, low, high, int(data.meta["mesh_resolution"]))
        if mesh is not None:
            target = out_dir / "mesh.ply"
            with atomic_path(target) as temp:
                mesh.export(str(temp), file_type="ply")
            files.append(target)
        return files
