# Announces itself, then waits forever for a signal.
import time

print("ready", flush=True)
while True:
    time.sleep(60)
