"""Pure-Python kernels and trivial tasks for benches/run.py.

Every function here is module-level so that every backend can reach it by
name: a thread, a forked or spawned process, a PEP 734 interpreter and a
parpy worker all import this module and look the function up.

Each kernel is called as ``kernel(task, size)`` and returns a small,
deterministic checksum. ``task`` (0..T-1) picks which slice of the work the
call does, so that the T calls of one benchmark do equal, independent work;
``size`` scales the cost of one call linearly (run.py calibrates it so that
one call takes a chosen time on the reference interpreter).
"""

import math
import time

# ---------------------------------------------------------------------------
# Trivial tasks: round trip, throughput, large data, warm-up
# ---------------------------------------------------------------------------


def tiny(x):
    """The trivial task: the cost measured around it is the runtime's."""
    return x + 1


def size(data):
    """Length of a payload (large-data benchmark): bytes, or anything with the
    buffer protocol (such as a parpy.SharedBytes), without copying it."""
    return memoryview(data).nbytes


def nap(seconds):
    """Holds a worker for a while, so that k naps start k workers (warm-up)."""
    time.sleep(seconds)
    return seconds


# ---------------------------------------------------------------------------
# n-body: five planets, symplectic Euler steps, energy as the checksum
# ---------------------------------------------------------------------------

_YEAR = 365.24
_SOLAR_MASS = 4 * math.pi * math.pi

# x, y, z (AU), vx, vy, vz (AU/day), mass (solar masses): the Sun and the
# four gas giants, from published orbital elements (rounded).
_PLANETS = (
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
    (4.8414314424647209, -1.1603200440274284, -0.10362204447112311,
     1.66007664274403694e-03, 7.69901118419740425e-03, -6.90460016972063023e-05,
     9.54791938424326609e-04),
    (8.34336671824457987, 4.12479856412430479, -4.03523417114321381e-01,
     -2.76742510726862411e-03, 4.99852801234917238e-03, 2.30417297573763929e-05,
     2.85885980666130812e-04),
    (1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
     2.96460137564761618e-03, 2.37847173959480950e-03, -2.96589568540237556e-05,
     4.36624404335156298e-05),
    (1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
     2.68067772490389322e-03, 1.62824170038242295e-03, -9.51592254519715870e-05,
     5.15138902046611451e-05),
)


def _bodies(task):
    out = []
    for i, (x, y, z, vx, vy, vz, m) in enumerate(_PLANETS):
        # Each task starts from a slightly different sky.
        shift = 1e-3 * task * (i + 1)
        out.append([x + shift, y - shift, z, vx * _YEAR, vy * _YEAR, vz * _YEAR, m * _SOLAR_MASS])
    # Give the Sun the momentum that keeps the centre of mass at rest.
    px = sum(b[3] * b[6] for b in out)
    py = sum(b[4] * b[6] for b in out)
    pz = sum(b[5] * b[6] for b in out)
    sun = out[0]
    sun[3], sun[4], sun[5] = -px / _SOLAR_MASS, -py / _SOLAR_MASS, -pz / _SOLAR_MASS
    return out


def _energy(bodies):
    e = 0.0
    for i, a in enumerate(bodies):
        e += 0.5 * a[6] * (a[3] * a[3] + a[4] * a[4] + a[5] * a[5])
        for b in bodies[i + 1:]:
            dx, dy, dz = a[0] - b[0], a[1] - b[1], a[2] - b[2]
            e -= a[6] * b[6] / math.sqrt(dx * dx + dy * dy + dz * dz)
    return e


def nbody(task, size):
    """``size`` time steps of the five-body system; returns its final energy."""
    bodies = _bodies(task)
    pairs = [(bodies[i], bodies[j]) for i in range(len(bodies)) for j in range(i + 1, len(bodies))]
    dt = 0.01
    for _ in range(size):
        for a, b in pairs:
            dx = a[0] - b[0]
            dy = a[1] - b[1]
            dz = a[2] - b[2]
            d2 = dx * dx + dy * dy + dz * dz
            mag = dt / (d2 * math.sqrt(d2))
            mb = b[6] * mag
            ma = a[6] * mag
            a[3] -= dx * mb
            a[4] -= dy * mb
            a[5] -= dz * mb
            b[3] += dx * ma
            b[4] += dy * ma
            b[5] += dz * ma
        for body in bodies:
            body[0] += dt * body[3]
            body[1] += dt * body[4]
            body[2] += dt * body[5]
    return round(_energy(bodies), 9)


# ---------------------------------------------------------------------------
# fannkuch: pancake flips over a spread-out sample of the permutations of 0..9
# ---------------------------------------------------------------------------

_FANNKUCH_N = 10
_FACTORIALS = [math.factorial(k) for k in range(_FANNKUCH_N + 1)]
_STRIDE = 7919  # prime, so k * _STRIDE walks all 10! positions before repeating


def _nth_permutation(n, index):
    """The permutation of range(n) at lexicographic position ``index``."""
    pool = list(range(n))
    out = []
    for k in range(n - 1, -1, -1):
        q, index = divmod(index, _FACTORIALS[k])
        out.append(pool.pop(q))
    return out


def fannkuch(task, size):
    """Counts the pancake flips of ``size`` permutations of 0..9 (positions
    ``(task * size + k) * 7919`` mod 10! in lexicographic order): returns
    (most flips, signed sum of flips)."""
    n = _FANNKUCH_N
    total = _FACTORIALS[n]
    most = 0
    checksum = 0
    for k in range(task * size, task * size + size):
        p = _nth_permutation(n, k * _STRIDE % total)
        first = p[0]
        flips = 0
        while first:
            p[:first + 1] = p[first::-1]
            flips += 1
            first = p[0]
        if flips > most:
            most = flips
        checksum += flips if k % 2 == 0 else -flips
    return most, checksum


# ---------------------------------------------------------------------------
# spectral norm: power iteration on the infinite matrix a(i, j) = 1/((i+j)(i+j+1)/2+i+1)
# ---------------------------------------------------------------------------

_SPECTRAL_N = 64


def _a(i, j):
    s = i + j
    return 1.0 / (s * (s + 1) // 2 + i + 1)


def _times(v, transpose):
    n = len(v)
    out = []
    for i in range(n):
        acc = 0.0
        if transpose:
            for j in range(n):
                acc += _a(j, i) * v[j]
        else:
            for j in range(n):
                acc += _a(i, j) * v[j]
        out.append(acc)
    return out


def spectral_norm(task, size):
    """``size`` power iterations of AᵀA on a 64-vector (the task shifts the
    start vector); returns the estimated norm of A."""
    n = _SPECTRAL_N
    u = [1.0 + 1e-3 * ((task + i) % 7) for i in range(n)]
    v = u
    for _ in range(size):
        v = _times(_times(u, False), True)
        u = _times(_times(v, False), True)
        scale = 1.0 / max(u)
        u = [x * scale for x in u]
        v = [x * scale for x in v]
    vbv = sum(a * b for a, b in zip(u, v))
    vv = sum(b * b for b in v)
    return round(math.sqrt(vbv / vv), 9)


# ---------------------------------------------------------------------------
# ray tracer: spheres on a checkered floor, diffuse light, hard shadows, one bounce
# ---------------------------------------------------------------------------

_WIDTH = 96
# centre (x, y, z), radius, colour (r, g, b), reflectivity
_SPHERES = (
    ((0.0, 1.0, 6.0), 1.0, (0.9, 0.2, 0.2), 0.3),
    ((-2.2, 0.7, 7.5), 0.7, (0.2, 0.8, 0.3), 0.1),
    ((2.0, 0.5, 5.0), 0.5, (0.2, 0.3, 0.9), 0.5),
    ((0.8, 0.3, 3.8), 0.3, (0.9, 0.9, 0.2), 0.0),
)
_LIGHT = (-4.0, 6.0, -1.0)


def _hit(ox, oy, oz, dx, dy, dz):
    """Nearest hit of the ray: (distance, kind, index) or None; kind 0 = sphere, 1 = floor."""
    best = None
    for idx, ((cx, cy, cz), r, _, _) in enumerate(_SPHERES):
        lx, ly, lz = ox - cx, oy - cy, oz - cz
        b = lx * dx + ly * dy + lz * dz
        c = lx * lx + ly * ly + lz * lz - r * r
        disc = b * b - c
        if disc > 0.0:
            t = -b - math.sqrt(disc)
            if t > 1e-6 and (best is None or t < best[0]):
                best = (t, 0, idx)
    if dy < -1e-9:
        t = -oy / dy
        if t > 1e-6 and (best is None or t < best[0]):
            best = (t, 1, -1)
    return best


def _shade(ox, oy, oz, dx, dy, dz, depth):
    hit = _hit(ox, oy, oz, dx, dy, dz)
    if hit is None:
        sky = 0.5 + 0.5 * dy
        return (0.5 * sky, 0.7 * sky, 1.0 * sky)
    t, kind, idx = hit
    px, py, pz = ox + t * dx, oy + t * dy, oz + t * dz
    if kind == 0:
        (cx, cy, cz), r, colour, refl = _SPHERES[idx]
        nx, ny, nz = (px - cx) / r, (py - cy) / r, (pz - cz) / r
    else:
        nx, ny, nz = 0.0, 1.0, 0.0
        colour = (0.9, 0.9, 0.9) if (math.floor(px) + math.floor(pz)) % 2 == 0 else (0.15, 0.15, 0.15)
        refl = 0.2
    lx, ly, lz = _LIGHT[0] - px, _LIGHT[1] - py, _LIGHT[2] - pz
    ln = math.sqrt(lx * lx + ly * ly + lz * lz)
    lx, ly, lz = lx / ln, ly / ln, lz / ln
    diffuse = max(0.0, nx * lx + ny * ly + nz * lz)
    if diffuse > 0.0:
        blocker = _hit(px, py, pz, lx, ly, lz)
        if blocker is not None and blocker[0] < ln:
            diffuse *= 0.2
    light = 0.1 + 0.9 * diffuse
    r, g, b = colour[0] * light, colour[1] * light, colour[2] * light
    if refl > 0.0 and depth > 0:
        dn = dx * nx + dy * ny + dz * nz
        rx, ry, rz = dx - 2 * dn * nx, dy - 2 * dn * ny, dz - 2 * dn * nz
        sr, sg, sb = _shade(px, py, pz, rx, ry, rz, depth - 1)
        r, g, b = r * (1 - refl) + sr * refl, g * (1 - refl) + sg * refl, b * (1 - refl) + sb * refl
    return r, g, b


def raytrace(task, size):
    """Renders ``size`` rows of a 96x64-pixel frame (row ``13*task + 7*k``
    mod 64 for the k-th, so every task sweeps the whole frame); returns the
    sum of the 8-bit pixel values."""
    frame = 64
    total = 0
    for k in range(size):
        row = (task * 13 + k * 7) % frame
        y = 1.0 - 2.0 * (row + 0.5) / frame
        for col in range(_WIDTH):
            x = (2.0 * (col + 0.5) / _WIDTH - 1.0) * 1.5
            dx, dy, dz = x, y + 0.1, 1.6
            n = math.sqrt(dx * dx + dy * dy + dz * dz)
            r, g, b = _shade(0.0, 1.2, -1.0, dx / n, dy / n, dz / n, 2)
            total += int(min(1.0, r) * 255) + int(min(1.0, g) * 255) + int(min(1.0, b) * 255)
    return total


# name -> (function, size that run.py starts calibrating from)
KERNELS = {
    "nbody": (nbody, 2000),
    "fannkuch": (fannkuch, 4000),
    "spectral_norm": (spectral_norm, 1),
    "raytrace": (raytrace, 4),
}
