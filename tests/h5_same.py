#!/usr/bin/env python3
"""Exits 0 when two HDF5 files hold the same groups, datasets and attributes, bit for bit
(NaN equals NaN: the raw bytes are compared), except the names given with --ignore (datasets or
attributes, by base name, e.g. wall_seconds). Dimension-scale bookkeeping (object references)
is compared by the names it points to. With --rtol R, floating-point datasets need only agree to
R relative to each dataset's largest magnitude (NaN where the other has NaN). Prints every
difference."""
import argparse
import sys

import h5py
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("a")
p.add_argument("b")
p.add_argument("--ignore", action="append", default=[])
p.add_argument("--rtol", type=float, default=0.0)
args = p.parse_args()
ignored = set(args.ignore)
problems = []


def resolve(f, value):
    # DIMENSION_LIST / REFERENCE_LIST hold references: compare what they point to.
    if isinstance(value, h5py.Reference):
        return f[value].name if value else None
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        return [resolve(f, v) for v in value.ravel()]
    if isinstance(value, np.void):  # REFERENCE_LIST rows: (reference, axis)
        return tuple(resolve(f, v) for v in value)
    if isinstance(value, np.ndarray) and value.dtype.names:
        return [tuple(resolve(f, v) for v in row) for row in value]
    return value


def same(x, y):
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind == "O" or y.dtype.kind == "O":  # variable-length strings
            return x.shape == y.shape and list(x.ravel()) == list(y.ravel())
        return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    return x == y


def close(x, y):
    """Datasets equal to --rtol (floats) or bit for bit (anything else)."""
    x, y = np.asarray(x), np.asarray(y)
    if args.rtol == 0.0 or x.dtype.kind != "f" or x.shape != y.shape or x.dtype != y.dtype:
        return same(x, y)
    if not np.array_equal(np.isnan(x), np.isnan(y)):
        return False
    finite = ~np.isnan(x)
    if not finite.any():
        return True
    scale = np.abs(y[finite]).max()
    return bool(np.all(np.abs(x[finite] - y[finite]) <= args.rtol * scale))


def attrs(fa, fb, oa, ob, where):
    names_a = {n for n in oa.attrs if n not in ignored}
    names_b = {n for n in ob.attrs if n not in ignored}
    if names_a != names_b:
        problems.append(f"{where}: attributes differ: {sorted(names_a ^ names_b)}")
    for n in sorted(names_a & names_b):
        if not same(resolve(fa, oa.attrs[n]), resolve(fb, ob.attrs[n])):
            problems.append(f"{where}: attribute {n} differs")


with h5py.File(args.a, "r") as fa, h5py.File(args.b, "r") as fb:
    def walk(ga, gb):
        attrs(fa, fb, ga, gb, ga.name)
        keys_a = {k for k in ga if k not in ignored}
        keys_b = {k for k in gb if k not in ignored}
        if keys_a != keys_b:
            problems.append(f"{ga.name}: members differ: {sorted(keys_a ^ keys_b)}")
        for k in sorted(keys_a & keys_b):
            a, b = ga[k], gb[k]
            if isinstance(a, h5py.Group) and isinstance(b, h5py.Group):
                walk(a, b)
            elif isinstance(a, h5py.Dataset) and isinstance(b, h5py.Dataset):
                attrs(fa, fb, a, b, a.name)
                if not close(a[()], b[()]):
                    problems.append(f"{a.name}: values differ")
            else:
                problems.append(f"{a.name}: a group in one file, a dataset in the other")
    walk(fa, fb)

for line in problems:
    print(f"h5_same: {args.a} vs {args.b}: {line}")
sys.exit(1 if problems else 0)
