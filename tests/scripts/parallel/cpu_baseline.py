# What two plain processes get: the CPU time of two children, each running
# the same loop as one parpy worker in cpu_time.py, over the wall time.
import resource
import subprocess
import sys
import time

LOOP = "t = 0\nfor i in range(8_000_000):\n    t += i % 7\n"

w0 = time.perf_counter()
kids = [subprocess.Popen([sys.executable, "-S", "-c", LOOP]) for _ in range(2)]
for k in kids:
    k.wait()
wall = time.perf_counter() - w0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"ratio {(ru.ru_utime + ru.ru_stime) / wall:.2f}")
