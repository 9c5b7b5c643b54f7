# Shows what a script sees of how it was started.
import os
import sys

print("argv:", sys.argv)
print("path0:", sys.path[0])
print("path0 is the script folder:", sys.path[0] == os.path.dirname(os.path.abspath(__file__)))
print("file:", __file__)
print("name:", __name__)
