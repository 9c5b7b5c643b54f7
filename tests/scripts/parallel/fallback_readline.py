# A function that needs a refusing module falls back, announced once.
import parpy


@parpy.parallel
def uses_readline(x):
    import readline  # noqa: F401  (refuses sub-interpreters)
    return x * 2, parpy.worker_id()


if __name__ == "__main__":
    out = uses_readline.map(range(6))
    assert [v for v, _ in out] == [0, 2, 4, 6, 8, 10], out
    assert all(w is None for _, w in out), out  # not in a sub-interpreter worker
    assert uses_readline.submit(21).result()[0] == 42
    # SPMD ranks have no fallback, and say why (not "use --fallback=process").
    try:
        parpy.spmd(lambda ctx: __import__("readline"))
    except ImportError as e:
        assert e.name == "readline" and "have no fallback" in str(e), e
    else:
        raise AssertionError("spmd() imported readline in a sub-interpreter")
    print("fallback OK")
