# A script that fails: the traceback and exit code must be python's.
def inner():
    raise ValueError("from the script")


print("before")
inner()
