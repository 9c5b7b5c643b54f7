# sys.orig_argv with argv[0] (the interpreter's path) normalized.
import sys

print(["ARGV0"] + sys.orig_argv[1:])
print(sys.argv)
