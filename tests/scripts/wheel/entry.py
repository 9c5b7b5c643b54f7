# The __parallel__ convention, where the body's output comes first.
import sys


def __parallel__(ctx):
    return ctx.rank * 10


def __gather__(results):
    print("gathered", sorted(results), file=sys.stderr)
    if len(sys.argv) > 1:
        sys.exit(int(sys.argv[1]))


print("body ran")
