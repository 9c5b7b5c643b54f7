# A module that refuses sub-interpreters gives a clear ImportError; the pool survives.
import parpy


def use_readline(x):
    import readline  # noqa: F401
    return x


if __name__ == "__main__":
    with parpy.Executor(2) as ex:
        try:
            ex.submit(use_readline, 1).result()
        except ImportError as e:
            print("ImportError:", e)
            print("name:", e.name)
        print("still works:", list(ex.map(abs, [-1, -2])))
