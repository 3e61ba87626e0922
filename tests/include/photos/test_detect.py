"""Classical detection, tiling + NMS, segmentation and estimation on generated trays with known
counts (the same generator the benchmark uses)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from include.photos.analyze import analyze, count_error
from include.photos.detect import (
    BackendUnavailable,
    ClassicalDetector,
    Detection,
    make_detector,
    nms,
    tiled_detect,
    tiles,
)
from include.photos.estimate import estimate_missed
from include.photos.samples import jpeg_bytes, make_exif, tray_image
from include.photos.segment import segment_containers


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_counts_within_tolerance_on_generated_trays(seed: int) -> None:
    img, truth = tray_image(seed, 1600, 1200, (6, 8), pots=2)
    a = analyze(
        jpeg_bytes(img, make_exif(None)),
        config={"cells": [6, 8], "container": "pots"},
    )  # no calibration: the photo's own evidence sets the plant size
    total = a.total_detected + a.total_estimated
    assert count_error(total, truth.plants) <= 0.05, (total, truth.plants)
    assert a.total_empty == truth.empty_containers
    kinds = sorted(r.region.kind for r in a.regions)
    assert kinds[:3] == ["pot", "pot", "tray"]
    assert 0.5 < (a.avg_confidence or 0) <= 0.99


def test_touching_plants_are_split_by_watershed() -> None:
    # plant radius 0.62 cell: neighbours overlap, a plain connected-components count fails
    img, truth = tray_image(21, 1200, 900, (4, 6), fill=1.0, pots=0, plant_scale=0.62)
    rgb = np.asarray(img)
    from scipy import ndimage as ndi

    from include.photos.detect import excess_green

    _, components = ndi.label(excess_green(rgb) > 0.2)
    assert components < truth.plants  # they really touch
    dets = ClassicalDetector(threshold=0.2).detect(rgb)
    assert count_error(len(dets), truth.plants) <= 0.1, (len(dets), truth.plants)


def test_tiles_cover_with_overlap() -> None:
    ts = tiles(1000, 1300, 512, 100)
    assert ts[0] == (0, 0, 512, 512) and ts[-1] == (788, 488, 1300, 1000)
    covered = np.zeros((1000, 1300), bool)
    for x0, y0, x1, y1 in ts:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert tiles(100, 100, 512, 100) == [(0, 0, 100, 100)]


def test_nms_keeps_whole_plant_over_cut_piece() -> None:
    whole = Detection(100, 100, 160, 160, 0.7, 2800)
    cut = Detection(140, 100, 160, 160, 0.9, 900, touches_cut=True)
    other = Detection(300, 300, 350, 350, 0.8, 2000)
    kept = nms([cut, whole, other])
    assert whole in kept and other in kept and cut not in kept
    # IoU metric keeps both (they overlap only 1/3)
    assert len(nms([cut, whole], 0.5, "iou")) == 2


def test_tiled_detection_equals_direct_detection() -> None:
    img, truth = tray_image(31, 1600, 1200, (6, 8), pots=0)
    rgb = np.asarray(img)
    det = ClassicalDetector(threshold=0.2, plant_area=truth.mean_plant_area_px, tile=400)
    direct = det.detect(rgb)
    tiled = tiled_detect(det.detect, rgb, 400, 160)
    assert len(direct) == truth.plants
    assert len(tiled) == len(direct)


def test_segmentation_finds_tray_and_pots_or_whole_frame() -> None:
    img, _ = tray_image(41, 1000, 750, (6, 8), pots=3)
    regions = segment_containers(np.asarray(img))
    assert [r.kind for r in regions] == ["tray", "pot", "pot", "pot"]
    close_up = np.full((300, 400, 3), (92, 64, 44), np.uint8)
    (frame,) = segment_containers(close_up)
    assert frame.kind == "frame" and frame.shape == (300, 400)


def test_estimation_counts_an_unsplit_clump() -> None:
    veg = np.zeros((200, 300), bool)
    veg[20:60, 20:60] = True  # a detected plant (1600 px)
    veg[100:180, 100:260] = True  # a clump of ~8 plants no detection explains
    det = Detection(20, 20, 60, 60, 0.9, 1600, mask=np.ones((40, 40), bool))
    est = estimate_missed(veg, [det], avg_plant_area=1600)
    assert est.calibrated and est.estimated == 8 and est.patches == 1
    uncal = estimate_missed(veg, [det], avg_plant_area=None)
    assert not uncal.calibrated and uncal.estimated == 0 and uncal.leftover_px > 12000


def test_a_clump_counts_as_several_plants_and_the_location_does_not_change_the_count() -> None:
    img, truth = tray_image(51, 1600, 1200, (6, 8), pots=0)
    arr = np.asarray(img).copy()
    # paint a dense mat of vegetation over 3 x 2 cells of the tray: one big object
    x0, y0, x1, y1 = truth.tray_box
    cw, ch = (x1 - x0) / 8, (y1 - y0) / 6
    arr[int(y0 + ch * 0.2) : int(y0 + ch * 1.8), int(x0 + cw * 0.2) : int(x0 + cw * 2.8)] = (
        60,
        150,
        50,
    )
    data = jpeg_bytes(Image.fromarray(arr), None)
    a = analyze(data, config={"cells": [6, 8]}, calibration={"avg_plant_area_px": 50.0})
    b = analyze(data, config={})
    # the clump is several plants, not one; a (wrong) calibration cannot change the count
    assert a.total_detected == b.total_detected
    assert b.total_detected >= truth.plants - 6 + 3
    assert a.total_estimated == b.total_estimated == 0 and not b.calibrated


def test_unknown_or_unavailable_backends_fail_clearly(tmp_path) -> None:
    with pytest.raises(BackendUnavailable, match="unknown detector backend"):
        make_detector({"detector": "magic"}, threshold=0.2, plant_area=None)
    with pytest.raises(BackendUnavailable, match="model_path"):
        make_detector({"detector": "yolo_sahi"}, threshold=0.2, plant_area=None)
    try:
        import sahi  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailable, match="pip install ultralytics sahi"):
            make_detector(
                {"detector": "yolo_sahi", "model_path": str(tmp_path / "m.pt")},
                threshold=0.2,
                plant_area=None,
            )
    else:
        with pytest.raises(BackendUnavailable, match="not found"):
            make_detector(
                {"detector": "yolo_sahi", "model_path": str(tmp_path / "m.pt")},
                threshold=0.2,
                plant_area=None,
            )


def test_calibration_scales_with_photo_resolution() -> None:
    from include.photos.estimate import calibrated_plant_area

    cal = {"avg_plant_area_px": 6400.0, "reference_width_px": 1600}
    assert calibrated_plant_area(cal, 1600) == 6400.0
    assert calibrated_plant_area(cal, 800) == 1600.0
    assert calibrated_plant_area({"avg_plant_area_px": 500}, 4000) == 500.0
    assert calibrated_plant_area({"avg_plant_area_px": 0}, 4000) is None
    assert calibrated_plant_area({"density": "x"}, 4000) is None
    assert calibrated_plant_area(None) is None


def test_stale_calibration_does_not_break_detection() -> None:
    img, truth = tray_image(61, 1000, 750, (6, 8), pots=2)
    wrong = {"avg_plant_area_px": truth.mean_plant_area_px * 2.5}  # e.g. measured on bigger photos
    a = analyze(jpeg_bytes(img, None), config={"cells": [6, 8]}, calibration=wrong)
    assert count_error(a.total_detected, truth.plants) <= 0.05, (a.total_detected, truth.plants)


def test_dense_mat_of_touching_plants_uses_the_calibrated_size() -> None:
    # plants so big that the whole tray is one connected mat: too few components to fit a size
    img, truth = tray_image(71, 1600, 1200, (6, 8), fill=1.0, pots=0, plant_scale=0.68)
    data = jpeg_bytes(img, None)
    cal = {"avg_plant_area_px": truth.mean_plant_area_px}
    a = analyze(data, config={"cells": [6, 8]}, calibration=cal)
    assert count_error(a.total_detected + a.total_estimated, truth.plants) <= 0.1
    # no calibration: one plant per distance-transform peak of the unclosed mat (a plant's
    # half-thickness apart; before the mat peaks this counted under half the plants)
    blind = analyze(data, config={"cells": [6, 8]})
    assert count_error(blind.total_detected, truth.plants) <= 0.1, (blind.total_detected, truth)
    assert blind.total_estimated == 0
