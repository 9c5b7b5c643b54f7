"""Runs a command on a pseudo-terminal and prints what it wrote there, as
repr() of the text, then its exit code: ``python pty_run.py PROG ARGS...``.
The progress-bar tests need a terminal (bars are drawn only on one)."""
import os
import pty
import select
import sys

pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            break
        chunk = os.read(fd, 65536)
    except OSError:  # EIO: the child closed the terminal
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
print(repr(out.decode(errors="replace")))
print("exit", os.waitstatus_to_exitcode(status))
