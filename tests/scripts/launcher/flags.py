# Prints the interpreter settings that python's command-line flags change,
# one `name=value` a line.
import os
import sys


def documented():
    """a docstring that -OO strips"""


def show(name, value):
    print(f"{name}={value!r}")


for name in (
    "isolated",
    "ignore_environment",
    "no_user_site",
    "no_site",
    "optimize",
    "dont_write_bytecode",
    "safe_path",
    "utf8_mode",
    "dev_mode",
    "quiet",
):
    show(name, getattr(sys.flags, name))
show("xoptions", sys._xoptions)
show("warnoptions", sys.warnoptions)
show("debug", __debug__)
show("docstring", documented.__doc__)
show("site_imported", "site" in sys.modules)
show("stdout_buffer", type(sys.stdout.buffer).__name__)
show("stdout_encoding", sys.stdout.encoding)
here = os.path.dirname(os.path.abspath(__file__))
show("script_folder_on_path", here in sys.path)
extra = os.environ.get("PYTHONPATH")
show("pythonpath_on_path", bool(extra) and extra in sys.path)
