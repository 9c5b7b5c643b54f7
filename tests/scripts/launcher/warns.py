import warnings

warnings.warn("careful now", UserWarning)
print("after the warning")
