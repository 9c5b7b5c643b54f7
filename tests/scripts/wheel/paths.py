# What a script sees of its Python: the same under the venv's parpy and python.
import site
import sys
import sysconfig

print("prefix", sys.prefix)
print("base_prefix", sys.base_prefix)
print("exec_prefix", sys.exec_prefix)
print("path", sys.path)
print("site", site.getsitepackages())
print("purelib", sysconfig.get_paths()["purelib"])
print("argv", sys.argv)
print("flags", sys.flags.isolated, sys.flags.no_user_site)
