# Re-runs the current interpreter, as test runners and tools do.
import subprocess
import sys

child = subprocess.run(
    [sys.executable, "-c", "import sys; print('child', sys.executable, sum(range(10)))"],
    capture_output=True,
    text=True,
)
print("code:", child.returncode)
print("stdout:", child.stdout.strip())
print("stderr:", child.stderr.strip())
