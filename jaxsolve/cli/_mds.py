"""``jaxsolve mds``: coordinates (N, dim) from a distance matrix (N, N) in a file."""

from __future__ import annotations

import argparse

import numpy as np

from ._errors import CLIError, library_call
from ._io import (
    as_dtype,
    check_output_path,
    load_matrix,
    nonnegative_float,
    positive_float,
    save_matrix,
    use_float64,
)

REFINE_CHOICES = ("smacof", "adam", "none")


def run_mds(args: argparse.Namespace) -> int:
    use_float64(args.dtype == "float64")
    import jaxsolve
    from jaxsolve import transforms

    D = load_matrix(args.distances)
    check_output_path(args.output, "--output", ndim=D.ndim)
    D = as_dtype(D, args.dtype, args.distances)
    n = D.shape[-1]
    if args.dim < 1:
        raise CLIError(f"--dim must be a positive integer; got {args.dim}")
    if args.steps < 0:
        raise CLIError(f"--steps must be >= 0; got {args.steps}")
    mask = None
    if args.mask:
        mask = load_matrix(args.mask)
        if mask.shape[-2:] != (n, n):
            raise CLIError(f"{args.mask}: mask must have shape ({n}, {n}); got {mask.shape}")
        mask = mask.astype(bool)
    if args.nan_missing:
        finite = np.isfinite(D)
        mask = finite if mask is None else (mask & finite)
    if mask is not None and args.refine == "none":
        raise CLIError("--refine none cannot use missing distances; use smacof or adam")
    try:
        transforms.check_distance_matrix(D, mask, squared=args.squared)
    except ValueError as err:
        hint = " (use --nan-missing to treat NaN as missing)" if "finite" in str(err) else ""
        raise CLIError(f"{args.distances}: {err}{hint}") from None
    ref = None
    if args.reference:  # read before the work, so that a bad file fails fast
        ref = load_matrix(args.reference, square=False)
        if ref.shape[-2] != n:
            raise CLIError(f"{args.reference}: expected {n} rows (points); got shape {ref.shape}")
        if ref.shape[-1] != args.dim:
            raise CLIError(
                f"{args.reference}: expected {args.dim} columns (--dim); got shape {ref.shape}"
            )
        ref = as_dtype(ref, args.dtype, args.reference)

    method = None if args.refine == "none" else args.refine
    res = library_call(
        transforms.mds,
        D,
        args.dim,
        mask=mask,
        method=method,
        max_steps=args.steps,
        rtol=args.rtol,
        learning_rate=args.learning_rate,
        squared=args.squared,
        check=False,
    )
    Y = np.asarray(res.Y)
    if args.output:
        save_matrix(args.output, Y)

    normalized = np.atleast_1d(
        np.asarray(
            transforms.stress(
                res.Y, np.sqrt(np.abs(D)) if args.squared else D, mask=mask, normalized=True
            )
        )
    )
    raw = np.atleast_1d(np.asarray(res.stress))
    steps = np.atleast_1d(np.asarray(res.steps))
    rmsd = None
    if ref is not None:
        rmsd = np.atleast_1d(np.asarray(transforms.align(Y, ref, reflection=True, dim=None).rmsd))
    for i, msg in enumerate(res.messages()):
        prefix = f"[{i}] " if raw.size > 1 else ""
        line = (
            f"{prefix}N={n} dim={args.dim}  stress {raw[i]:.4e} (stress-1 "
            f"{normalized[i]:.3e})  steps {int(steps[i])}"
        )
        if rmsd is not None:
            line += f"  RMSD to reference after alignment {rmsd[i]:.3e}"
        print(line)
        print(f"{prefix}status {msg}")
    # Exit 1 when a matrix produced no usable coordinates; informational statuses (NOT_PSD
    # for non-Euclidean input, MAX_STEPS) still wrote the best fit found.
    failed = np.asarray(res.status) >= jaxsolve.Status.DIVERGED
    return 1 if bool(np.any(failed)) else 0


def register(subparsers) -> None:
    mds = subparsers.add_parser(
        "mds",
        help="coordinates (N, dim) from a distance matrix (N, N): classical MDS + SMACOF",
        description=(
            "Recover point coordinates from pairwise distances: classical MDS (exact for "
            "Euclidean distances, up to rotation/reflection/translation), then stress "
            "refinement for noisy or incomplete distances."
        ),
    )
    mds.add_argument("distances", help="D as .npy (N, N) or (B, N, N), .csv or .txt")
    mds.add_argument("-o", "--output", help="write the coordinates here (.npy, .csv or .txt)")
    mds.add_argument("--dim", type=int, default=3, help="coordinates per point (default 3)")
    mds.add_argument(
        "--refine",
        choices=REFINE_CHOICES,
        default="smacof",
        help="stress refinement after classical MDS (default smacof)",
    )
    mds.add_argument("--steps", type=int, default=300, help="max refinement steps (default 300)")
    mds.add_argument(
        "--rtol",
        type=nonnegative_float,
        default=1e-6,
        help="SMACOF stopping tolerance (default 1e-6, as scikit-learn)",
    )
    mds.add_argument(
        "--learning-rate",
        type=positive_float,
        default=0.01,
        help="Adam step as a fraction of the RMS distance (default 0.01)",
    )
    mds.add_argument("--mask", help="boolean (N, N) file: True where a distance is observed")
    mds.add_argument(
        "--nan-missing", action="store_true", help="treat NaN entries of D as missing distances"
    )
    mds.add_argument("--squared", action="store_true", help="D holds squared distances")
    mds.add_argument("--reference", help="true coordinates (N, dim): report the aligned RMSD")
    mds.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="floating type (default float64)",
    )
    mds.set_defaults(run=run_mds)
