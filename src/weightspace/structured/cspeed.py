"""The C reference timing of structured_fig_speed (spec §8, with the fixes of §11.8).

One model description holds a dense layer y = b + W u and an SSS layer (the stage matrices of the
realisation that approximates the same W), a test input for each and the outputs Python expects.
The C program `csrc/sss_speed.c` reads it, checks both layers against those outputs (absolute
tolerance 1e-3) and times single-vector products of both layers with clock_gettime(CLOCK_MONOTONIC)
after warm-up, in single precision on one thread; it is built with the system C compiler at -O2
and, for parity with the original's build without optimisation flags, at -O0.

Pure part: `description_records` (the arrays of one description, expected outputs included),
`encode_description` (their bytes), `flat_rows` (a result as table rows). I/O boundary:
`compile_program`, `run_program` and `CBenchmark` (builds in a temporary directory);
the compiler is found and run by weightspace.native, whose errors name this benchmark
and the fix.

Description format (version 1): the line ``weightspace-sss-speed 1 le``, then records, each a header
line ``<name> <f32|i32> <rows> <cols>`` followed by rows·cols little-endian 4-byte values (row
major), then the line ``end``. Names are matched exactly; see the C source for the record list.

The original's quirk of timing the dense layer of one model against the SSS layer of another
(spec §11.8) is reproduced by giving a dense matrix wider than the SSS matrix: the SSS layer then
reads the first `cols` entries of the dense layer's input, as the original's checksum did.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from weightspace import native
from weightspace.structured.sss import SSSRealisation

C_SOURCE = Path(__file__).resolve().parent / "csrc" / "sss_speed.c"
FORMAT_LINE = "weightspace-sss-speed 1 le"
RESULT_FORMAT = "weightspace-sss-speed-result 1"
OPT_LEVELS = ("O2", "O0")
DEFAULT_TOLERANCE = 1e-3
STAGE_NAMES = "ABCDEFG"
PURPOSE = "the C reference of structured_fig_speed (structured_speed)"
ALTERNATIVE = "set structured.speed.c_opt_levels to [] to leave the C timing out"


class CSpeedError(RuntimeError):
    """The C speed benchmark could not be run, or its output is not what was expected
    (a failed build raises weightspace.native's errors)."""


# ---------------------------------------------------------------------------------------------
# the description (pure)


def zero_realisation(shape: tuple[int, int]) -> SSSRealisation:
    """The zero matrix as a two-stage realisation that stores nothing: stage 0 takes every input and
    has no outputs, stage 1 has every output and no inputs, and every state is empty (y = b)."""
    rows, cols = (int(v) for v in shape)
    empty = np.zeros((0, 0))
    return SSSRealisation(
        dims_in=(cols, 0),
        dims_out=(0, rows),
        A=(empty, empty),
        B=(np.zeros((0, cols)), empty),
        C=(empty, np.zeros((rows, 0))),
        D=(np.zeros((0, cols)), np.zeros((rows, 0))),
        E=(empty, empty),
        F=(np.zeros((0, cols)), empty),
        G=(empty, np.zeros((rows, 0))),
    )


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64), dtype=np.float32)


def _as_f32_realisation(r: SSSRealisation) -> SSSRealisation:
    """The same realisation with every stage matrix rounded to float32 (held as float64)."""
    mats = {
        name: tuple(_f32(m).astype(np.float64) for m in getattr(r, name))
        for name in STAGE_NAMES
    }
    return SSSRealisation(dims_in=r.dims_in, dims_out=r.dims_out, **mats)


def description_records(
    dense_weight,
    dense_bias,
    realisation: SSSRealisation | None,
    sss_bias,
    dense_input,
    *,
    sss_shape: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """The records of one description, in the order they are written.

    dense_weight (k × n) and dense_bias (k) define the dense layer; `realisation` (None: the zero
    matrix of `sss_shape`) and sss_bias the SSS layer. The SSS layer reads the first `cols` entries of
    dense_input (all of them unless the dense matrix is wider, see the module doc). Every value is
    rounded to float32; the expected outputs are computed in float64 from the rounded values, so the
    C program's only error is its own single-precision arithmetic.
    """
    W = _f32(dense_weight)
    if W.ndim != 2:
        raise ValueError(f"dense weight must be a matrix, got shape {W.shape}")
    k, n = W.shape
    b = _f32(dense_bias).reshape(-1)
    u = _f32(dense_input).reshape(-1)
    if b.size != k or u.size != n:
        raise ValueError(
            f"dense layer {k}×{n} needs a bias of {k} and an input of {n} values, "
            f"got {b.size} and {u.size}"
        )
    if realisation is None:
        if sss_shape is None:
            raise ValueError(
                "give sss_shape for the zero-matrix SSS layer (realisation=None)"
            )
        realisation = zero_realisation(sss_shape)
    rows, cols = realisation.shape
    sb = _f32(sss_bias).reshape(-1)
    if sb.size != rows:
        raise ValueError(
            f"SSS layer has {rows} outputs but its bias has {sb.size} values"
        )
    if cols > n:
        raise ValueError(
            f"SSS layer reads {cols} inputs but the dense input has only {n}"
        )
    su = u[:cols]
    r32 = _as_f32_realisation(realisation)
    records: dict[str, np.ndarray] = {
        "dense_W": W,
        "dense_b": b,
        "dense_u": u,
        "dense_y": _f32(W.astype(np.float64) @ u.astype(np.float64) + b),
        "sss_dims_in": np.asarray(realisation.dims_in, dtype=np.int32),
        "sss_dims_out": np.asarray(realisation.dims_out, dtype=np.int32),
        "sss_causal_dims": np.asarray(realisation.causal_dims, dtype=np.int32),
        "sss_anticausal_dims": np.asarray(realisation.anticausal_dims, dtype=np.int32),
    }
    for k_stage in range(realisation.n_stages):
        for name in STAGE_NAMES:
            records[f"{name}_{k_stage}"] = _f32(getattr(realisation, name)[k_stage])
    records["sss_b"] = sb
    records["sss_u"] = su
    records["sss_y"] = _f32(r32.apply(su.astype(np.float64)) + sb)
    return records


def encode_description(records: dict[str, np.ndarray]) -> bytes:
    """The bytes of a description (format in the module doc); vectors are written as 1 × n."""
    parts = [FORMAT_LINE.encode() + b"\n"]
    for name, arr in records.items():
        if not name.replace("_", "").isalnum() or not name.isascii() or len(name) >= 64:
            raise ValueError(f"bad record name {name!r}")
        arr = np.asarray(arr)
        if arr.dtype == np.float32:
            kind, data = "f32", arr.astype("<f4")
        elif arr.dtype == np.int32:
            kind, data = "i32", arr.astype("<i4")
        else:
            raise ValueError(
                f"record {name!r}: only float32 and int32 arrays, got {arr.dtype}"
            )
        if data.ndim == 1:
            data = data.reshape(1, -1)
        if data.ndim != 2:
            raise ValueError(
                f"record {name!r}: vectors and matrices only, got shape {arr.shape}"
            )
        parts.append(f"{name} {kind} {data.shape[0]} {data.shape[1]}\n".encode())
        parts.append(np.ascontiguousarray(data).tobytes())
    parts.append(b"end\n")
    return b"".join(parts)


def parse_result(stdout: str) -> dict:
    """The JSON result line of the C program (its last non-empty line), checked for completeness."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        raise CSpeedError("the C speed benchmark printed nothing")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise CSpeedError(
            f"the C speed benchmark printed no JSON result line: {lines[-1][:200]!r}"
        ) from exc
    if not isinstance(result, dict) or result.get("format") != RESULT_FORMAT:
        raise CSpeedError(
            f"unexpected result of the C speed benchmark (want format {RESULT_FORMAT!r}): "
            f"{lines[-1][:200]!r}"
        )
    n = result.get("iterations")
    for layer in ("dense", "sss"):
        part = result.get(layer)
        if not isinstance(part, dict) or not isinstance(part.get("timed"), bool):
            raise CSpeedError(f"no {layer!r} part in the C speed benchmark's result")
        want = n if part["timed"] else 0
        if any(len(part.get(key, ())) != want for key in ("median_s", "mean_s")):
            raise CSpeedError(
                f"incomplete {layer!r} timings in the C speed benchmark's result"
            )
    return result


def flat_rows(result: dict) -> list[dict]:
    """One row per (timed layer, iteration): median and mean seconds per product, flops, sizes."""
    rows = []
    for layer in ("dense", "sss"):
        part = result[layer]
        for i, (med, mean) in enumerate(zip(part["median_s"], part["mean_s"])):
            rows.append(
                {
                    "layer": layer,
                    "iteration": i,
                    "seconds_per_matvec": med,
                    "seconds_mean": mean,
                    "flops": part["flops"],
                    "in_features": part["cols"],
                    "max_abs_error": part["max_abs_error"],
                }
            )
    return rows


# ---------------------------------------------------------------------------------------------
# building and running (the I/O boundary)


def compile_program(
    opt: str,
    directory: str | Path,
    *,
    compiler: list[str] | None = None,
    source: str | Path = C_SOURCE,
    timeout: float = 120,
) -> Path:
    """Build the benchmark at optimisation level `opt` ('O2', 'O0', ...) into
    `directory`.

    Raises weightspace.native's CompilerNotFoundError or BuildError (with the compiler's
    output) if it cannot be built."""
    if opt not in ("O0", "O1", "O2", "O3", "Os"):
        raise ValueError(
            f"unknown optimisation level {opt!r}; use O0, O1, O2, O3 or Os"
        )
    return native.compile_c(
        source,
        Path(directory) / f"sss_speed_{opt}",
        purpose=PURPOSE,
        flags=(f"-{opt}", "-std=c11"),
        ldflags=("-lm",),
        compiler=compiler,
        alternative=ALTERNATIVE,
        timeout=timeout,
    )


def run_program(
    binary: str | Path,
    description: str | Path,
    *,
    repeats: int,
    iterations: int,
    warmup: int,
    tolerance: float = DEFAULT_TOLERANCE,
    layers: str = "both",
    pin_cpu: int | None = None,
    timeout: float = 600,
) -> dict:
    """Run a built benchmark on a description file; returns the parsed result.

    layers: "both", "dense" or "sss": which layers to time (both are always checked).
    pin_cpu: run the child on this CPU only (Linux), else leave it to the scheduler.
    """
    if layers not in ("both", "dense", "sss"):
        raise ValueError(f"layers must be 'both', 'dense' or 'sss', got {layers!r}")
    cmd = [
        str(binary),
        str(description),
        str(int(repeats)),
        str(int(iterations)),
        str(int(warmup)),
        repr(float(tolerance)),
        layers,
    ]
    preexec = None
    if pin_cpu is not None:
        if not hasattr(os, "sched_setaffinity"):
            raise CSpeedError("pinning to a CPU needs os.sched_setaffinity (Linux)")
        cpu = int(pin_cpu)

        def preexec():  # runs in the child before exec
            os.sched_setaffinity(0, {cpu})

    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=preexec
    )
    if proc.returncode != 0:
        raise CSpeedError(
            f"the C speed benchmark failed (exit {proc.returncode}) on {description}: "
            f"{proc.stderr.strip()[-3000:] or proc.stdout.strip()[-3000:]}"
        )
    return parse_result(proc.stdout)


class CBenchmark:
    """The C program built at each optimisation level in a temporary directory (removed on close).

    with CBenchmark(("O2", "O0")) as bench:
        results = bench.run(records, repeats=200, iterations=3, warmup=20)   # {"O2": ..., "O0": ...}
    """

    def __init__(
        self,
        opt_levels=OPT_LEVELS,
        *,
        compiler: list[str] | None = None,
        source: str | Path = C_SOURCE,
    ):
        if compiler is None:
            compiler = native.find_compiler(PURPOSE, alternative=ALTERNATIVE)
        self.compiler = list(compiler)
        self._tmp = tempfile.TemporaryDirectory(prefix="sss_speed_")
        self.directory = Path(self._tmp.name)
        self._count = 0
        self.version = native.compiler_version(
            self.compiler, PURPOSE, alternative=ALTERNATIVE
        )
        try:
            self.binaries = {
                opt: compile_program(
                    opt, self.directory, compiler=self.compiler, source=source
                )
                for opt in opt_levels
            }
        except BaseException:
            self.close()
            raise

    def run(
        self, records: dict[str, np.ndarray], opt_levels=None, **kw
    ) -> dict[str, dict]:
        """Write the description once and time it with the build at each level (default: all
        built levels, in build order); kw: see run_program. Returns {level: result}."""
        levels = list(self.binaries) if opt_levels is None else list(opt_levels)
        unknown = [opt for opt in levels if opt not in self.binaries]
        if unknown:
            raise ValueError(
                f"no build at level(s) {unknown}; built: {list(self.binaries)}"
            )
        self._count += 1
        path = self.directory / f"description_{self._count}.bin"
        path.write_bytes(encode_description(records))
        try:
            return {opt: run_program(self.binaries[opt], path, **kw) for opt in levels}
        finally:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> "CBenchmark":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
