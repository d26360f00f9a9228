"""The review page of a predict run (vertkp.inference.review_page) on hand-made predictions:
no model. Worst first, overlays embedded, inputs escaped, ground-truth errors from the evaluator."""
import base64
import json
import re
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest

from tests.helpers.raw import quad
from vertkp.evaluation import load_ground_truth
from vertkp.inference import build_prediction
from vertkp.inference.review_page import evaluation_settings, review_order, write_review_page
from vertkp.inference.stream import IndexedLines, failure_line, prediction_line
from vertkp.review import CornerUncertainty

# Corners known to 0.5% of the width: no pair is borderline by its interval alone.
SHARP = CornerUncertainty(floor_pct_width=0.5, spread_factor=1.0)
ODD = 'a<b>&"c.png'


def _spine(shift_top=0.0):
    """5 stacked 100 x 60 vertebrae, the top two shifted right by shift_top px (a slip at the 2nd pair)."""
    return np.array([quad(300 + (shift_top if k < 2 else 0), 100 + 90 * k, 100, 60) for k in range(5)])


def _line(index, path, shift_top=0.0, low_corner=False, duplicate=False, findings=(), **extra):
    """The predictions.jsonl line of a hand-made prediction, parsed. ``duplicate``: a weaker second
    detection of the middle vertebra (repaired: removed, a finding); ``findings`` are added to the
    prediction's, ``extra`` replaces its fields."""
    c = _spine(shift_top)
    scores = np.full(5, 0.95)
    if duplicate:
        c, scores = np.concatenate([c, [c[2] + np.array([3.0, 2.0])]]), np.append(scores, 0.6)
    cs = np.full((len(c), 4), 0.9)
    if low_corner:
        cs[0, 0] = 0.2
    pred = build_prediction(c, cs, scores, np.concatenate([c.min(1), c.max(1)], 1), image=str(path),
                            height=600, width=600, facing="right", bottom_level="S1", uncertainty=SHARP)
    line = json.loads(prediction_line(index, str(path), pred))
    line["prediction"]["findings"] += list(findings)
    line["prediction"].update(extra)
    return line


class _Page(HTMLParser):
    """The tags, image sources, links and text of a page; fails on a tag closed that is not open."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self, text):
        super().__init__()
        self.open, self.srcs, self.hrefs, self.text = [], [], [], []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.srcs += [a["src"]] if "src" in a else []
        self.hrefs += [a["href"]] if "href" in a else []
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, (tag, self.open[-3:])
        self.open.pop()

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture
def run(tmp_path):
    """(OUT, lines, overlay stems) of a run of 3 images and a failure, with explicit risks."""
    out = tmp_path / "out"
    (out / "overlays").mkdir(parents=True)
    lines = [_line(0, tmp_path / ODD, risk=0.2),
             _line(1, tmp_path / "worst.png", shift_top=37.5, low_corner=True, duplicate=True, risk=0.9,
                   findings=[{"code": "crossed", "vertebrae": ["L2", "L3"], "repaired": False,
                              "message": "L2 & L3 cross"}]),
             json.loads(failure_line(2, str(tmp_path / "broken.png"), "not a readable image")),
             _line(3, tmp_path / "mid.png", risk=0.5)]
    pairs = lines[1]["prediction"]["pairs"]
    pairs[1].update(grade_probability=0.83, grade_probabilities={"none": 0.02, "I": 0.15, "II": 0.83})
    stems = ["a<b>&\"c", "worst", "broken", "mid"]
    for k, stem in enumerate(stems):
        if k != 2:
            cv2.imwrite(str(out / "overlays" / f"{stem}.png"), np.full((20, 30, 3), 40 * k, np.uint8))
    return out, lines, stems


def test_the_page_is_self_contained_worst_first_and_escaped(run):
    out, lines, stems = run
    path = write_review_page(out / "review.html", lines, out / "overlays", overlay_stems=stems,
                             settings={"tta": "flip", "facing": "right"},
                             failures=[{"image": "nope/*.png", "error": "the pattern matches no file"}])
    text = path.read_text(encoding="utf-8")
    page = _Page(text)
    assert page.open == []  # every tag closed
    # worst first: the headings in risk order, and the table of contents too
    assert text.count("<section") == 3  # one per predicted image
    headings = re.findall(r"<h2>(\d+)\. ([^<]*)</h2>", text)
    assert [(r, name.rsplit("/", 1)[-1]) for r, name in headings] == [
        ("1", "worst.png"), ("2", "mid.png"), ("3", "a&lt;b&gt;&amp;&quot;c.png")]
    toc = re.findall(r'<td><a href="#image-\d+">\d+</a></td><td>([^<]*)</td>', text)
    assert [name.rsplit("/", 1)[-1] for name in toc] == [name.rsplit("/", 1)[-1] for _, name in headings]
    # the overlays are embedded, each its own picture (as a JPEG); no link leaves the page
    assert len(page.srcs) == 3 and all(s.startswith("data:image/jpeg;base64,") for s in page.srcs)
    shown = cv2.imdecode(np.frombuffer(base64.b64decode(page.srcs[0].split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    drawn = cv2.imread(str(out / "overlays" / "worst.png"), cv2.IMREAD_COLOR)
    assert shown.shape == drawn.shape and np.abs(shown.astype(int) - drawn).mean() < 3
    assert re.search(r"https?://", text) is None and "<script" not in text
    assert all(h.startswith("#image-") for h in page.hrefs)
    # an input's name is escaped: its "<b>" is text, not a tag
    assert "<b>&" not in text and ODD in "".join(page.text)
    # why it is flagged, findings, the pair table with names, intervals and the grade's probability
    body = "".join(page.text)
    assert "low_confidence_corner: a corner's heatmap confidence is under the corner threshold" in body
    assert "L5/S1" in body and "L3/L4" in body
    # findings: the one not repaired first, then the repair, said once (not again among the notes)
    findings = re.search(r"<h3>Findings</h3><ul>(.*?)</ul>", text).group(1)
    assert re.findall(r"<code>(\w+)</code>", findings) == ["crossed", "duplicate_vertebra"]
    assert "L2 &amp; L3 cross <span class=\"muted\">(L2, L3; not repaired)</span>" in findings
    assert "(L4; repaired: the detection was removed)" in findings
    [repair] = lines[1]["prediction"]["findings"][:1]
    assert repair["code"] == "duplicate_vertebra" and repair["message"] in lines[1]["prediction"]["notes"]
    assert body.count(repair["message"]) == 1
    assert re.search(r"<td>L3/L4</td><td class=\"num\">\+37\.5</td><td class=\"num\">\+3\d\.\d \.\. \+3\d\.\d</td>"
                     r"<td>II</td><td class=\"num\" title=\"[^\"]*II 83%\">83%</td>", text)
    assert "tta: flip" in body and "5 images (3 predicted, 2 failed), 12 adjacent pairs, 1 flagged" in body
    # failures last: the unreadable file and the pattern that matched nothing
    failed = text[text.index("<h2>Failed</h2>"):]
    assert "broken.png: not a readable image" in failed and "nope/*.png: the pattern matches no file" in failed
    assert text.index("<h2>Failed</h2>") > text.index("a&lt;b&gt;")


def test_without_risk_the_flags_order_and_without_overlays_the_page_says_so(run):
    out, lines, stems = run
    for line in lines:
        line.get("prediction", {}).pop("risk", None)
        line.get("prediction", {}).pop("findings", None)
    assert review_order([x["prediction"] for x in lines if "prediction" in x]) == [1, 0, 2]  # worst: one flag
    text = write_review_page(out / "review.html", lines, None, overlay_stems=stems).read_text(encoding="utf-8")
    assert text.count("no overlay (--no-overlays)") == 3 and "data:image" not in text
    assert "worst.png" in re.findall(r"<h2>1\. ([^<]*)</h2>", text)[0]
    assert "risk n/a" in text


def test_lines_are_read_from_predictions_jsonl_and_overlay_names_default_to_the_runs(run):
    out, lines, _ = run
    (out / "predictions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    indexed = IndexedLines(out / "predictions.jsonl")
    assert len(indexed) == 4 and indexed[3] == lines[3]
    text = write_review_page(out / "review.html", indexed, out / "overlays").read_text(encoding="utf-8")
    assert text.count('src="data:image/jpeg;base64,') == 3


def _coco(path, corners, levels, file_name):
    """A one-image vertkp COCO file of ``corners`` [N, 4, 2], every corner labelled."""
    cats = [{"id": 1, "name": "vertebra", "keypoints": ["TL", "TR", "BL", "BR"], "skeleton": []}]
    anns = [{"id": k + 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "num_keypoints": 4, "area": 1.0,
             "bbox": [0, 0, 1, 1], "vertebra_level": lv,
             "keypoints": [v for x, y in q for v in (float(x), float(y), 2)]}
            for k, (q, lv) in enumerate(zip(corners, levels))]
    path.write_text(json.dumps({"images": [{"id": 7, "file_name": file_name, "width": 600, "height": 600,
                                            "view": "lateral", "facing": "right"}],
                                "annotations": anns, "categories": cats}))
    return path


def test_ground_truth_errors_come_from_the_evaluator(tmp_path):
    # truth: no slip anywhere; the prediction's top two vertebrae 26 px forward: L3/L4 +26% (II, wrong)
    gt = _coco(tmp_path / "gt.json", _spine(), ["L2", "L3", "L4", "L5", "S1"], "images/im0.png")
    lines = [_line(0, tmp_path / "images" / "im0.png", shift_top=26.0, risk=0.4),
             _line(1, tmp_path / "elsewhere.png", risk=0.1)]  # not in the ground truth
    text = write_review_page(tmp_path / "review.html", lines, None, settings={"facing": "right"},
                             gt=load_ground_truth(gt).images).read_text(encoding="utf-8")
    first, second = text.split('<section class="image')[1:3]
    # the predictions are scored as reported: not repaired or named again (pair rows map back to their pairs)
    ev = evaluation_settings({"facing": "right"})
    assert not ev.repair_chain and not ev.name_levels and ev.score_threshold == 0.0
    # 8 of the 20 corners are 26 px off: 10.4 px on average
    assert "mean corner error 10.40 px over 20 corners; 5 of 5 true vertebrae matched; levels: 5 right." in first
    rows = {re.match(r"<td>([^<]*)</td>", r).group(1): r for r in re.findall(r'<tr class="[^"]*">(.*?)</tr>', first)}
    l3l4 = re.search(r'<tr class="(\w*)"><td>L3/L4</td>(.*?)</tr>', first)
    assert l3l4.group(1) == "wrong" and "wrong grade" in l3l4.group(2)
    assert '<td class="num">+0.0</td><td>none</td><td class="num">+26.0</td>' in l3l4.group(2)
    assert "<td>II</td>" in l3l4.group(2)
    assert "wrong grade" not in rows["L4/L5"] and "&#10003;" in rows["L4/L5"]
    assert "true grade" in first and "Against the ground truth" not in second  # no truth for that image
