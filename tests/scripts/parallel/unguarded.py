import parpy

print("top of script")


@parpy.parallel
def double(x):
    return 2 * x


print(double.map(range(5)))


@parpy.parallel
def late(x):
    return x


try:
    late.submit(1).result()
except NameError as e:
    print("NameError:", str(e).split(".")[0])
