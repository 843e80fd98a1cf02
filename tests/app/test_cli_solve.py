"""The ``hvpseries solve`` command."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from hvpseries._app._cli import main
from tests.problems import PROBLEMS
from tests.problems import matrix_with_eigenvalues as _matrix


@pytest.fixture
def matrix_file(tmp_path):
    problem = PROBLEMS["indefinite"]
    path = tmp_path / "a.mtx"
    scipy.io.mmwrite(path, sp.coo_matrix(problem.matrix), symmetry="symmetric")
    rhs = tmp_path / "b.npy"
    np.save(rhs, problem.rhs())
    return problem, path, rhs


def test_matrix_market_abs_inv(matrix_file, tmp_path, capsys) -> None:
    problem, path, rhs = matrix_file
    out = tmp_path / "x.npy"
    code = main(
        [
            "solve",
            str(path),
            "--rhs",
            str(rhs),
            "--damping",
            "0.1",
            "--rtol",
            "1e-10",
            "--out",
            str(out),
            "--method",
            "lanczos",
            "--no-progress",
        ]
    )
    assert code == 0
    x = np.load(out)
    reference = problem.apply_function(lambda t: 1 / (np.abs(t) + 0.1), problem.rhs())
    assert np.linalg.norm(x - reference) <= 1e-8 * np.linalg.norm(reference)
    summary = capsys.readouterr().out
    for word in ("method", "lanczos", "matvecs", "error estimate", "time", "SUCCESS"):
        assert word in summary


@pytest.mark.parametrize(("function", "f"), [("sign", np.sign), ("inv", lambda t: 1 / t)])
def test_npz_and_other_functions(tmp_path, function, f) -> None:
    problem = PROBLEMS["indefinite"]
    path = tmp_path / "a.npz"
    sp.save_npz(path, sp.csr_matrix(problem.matrix))
    out = tmp_path / "x.npy"
    assert (
        main(
            [
                "solve",
                str(path),
                "--function",
                function,
                "--rhs",
                "ones",
                "--rtol",
                "1e-10",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    reference = problem.apply_function(f, np.ones(problem.n))
    assert np.linalg.norm(np.load(out) - reference) <= 1e-7 * np.linalg.norm(reference)


def test_builtin_helmholtz(tmp_path, capsys) -> None:
    out = tmp_path / "x.npy"
    assert main(["solve", "helmholtz2d", "--grid", "12", "--out", str(out), "--rtol", "1e-8"]) == 0
    assert np.load(out).shape == (144,)
    assert "helmholtz2d (n = 144" in capsys.readouterr().out


def test_not_converged_exit_code(matrix_file, tmp_path) -> None:
    _, path, rhs = matrix_file
    out = tmp_path / "x.npy"
    code = main(
        [
            "solve",
            str(path),
            "--rhs",
            str(rhs),
            "--maxiter",
            "2",
            "--rtol",
            "1e-12",
            "--method",
            "lanczos",
            "--out",
            str(out),
        ]
    )
    assert code == 1 and out.exists()


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_bad_inputs(tmp_path, capsys, matrix_file) -> None:
    _, path, rhs = matrix_file
    assert "does not exist" in _error(
        capsys, ["solve", str(tmp_path / "none.mtx"), "--rhs", "ones"]
    )
    garbage = tmp_path / "bad.mtx"
    garbage.write_text("this is not a matrix market file\n")
    assert "cannot read" in _error(capsys, ["solve", str(garbage), "--rhs", "ones"])
    rectangular = tmp_path / "rect.npz"
    sp.save_npz(rectangular, sp.csr_matrix(np.ones((3, 4))))
    assert "square" in _error(capsys, ["solve", str(rectangular), "--rhs", "ones"])
    nonsymmetric = tmp_path / "nonsym.npz"
    sp.save_npz(nonsymmetric, sp.csr_matrix(np.triu(np.ones((4, 4)))))
    assert "not symmetric" in _error(capsys, ["solve", str(nonsymmetric), "--rhs", "ones"])
    assert "no right-hand side" in _error(capsys, ["solve", str(path)])
    short = tmp_path / "short.npy"
    np.save(short, np.ones(3))
    assert "shape" in _error(capsys, ["solve", str(path), "--rhs", str(short)])
    assert "not available" in _error(
        capsys, ["solve", str(path), "--rhs", str(rhs), "--function", "sign", "--method", "cg"]
    )
    assert "damping" in _error(capsys, ["solve", str(path), "--rhs", "ones", "--damping", "-1"])
    txt = tmp_path / "a.txt"
    txt.write_text("1")
    assert "expected a .mtx" in _error(capsys, ["solve", str(txt), "--rhs", "ones"])


@pytest.fixture
def small_file(tmp_path):
    A, _ = _matrix([-4.0, 0.5, 1.0, 2.0, 3.0])
    path = tmp_path / "a.mtx"
    scipy.io.mmwrite(path, sp.coo_matrix(A), symmetry="symmetric")
    return path


@pytest.mark.parametrize(
    ("rhs", "match"),
    [(np.array([1.0, np.nan, 0, 0, 0]), "NaN or infinite"), (np.ones(5) * 1j, "complex")],
    ids=["nan", "complex"],
)
def test_cli_bad_right_hand_sides_exit_2(small_file, tmp_path, capsys, rhs, match) -> None:
    path = tmp_path / "b.npy"
    np.save(path, rhs)
    code = main(["solve", str(small_file), "--rhs", str(path), "--no-progress"])
    assert code == 2
    assert match in capsys.readouterr().err


def test_cli_library_errors_exit_2_and_output_path_is_reported(small_file, tmp_path, capsys):
    out = tmp_path / "x"
    code = main(["solve", str(small_file), "--rhs", "ones", "--out", str(out), "--no-progress"])
    assert code == 0
    assert f"{out}.npy" in capsys.readouterr().out
    assert (tmp_path / "x.npy").exists()
    code = main(
        [
            "solve",
            str(small_file),
            "--rhs",
            "ones",
            "--function",
            "inv-sqrt",
            "--method",
            "chebyshev",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 2
    assert "chebyshev" in capsys.readouterr().err
