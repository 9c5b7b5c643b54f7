# Exceptions in workers: same type and message, worker traceback as __cause__.
import threading
import parpy


class CustomError(Exception):
    pass


class Unpicklable(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}/{b}")
        self.lock = threading.Lock()


def fail(x):
    if x % 3 == 2:
        raise CustomError(f"bad item {x}")
    return x


def key_error(_):
    return {}["missing"]


def odd_exception(_):
    raise Unpicklable(1, 2)


if __name__ == "__main__":
    with parpy.Executor(2) as ex:
        fut = ex.submit(fail, 5)
        exc = fut.exception()
        assert type(exc) is CustomError and str(exc) == "bad item 5", repr(exc)
        cause = exc.__cause__
        assert isinstance(cause, parpy.RemoteTraceback)
        assert "in fail" in str(cause) and 'raise CustomError(f"bad item {x}")' in str(cause), str(cause)
        try:
            list(ex.map(fail, range(10)))
        except CustomError as e:
            assert str(e) == "bad item 2"
        else:
            raise AssertionError("map did not raise")
        try:
            ex.submit(key_error, 0).result()
        except KeyError as e:
            assert e.args == ("missing",)
        exc = ex.submit(odd_exception, 0).exception()
        assert type(exc) is Unpicklable or "Unpicklable" in str(exc), repr(exc)
        # The pool survives every error.
        assert list(ex.map(fail, [0, 1, 3])) == [0, 1, 3]
        try:
            ex.submit(fail, threading.Lock())
        except TypeError as e:
            assert "argument 0" in str(e) and "lock" in str(e), str(e)
        else:
            raise AssertionError("a lock travelled")
        try:
            ex.submit(fail, x=(i for i in range(3)))
        except TypeError as e:
            assert "keyword argument 'x'" in str(e) and "generator" in str(e), str(e)
    print("errors OK")
