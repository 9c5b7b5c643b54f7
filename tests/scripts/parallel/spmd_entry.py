# The __parallel__ / __gather__ convention.
import parpy

print("body runs once, in main")


def __parallel__(ctx):
    ctx.queue.put(ctx.rank)
    return {"rank": ctx.rank, "size": ctx.size, "square": ctx.rank ** 2, "wid": parpy.worker_id()}


def __gather__(results):
    print("gathered", results)
