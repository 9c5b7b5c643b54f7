# Prints where the interpreter looks for packages; run inside a virtualenv.
import sys

import vmod

print("prefix:", sys.prefix)
print("base_prefix:", sys.base_prefix)
print("executable:", sys.executable)
print("vmod:", vmod.MARK)
print("path:", sys.path)
