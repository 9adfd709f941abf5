"""Glass structure analysis: g(r), coordination, bridging/Qn, bond angles, S(Q), density.

Pure numpy/scipy. Every function takes a :class:`~mlipflow.analysis.io.Frame`, an
:class:`ase.Atoms`, a pymatgen ``Structure``, or an iterable of them (averaged over frames;
iterables are consumed once, so a streaming :func:`~mlipflow.analysis.io.iter_frames`
generator works without loading the trajectory).

Neighbour search
    Orthorhombic cells with r_max below half the smallest box length use
    ``scipy.spatial.cKDTree(boxsize=L)``. Any other case (triclinic cell, or r_max beyond the
    inscribed-sphere radius) uses an explicit-image search: the wrapped atoms are replicated
    into a padded box (all periodic images within r_max of the cell) and searched with a
    non-periodic cKDTree, so g(r) may extend past half the cell (useful for crystals; for a
    glass, correlations beyond half the box are periodic artefacts of the simulation cell).

g(r) normalization
    g_ab(r) = <n_ab(r)> / (N_a (N_b - δ_ab) / V * 4π/3 (r_hi³ - r_lo³)), with n_ab(r) the
    number of ordered (a, b) pairs, a ≠ b, in the bin; frames are averaged by accumulating
    pair counts and the normalization separately. With (N_b - δ_ab) an ideal gas gives
    g = 1 exactly on average (no 1/N bias). The total g(r) is normalized the same way with
    N (N - 1). Past the inscribed radius (explicit images) an atom also meets its own periodic
    images, so for a crystal g(r) there is N/(N-1) times the infinite-crystal value; the
    running coordination number (:meth:`RDF.running_cn`, neighbours per atom) is exact.

Conventions for pairs: "A-B" keys; g_ab = g_ba; coordination "A-B" means B neighbours
around A atoms.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from mlipflow.analysis.io import Frame
from mlipflow.errors import UserError

log = logging.getLogger(__name__)

__all__ = [
    "NEUTRON_B_FM", "WAASMAIER_KIRFEL", "DEFAULT_FORMERS", "MODIFIERS", "as_frames", "density_g_cm3",
    "inscribed_radius", "neighbor_pairs", "RDF", "RDFAccumulator", "rdf", "first_minimum", "resolve_cutoffs",
    "coordination", "bonded_pairs", "bridging", "bond_angles", "structure_factor", "xray_form_factor",
    "SQ", "analyze_structure", "parse_cutoffs", "pair_key", "to_json_dict",
]

#: Coherent neutron scattering lengths b_coh in fm for the natural isotope mixture.
#: Source: NIST Center for Neutron Research, "Neutron scattering lengths and cross sections"
#: (https://www.ncnr.nist.gov/resources/n-lengths/), after V. F. Sears, Neutron News 3 (1992) 26.
#: (Cross-checked against pymatgen's neutron_scattering_length.json.) B is the real part.
NEUTRON_B_FM: dict[str, float] = {
    "H": -3.739, "Li": -1.90, "B": 5.30, "C": 6.646, "N": 9.36, "O": 5.803, "F": 5.654, "Na": 3.63,
    "Mg": 5.375, "Al": 3.449, "Si": 4.1491, "P": 5.13, "S": 2.847, "Cl": 9.577, "K": 3.67, "Ca": 4.70,
    "Ti": -3.438, "V": -0.3824, "Cr": 3.635, "Mn": -3.73, "Fe": 9.45, "Co": 2.49, "Ni": 10.3, "Cu": 7.718,
    "Zn": 5.68, "Ga": 7.288, "Ge": 8.185, "Se": 7.970, "Rb": 7.09, "Sr": 7.02, "Zr": 7.16, "Nb": 7.054,
    "Mo": 6.715, "Ag": 5.922, "Sn": 6.225, "Te": 5.80, "Cs": 5.42, "Ba": 5.07, "La": 8.24, "Ce": 4.84,
    "Pb": 9.405, "Bi": 8.532,
}

#: X-ray atomic form factors of neutral atoms, f0(s) = c + Σ_{i=1..5} a_i exp(-b_i s²),
#: s = sin(θ)/λ = Q/(4π) in Å⁻¹, valid to s = 6 Å⁻¹. Columns: a1..a5, c, b1..b5.
#: Source: D. Waasmaier & A. Kirfel, Acta Cryst. A51 (1995) 416-431 (five-Gaussian fits to the
#: International Tables for Crystallography Vol. C values), as distributed in ESRF DABAX
#: f0_WaasKirf.dat. f0(0) ≈ Z.
WAASMAIER_KIRFEL: dict[str, tuple[float, ...]] = {
    "H": (0.413048, 0.294953, 0.187491, 0.080701, 0.023736, 4.9e-05, 15.569946, 32.398468, 5.711404, 61.889874, 1.334118),
    "Li": (0.974637, 0.158472, 0.811855, 0.262416, 0.790108, 0.002542, 4.334946, 0.342451, 97.102966, 201.363831, 1.409234),
    "B": (2.085185, 1.06458, 1.062788, 0.140515, 0.641784, 0.003823, 23.494068, 1.137894, 61.238976, 0.114886, 0.399036),
    "C": (2.657506, 1.078079, 1.490909, -4.24107, 0.713791, 4.297983, 14.780758, 0.776775, 42.086842, -0.000294, 0.239535),
    "N": (11.89378, 3.277479, 1.858092, 0.858927, 0.912985, -11.804902, 0.000158, 10.232723, 30.34469, 0.656065, 0.217287),
    "O": (2.960427, 2.508818, 0.637853, 0.722838, 1.142756, 0.027014, 14.182259, 5.936858, 0.112726, 34.958481, 0.39024),
    "F": (3.511943, 2.772244, 0.678385, 0.915159, 1.089261, 0.032557, 10.687859, 4.380466, 0.093982, 27.255203, 0.313066),
    "Na": (4.910127, 3.081783, 1.262067, 1.098938, 0.560991, 0.079712, 3.281434, 9.119178, 0.102763, 132.013947, 0.405878),
    "Mg": (4.708971, 1.194814, 1.558157, 1.170413, 3.239403, 0.126842, 4.875207, 108.506081, 0.111516, 48.292408, 1.928171),
    "Al": (4.730796, 2.313951, 1.54198, 1.117564, 3.154754, 0.139509, 3.628931, 43.051167, 0.09596, 108.932388, 1.555918),
    "Si": (5.275329, 3.191038, 1.511514, 1.356849, 2.519114, 0.145073, 2.631338, 33.730728, 0.081119, 86.288643, 1.170087),
    "P": (1.950541, 4.14693, 1.49456, 1.522042, 5.729711, 0.155233, 0.908139, 27.044952, 0.07128, 67.520187, 1.981173),
    "S": (6.372157, 5.154568, 1.473732, 1.635073, 1.209372, 0.154722, 1.514347, 22.092527, 0.061373, 55.445175, 0.646925),
    "Cl": (1.446071, 6.870609, 6.151801, 1.750347, 0.634168, 0.146773, 0.052357, 1.193165, 18.343416, 46.398396, 0.401005),
    "K": (8.163991, 7.146945, 1.07014, 0.877316, 1.486434, 0.253614, 12.816323, 0.808945, 210.327011, 39.597652, 0.052821),
    "Ca": (8.593655, 1.477324, 1.436254, 1.182839, 7.113258, 0.196255, 10.460644, 0.041891, 81.390381, 169.847839, 0.688098),
    "Ti": (9.818524, 1.522646, 1.703101, 1.768774, 7.082555, 0.102473, 8.001879, 0.029763, 39.885422, 120.157997, 0.532405),
    "V": (10.473575, 1.547881, 1.986381, 1.865616, 7.05625, 0.067744, 7.08194, 0.02604, 31.909672, 108.022842, 0.474882),
    "Cr": (11.007069, 1.555477, 2.985293, 1.347855, 7.034779, 0.06551, 6.366281, 0.023987, 23.244839, 105.774498, 0.429369),
    "Mn": (11.709542, 1.733414, 2.673141, 2.023368, 7.00318, -0.147293, 5.59712, 0.0178, 21.78842, 89.517914, 0.383054),
    "Fe": (12.311098, 1.876623, 3.066177, 2.070451, 6.975185, -0.304931, 5.009415, 0.014461, 18.74304, 82.767876, 0.346506),
    "Co": (12.91451, 2.481908, 3.466894, 2.106351, 6.960892, -0.936572, 4.507138, 0.009126, 16.438129, 76.98732, 0.314418),
    "Ni": (13.521865, 6.947285, 3.866028, 2.1359, 4.284731, -2.762697, 4.077277, 0.286763, 14.622634, 71.96608, 0.004437),
    "Cu": (14.014192, 4.784577, 5.056806, 1.457971, 6.932996, -3.254477, 3.73828, 0.003744, 13.034982, 72.554794, 0.265666),
    "Zn": (14.741002, 6.907748, 4.642337, 2.191766, 38.424042, -36.915829, 3.388232, 0.243315, 11.903689, 63.31213, 0.000397),
    "Ga": (15.758946, 6.841123, 4.121016, 2.714681, 2.395246, -0.847395, 3.121754, 0.226057, 12.482196, 66.203621, 0.007238),
    "Ge": (16.540613, 1.5679, 3.727829, 3.345098, 6.785079, 0.018726, 2.866618, 0.012198, 13.432163, 58.866047, 0.210974),
    "Se": (17.354071, 4.653248, 4.259489, 4.136455, 6.749163, -3.160982, 2.349787, 0.00255, 15.57946, 45.181202, 0.177432),
    "Rb": (8.123134, 2.138042, 6.761702, 1.156051, 17.679546, 1.139548, 15.142385, 33.542667, 0.129372, 224.132507, 1.713368),
    "Sr": (17.730219, 9.795867, 6.099763, 2.620025, 0.600053, 1.140251, 1.56306, 14.310868, 0.120574, 135.771317, 0.120574),
    "Zr": (17.859772, 10.911038, 5.821115, 3.512513, 0.746965, 1.124859, 1.310692, 12.319285, 0.104353, 91.777542, 0.104353),
    "Nb": (17.958399, 12.063054, 5.007015, 3.287667, 1.531019, 1.123452, 1.21159, 12.246687, 0.098615, 75.011948, 0.098615),
    "Mo": (6.236218, 17.987711, 12.973127, 3.451426, 0.210899, 1.10877, 0.09078, 1.10831, 11.46872, 66.684151, 0.09078),
    "Ag": (6.073874, 17.155437, 4.173344, 0.852238, 17.988686, 0.756603, 0.055333, 7.896512, 28.443739, 110.376106, 0.716809),
    "Sn": (19.325171, 6.281571, 4.498866, 1.856934, 17.917318, 0.119024, 6.118104, 0.036915, 32.529045, 95.037186, 0.565651),
    "Te": (6.660302, 6.940756, 19.847015, 1.557175, 17.802427, -0.806668, 33.031654, 0.02575, 5.065547, 84.101616, 0.48766),
    "Cs": (17.418674, 8.314444, 10.323193, 1.383834, 19.876251, -2.322802, 0.399828, 0.016872, 25.605827, 233.339676, 3.826915),
    "Ba": (19.747343, 17.368477, 10.465718, 2.592602, 11.003653, -5.183497, 3.481823, 0.371224, 21.226641, 173.834274, 0.010719),
    "La": (19.966019, 27.329655, 11.018425, 3.086696, 17.335455, -21.745489, 3.197408, 0.003446, 19.955492, 141.381973, 0.341817),
    "Ce": (17.355122, 43.988499, 20.54665, 3.13067, 11.353665, -38.386017, 0.328369, 0.002047, 3.088196, 134.907654, 18.83296),
    "Pb": (16.419567, 32.73859, 6.530247, 2.342742, 19.916475, 4.049824, 0.105499, 1.055049, 25.02589, 80.906593, 6.664449),
    "Bi": (16.282274, 32.725136, 6.678302, 2.69475, 20.576559, 4.040914, 0.10118, 1.002287, 25.714146, 77.057549, 6.291882),
}

#: network formers used for Qn and bridging/non-bridging oxygen by default (those present).
DEFAULT_FORMERS = ("Si", "P", "B", "Ge", "Al")
#: network modifiers: left out of the default X-O-Y bridging pairs and angles.
MODIFIERS = ("H", "Li", "Na", "K", "Rb", "Cs", "Mg", "Ca", "Sr", "Ba")


# --------------------------------------------------------------------------------------------- inputs
def as_frames(obj: Any) -> Iterable[Frame]:
    """Frame / ase.Atoms / pymatgen Structure / iterable of them -> iterable of Frames."""
    if isinstance(obj, Frame):
        return [obj]
    if hasattr(obj, "get_positions") or hasattr(obj, "lattice"):
        return [Frame.from_atoms(obj)]
    if isinstance(obj, (str, bytes)):
        from mlipflow.analysis.io import iter_frames

        return iter_frames(obj)
    return (f if isinstance(f, Frame) else Frame.from_atoms(f) for f in obj)


def _symbols(frame: Frame) -> np.ndarray:
    if frame.symbols is None:
        raise UserError("the frame has no element symbols (only LAMMPS types)",
                        "give a type map, e.g. --types 1=Fe,2=Na,3=P,4=O")
    return np.asarray(frame.symbols).astype(str)


def pair_key(a: str, b: str) -> str:
    return f"{a}-{b}"


def density_g_cm3(frame: Frame | Any) -> float:
    """Mass density in g/cm³ (atomic masses from ase.data)."""
    from ase.data import atomic_masses

    fr = next(iter(as_frames(frame)))
    mass = atomic_masses[fr.numbers].sum()  # amu
    return float(mass * 1.66053906660 / fr.volume)  # amu/Å^3 -> g/cm^3


def _check_cell(cell) -> None:
    if abs(np.linalg.det(np.asarray(cell, dtype=float))) < 1e-9:
        raise UserError("the structure has no cell (volume 0); the analysis needs a periodic box",
                        "use a file with the simulation box (LAMMPS dump/data, extxyz Lattice=..., POSCAR)")


def inscribed_radius(cell: np.ndarray) -> float:
    """Half the smallest perpendicular width of the cell: the largest r free of self-images."""
    cell = np.asarray(cell, dtype=float)
    vol = abs(np.linalg.det(cell))
    widths = [vol / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)]
    return 0.5 * min(widths)


# --------------------------------------------------------------------------------------------- neighbours
def neighbor_pairs(frame: Frame, rmax: float, full: bool = False, method: str = "auto"):
    """Pairs of atoms closer than ``rmax`` (periodic).

    Returns ``(i, j, d, vec)`` with ``vec = r_j - r_i`` (minimum image or the explicit image).
    ``full=False``: each pair once with i < j (only possible without self-images; with the
    image method each unordered pair is still listed once per image); ``full=True``: both directions.
    ``method``: ``"auto"``, ``"kdtree"`` (orthorhombic, rmax < half box) or ``"images"``.
    """
    pos = np.asarray(frame.positions, dtype=float)
    cell = np.asarray(frame.cell, dtype=float)
    _check_cell(cell)
    n = len(pos)
    ortho = frame.is_orthorhombic
    L = np.diag(cell).copy()
    use_tree = ortho and rmax < 0.5 * L.min() and all(frame.pbc)
    if method == "kdtree" and not use_tree:
        raise UserError("the periodic kd-tree needs an orthorhombic cell and rmax < L/2", "use method='images'")
    if method == "images":
        use_tree = False
    if use_tree:
        w = np.mod(pos - frame.origin, L)
        w[w >= L] = 0.0  # np.mod can return L for tiny negatives
        tree = cKDTree(w, boxsize=L)
        pairs = tree.query_pairs(rmax, output_type="ndarray")
        i, j = pairs[:, 0], pairs[:, 1]
        vec = w[j] - w[i]
        vec -= L * np.round(vec / L)
        d = np.sqrt(np.einsum("ij,ij->i", vec, vec))
        if full:
            i, j = np.concatenate([i, j]), np.concatenate([j, i])
            vec = np.concatenate([vec, -vec])
            d = np.concatenate([d, d])
        return i, j, d, vec
    # explicit images (triclinic or large rmax)
    inv = np.linalg.inv(cell)
    frac = (pos - frame.origin) @ inv
    frac -= np.floor(frac)
    w = frac @ cell
    vol = abs(np.linalg.det(cell))
    widths = np.array([vol / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)])
    pad = rmax / widths
    nimg = [int(np.ceil(p)) if frame.pbc[k] else 0 for k, p in enumerate(pad)]
    shifts = np.array(list(itertools.product(*(range(-m, m + 1) for m in nimg))), dtype=float)
    rep_frac = (frac[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    keep = np.all((rep_frac >= -pad - 1e-9) & (rep_frac < 1 + pad + 1e-9), axis=1)
    rep_idx = np.nonzero(keep)[0]
    rep_pos = rep_frac[keep] @ cell
    rep_atom = rep_idx % n
    tree_rep = cKDTree(rep_pos)
    tree = cKDTree(w)
    sdm = tree.sparse_distance_matrix(tree_rep, rmax, output_type="ndarray")
    i = sdm["i"].astype(np.int64)
    jr = sdm["j"].astype(np.int64)
    j = rep_atom[jr]
    vec = rep_pos[jr] - w[i]
    d = np.sqrt(np.einsum("ij,ij->i", vec, vec))
    ok = d > 1e-8  # drop each atom paired with itself (zero shift); sparse_distance_matrix drops d == 0 anyway
    i, j, vec, d = i[ok], j[ok], vec[ok], d[ok]
    if not full:
        half = i < j
        # self-image pairs (i == j, non-zero shift) appear twice (+shift, -shift): keep one
        selfimg = (i == j) & ((vec[:, 0] > 0) | ((vec[:, 0] == 0) & ((vec[:, 1] > 0) | ((vec[:, 1] == 0) & (vec[:, 2] > 0)))))
        m = half | selfimg
        i, j, vec, d = i[m], j[m], vec[m], d[m]
    return i, j, d, vec


# --------------------------------------------------------------------------------------------- g(r)
@dataclass
class RDF:
    """Radial distribution functions averaged over frames."""

    r: np.ndarray
    edges: np.ndarray
    species: list[str]
    g_total: np.ndarray
    partials: dict[str, np.ndarray]
    counts: dict[str, float]  # mean number of atoms of each species per frame
    rho: float  # mean number density, atoms/Å^3
    n_frames: int
    method: str = "kdtree"

    @property
    def concentrations(self) -> dict[str, float]:
        tot = sum(self.counts.values())
        return {s: c / tot for s, c in self.counts.items()}

    def partial(self, a: str, b: str) -> np.ndarray:
        """g_ab(r) (symmetric)."""
        k = pair_key(a, b)
        if k in self.partials:
            return self.partials[k]
        k2 = pair_key(b, a)
        if k2 in self.partials:
            return self.partials[k2]
        raise KeyError(f"no partial {a}-{b}; species are {self.species}")

    def running_cn(self, a: str, b: str) -> np.ndarray:
        """Running coordination number of b around a: 4π ρ_b ∫ r² g_ab dr (cumulative, at bin upper edges)."""
        rho_b = self.rho * self.concentrations[b] * (1 - (1.0 / self.counts[b] if a == b else 0.0))
        shell = 4.0 / 3.0 * np.pi * (self.edges[1:] ** 3 - self.edges[:-1] ** 3)
        return np.cumsum(self.partial(a, b) * shell * rho_b)

    def to_dict(self) -> dict[str, Any]:
        return {"r": self.r.tolist(), "g_total": self.g_total.tolist(),
                "partials": {k: v.tolist() for k, v in self.partials.items()}, "rho": self.rho,
                "n_frames": self.n_frames, "counts": self.counts}


class RDFAccumulator:
    """Accumulate pair counts frame by frame (streaming); :meth:`result` gives the :class:`RDF`."""

    def __init__(self, rmax: float | None = None, dr: float = 0.02, species: Sequence[str] | None = None,
                 method: str = "auto"):
        self.rmax = rmax
        self.dr = dr
        self.species = list(species) if species else None
        self.method = method
        self._counts = None
        self._norm = None
        self._norm_tot = 0.0
        self._counts_tot = None
        self._n = 0
        self._natoms: dict[str, float] = {}
        self._rho = 0.0
        self._used_method = None

    def add(self, frame: Frame) -> None:
        _check_cell(frame.cell)
        sym = _symbols(frame)
        if self.species is None:
            self.species = list(dict.fromkeys(sym.tolist()))
        sp_index = {s: k for k, s in enumerate(self.species)}
        try:
            t = np.array([sp_index[s] for s in sym])
        except KeyError as exc:
            raise UserError(f"species {exc.args[0]} not in {self.species}") from None
        ns = len(self.species)
        if self.rmax is None:
            self.rmax = min(10.0, inscribed_radius(frame.cell) * 0.999)
        if self._counts is None:
            self.nbins = int(np.ceil(self.rmax / self.dr - 1e-9))
            self.edges = np.linspace(0.0, self.nbins * self.dr, self.nbins + 1)
            self._counts = np.zeros((ns, ns, self.nbins))
            self._norm = np.zeros((ns, ns))
            self._counts_tot = np.zeros(self.nbins)
        rmax_eff = self.edges[-1]
        i, j, d, _ = neighbor_pairs(frame, rmax_eff, full=False, method=self.method)
        self._used_method = "kdtree" if (frame.is_orthorhombic and rmax_eff < 0.5 * np.diag(frame.cell).min()
                                         and self.method != "images") else "images"
        b = (d / self.dr).astype(np.int64)
        ok = b < self.nbins
        b, ti, tj = b[ok], t[i[ok]], t[j[ok]]
        flat = np.bincount((ti * ns + tj) * self.nbins + b, minlength=ns * ns * self.nbins).reshape(ns, ns, self.nbins)
        self._counts += flat + flat.transpose(1, 0, 2)  # ordered pairs both ways
        counts = np.bincount(t, minlength=ns).astype(float)
        vol = frame.volume
        self._norm += (np.outer(counts, counts) - np.diag(counts)) / vol
        n = counts.sum()
        self._norm_tot += n * (n - 1) / vol
        self._n += 1
        for s, c in zip(self.species, counts):
            self._natoms[s] = self._natoms.get(s, 0.0) + c
        self._rho += n / vol

    def result(self) -> RDF:
        if self._n == 0:
            raise UserError("no frames to analyse", "check the trajectory and the frame selection")
        shell = 4.0 / 3.0 * np.pi * (self.edges[1:] ** 3 - self.edges[:-1] ** 3)
        partials = {}
        ns = len(self.species)
        for a in range(ns):
            for b in range(a, ns):
                norm = self._norm[a, b]
                g = self._counts[a, b] / (norm * shell) if norm > 0 else np.zeros(self.nbins)
                partials[pair_key(self.species[a], self.species[b])] = g
        g_tot = self._counts.sum(axis=(0, 1)) / (self._norm_tot * shell)
        r = 0.5 * (self.edges[1:] + self.edges[:-1])
        return RDF(r=r, edges=self.edges, species=list(self.species), g_total=g_tot, partials=partials,
                   counts={s: c / self._n for s, c in self._natoms.items()}, rho=self._rho / self._n,
                   n_frames=self._n, method=self._used_method or "kdtree")


def rdf(frames: Any, rmax: float | None = None, dr: float = 0.02, species: Sequence[str] | None = None,
        method: str = "auto") -> RDF:
    """Partial and total g(r) averaged over ``frames`` (streamed).

    ``rmax`` defaults to min(10 Å, inscribed radius of the first cell). Larger values are allowed
    (explicit images), see the module docstring.
    """
    acc = RDFAccumulator(rmax=rmax, dr=dr, species=species, method=method)
    for fr in as_frames(frames):
        acc.add(fr)
    return acc.result()


def _gauss_smooth(y: np.ndarray, sigma_bins: float) -> np.ndarray:
    """Gaussian smoothing (edge values repeated), numpy only."""
    if sigma_bins < 0.5:
        return y
    h = int(np.ceil(4 * sigma_bins))
    x = np.arange(-h, h + 1)
    k = np.exp(-0.5 * (x / sigma_bins) ** 2)
    k /= k.sum()
    pad = np.concatenate([np.full(h, y[0]), y, np.full(h, y[-1])])
    return np.convolve(pad, k, mode="valid")


def _peaks(y: np.ndarray, height: float, prominence: float) -> list[int]:
    """Local maxima with y >= height and topographic prominence >= prominence (as scipy.signal.find_peaks)."""
    n = len(y)
    cand = [i for i in range(1, n - 1) if y[i] > y[i - 1] and y[i] >= y[i + 1]]
    out = []
    for p in cand:
        if y[p] < height:
            continue
        lo = p
        while lo > 0 and y[lo - 1] <= y[p]:
            lo -= 1
        hi = p
        while hi < n - 1 and y[hi + 1] <= y[p]:
            hi += 1
        base = max(y[lo:p + 1].min(), y[p:hi + 1].min())
        if y[p] - base >= prominence:
            out.append(p)
    return out


def first_minimum(r: np.ndarray, g: np.ndarray, sigma: float = 0.1) -> float | None:
    """r of the first minimum after the first peak of g(r), or None.

    g is first smoothed with a Gaussian of width ``sigma`` Å (so that the split first shell of
    a distorted crystal polyhedron, e.g. Fe-O 2.06-2.25 Å in olivine, counts as one peak; MD
    g(r) of glasses are already broader). The first peak is the first local maximum with
    g > 1 and a prominence of at least 10 % of max(g); the minimum is the lowest point
    between it and the next such peak (or the end of the range).
    """
    g = np.asarray(g, dtype=float)
    if not np.any(g > 0):
        return None
    dr = float(r[1] - r[0]) if len(r) > 1 else 1.0
    gs = _gauss_smooth(g, sigma / dr) if sigma > 0 else g
    peaks = _peaks(gs, height=1.0, prominence=0.1 * gs.max())
    if len(peaks) == 0:
        return None
    p0 = peaks[0]
    p1 = peaks[1] if len(peaks) > 1 else len(gs) - 1
    if p1 <= p0 + 1:
        return None
    m = p0 + int(np.argmin(gs[p0:p1 + 1]))
    if m >= len(gs) - 1:
        return None
    return float(r[m])


# --------------------------------------------------------------------------------------------- cutoffs
def parse_cutoffs(items: Sequence[str] | Mapping | None) -> dict[tuple[str, str], float]:
    """``["Fe-O=2.8", "P-O=2.0"]`` or ``{"Fe-O": 2.8}`` -> {("Fe", "O"): 2.8}."""
    from ase.data import atomic_numbers

    out: dict[tuple[str, str], float] = {}
    if not items:
        return out
    if isinstance(items, Mapping):
        pairs = [(k if isinstance(k, str) else "-".join(k), v) for k, v in items.items()]
    else:
        pairs = []
        for it in items:
            for part in str(it).split(","):
                part = part.strip()
                if not part:
                    continue
                if "=" not in part:
                    raise UserError(f"bad cutoff {part!r}", "write it as Fe-O=2.8 (Å)")
                k, v = part.split("=", 1)
                pairs.append((k, v))
    for k, v in pairs:
        ab = k.strip().split("-")
        if len(ab) != 2 or any(x not in atomic_numbers for x in ab):
            raise UserError(f"bad cutoff pair {k!r}", "write it as Fe-O=2.8 with element symbols")
        try:
            val = float(v)
        except (TypeError, ValueError):
            raise UserError(f"bad cutoff value {v!r} for {k}", "give a distance in Å, e.g. Fe-O=2.8") from None
        if val <= 0:
            raise UserError(f"cutoff for {k} must be positive (got {val})")
        out[(ab[0], ab[1])] = val
    return out


def _default_cn_pairs(species: Sequence[str]) -> list[tuple[str, str]]:
    if "O" in species:
        return [(s, "O") for s in species if s != "O"] + [("O", "O")]
    return [(a, b) for a in species for b in species]


def resolve_cutoffs(rdf_res: RDF | None, pairs: Sequence[tuple[str, str]], explicit: Mapping | None = None,
                    ) -> dict[tuple[str, str], dict[str, Any]]:
    """Cutoff per pair: explicit (either order) or the first minimum of g_ab(r).

    Returns {(a, b): {"cutoff": float | None, "source": "explicit" | "first_min" | "none"}}.
    """
    explicit = dict(explicit or {})
    out = {}
    for a, b in pairs:
        if (a, b) in explicit or (b, a) in explicit:
            out[(a, b)] = {"cutoff": float(explicit.get((a, b), explicit.get((b, a)))), "source": "explicit"}
            continue
        rc = None
        if rdf_res is not None and a in rdf_res.species and b in rdf_res.species:
            rc = first_minimum(rdf_res.r, rdf_res.partial(a, b))
        out[(a, b)] = {"cutoff": rc, "source": "first_min" if rc is not None else "none"}
    return out


def _cutoff_matrix(species: Sequence[str], cutoffs: Mapping[tuple[str, str], float]) -> np.ndarray:
    """Symmetric species x species matrix of cutoffs (0: not bonded)."""
    idx = {s: k for k, s in enumerate(species)}
    m = np.zeros((len(species), len(species)))
    for (a, b), rc in cutoffs.items():
        if rc is None or a not in idx or b not in idx:
            continue
        m[idx[a], idx[b]] = m[idx[b], idx[a]] = float(rc)
    return m


def bonded_pairs(frame: Frame, cutoffs: Mapping[tuple[str, str], float]):
    """Directed bonded pairs (both directions) with d < cutoff of their species pair.

    Returns ``(i, j, d, vec, symbols)``.
    """
    sym = _symbols(frame)
    species = list(dict.fromkeys(sym.tolist()))
    cm = _cutoff_matrix(species, cutoffs)
    if cm.max() <= 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0), np.zeros((0, 3)), sym
    idx = {s: k for k, s in enumerate(species)}
    t = np.array([idx[s] for s in sym])
    i, j, d, vec = neighbor_pairs(frame, float(cm.max()), full=True)
    ok = d < cm[t[i], t[j]]
    return i[ok], j[ok], d[ok], vec[ok], sym


# --------------------------------------------------------------------------------------------- coordination
def coordination(frames: Any, cutoffs: Mapping[tuple[str, str], float],
                 pairs: Sequence[tuple[str, str]] | None = None) -> dict[str, dict[str, Any]]:
    """Coordination numbers: for pair "A-B", number of B within cutoff of each A atom.

    Returns {"A-B": {"cutoff", "mean", "distribution": {"n": fraction}, "n_centres"}} pooled over frames.
    """
    pairs = list(pairs) if pairs is not None else [k for k, v in cutoffs.items() if v]
    hist: dict[tuple[str, str], dict[int, int]] = {p: {} for p in pairs}
    for fr in as_frames(frames):
        i, j, d, vec, sym = bonded_pairs(fr, cutoffs)
        n = fr.n_atoms
        for a, b in pairs:
            rc = cutoffs.get((a, b), cutoffs.get((b, a)))
            if not rc:
                continue
            centres = np.nonzero(sym == a)[0]
            if len(centres) == 0:
                continue
            m = (sym[i] == a) & (sym[j] == b) & (d < rc)
            cn = np.bincount(i[m], minlength=n)[centres]
            for v, c in zip(*np.unique(cn, return_counts=True)):
                hist[(a, b)][int(v)] = hist[(a, b)].get(int(v), 0) + int(c)
    out = {}
    for a, b in pairs:
        h = hist[(a, b)]
        tot = sum(h.values())
        rc = cutoffs.get((a, b), cutoffs.get((b, a)))
        if not tot:
            continue
        mean = sum(k * v for k, v in h.items()) / tot
        out[pair_key(a, b)] = {"cutoff": rc, "mean": mean,
                               "distribution": {str(k): h[k] / tot for k in sorted(h)}, "n_centres": tot}
    return out


# --------------------------------------------------------------------------------------------- bridging, Qn
def _neighbors_by_centre(i: np.ndarray, j: np.ndarray, n: int):
    order = np.argsort(i, kind="stable")
    i, j = i[order], j[order]
    starts = np.searchsorted(i, np.arange(n + 1))
    return j, starts, order


def bridging(frames: Any, cutoffs: Mapping[tuple[str, str], float], formers: Sequence[str] | None = None,
             bridge_species: Sequence[str] | None = None, anion: str = "O") -> dict[str, Any]:
    """Bridging statistics, Qn and oxygen speciation.

    * ``bridging["X-O-Y"]``: mean number, per X atom, of (O, Y) with O bonded to both X and that
      Y atom (Y ≠ the X atom itself), i.e. "X-O-Y bonds per X". An O bonded to k cations counts
      every pair of them. Bonds are X-O and Y-O distances below the X-O / Y-O cutoffs.
    * ``qn[X]`` for each former X: fraction of X with n bridging O (O bonded to X and to at least
      one other former atom), keys "Q0".."Qmax", plus "mean_n".
    * ``oxygen``: fraction of O bonded to 0 ("free"), 1 ("NBO"), 2 ("BO") or ≥3 ("tri") formers.
    * ``bridging_oxygens_per_former["X-O-Y"]`` (X a former): the convention of the NaFePO4
      paper's Table 1 ("P–O–P and P–O–Fe bonds per P atom"). X-O-X: bridging linkages per X, each
      counted once although two X share it (an O bonded to k X atoms makes k(k-1)/2 linkages),
      i.e. half the path count above for two-fold O. X-O-Y (Y ≠ X): per X, the number of its O
      neighbours bonded to at least one Y, however many Y that O has.
    """
    totals: dict[str, float] = {}
    published: dict[str, float] = {}
    centres: dict[str, int] = {}
    qn_hist: dict[str, dict[int, int]] = {}
    ox_hist = {"free": 0, "NBO": 0, "BO": 0, "tri": 0}
    used_formers: list[str] = []
    used_bridge: list[str] = []
    for fr in as_frames(frames):
        sym = _symbols(fr)
        present = list(dict.fromkeys(sym.tolist()))
        fset = [s for s in (formers if formers is not None else DEFAULT_FORMERS) if s in present]
        if bridge_species is not None:
            bset = [s for s in bridge_species if s in present]
        else:  # non-modifier cations that have a cation-O cutoff
            bset = [s for s in present if s != anion and s not in MODIFIERS
                    and (cutoffs.get((s, anion)) or cutoffs.get((anion, s)) or s in fset)]
        used_formers, used_bridge = fset, bset
        cat_cut = {(s, anion): cutoffs.get((s, anion), cutoffs.get((anion, s))) for s in set(bset) | set(fset)}
        cat_cut = {k: v for k, v in cat_cut.items() if v}
        missing = [s for s in set(bset) | set(fset) if (s, anion) not in cat_cut]
        if missing:
            raise UserError(f"no {'/'.join(missing)}-{anion} cutoff for the bridging analysis",
                            f"give one, e.g. --cutoff {missing[0]}-{anion}=2.2")
        i, j, d, vec, _ = bonded_pairs(fr, cat_cut)
        n = fr.n_atoms
        m = sym[i] == anion  # O -> cation
        oi, cj = i[m], j[m]
        nb, starts, _ = _neighbors_by_centre(oi, cj, n)
        is_former = np.isin(sym, fset)
        # per-O former count
        nform_o = np.zeros(n, dtype=np.int64)
        np.add.at(nform_o, oi, is_former[cj].astype(np.int64))
        oidx = np.nonzero(sym == anion)[0]
        for o in oidx:
            k = nform_o[o]
            ox_hist["free" if k == 0 else "NBO" if k == 1 else "BO" if k == 2 else "tri"] += 1
        # X-O-Y counts per X atom
        per_atom = {}
        for o in oidx:
            nbrs = nb[starts[o]:starts[o + 1]]
            if len(nbrs) < 2:
                continue
            for x in nbrs:
                for y in nbrs:
                    if x == y:
                        continue
                    key = (sym[x], sym[y])
                    per_atom.setdefault(key, np.zeros(n))[x] += 1
        # the published convention: linkages once; O neighbours of X bonded to >= 1 Y
        link: dict[tuple[str, str], float] = {}
        for o in oidx:
            kinds = sym[nb[starts[o]:starts[o + 1]]]
            if len(kinds) < 2:
                continue
            names, counts = np.unique(kinds, return_counts=True)
            for x, cx in zip(names.tolist(), counts.tolist()):
                for y in names.tolist():
                    if y == x:
                        link[(x, x)] = link.get((x, x), 0.0) + cx * (cx - 1) / 2
                    else:
                        link[(x, y)] = link.get((x, y), 0.0) + cx
        for x in bset:
            nx = int(np.sum(sym == x))
            for y in bset:
                k = pair_key(x, f"{anion}-{y}")
                arr = per_atom.get((x, y))
                totals[k] = totals.get(k, 0.0) + (float(arr.sum()) if arr is not None else 0.0)
                centres[k] = centres.get(k, 0) + nx
                if x in fset:
                    published[k] = published.get(k, 0.0) + link.get((x, y), 0.0)
        # Qn: bridging O of each former = O neighbours of X with >= 2 former neighbours
        m2 = np.isin(sym[i], fset) & (sym[j] == anion)
        fx, oj = i[m2], j[m2]
        bo = nform_o[oj] >= 2
        nbo_per_x = np.bincount(fx[bo], minlength=n)
        for x in fset:
            xs = np.nonzero(sym == x)[0]
            h = qn_hist.setdefault(x, {})
            for v, c in zip(*np.unique(nbo_per_x[xs], return_counts=True)):
                h[int(v)] = h.get(int(v), 0) + int(c)
    bridging_out = {k: totals[k] / centres[k] for k in totals if centres[k]}
    per_former = {k: published[k] / centres[k] for k in published if centres[k]}
    qn = {}
    for x, h in qn_hist.items():
        tot = sum(h.values())
        if not tot:
            continue
        d = {f"Q{k}": h.get(k, 0) / tot for k in range(0, max(max(h), 4) + 1)}
        d["mean_n"] = sum(k * v for k, v in h.items()) / tot
        qn[x] = d
    ntot = sum(ox_hist.values())
    oxygen = {k: (v / ntot if ntot else 0.0) for k, v in ox_hist.items()}
    return {"bridging": bridging_out, "bridging_oxygens_per_former": per_former, "qn": qn, "oxygen": oxygen,
            "formers": used_formers, "bridge_species": used_bridge}


# --------------------------------------------------------------------------------------------- angles
def _parse_triplet(t) -> tuple[str, str, str]:
    if isinstance(t, str):
        t = t.split("-")
    if len(t) != 3:
        raise UserError(f"bad angle triplet {t!r}", "write it as O-P-O (centre in the middle)")
    return tuple(t)  # type: ignore[return-value]


def bond_angles(frames: Any, cutoffs: Mapping[tuple[str, str], float], triplets: Sequence | None = None,
                bins: int = 180) -> dict[str, dict[str, Any]]:
    """Bond-angle distributions A-B-C (B the centre; A and C bonded to B within the B-A / B-C cutoffs).

    Returns {"A-B-C": {"mean", "std", "n", "edges", "density"}} (degrees; density integrates to 1).
    Default triplets: O-X-O for every cation X with an X-O cutoff, and X-O-Y for non-modifier cations.
    """
    edges = np.linspace(0.0, 180.0, bins + 1)
    hists: dict[str, np.ndarray] = {}
    sums: dict[str, list[float]] = {}
    trip_list = None
    for fr in as_frames(frames):
        sym = _symbols(fr)
        present = list(dict.fromkeys(sym.tolist()))
        if trip_list is None:
            if triplets is None:
                cats = [s for s in present if s != "O" and (cutoffs.get((s, "O")) or cutoffs.get(("O", s)))]
                net = [s for s in cats if s not in MODIFIERS]
                trip_list = [("O", x, "O") for x in cats]
                trip_list += [(x, "O", y) for k, x in enumerate(net) for y in net[k:]]
            else:
                trip_list = [_parse_triplet(t) for t in triplets]
        i, j, d, vec, _ = bonded_pairs(fr, cutoffs)
        for a, b, c in trip_list:
            key = f"{a}-{b}-{c}"
            rc_ba = cutoffs.get((b, a), cutoffs.get((a, b)))
            rc_bc = cutoffs.get((b, c), cutoffs.get((c, b)))
            if not rc_ba or not rc_bc:
                continue
            m = (sym[i] == b) & ((sym[j] == a) | (sym[j] == c))
            ii, jj, vv = i[m], j[m], vec[m]
            order = np.argsort(ii, kind="stable")
            ii, jj, vv = ii[order], jj[order], vv[order]
            uniq, start, cnt = np.unique(ii, return_index=True, return_counts=True)
            angs = []
            for mcount in np.unique(cnt):
                if mcount < 2:
                    continue
                sel = start[cnt == mcount]
                idx = sel[:, None] + np.arange(mcount)[None, :]
                V = vv[idx]  # (nc, m, 3)
                S = sym[jj[idx]]
                p, q = np.triu_indices(mcount, 1)
                v1, v2 = V[:, p], V[:, q]
                s1, s2 = S[:, p], S[:, q]
                ok = ((s1 == a) & (s2 == c)) | ((s1 == c) & (s2 == a))
                cosang = np.einsum("ijk,ijk->ij", v1, v2) / (np.linalg.norm(v1, axis=2) * np.linalg.norm(v2, axis=2))
                angs.append(np.degrees(np.arccos(np.clip(cosang[ok], -1, 1))))
            if angs:
                allang = np.concatenate(angs)
                hists[key] = hists.get(key, np.zeros(bins)) + np.histogram(allang, edges)[0]
                s = sums.setdefault(key, [0.0, 0.0, 0.0])
                s[0] += len(allang)
                s[1] += allang.sum()
                s[2] += (allang ** 2).sum()
    out = {}
    for key, h in hists.items():
        n, s1, s2 = sums[key]
        if n == 0:
            continue
        mean = s1 / n
        out[key] = {"mean": mean, "std": float(np.sqrt(max(s2 / n - mean**2, 0.0))), "n": int(n),
                    "edges": edges.tolist(), "density": (h / (n * (edges[1] - edges[0]))).tolist()}
    return out


# --------------------------------------------------------------------------------------------- S(Q)
def xray_form_factor(symbol: str, q: np.ndarray) -> np.ndarray:
    """f0(Q) of a neutral atom (Waasmaier-Kirfel), Q in Å⁻¹."""
    if symbol not in WAASMAIER_KIRFEL:
        raise UserError(f"no X-ray form factor for {symbol}", f"known: {', '.join(WAASMAIER_KIRFEL)}")
    co = WAASMAIER_KIRFEL[symbol]
    s2 = (np.asarray(q, dtype=float) / (4 * np.pi)) ** 2
    f = np.full_like(s2, co[5])
    for k in range(5):
        f += co[k] * np.exp(-co[6 + k] * s2)
    return f


@dataclass
class SQ:
    """Faber-Ziman total structure factor and its partials."""

    q: np.ndarray
    s: np.ndarray
    partials: dict[str, np.ndarray]
    kind: str
    lorch: bool
    weights: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"q": self.q.tolist(), "s": self.s.tolist(), "kind": self.kind, "lorch": self.lorch}


def structure_factor(rdf_res: RDF, q: np.ndarray | None = None, kind: str = "neutron", lorch: bool = True,
                     scattering_lengths: Mapping[str, float] | None = None) -> SQ:
    """Neutron or X-ray S(Q) (Faber-Ziman) from the partial g_ab(r).

    S_ab(Q) = 1 + 4πρ ∫_0^rmax r² (g_ab(r) - 1) sin(Qr)/(Qr) W(r) dr, with the Lorch window
    W(r) = sin(πr/rmax)/(πr/rmax) (or 1); S(Q) = 1 + Σ_ab c_a c_b w_a w_b (S_ab - 1) / (Σ_a c_a w_a)²
    with w = b_coh (neutron, :data:`NEUTRON_B_FM`) or f0(Q) (X-ray, :data:`WAASMAIER_KIRFEL`).
    """
    if kind not in ("neutron", "xray"):
        raise UserError(f"unknown S(Q) kind {kind!r}", "use neutron or xray")
    q = np.linspace(0.3, 20.0, 1000) if q is None else np.asarray(q, dtype=float)
    r, dr = rdf_res.r, np.diff(rdf_res.edges)
    rmax = rdf_res.edges[-1]
    win = np.sinc(r / rmax) if lorch else np.ones_like(r)  # np.sinc(x) = sin(πx)/(πx)
    kern = np.sinc(np.outer(q, r) / np.pi) * (r**2 * win * dr)[None, :]  # sin(Qr)/(Qr) r² W dr
    c = rdf_res.concentrations
    sp = rdf_res.species
    partial_sq = {}
    for a in sp:
        for b in sp:
            k = pair_key(a, b)
            if pair_key(b, a) in partial_sq:
                partial_sq[k] = partial_sq[pair_key(b, a)]
                continue
            partial_sq[k] = 1.0 + 4 * np.pi * rdf_res.rho * kern @ (rdf_res.partial(a, b) - 1.0)
    if kind == "neutron":
        table = dict(NEUTRON_B_FM)
        table.update(scattering_lengths or {})
        missing = [s for s in sp if s not in table]
        if missing:
            raise UserError(f"no neutron scattering length for {missing}", "pass scattering_lengths={...} (fm)")
        w = {s: np.full_like(q, table[s]) for s in sp}
    else:
        w = {s: xray_form_factor(s, q) for s in sp}
    mean_w = sum(c[s] * w[s] for s in sp)
    s_tot = np.ones_like(q)
    for a in sp:
        for b in sp:
            s_tot += c[a] * c[b] * w[a] * w[b] * (partial_sq[pair_key(a, b)] - 1.0) / mean_w**2
    weights = {s: (float(w[s][0]) if kind == "neutron" else "f0(Q)") for s in sp}
    return SQ(q=q, s=s_tot, partials=partial_sq, kind=kind, lorch=lorch, weights=weights)


# --------------------------------------------------------------------------------------------- all together
def analyze_structure(frames: Any, cutoffs: Mapping | Sequence[str] | None = None, rmax: float | None = None,
                      dr: float = 0.02, formers: Sequence[str] | None = None,
                      bridge_species: Sequence[str] | None = None, angle_triplets: Sequence | None = None,
                      rings: bool = True, ring_formers: Sequence[str] | None = None, max_ring: int = 12,
                      sq: bool = True, q: np.ndarray | None = None, lorch: bool = True,
                      progress: bool = False) -> dict[str, Any]:
    """Everything for the CLI/maker in one streaming pass over ``frames`` plus one per analysis.

    ``frames`` may be a list or a *re-iterable* factory: pass a zero-argument callable that
    returns a fresh iterator (e.g. ``lambda: iter_frames(path)``) to stream a file several
    times without holding it; a plain iterator is materialized into a list.

    Returns a dict with the JSON keys documented in docs/analysis.md plus ``_rdf``/``_sq``
    (objects for plotting; not JSON).
    """
    if callable(frames):
        factory = frames
    else:
        fl = list(as_frames(frames))
        factory = lambda: fl  # noqa: E731
    explicit = parse_cutoffs(cutoffs) if not isinstance(cutoffs, Mapping) or any(
        isinstance(k, str) for k in cutoffs) else dict(cutoffs)
    it = factory()
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="g(r)", unit="frame")
    acc = RDFAccumulator(rmax=rmax, dr=dr)
    first = None
    dens = []
    for fr in it:
        if first is None:
            first = fr
        acc.add(fr)
        dens.append(density_g_cm3(fr))
    g = acc.result()
    pairs = _default_cn_pairs(g.species)
    for (a, b) in explicit:
        if (a, b) not in pairs:
            pairs.append((a, b))
    cut_info = resolve_cutoffs(g, pairs, explicit)
    cutoffs_used = {k: v["cutoff"] for k, v in cut_info.items() if v["cutoff"]}
    coord = coordination(factory(), cutoffs_used, pairs=[k for k in pairs if k in cutoffs_used])
    for k, v in cut_info.items():
        key = pair_key(*k)
        if key in coord:
            coord[key]["cutoff_source"] = v["source"]
        else:
            coord[key] = {"cutoff": v["cutoff"], "cutoff_source": v["source"], "mean": None, "distribution": {}}
    result: dict[str, Any] = {
        "n_frames": g.n_frames, "n_atoms": int(sum(g.counts.values())),
        "composition": {s: int(round(c)) for s, c in g.counts.items()},
        "density_g_cm3": float(np.mean(dens)), "density_g_cm3_std": float(np.std(dens)),
        "number_density_A3": g.rho, "coordination": coord,
    }
    try:
        br = bridging(factory(), cutoffs_used, formers=formers, bridge_species=bridge_species)
        result.update({"bridging": br["bridging"], "bridging_oxygens_per_former": br["bridging_oxygens_per_former"],
                       "qn": br["qn"], "oxygen": br["oxygen"],
                       "formers": br["formers"]})
    except UserError as exc:
        if "O" in g.species:
            log.warning("bridging skipped: %s", exc.problem)
        result.update({"bridging": {}, "bridging_oxygens_per_former": {}, "qn": {}, "oxygen": {}, "formers": []})
    ang = bond_angles(factory(), cutoffs_used, triplets=angle_triplets)
    result["angles"] = {k: {"mean": v["mean"], "std": v["std"], "n": v["n"]} for k, v in ang.items()}
    result["_angles_full"] = ang
    if rings:
        from mlipflow.analysis.rings import ring_statistics

        rf = ring_formers if ring_formers is not None else (result.get("formers") or [])
        if rf and "O" in g.species:
            result["rings"] = ring_statistics(factory(), cutoffs_used, formers=rf, max_size=max_ring)
        else:
            result["rings"] = {}
    result["cutoffs"] = {pair_key(*k): v for k, v in cutoffs_used.items()}
    result["_rdf"] = g
    if sq:
        try:
            result["_sq"] = {"neutron": structure_factor(g, q=q, kind="neutron", lorch=lorch)}
            result["_sq"]["xray"] = structure_factor(g, q=q, kind="xray", lorch=lorch)
            sn = result["_sq"]["neutron"]
            result["sq_neutron_peak_q"] = float(sn.q[np.argmax(sn.s)])
        except UserError as exc:
            log.warning("S(Q) skipped: %s", exc.problem)
    return result


def to_json_dict(result: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the non-JSON objects (keys starting with '_') and convert numpy scalars/arrays."""

    def conv(x):
        if isinstance(x, Mapping):
            return {str(k): conv(v) for k, v in x.items() if not str(k).startswith("_")}
        if isinstance(x, (list, tuple)):
            return [conv(v) for v in x]
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, np.generic):
            return x.item()
        return x

    return conv(result)
