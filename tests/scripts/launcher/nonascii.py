import sys

print("héllo ✓ 日本")
print("encoding:", sys.stdout.encoding, sys.stdout.errors)
