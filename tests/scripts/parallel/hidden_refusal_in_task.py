# The package is imported by the task itself, so its extension refuses the
# worker while the task runs: that call, and the rest of its chunk, run
# again in the fallback, where the extension loads.
import parpy


def dumps(x):
    import simplejson
    return simplejson.dumps(x), simplejson.encoder.c_make_encoder is not None


if __name__ == "__main__":
    import simplejson
    with parpy.Executor(2) as ex:
        got = list(ex.map(dumps, range(20), chunksize=10))
        assert got == [(simplejson.dumps(i), True) for i in range(20)], got
        assert ex.submit(dumps, [1]).result() == ("[1]", True)
    print("hidden refusal in task OK")
