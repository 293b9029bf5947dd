"""Synthetic ProtoDUNE-SP collection-plane events with per-pixel truth.

The image is the collection (W) plane of the three beam-side APAs, 1440 wires × 6000 ticks,
reduced to 320 × 320 by keeping the largest hit charge that falls in each bin ("max charge wins").
Rows are ticks (drift time), columns are wires (along the beam), so the beam enters at column 0.

An event holds:
- cosmic muons (Poisson mean 20) on straight chords at random angles and times, with a little
  multiple scattering; about one in seven stops in the detector, with a Bragg rise and a short
  Michel-electron kink;
- one beam particle entering from the upstream (left) edge in a fixed tick band with a shallow
  downward slope, ending either in a hadronic vertex (protons, pions, nuclear blips) or an EM
  shower (a branching cone of short segments with conversion gaps);
- charge per hit from a Moyal (Landau-like) law around the dE/dx of each particle, diffusion in
  the drift direction, sparse noise hits, and a fixed map of dead wires.

Labels: 0 background (also noise), 1 beam particle and daughters, 2 cosmic. Each image is divided
by its own maximum. Event k of seed s is drawn from its own generator, seeded from (s, k), so it
is the same whatever number of events is asked for.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np

from payload.events import IMAGE_SHAPE, EventWriter

N_WIRES = 1440
N_TICKS = 6000
ROWS, COLS = IMAGE_SHAPE
WIRES_PER_COL = N_WIRES / COLS

BACKGROUND, BEAM, COSMIC = 0, 1, 2

COSMICS_MEAN = 20.0
STOPPING_FRACTION = 0.15
BEAM_ROW_BAND = (150.0, 190.0)        # the beam window sits at a fixed drift distance
BEAM_SLOPE_DEG = (3.0, 12.0)          # downward, as the H4-VLE beam line enters the cryostat
HADRONIC_FRACTION = 0.6
MOYAL_WIDTH = 0.12                    # relative width of the collection-plane dE/dx distribution
ADC_SATURATION = 8.0                  # hit integrals above this many MIPs are clipped
STEP = 0.7                            # sampling step along a track, in pixels: below 1, no pixel is skipped
NOISE_HITS_MEAN = 120.0
DIFFUSION_PROBABILITY = 0.2           # chance that a hit also lights the next tick bin

# A fixed detector: two dead front-end groups and about 1% isolated dead channels. Seeded by a
# constant so every event (and every job) sees the same broken wires, as in a real run.
_DEAD = np.zeros(N_WIRES, dtype=bool)
_DEAD[292:306] = True
_DEAD[905:930] = True
_DEAD[np.random.default_rng(20181010).choice(N_WIRES, 15, replace=False)] = True
DEAD_WIRES = _DEAD


def moyal(rng: np.random.Generator, size, loc=0.0, scale=1.0) -> np.ndarray:
    """Samples of the Moyal law, Landau's closed-form approximation.

    If X has density exp(-(x + e^-x)/2)/sqrt(2π), then Y = e^-X has density
    y^(-1/2) e^(-y/2)/sqrt(2π), the chi-square law with one degree of freedom; so X = -ln(Z²)
    with Z standard normal. Mode `loc`, mean loc + scale·(γ + ln 2).
    """
    z = rng.standard_normal(size)
    return loc - scale * np.log(z * z + 1e-300)


def _trace(rng, x0, y0, angle, length, *, wiggle=0.0):
    """Points every STEP pixels along straight segments, with a random-walk transverse offset.

    Returns columns, rows, the segment each point belongs to, and the remaining range to the
    segment's end (for Bragg peaks).
    """
    n = np.maximum(np.ceil(np.asarray(length) / STEP).astype(np.int64), 1)
    seg = np.repeat(np.arange(n.size), n)
    start = np.cumsum(n) - n
    t = (np.arange(n.sum()) - start[seg]) * STEP
    dx, dy = np.cos(angle)[seg], np.sin(angle)[seg]
    x = x0[seg] + t * dx
    y = y0[seg] + t * dy
    if wiggle > 0:
        kicks = rng.normal(0.0, wiggle * np.sqrt(STEP), t.size)
        walk = np.cumsum(kicks)
        walk -= (walk[start] - kicks[start])[seg]
        x -= walk * dy
        y += walk * dx
    return x, y, seg, np.maximum(length[seg] - t, 0.0)


class _Hits:
    """Hit lists of one event, concatenated at the end."""

    def __init__(self):
        self.parts = []

    def add(self, x, y, charge, label):
        self.parts.append((x, y, charge, np.full(x.size, label, np.uint8)))

    def arrays(self):
        return [np.concatenate(p) for p in zip(*self.parts)]


def _deposit(rng, hits, x, y, seg, residual, scale, label, *, bragg=None):
    """Charge for traced points: Moyal fluctuations around the segment's dE/dx, a Bragg rise for
    stopping segments (`bragg`: per-segment amplitude), and diffusion into the neighbouring ticks."""
    mean = scale[seg]
    if bragg is not None:
        mean = mean * (1.0 + bragg[seg] * np.exp(-residual / 3.0))
    q = mean * (1.0 + MOYAL_WIDTH * moyal(rng, x.size))
    hits.add(x, y, q, label)
    spread = rng.random(x.size) < DIFFUSION_PROBABILITY
    side = np.where(rng.random(int(spread.sum())) < 0.5, -1.0, 1.0)
    hits.add(x[spread], y[spread] + side, q[spread] * rng.uniform(0.2, 0.6, side.size), label)


def _chords(rng, n):
    """Random lines through the image: a uniform point and angle, clipped to the image box."""
    cx, cy = rng.uniform(0, COLS, n), rng.uniform(0, ROWS, n)
    angle = rng.uniform(0, np.pi, n)
    dx, dy = np.cos(angle), np.sin(angle)
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.stack([(0 - cx) / dx, (COLS - cx) / dx])
        ty = np.stack([(0 - cy) / dy, (ROWS - cy) / dy])
    t_lo = np.maximum(np.nan_to_num(tx.min(0), nan=-np.inf), np.nan_to_num(ty.min(0), nan=-np.inf))
    t_hi = np.minimum(np.nan_to_num(tx.max(0), nan=np.inf), np.nan_to_num(ty.max(0), nan=np.inf))
    return cx + t_lo * dx, cy + t_lo * dy, angle, t_hi - t_lo


def _cosmics(rng, hits):
    n = rng.poisson(COSMICS_MEAN)
    if n == 0:
        return
    x0, y0, angle, length = _chords(rng, n)
    stopping = rng.random(n) < STOPPING_FRACTION
    length = np.where(stopping, length * rng.uniform(0.2, 0.9, n), length)
    x, y, seg, residual = _trace(rng, x0, y0, angle, length, wiggle=0.03)
    _deposit(rng, hits, x, y, seg, residual, np.ones(n), COSMIC, bragg=np.where(stopping, 2.0, 0.0))
    k = int(stopping.sum())
    if k:
        ex = x0[stopping] + length[stopping] * np.cos(angle[stopping])
        ey = y0[stopping] + length[stopping] * np.sin(angle[stopping])
        kink = angle[stopping] + rng.choice([-1.0, 1.0], k) * rng.uniform(0.5, 2.6, k)
        mx, my, mseg, mres = _trace(rng, ex, ey, kink, rng.uniform(6, 18, k), wiggle=0.25)
        _deposit(rng, hits, mx, my, mseg, mres, np.full(k, 0.9), COSMIC)


def _hadronic_vertex(rng, hits, vx, vy, direction):
    n = min(2 + rng.poisson(1.5), 6)
    proton = rng.random(n) < 0.5
    angle = direction + rng.normal(0.0, 1.0, n)
    length = np.where(proton, rng.uniform(4, 25, n), rng.uniform(20, 100, n))
    scale = np.where(proton, 2.2, 1.0)
    x, y, seg, residual = _trace(rng, np.full(n, vx), np.full(n, vy), angle, length, wiggle=0.05)
    _deposit(rng, hits, x, y, seg, residual, scale, BEAM, bragg=np.where(proton, 1.5, 0.0))
    blips = rng.poisson(4)
    r, phi = rng.uniform(3, 30, blips), rng.uniform(0, 2 * np.pi, blips)
    hits.add(vx + r * np.cos(phi), vy + r * np.sin(phi), rng.uniform(0.3, 1.5, blips), BEAM)


def _em_shower(rng, hits, vx, vy, direction, generations=6):
    """A branching cone: each segment splits in two after a short photon-conversion gap."""
    x0, y0 = np.array([vx]), np.array([vy])
    angle, length = np.array([direction]), np.array([rng.uniform(15, 30)])
    for gen in range(generations + 1):
        n = angle.size
        x, y, seg, residual = _trace(rng, x0, y0, angle, length, wiggle=0.15)
        _deposit(rng, hits, x, y, seg, residual, np.ones(n), BEAM)
        ex, ey = x0 + length * np.cos(angle), y0 + length * np.sin(angle)
        gap = rng.exponential(1.5, 2 * n) * (gen > 0)
        spread = np.abs(rng.normal(0.0, 0.2, 2 * n)) * np.tile([-1.0, 1.0], n)
        angle = np.repeat(angle, 2) + spread
        x0 = np.repeat(ex, 2) + gap * np.cos(angle)
        y0 = np.repeat(ey, 2) + gap * np.sin(angle)
        length = np.repeat(length, 2) * rng.uniform(0.55, 0.9, 2 * n)


def _beam(rng, hits):
    y0 = rng.uniform(*BEAM_ROW_BAND)
    angle = -np.deg2rad(rng.uniform(*BEAM_SLOPE_DEG))
    hadronic = rng.random() < HADRONIC_FRACTION
    length = rng.uniform(100, 250) if hadronic else rng.uniform(50, 160)
    x, y, seg, residual = _trace(rng, np.zeros(1), np.array([y0]), np.array([angle]),
                                 np.array([length]), wiggle=0.02)
    _deposit(rng, hits, x, y, seg, residual, np.ones(1), BEAM)
    vx, vy = length * np.cos(angle), y0 + length * np.sin(angle)
    if hadronic:
        _hadronic_vertex(rng, hits, vx, vy, angle)
    else:
        _em_shower(rng, hits, vx, vy, angle)


def _noise(rng, hits):
    n = rng.poisson(NOISE_HITS_MEAN)
    hits.add(rng.uniform(0, COLS, n), rng.uniform(0, ROWS, n), rng.exponential(0.25, n), BACKGROUND)


def generate_event(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """One event: image float32 [320, 320] (max 1, or all zero) and labels uint8 [320, 320]."""
    hits = _Hits()
    _cosmics(rng, hits)
    _beam(rng, hits)
    _noise(rng, hits)
    x, y, q, label = hits.arrays()

    col, row = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    inside = (col >= 0) & (col < COLS) & (row >= 0) & (row < ROWS)
    col, row, q, label, x = col[inside], row[inside], q[inside], label[inside], x[inside]
    live = ~DEAD_WIRES[np.minimum((x * WIRES_PER_COL).astype(np.int64), N_WIRES - 1)]
    flat = (row * COLS + col)[live]
    q = np.clip(q[live], 0.05, ADC_SATURATION)
    label = label[live]

    # Max charge wins: sort by pixel then charge (one float key: q / saturation < 2 never reaches
    # the next pixel); the last hit of each pixel is its winner.
    order = np.argsort(flat * 2.0 + q / ADC_SATURATION, kind="stable")
    flat_sorted = flat[order]
    winner = order[np.r_[flat_sorted[1:] != flat_sorted[:-1], True]] if flat.size else order
    image = np.zeros(ROWS * COLS, np.float32)
    labels = np.zeros(ROWS * COLS, np.uint8)
    image[flat[winner]] = q[winner]
    labels[flat[winner]] = label[winner]
    peak = image.max()
    if peak > 0:
        image /= peak
    return image.reshape(IMAGE_SHAPE), labels.reshape(IMAGE_SHAPE)


def event_rng(seed: int, event_number: int) -> np.random.Generator:
    """The generator of one event: child `event_number` of the run's seed sequence."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(event_number,)))


def _check_counts(n_events: int, seed: int, first_event: int) -> None:
    if n_events < 0 or seed < 0 or first_event < 0:
        raise ValueError(f"n_events, seed and first_event must be non-negative, got {n_events}, "
                         f"{seed}, {first_event}")


def iter_events(n_events: int, seed: int, *, first_event: int = 0
                ) -> Iterator[Tuple[int, np.ndarray, np.ndarray]]:
    """Yield (event_id, image, labels) for events first_event .. first_event + n_events - 1."""
    _check_counts(n_events, seed, first_event)
    for k in range(first_event, first_event + n_events):
        image, labels = generate_event(event_rng(seed, k))
        yield k, image, labels


def simulate_events(n_events: int, seed: int, *, path: Optional[Path] = None, first_event: int = 0,
                    chunk_events: int = 64):
    """Simulate events `first_event ..` of run `seed`.

    With `path`, stream them into an event file (docs/design.md, 'File formats') and return the
    path; without, return
    (images float32 [N,320,320], labels uint8 [N,320,320], event_id int64 [N]) in memory.
    """
    _check_counts(n_events, seed, first_event)
    events = iter_events(n_events, seed, first_event=first_event)
    if path is None:
        images = np.zeros((n_events, *IMAGE_SHAPE), np.float32)
        labels = np.zeros((n_events, *IMAGE_SHAPE), np.uint8)
        event_id = np.arange(first_event, first_event + n_events, dtype=np.int64)
        for i, (_, image, label) in enumerate(events):
            images[i], labels[i] = image, label
        return images, labels, event_id

    attrs = {"generator": "payload.simulate", "seed": int(seed), "first_event": int(first_event)}
    with EventWriter(path, with_labels=True, attrs=attrs) as writer:
        chunk = []
        for event in events:
            chunk.append(event)
            if len(chunk) == chunk_events:
                _flush(writer, chunk)
        _flush(writer, chunk)
    return Path(path)


def _flush(writer: EventWriter, chunk: list) -> None:
    if chunk:
        ids, images, labels = zip(*chunk)
        writer.append(np.stack(images), np.stack(labels), np.asarray(ids, np.int64))
        chunk.clear()
