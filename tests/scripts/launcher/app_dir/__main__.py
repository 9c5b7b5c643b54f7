import sys

print("running", __name__, "from", __file__)
print("argv:", sys.argv)
print("path0:", sys.path[0])
