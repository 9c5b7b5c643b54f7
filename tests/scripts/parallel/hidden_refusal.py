# Packages that catch the ImportError of their refused C extension in a
# worker (PyYAML: yaml._yaml, simplejson: simplejson._speedups) and go on in
# pure Python: parpy notices, runs such functions in the fallback (where the
# extension loads), and says so once per function.
import sys
import parpy
import simplejson
import yaml

DOC = "items:\n" + "".join(f"  - {{id: {i}, name: item{i}, tags: [a, b]}}\n" for i in range(50))


def load_c(doc):
    # AttributeError in a worker, where yaml has no CSafeLoader
    return yaml.load(doc, Loader=yaml.CSafeLoader), yaml.__with_libyaml__


def with_speedups(x):
    return simplejson.dumps(x, sort_keys=True), simplejson.encoder.c_make_encoder is not None


def where(x):
    # uses neither: stays in the sub-interpreters
    return x * x, parpy.worker_id() is not None


def ranks(ctx):
    # Pure-Python PyYAML is enough here: SPMD ranks, which have no
    # fallback, run with it.
    return yaml.safe_load(yaml.safe_dump({"rank": ctx.rank}))


def ranks_c(ctx):
    return yaml.load(DOC, Loader=yaml.CSafeLoader)


if __name__ == "__main__":
    want = yaml.load(DOC, Loader=yaml.CSafeLoader)
    with parpy.Executor(2) as ex:
        for _ in range(3):
            assert ex.submit(load_c, DOC).result() == (want, True)
        got = list(ex.map(with_speedups, [{"b": i, "a": [i]} for i in range(20)], chunksize=2))
        assert got == [(simplejson.dumps({"b": i, "a": [i]}, sort_keys=True), True) for i in range(20)], got
        assert list(ex.map(where, range(6))) == [(i * i, True) for i in range(6)]
        assert ex.spmd(ranks) == [{"rank": 0}, {"rank": 1}]
        try:
            ex.spmd(ranks_c)
        except ImportError as e:
            print("spmd:", e.name, "have no fallback" in str(e), file=sys.stderr)
    print("hidden refusal OK")
