"""How hard a phantom set is: the knobs of each ``--difficulty``.

* ``clean``: the geometry-first phantoms: the labelled window fitted to the image,
  bright bodies with sharp rims, no overlapping anatomy, labels equal to the truth.
* ``realistic`` (the default): the Mendeley archive's vertebra sizes, counts per
  image and vertical positions (``vertkp.phantoms.realism.ARCHIVE``), overlapping
  anatomy (iliac crests, ribs, bowel gas, femoral heads), degenerated discs and
  osteophytes, blurred low-contrast endplates under scatter and noise, a slip
  distribution like the archive's, and labels with inter-observer jitter.
* ``hard``: more clutter, lower contrast, motion blur, severe slips, strong tilts.

Every knob is a plain number so that a reader sees in one place what changes.
Lengths are mm of anatomy unless named ``_frac`` (a fraction of the vertebra's
tight-box width) or ``_px``.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Difficulty", "DIFFICULTIES", "DEFAULT_DIFFICULTY", "get_difficulty",
           "SLIP_CASES", "ARCHIVE_SLIP_CASES", "SEVERE_SLIP_CASES"]

# Planted sagittal slip per case: (name, probability, slip % range).
# clean: ranges keep clear of the grade boundaries and of the default 5% no-slip band.
SLIP_CASES = (
    ("none", 0.42, None),
    ("I", 0.20, (8.0, 21.0)),
    ("II", 0.12, (29.0, 46.0)),
    ("III", 0.07, (54.0, 71.0)),
    ("IV", 0.03, (79.0, 96.0)),
    ("V", 0.01, (104.0, 118.0)),
    ("retrolisthesis", 0.15, (-20.0, -8.0)),
)
# realistic: a set selected for spondylolisthesis, grades I and II common (median |slip| of the
# most slipped pair near 17%); ranges reach the grade boundaries.
ARCHIVE_SLIP_CASES = (
    ("none", 0.14, None),
    ("I", 0.44, (6.0, 24.5)),
    ("II", 0.25, (25.5, 49.0)),
    ("III", 0.06, (51.0, 74.0)),
    ("IV", 0.015, (76.0, 99.0)),
    ("V", 0.005, (101.0, 115.0)),
    ("retrolisthesis", 0.09, (-20.0, -6.0)),
)
# hard: severe slips (III to V) common.
SEVERE_SLIP_CASES = (
    ("none", 0.05, None),
    ("I", 0.15, (6.0, 24.5)),
    ("II", 0.2, (25.5, 49.0)),
    ("III", 0.25, (51.0, 74.0)),
    ("IV", 0.2, (76.0, 99.0)),
    ("V", 0.1, (101.0, 125.0)),
    ("retrolisthesis", 0.05, (-22.0, -6.0)),
)


@dataclass(frozen=True)
class Difficulty:
    """The knobs of one difficulty (see the module docstring).

    Attributes:
        name: "clean", "realistic" or "hard".
        archive_framing: frame the labelled window as the archive does (sizes, counts,
            positions of ``realism.ARCHIVE``) instead of fitting it to the image height.
        slip_cases: (name, probability, slip % range) of the planted slip.
        tilt_sd_deg, tilt_max_deg: image tilt, degrees (normal, clipped).
        clutter: amount of overlapping anatomy (0 none; 1 the archive's; more is harder).
        degeneration: probability that a lumbar disc is degenerated (narrowed, with a
            vacuum cleft in some); osteophyte beaks grow at its anterior corners.
        osteophyte_mm: (low, high) length of an osteophyte beak, mm.
        endplate_roughness: endplate irregularity, fraction of the endplate length.
        contrast: (low, high) bone contrast factor (1 = clean).
        blur_mm: (low, high) unsharpness, mm.
        scatter: (low, high) share of the image replaced by its scatter (a 15-30 mm blur).
        noise: factor on the quantum and electronic noise (1 = clean).
        motion_blur: probability of a motion blur of 1.5-4 mm along a random direction.
        label_noise_frac: SD, per coordinate, of the label jitter, fraction of the
            vertebra's tight-box width.
        osteophyte_tip_share: probability that a corner with a beak is labelled at the
            beak's tip instead of the body corner.
    """

    name: str
    archive_framing: bool
    slip_cases: tuple
    tilt_sd_deg: float
    tilt_max_deg: float
    clutter: float
    degeneration: float
    osteophyte_mm: tuple
    endplate_roughness: float
    contrast: tuple
    blur_mm: tuple
    scatter: tuple
    noise: float
    motion_blur: float
    label_noise_frac: float
    osteophyte_tip_share: float

    @property
    def clean(self) -> bool:
        return self.name == "clean"


DIFFICULTIES = {
    "clean": Difficulty(
        "clean", archive_framing=False, slip_cases=SLIP_CASES, tilt_sd_deg=5.0, tilt_max_deg=15.0,
        clutter=0.0, degeneration=0.0, osteophyte_mm=(0.0, 0.0), endplate_roughness=0.0,
        contrast=(1.0, 1.0), blur_mm=(0.0, 0.0), scatter=(0.0, 0.0), noise=1.0, motion_blur=0.0,
        label_noise_frac=0.0, osteophyte_tip_share=0.0),
    "realistic": Difficulty(
        "realistic", archive_framing=True, slip_cases=ARCHIVE_SLIP_CASES, tilt_sd_deg=5.0, tilt_max_deg=15.0,
        clutter=1.0, degeneration=0.3, osteophyte_mm=(1.5, 5.0), endplate_roughness=0.025,
        contrast=(0.3, 0.6), blur_mm=(0.6, 1.3), scatter=(0.15, 0.4), noise=1.6, motion_blur=0.0,
        label_noise_frac=0.01, osteophyte_tip_share=0.3),
    "hard": Difficulty(
        "hard", archive_framing=True, slip_cases=SEVERE_SLIP_CASES, tilt_sd_deg=10.0, tilt_max_deg=25.0,
        clutter=1.7, degeneration=0.55, osteophyte_mm=(2.5, 7.0), endplate_roughness=0.04,
        contrast=(0.25, 0.55), blur_mm=(0.8, 1.6), scatter=(0.3, 0.55), noise=2.4, motion_blur=0.5,
        label_noise_frac=0.02, osteophyte_tip_share=0.4),
}
DEFAULT_DIFFICULTY = "realistic"


def get_difficulty(name: str) -> Difficulty:
    """The :class:`Difficulty` called ``name``; ValueError names the choices."""
    try:
        return DIFFICULTIES[name]
    except KeyError:
        raise ValueError(f"difficulty must be one of {tuple(DIFFICULTIES)}, got {name!r}") from None
