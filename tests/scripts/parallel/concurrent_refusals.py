# Several workers at once import a module that refuses sub-interpreters
# (readline), in pool after pool: never a crash (3.12 ran the module's init
# in each worker at the same time; see _COMPAT_SERIAL_EXT_INIT).
import sys

import parpy


def load(ctx):
    import readline  # noqa: F401  (refuses sub-interpreters)


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    for _ in range(rounds):
        with parpy.Executor(4) as ex:
            try:
                ex.spmd(load)
            except ImportError as e:
                assert e.name == "readline", e
            else:
                raise AssertionError("readline loaded in a sub-interpreter")
    print("concurrent refusals OK", rounds)
