"""The canonical in-memory types that flow one way: Frame -> Scene -> QARecord.

Conventions (see README "Frames and units"):

* Camera frame: OpenCV (x right, y down, z forward), metres.
* Canonical frame: gravity aligned, viewer-heading aligned: x to the viewer's right, y forward (the camera's
  optical axis projected on the support plane), z up, origin on the support plane straight below the camera.
* World frame (rendered scenes only): z up, floor at z = 0.

Every other module reads or writes these types; converters to files live in :mod:`spatialvlm.io`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Array = np.ndarray


# --------------------------------------------------------------------------------------------------------------
# Camera
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Intrinsics:
    """Pinhole intrinsics for an image of ``width`` x ``height`` pixels (pixel centres at integer + 0.5 offsets
    are NOT assumed: pixel (u, v) is the integer column/row index, as in OpenCV)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def K(self) -> Array:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64)

    @classmethod
    def from_K(cls, K: Any, width: int, height: int) -> "Intrinsics":
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"K must be 3x3, got shape {K.shape}")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={K[0, 0]} fy={K[1, 1]}")
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height))

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> "Intrinsics":
        """Square pixels, principal point at the image centre, horizontal field of view ``hfov_deg``."""
        if not 1.0 < hfov_deg < 179.0:
            raise ValueError(f"horizontal field of view must be in (1, 179) degrees, got {hfov_deg}")
        f = (width / 2.0) / np.tan(np.deg2rad(hfov_deg) / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))

    @property
    def hfov_deg(self) -> float:
        return float(np.rad2deg(2.0 * np.arctan(self.width / (2.0 * self.fx))))

    def scaled(self, width: int, height: int) -> "Intrinsics":
        """Intrinsics of the same camera for the image resized to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        # pixel-index convention: a pixel centre u maps to (u + 0.5) * s - 0.5
        return Intrinsics(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, width, height
        )

    def to_list(self) -> list[list[float]]:
        return self.K.tolist()


# --------------------------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Box3D:
    """An oriented 3D box. ``size`` holds the full extents along the box's own axes, which are the columns of
    ``rotation`` expressed in the parent frame. An axis-aligned box has ``rotation = I``."""

    center: Array
    size: Array
    rotation: Array = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        self.center = np.asarray(self.center, dtype=np.float64).reshape(3)
        self.size = np.asarray(self.size, dtype=np.float64).reshape(3)
        self.rotation = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)

    @classmethod
    def from_points(cls, points: Array) -> "Box3D":
        """Axis-aligned bounding box of ``points`` (N x 3)."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
            raise ValueError(f"need a non-empty N x 3 array of points, got shape {points.shape}")
        lo, hi = points.min(axis=0), points.max(axis=0)
        return cls((lo + hi) / 2.0, hi - lo)

    @property
    def min(self) -> Array:
        """Lower corner of the axis-aligned hull of this box in the parent frame."""
        return self.center - self._half_extent_parent()

    @property
    def max(self) -> Array:
        return self.center + self._half_extent_parent()

    def _half_extent_parent(self) -> Array:
        return np.abs(self.rotation) @ (self.size / 2.0)

    @property
    def volume(self) -> float:
        return float(np.prod(self.size))

    def corners(self) -> Array:
        """The 8 corners (8 x 3) in the parent frame."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
        return self.center + (signs * (self.size / 2.0)) @ self.rotation.T

    def transformed(self, T: Array) -> "Box3D":
        """This box under the rigid transform ``T`` (4 x 4, new_from_parent)."""
        T = np.asarray(T, dtype=np.float64)
        return Box3D(T[:3, :3] @ self.center + T[:3, 3], self.size.copy(), T[:3, :3] @ self.rotation)

    def to_dict(self) -> dict[str, list]:
        return {
            "center": [float(x) for x in self.center],
            "size": [float(x) for x in self.size],
            "rotation": [[float(x) for x in row] for row in self.rotation],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Box3D":
        return cls(np.asarray(d["center"]), np.asarray(d["size"]), np.asarray(d.get("rotation", np.eye(3))))


# --------------------------------------------------------------------------------------------------------------
# Frame: what comes in
# --------------------------------------------------------------------------------------------------------------
@dataclass
class ObjectAnnotation:
    """One object as given in 2D (and, for ground-truth data, in 3D)."""

    name: str
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 in pixels (x1, y1 exclusive)
    mask: Array | None = None  # bool, H x W
    score: float | None = None
    box3d_cam: Box3D | None = None  # ground truth, camera frame, when known
    box3d_world: Box3D | None = None  # ground truth, world frame, when known
    attributes: dict[str, Any] = field(default_factory=dict)

    def bbox(self) -> tuple[float, float, float, float] | None:
        """The 2D box, from ``box`` or else from the mask."""
        if self.box is not None:
            return tuple(float(v) for v in self.box)  # type: ignore[return-value]
        if self.mask is not None and self.mask.any():
            ys, xs = np.nonzero(self.mask)
            return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        return None


@dataclass
class Frame:
    """One image with whatever is known about it. ``depth`` is metric (metres) with 0 or NaN for invalid pixels."""

    image_id: str
    image: Array  # H x W x 3, uint8, RGB
    depth: Array | None = None  # H x W float32 metres
    intrinsics: Intrinsics | None = None
    objects: list[ObjectAnnotation] = field(default_factory=list)
    world_from_camera: Array | None = None  # 4 x 4, ground truth pose when known (world z up)
    support_mask: Array | None = None  # bool H x W: floor / table-top pixels, when known (for canonicalization)
    floor_mask: Array | None = None  # bool H x W: floor pixels alone, when known (heights are then above the floor)
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


# --------------------------------------------------------------------------------------------------------------
# Scene: what geometry makes of a frame
# --------------------------------------------------------------------------------------------------------------
@dataclass
class CanonicalFrame:
    """The gravity-aligned frame, or why there is none. ``canon_from_cam`` maps camera to canonical coordinates."""

    ok: bool
    reason: str = ""
    canon_from_cam: Array | None = None  # 4 x 4
    plane_cam: Array | None = None  # (a, b, c, d) with unit normal pointing up, n . p + d = 0
    camera_height: float | None = None
    support: str = ""  # "floor", "table", "geometric", "ground_truth"
    inlier_count: int = 0

    def to_canon(self, points_cam: Array) -> Array:
        if not self.ok or self.canon_from_cam is None:
            raise ValueError(f"scene is not canonicalized: {self.reason}")
        T = self.canon_from_cam
        return np.asarray(points_cam, dtype=np.float64) @ T[:3, :3].T + T[:3, 3]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "canon_from_cam": None if self.canon_from_cam is None else np.asarray(self.canon_from_cam).tolist(),
            "plane_cam": None if self.plane_cam is None else [float(x) for x in self.plane_cam],
            "camera_height": self.camera_height,
            "support": self.support,
            "inlier_count": int(self.inlier_count),
        }


@dataclass
class Visibility:
    """What of an object the camera saw, judged from the image alone (no ground truth)."""

    truncated: dict[str, bool] = field(default_factory=dict)  # "left", "right", "top", "bottom" image border
    occluded: dict[str, float] = field(default_factory=dict)  # same sides: fraction of contour behind nearer stuff
    top_seen: bool | None = None  # canonical frame: camera above the object's top (its full depth is seen)
    top_view_deg: float | None = None  # canonical frame: elevation of the camera seen from the object's far top


@dataclass
class Object3D:
    """One object lifted to 3D. ``points_cam`` are the cleaned points; boxes are derived from them."""

    id: int
    label: str  # the raw name / caption
    points_cam: Array  # N x 3 float, camera frame
    name: str = ""  # unique display name after ambiguity resolution ("" = not to be asked about)
    box2d: tuple[float, float, float, float] | None = None
    points_canon: Array | None = None  # N x 3 canonical frame, when canonicalized
    aabb_cam: Box3D | None = None
    aabb_canon: Box3D | None = None
    obb_canon: Box3D | None = None
    visibility: Visibility = field(default_factory=Visibility)
    num_points_raw: int = 0
    mask: Array | None = None
    gt_box3d_cam: Box3D | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def askable(self) -> bool:
        return bool(self.name)


@dataclass
class DroppedObject:
    label: str
    reason: str


@dataclass
class Scene:
    image_id: str
    objects: list[Object3D]
    canonical: CanonicalFrame
    intrinsics: Intrinsics | None = None
    image_size: tuple[int, int] | None = None  # (width, height)
    dropped: list[DroppedObject] = field(default_factory=list)
    frame: Frame | None = None  # the source frame, not serialized
    meta: dict[str, Any] = field(default_factory=dict)

    def object_by_id(self, oid: int) -> Object3D:
        for o in self.objects:
            if o.id == oid:
                return o
        raise KeyError(oid)


# --------------------------------------------------------------------------------------------------------------
# QA: what comes out
# --------------------------------------------------------------------------------------------------------------
FAMILIES = ("predicate", "choice", "classify", "quantitative", "direction")


@dataclass
class QARecord:
    """One question/answer pair. ``truth`` is the machine-readable answer: bool (predicate), the chosen object's
    name (choice), the relation word (classify), metres (quantitative) or an hour 1..12 (direction).
    ``value_m`` repeats the metres for quantitative types and is None otherwise."""

    image_id: str
    qa_type: str
    family: str
    question: str
    answer: str
    truth: bool | str | float | int
    value_m: float | None
    objects: list[str]  # object names as used in the question, in order (A, B)
    object_ids: list[int]
    canonical: bool  # whether the answer was computed in the canonical frame
    question_template: int = 0
    answer_template: int = 0
    unit: str | None = None  # unit the answer was spoken in, quantitative only
    spoken_value: float | None = None  # the number said in the answer, in ``unit``

    def to_row(self) -> dict[str, Any]:
        t = self.truth
        return {
            "image_id": self.image_id,
            "qa_type": self.qa_type,
            "family": self.family,
            "question": self.question,
            "answer": self.answer,
            "value_m": None if self.value_m is None else float(self.value_m),
            "truth": str(t).lower() if isinstance(t, bool) else str(t),
            "objects": list(self.objects),
            "object_ids": [int(i) for i in self.object_ids],
            "canonical": bool(self.canonical),
            "question_template": int(self.question_template),
            "answer_template": int(self.answer_template),
            "unit": self.unit,
            "spoken_value": self.spoken_value,
        }


@dataclass
class ItemError:
    """A per-item failure, recorded instead of dropped: which input, which stage, and why."""

    item: str  # image id, file path or manifest line
    stage: str  # "read", "perception", "geometry", "qa", "write", ...
    reason: str

    def to_row(self) -> dict[str, str]:
        return {"item": self.item, "stage": self.stage, "reason": self.reason}
